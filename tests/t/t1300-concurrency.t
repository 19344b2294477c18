#!/bin/bash
# Concurrency: four processes create, read, rename, overwrite, truncate and delete files
# (images and others) in one tree at the same time for PXC_CHURN_SECONDS (default 30;
# `make soak` runs longer).  Afterwards, and again after a remount, every file holds the
# content its name says; no worker saw an error; the daemon did not deadlock (the
# script's watchdog and a time limit on the workers would fail it) and holds no more
# file descriptors than before once the kernel has forgotten the inodes.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
command -v convert >/dev/null || skip_all "no ImageMagick convert"
: "${PXC_CHURN_SECONDS:=30}"
CHURN=$PXC_TESTS_DIR/tools/churn.pl

C=$T/cipher
M=$T/mnt
S=$T/src
mkdir -p "$C" "$M" "$S"
convert -seed 1 -size 300x200 plasma:fractal -depth 8 "$S/a.png"
convert -seed 2 -size 64x48 gradient:red-blue -depth 16 "$S/b.png"
convert -seed 3 -size 320x240 plasma:fractal -quality 85 "$S/c.jpg"
convert -seed 4 -size 200x150 plasma:fractal -quality 70 -interlace JPEG "$S/d.jpg"
: >"$S/empty.bin"
head -c 5000 /dev/urandom >"$S/small.bin"
head -c 300000 /dev/urandom >"$S/large.bin"
seq 1 20000 >"$S/text.txt"

ok "init" pxc_init "$C"
ok "mount (foreground, logging to a file)" pxc_mount_fg "$C" "$M" "$T/daemon.log"
mkdir -p "$M/d0" "$M/d1" "$M/d2" "$M/d3"
pid=$(pxc_daemon_pids "$M" | head -n 1)
fds() { ls "/proc/$pid/fd" | wc -l; }
forget() { sync; echo 3 >/proc/sys/vm/drop_caches; sleep 1; }
forget
fds_before=$(fds)

for w in 1 2 3 4; do
    tmo $((PXC_CHURN_SECONDS + 120)) perl "$CHURN" "$S" "$M" $w "$PXC_CHURN_SECONDS" $((w * 7919)) \
        >"$T/w$w.out" 2>"$T/w$w.err" &
    eval "wpid$w=$!"
done
for w in 1 2 3 4; do
    eval "wait \$wpid$w"
    rc=$?
    is "$rc" 0 "worker $w: no errors ($(cat "$T/w$w.out"))"
    [ -s "$T/w$w.err" ] && head -n 5 "$T/w$w.err" | diag_stdin
done
grep -v "decoded whole" "$T/daemon.log" | head -n 5 | diag_stdin

check_tree() {
    _bad=0 _n=0
    for f in "$M"/d*/*; do
        [ -e "$f" ] || continue
        _n=$((_n + 1))
        _s=$(basename "$f" | sed 's/\.w[0-9]*\.[0-9]*$//')
        cmp -s "$S/$_s" "$f" || { _bad=$((_bad + 1)); echo "# $f differs from $_s" >&2; }
    done
    echo "$_n $_bad"
}
read -r n bad < <(check_tree)
ok "files left: $n" [ "$n" -gt 0 ]
is "$bad" 0 "every file holds the source its name says"
forget
fds_after=$(fds)
ok "daemon file descriptors back to $fds_before after the kernel forgot the inodes (now $fds_after)" \
    [ "$fds_after" -le $((fds_before + 2)) ]
diag "daemon peak memory: $(grep VmHWM "/proc/$pid/status" | tr -s ' ')"
ok "unmount" pxc_umount "$M"
ok "remount" pxc_mount "$C" "$M"
read -r n2 bad2 < <(check_tree)
is "$n2 $bad2" "$n 0" "after a remount: the same $n files, all intact"
ok "unmount" pxc_umount "$M"
done_testing
