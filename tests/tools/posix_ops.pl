#!/usr/bin/perl
# posix_ops.pl DIR: runs a fixed sequence of file-system calls in DIR (which must be
# empty) and prints one line per observation: results, errno names, and the stat
# fields a program can rely on.  Run on a mount and on ext4; the outputs must match.
use strict;
use warnings;
use POSIX qw(:errno_h :fcntl_h);
use Fcntl qw(:mode SEEK_SET SEEK_END);
use Errno;
use IO::Handle;

my $d = shift or die "usage: posix_ops.pl DIR\n";
chdir $d or die "chdir $d: $!\n";
$| = 1;

sub ename { my $e = $! + 0; return 'ok' unless $e; for my $n (keys %!) { return $n if $!{$n} } return "errno$e" }
sub try { my ($what, $r) = @_; my $e = $r ? 'ok' : ename(); print "$what: $e\n"; return $r }
sub st {
    my ($what, $path) = @_;
    my @s = ref $path ? stat($path) : lstat($path);
    unless (@s) { print "$what: stat ", ename(), "\n"; return }
    printf "%s: type %o mode %04o nlink %d size %d uid %d gid %d\n", $what,
        S_IFMT($s[2]) >> 12, S_IMODE($s[2]), $s[3], $s[7], $s[4], $s[5];
}
sub slurp { my $p = shift; open(my $f, '<', $p) or return "open " . ename(); local $/; my $c = <$f>; return defined $c ? $c : '' }
sub put { my ($p, $c) = @_; open(my $f, '>', $p) or return 0; print $f $c; close $f }

umask 022;
# ---- create, exclusive create, O_TRUNC, O_APPEND
try("create a", sysopen(my $fa, "a", O_CREAT | O_WRONLY | O_EXCL, 0644));
syswrite($fa, "0123456789");
close $fa;
try("O_EXCL on existing", sysopen(my $x, "a", O_CREAT | O_WRONLY | O_EXCL, 0644));
try("append open", sysopen(my $ap, "a", O_WRONLY | O_APPEND));
sysseek($ap, 0, SEEK_SET);
syswrite($ap, "AB");
close $ap;
print "after append: ", slurp("a"), "\n";
try("O_TRUNC open", sysopen(my $tr, "a", O_WRONLY | O_TRUNC));
syswrite($tr, "xyz");
close $tr;
print "after O_TRUNC: ", slurp("a"), "\n";
st("a", "a");

# ---- random-offset writes, reads past EOF, truncate grow and shrink
sysopen(my $r, "r", O_CREAT | O_RDWR, 0600) or die;
for my $off (0, 4095, 4096, 10000, 8191, 1) { sysseek($r, $off, SEEK_SET); syswrite($r, "[$off]") }
my $buf;
sysseek($r, 9990, SEEK_SET);
my $n = sysread($r, $buf, 100);
printf "read near EOF: %d bytes %s\n", $n, join(',', map { ord } split //, substr($buf, 0, 16));
sysseek($r, 20000, SEEK_SET);
printf "read past EOF: %d\n", sysread($r, $buf, 10);
truncate($r, 5000);
st("r after ftruncate 5000", $r);
truncate($r, 70000);
sysseek($r, 60000, SEEK_SET);
sysread($r, $buf, 10);
printf "grown region reads zeros: %s\n", ($buf eq "\0" x 10 ? 'yes' : 'no');
printf "sysseek SEEK_END: %d\n", sysseek($r, 0, SEEK_END);
try("fsync", $r->sync);
try("fdatasync-like flush", $r->flush);
close $r;
try("truncate by path", truncate("r", 4097));
st("r", "r");
printf "r content md5-ish: %s\n", unpack('%32C*', slurp("r"));

# ---- directories
try("mkdir d", mkdir("d", 0755));
try("mkdir d again", mkdir("d", 0755));
try("mkdir d/e", mkdir("d/e", 0700));
put("d/e/f", "in e");
try("rmdir non-empty", rmdir("d"));
try("unlink a directory", unlink("d") == 1);
try("rmdir a file", rmdir("a"));
try("open dir for writing", sysopen(my $dw, "d", O_WRONLY));
try("mkdir under a file", mkdir("a/x"));
st("d", "d");
st("d/e", "d/e");

# ---- rename
put("s1", "source one");
put("t1", "target one");
try("rename over a file", rename("s1", "t1"));
print "t1 now: ", slurp("t1"), "\n";
try("renamed source gone", -e "s1" ? 0 : 1);
try("rename file onto directory", rename("t1", "d"));
try("rename directory onto file", rename("d", "t1"));
try("mkdir d2", mkdir("d2"));
put("d2/g", "g");
try("rename dir onto non-empty dir", rename("d2", "d"));
try("mkdir d3", mkdir("d3"));
try("rename dir onto empty dir", rename("d2", "d3"));
print "d3/g: ", slurp("d3/g"), "\n";
try("rename across directories", rename("t1", "d/e/t1"));
print "d/e/t1: ", slurp("d/e/t1"), "\n";
try("rename a directory with contents", rename("d", "dd"));
print "dd/e/f: ", slurp("dd/e/f"), "\n";
try("rename onto itself", rename("a", "a"));
try("rename dir into its own subdir", rename("dd", "dd/e/sub"));
try("rename missing", rename("nope", "x"));
st("dd", "dd");

# ---- links
put("h", "hard");
try("link", link("h", "h2"));
st("h after link", "h");
try("link onto existing", link("h", "h2"));
try("link a directory", link("dd", "ddl"));
open(my $hw, '>>', "h2") or die;
print $hw "+more";
close $hw;
print "h through other name: ", slurp("h"), "\n";
try("unlink h", unlink("h") == 1);
st("h2 after unlink of h", "h2");
try("symlink", symlink("h2", "sl"));
print "readlink: ", readlink("sl"), "\n";
print "through symlink: ", slurp("sl"), "\n";
st("sl", "sl");
try("symlink onto existing", symlink("x", "sl"));
try("readlink of a file", defined readlink("h2"));
try("symlink to dir", symlink("dd", "sld"));
print "through dir symlink: ", slurp("sld/e/f"), "\n";

# ---- unlink while open: the handle keeps working
put("u", "unlinked but open");
sysopen(my $u, "u", O_RDWR) or die;
try("unlink open file", unlink("u") == 1);
try("gone from the directory", -e "u" ? 0 : 1);
sysseek($u, 0, SEEK_SET);
sysread($u, $buf, 100);
print "read after unlink: $buf\n";
sysseek($u, 100, SEEK_SET);
syswrite($u, "tail");
st("fstat after unlink", $u);
sysseek($u, 100, SEEK_SET);
sysread($u, $buf, 100);
print "reread after unlink: $buf\n";
close $u;

# ---- metadata
try("chmod 0751", chmod(0751, "h2"));
try("chmod 04755", chmod(04755, "h2"));
st("h2 after chmod", "h2");
try("chown to 1234:5678", chown(1234, 5678, "h2"));
st("h2 after chown", "h2");
try("utime", utime(1000000000, 1234567890, "h2"));
my @s = stat("h2");
print "atime/mtime: $s[8] $s[9]\n";
try("utime on symlink target via path", utime(1111111111, 1111111112, "sl"));
@s = stat("h2");
print "after utime via symlink: $s[8] $s[9]\n";
try("access R_OK", POSIX::access("h2", POSIX::R_OK()));
try("access missing", POSIX::access("zz", POSIX::F_OK()));
try("mkfifo", POSIX::mkfifo("fifo", 0640));
st("fifo", "fifo");

# ---- listing
opendir(my $dh, ".") or die;
print "ls: ", join(' ', sort grep { !/^\.\.?$/ } readdir $dh), "\n";
closedir $dh;
opendir($dh, "dd/e") or die;
print "ls dd/e: ", join(' ', sort grep { !/^\.\.?$/ } readdir $dh), "\n";
