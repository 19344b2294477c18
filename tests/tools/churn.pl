#!/usr/bin/perl
# churn.pl SRC DIR WORKER SECONDS SEED: one worker of the concurrency test.
#
# For SECONDS, in DIR (a tree shared with other workers): copies a random source file
# from SRC in under a name that says which source it holds ("<source>.w<worker>.<n>"),
# reads files of any worker back and compares them with their source, renames its own
# files (into other subdirectories too, keeping the source in the name), overwrites
# them with another source (renaming to match), truncates and rewrites them, deletes
# them.  Only its own files are changed; they are compared with their source whenever
# read and at the end.  Another worker's file may be caught mid-rewrite, so reading it
# only has to succeed (or find it gone).
# Prints "ops N errors E" at the end; exit 1 if any error was seen.
use strict;
use warnings;
use File::Copy qw(copy);

my ($src, $dir, $w, $secs, $seed) = @ARGV;
die "usage: churn.pl SRC DIR WORKER SECONDS SEED\n" unless defined $seed;
srand($seed);
opendir(my $sd, $src) or die "$src: $!";
my @sources = sort grep { -f "$src/$_" } readdir $sd;
closedir $sd;
my @subdirs = map { "$dir/d$_" } 0 .. 3;
my @mine;
my ($n, $ops, $errors) = (0, 0, 0);

sub err { $errors++; print STDERR "w$w: @_\n"; }

# The whole file, or undef if it is gone; any other failure counts as an error.
sub slurp {
    my ($path) = @_;
    open(my $f, '<:raw', $path) or do { err("open $path: $!") unless $!{ENOENT}; return undef };
    my ($d, $r) = ('', 0);
    while (($r = sysread($f, $d, 65536, length $d))) { }
    err("read $path: $!") unless defined $r;
    close $f;
    return $d;
}

my %cache;
sub source { my $s = shift; $cache{$s} //= slurp("$src/$s"); return $cache{$s}; }

sub name_for { my ($s, $d) = @_; $n++; return "$d/$s.w$w.$n"; }

my $end = time + $secs;
while (time < $end) {
    $ops++;
    my $r = rand;
    if ($r < 0.30 || @mine < 3) {    # create
        my $s = $sources[int rand @sources];
        my $p = name_for($s, $subdirs[int rand @subdirs]);
        if (copy("$src/$s", $p)) { push @mine, $p } else { err("copy $s -> $p: $!") }
    } elsif ($r < 0.45) {            # read one of mine
        my $p = $mine[int rand @mine];
        my ($s) = $p =~ m{/([^/]+)\.w\d+\.\d+$};
        my $got = slurp($p);
        err("$p missing") unless defined $got;
        err("$p differs from $s") if defined $got && $got ne source($s);
    } elsif ($r < 0.60) {            # read anyone's file: it must read
        my $d = $subdirs[int rand @subdirs];
        opendir(my $dh, $d) or next;
        my @f = grep { /^(.+)\.w\d+\.\d+$/ } readdir $dh;
        closedir $dh;
        slurp("$d/$f[int rand @f]") if @f;
    } elsif ($r < 0.75) {            # rename one of mine
        my $i = int rand @mine;
        my ($s) = $mine[$i] =~ m{/([^/]+)\.w\d+\.\d+$};
        my $p = name_for($s, $subdirs[int rand @subdirs]);
        if (rename($mine[$i], $p)) { $mine[$i] = $p } else { err("rename $mine[$i]: $!") }
    } elsif ($r < 0.85) {            # overwrite one of mine with another source
        my $i = int rand @mine;
        my $s = $sources[int rand @sources];
        if (open(my $f, '>:raw', $mine[$i])) {
            print $f source($s);
            close($f) or err("close $mine[$i]: $!");
            my $p = name_for($s, $subdirs[int rand @subdirs]);
            if (rename($mine[$i], $p)) { $mine[$i] = $p } else { err("rename $mine[$i]: $!") }
        } else {
            err("open $mine[$i]: $!");
        }
    } elsif ($r < 0.90) {            # truncate to zero and write back the same source
        my $i = int rand @mine;
        my ($s) = $mine[$i] =~ m{/([^/]+)\.w\d+\.\d+$};
        truncate($mine[$i], 0) or err("truncate $mine[$i]: $!");
        if (open(my $f, '+<:raw', $mine[$i])) {
            print $f source($s);
            close($f) or err("close $mine[$i]: $!");
        } else {
            err("reopen $mine[$i]: $!");
        }
    } else {                         # delete one of mine
        my $i = int rand @mine;
        unlink($mine[$i]) or err("unlink $mine[$i]: $!");
        splice(@mine, $i, 1);
    }
}
# Everything this worker still owns must hold its source.
for my $p (@mine) {
    my ($s) = $p =~ m{/([^/]+)\.w\d+\.\d+$};
    my $got = slurp($p);
    err("$p missing at the end") unless defined $got;
    err("$p differs from $s at the end") if defined $got && $got ne source($s);
}
print "ops $ops errors $errors files " . scalar(@mine) . "\n";
exit($errors ? 1 : 0);
