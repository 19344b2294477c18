#!/usr/bin/perl
# img_stats.pl WIDTH < raw 8-bit samples (one channel, row-major): prints
#   entropy H  corr_h R  corr_v R  corr_d R
# Shannon entropy in bits/sample and the correlation of horizontally, vertically and
# diagonally adjacent samples over all pairs.
use strict;
use warnings;

my $w = shift or die "usage: img_stats.pl WIDTH < raw\n";
binmode STDIN;
local $/;
my $raw = <STDIN>;
my @p = unpack('C*', $raw);
my $n = @p;
my $h = int($n / $w);
die "no complete row\n" if $h < 2 || $w < 2;

my @hist = (0) x 256;
$hist[$_]++ for @p;
my $ent = 0;
for my $c (@hist) { next unless $c; my $q = $c / $n; $ent -= $q * log($q) / log(2) }

sub corr {
    my ($dx, $dy) = @_;
    my ($sx, $sy, $sxx, $syy, $sxy, $k) = (0, 0, 0, 0, 0, 0);
    for my $y (0 .. $h - 1 - $dy) {
        my $row = $y * $w;
        my $row2 = ($y + $dy) * $w;
        for my $x (0 .. $w - 1 - $dx) {
            my $a = $p[$row + $x];
            my $b = $p[$row2 + $x + $dx];
            $sx += $a; $sy += $b; $sxx += $a * $a; $syy += $b * $b; $sxy += $a * $b; $k++;
        }
    }
    my $cov = $sxy / $k - ($sx / $k) * ($sy / $k);
    my $va = $sxx / $k - ($sx / $k)**2;
    my $vb = $syy / $k - ($sy / $k)**2;
    return 0 if $va <= 0 || $vb <= 0;
    return $cov / sqrt($va * $vb);
}
printf "entropy %.5f corr_h %.5f corr_v %.5f corr_d %.5f\n", $ent, corr(1, 0), corr(0, 1), corr(1, 1);
