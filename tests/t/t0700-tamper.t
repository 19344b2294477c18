#!/bin/bash
# Tamper evidence of the opaque format: every kind of change to a stored file makes
# reads of that file fail with EIO and a log line naming it; untouched files still read.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt

C=$T/cipher
M=$T/mnt
LOG=$T/daemon.log
mkdir -p "$C" "$M"
ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M" || done_testing

# Victims: 3 blocks and a bit (so first, middle and last block exist), plus donors.
SIZE=$((3 * 4096 + 1000))
random_file "$T/orig" $SIZE
cases="header-magic header-version header-kind header-fileid header-sealed
block0-nonce block0-ct block0-tag block1-ct last-ct last-tag
trunc-1 trunc-block trunc-header grow-1 append-block
swap-blocks block-from-other header-from-other"
for c in $cases; do cp "$T/orig" "$M/$c"; done
cp "$T/orig" "$M/donor"
cp "$T/orig" "$M/untouched"
ok "unmount" pxc_umount "$M"

B=4136 # stored block
H=$PXC_HEADER # header
at() { flip_byte "$C/$1" "$2"; }
at header-magic 0
at header-version 8
at header-kind 10
at header-fileid 20
at header-sealed 80
at block0-nonce $((H + 3))
at block0-ct $((H + 24 + 100))
at block0-tag $((H + B - 1))
at block1-ct $((H + B + 24 + 4000))
at last-ct $((H + 3 * B + 24 + 10))
at last-tag $(($(fsize "$C/last-tag") - 1))
truncate -s -1 "$C/trunc-1"
truncate -s $((H + 3 * B)) "$C/trunc-block"     # drop the last (final) block
truncate -s 100 "$C/trunc-header"
printf x >>"$C/grow-1"
dd if="$C/append-block" bs=1 skip=$((H + B)) count=$B status=none >>"$C/append-block"
# swap blocks 0 and 1 within one file
dd if="$C/swap-blocks" of="$T/b0" bs=1 skip=$H count=$B status=none
dd if="$C/swap-blocks" of="$T/b1" bs=1 skip=$((H + B)) count=$B status=none
dd if="$T/b1" of="$C/swap-blocks" bs=1 seek=$H conv=notrunc status=none
dd if="$T/b0" of="$C/swap-blocks" bs=1 seek=$((H + B)) conv=notrunc status=none
# block 1 of another file (same plaintext, same position, other file id)
dd if="$C/donor" of="$T/d1" bs=1 skip=$((H + B)) count=$B status=none
dd if="$T/d1" of="$C/block-from-other" bs=1 seek=$((H + B)) conv=notrunc status=none
# the whole header of another file
dd if="$C/donor" of="$C/header-from-other" bs=1 count=$H conv=notrunc status=none

ok "mount in the foreground, logging to a file" pxc_mount_fg "$C" "$M" "$LOG"
for c in $cases; do
    err=$(tmo 30 cat "$M/$c" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 0 ] && printf '%s' "$err" | grep -q "Input/output error"; then
        pass "$c: read fails with EIO"
    else
        fail "$c: read fails with EIO"
        diag "cat exit $rc: $err"
    fi
    if grep -qF "/$c" "$LOG"; then
        pass "$c: a log line names the file"
    else
        fail "$c: a log line names the file"
    fi
done
ok "the untouched file still reads" cmp "$T/orig" "$M/untouched"
ok "the donor still reads" cmp "$T/orig" "$M/donor"
# A damaged block fails only the reads that touch it: block 2 of block1-ct is readable.
is "$(dd if="$M/block1-ct" bs=4096 skip=2 count=1 status=none | md5sum)" \
    "$(dd if="$T/orig" bs=4096 skip=2 count=1 status=none | md5sum)" \
    "blocks other than the damaged one still read"
note "log sample: $(grep -m1 block0-ct "$LOG")"
ok "unmount" pxc_umount "$M"
done_testing
