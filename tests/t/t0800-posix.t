#!/bin/bash
# POSIX behaviour as on ext4: the same sequence of calls (tests/tools/posix_ops.pl) on
# the mount and on a directory of the host filesystem prints the same observations.
# Then statfs, and concurrent writers and readers of one file.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt

C=$T/cipher
M=$T/mnt
mkdir -p "$C" "$M" "$T/ref"
ok "init" pxc_init "$C"
ok "mount" pxc_mount "$C" "$M" || done_testing

ok "posix_ops on the host filesystem ($(stat -f -c %T "$T/ref"))" \
    eval 'tmo 60 perl "$PXC_TESTS_DIR/tools/posix_ops.pl" "$T/ref" >"$T/ref.out" 2>&1'
mkdir "$M/ops"
tmo 60 perl "$PXC_TESTS_DIR/tools/posix_ops.pl" "$M/ops" >"$T/mnt.out" 2>&1
ok "posix_ops ran to the end on the mount" grep -q "^ls dd/e:" "$T/mnt.out"
if diff -u "$T/ref.out" "$T/mnt.out" >"$T/diff"; then
    pass "$(wc -l <"$T/ref.out") observations identical to the host filesystem"
else
    fail "observations identical to the host filesystem"
    diag_stdin <"$T/diff"
fi

# ---- statfs reports the backing filesystem's space
read -r bs blocks bfree <<<"$(stat -f -c '%S %b %f' "$M")"
read -r cbs cblocks cbfree <<<"$(stat -f -c '%S %b %f' "$C")"
is "$((bs * blocks))" "$((cbs * cblocks))" "statfs: total space is the cipher dir's"
ok "statfs: free space is within 1 % of the cipher dir's" \
    test $(((bs * bfree - cbs * cbfree) * 100 / (cbs * cblocks + 1))) -eq 0
ok "df works on the mount" df "$M"

# Our background jobs only (`jobs -p` would include the watchdog).
pids=()
wait_all() {
    local rc=0 p
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    pids=()
    return $rc
}

# ---- concurrency: 4 writers on disjoint 1 MiB regions of one file, 2 readers
# re-reading it meanwhile; afterwards every region holds its writer's bytes.
for w in 0 1 2 3; do head -c $((1 << 20)) /dev/urandom >"$T/part$w"; done
: >"$M/shared.bin"
for w in 0 1 2 3; do
    (for _ in 1 2 3 4 5; do
        dd if="$T/part$w" of="$M/shared.bin" bs=64k seek=$((w * 16)) conv=notrunc status=none
    done) &
    pids+=($!)
done
for r in 1 2; do
    (for _ in $(seq 1 20); do cat "$M/shared.bin" >/dev/null || exit 1; done) &
    pids+=($!)
done
wait_all; is $? 0 "writers and readers all succeeded"
cat "$T/part0" "$T/part1" "$T/part2" "$T/part3" >"$T/expect"
ok "the file holds every writer's region" cmp "$T/expect" "$M/shared.bin"

# ---- many files written in parallel by 8 processes
for p in $(seq 1 8); do
    (mkdir -p "$M/par$p" && for i in $(seq 1 50); do
        printf 'process %d file %d\n' "$p" "$i" >"$M/par$p/f$i" || exit 1
    done) &
    pids+=($!)
done
wait_all; is $? 0 "8 processes created 400 files"
bad=0
for p in $(seq 1 8); do for i in $(seq 1 50); do
    [ "$(cat "$M/par$p/f$i")" = "process $p file $i" ] || bad=$((bad + 1))
done; done
is "$bad" 0 "every one of them has its content"

ok "unmount" pxc_umount "$M"
ok "remount" pxc_mount "$C" "$M"
ok "shared file after remount" cmp "$T/expect" "$M/shared.bin"
ok "unmount" pxc_umount "$M"
done_testing
