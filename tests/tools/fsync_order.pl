#!/usr/bin/perl
# fsync_order.pl TRACE: replays an `strace -f` trace of the daemon (open, openat, write,
# pwrite64, fsync, fdatasync, rename*, linkat, close) and checks each rename of one of
# pixcrypt's temp files (.pixcrypt~HEX, an O_TMPFILE linked under that name, or created
# under it) over another name: the temp file's fd was fsynced after its last write, and
# the target directory's fd is fsynced after the rename, before it is closed.  pixcrypt
# makes each replacement in one thread, and a thread's calls are strictly ordered in the
# trace (while the order strace reports calls of different threads in may not be the
# order they ran in), so fds are followed per thread.  An "<unfinished ...>" line is
# joined with its "resumed" line.  Prints "renames N synced N dirsynced N", then
# "BAD ..." per fault.
use strict;
use warnings;

my (%pend, %tmp, %tmpname, %dir, %needsync, @bad);
my ($renames, $synced_before, $dirsynced) = (0, 0, 0);
while (my $l = <>) {
    chomp $l;
    my ($pid, $rest) = $l =~ /^(\d+)\s+(.*)$/ or next;
    if ($rest =~ /^(.*) <unfinished \.\.\.>$/) { $pend{$pid} = $1; next; }
    if ($rest =~ /^<\.\.\. \w+ resumed>(.*)$/) { $rest = ($pend{$pid} // "") . $1; delete $pend{$pid}; }
    my ($call, $args, $ret) = $rest =~ /^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)/ or next;
    next if $ret eq "?" || $ret < 0;
    my @a = split /,\s*/, $args;
    my $fd0 = "$pid:$a[0]";
    if ($call eq "openat" || $call eq "open") {
        my $path = $args =~ /"([^"]*)"/ ? $1 : "";
        my $k = "$pid:$ret";
        delete $tmp{$k}; delete $dir{$k}; delete $needsync{$k};
        if ($args =~ /O_TMPFILE/) { $tmp{$k} = { synced => 0, name => "" }; }
        elsif ($path =~ m{(?:^|/)(\.pixcrypt~[0-9a-f]+)$} && $args =~ /O_CREAT/) {
            $tmp{$k} = { synced => 0, name => $1 }; $tmpname{$1} = $k;
        }
        elsif ($args =~ /O_DIRECTORY/ && $args !~ /O_PATH/) { $dir{$k} = $path; }
    } elsif ($call eq "write" || $call eq "pwrite64") {
        $tmp{$fd0}{synced} = 0 if $tmp{$fd0} && $ret > 0;
    } elsif ($call eq "fsync" || $call eq "fdatasync") {
        $tmp{$fd0}{synced} = 1 if $tmp{$fd0};
        if ($needsync{$fd0}) { $dirsynced += $needsync{$fd0}; delete $needsync{$fd0}; }
    } elsif ($call eq "linkat") {
        my ($fd) = $a[1] =~ m{"/proc/self/fd/(\d+)"};
        my ($name) = $a[3] =~ /"([^"]*)"/;
        my $k = defined $fd ? "$pid:$fd" : "";
        if ($tmp{$k} && defined $name) { $tmpname{$name} = $k; $tmp{$k}{name} = $name; }
    } elsif ($call =~ /^rename/) {
        my @names = $args =~ /"([^"]*)"/g;
        my ($from, $to) = @names;
        next unless defined $from && $from =~ m{(?:^|/)(\.pixcrypt~[0-9a-f]+)$};
        my $t = $1;
        $renames++;
        my $fd = $tmpname{$t};
        if (!defined $fd || !$tmp{$fd}) { push @bad, "rename of $t over $to: no known fd for the temp file"; }
        elsif (!$tmp{$fd}{synced}) { push @bad, "rename of $t over $to: its fd ($fd) was not fsynced after its last write"; }
        else { $synced_before++; }
        my $dfd = $call eq "rename" ? "" : "$pid:$a[2]";
        if ($dir{$dfd}) { $needsync{$dfd}++; }
        else { push @bad, "rename of $t over $to: its directory fd ($a[2]) is not a directory this thread opened"; }
    } elsif ($call eq "close") {
        if ($needsync{$fd0}) { push @bad, "directory fd $fd0 ($dir{$fd0}) closed without an fsync after a rename into it"; }
        delete $tmp{$fd0}; delete $dir{$fd0}; delete $needsync{$fd0};
    }
}
push @bad, "directory fd $_ ($dir{$_}) never fsynced after a rename into it" for keys %needsync;
print "renames $renames synced $synced_before dirsynced $dirsynced\n";
print "BAD $_\n" for @bad;
