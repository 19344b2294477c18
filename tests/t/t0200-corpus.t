#!/bin/bash
# The shared image corpus (PNG, JPEG, malformed files) copied through a mount with
# cp -a and rsync: every file reads back identical, before and after a remount, and
# no stored file is a plain copy.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
[ -d "$PXC_CORPUS" ] || skip_all "no corpus at $PXC_CORPUS"

C=$T/cipher
M=$T/mnt
mkdir -p "$C" "$M"
ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M" || done_testing

nfiles=$(find "$PXC_CORPUS" -type f | wc -l)
note "corpus: $nfiles files"
ok "cp -a the corpus in" tmo 300 cp -a "$PXC_CORPUS" "$M/cp"
ok "diff -r: identical through the mount" tmo 300 diff -r "$PXC_CORPUS" "$M/cp"
ok "rsync -a the corpus in" tmo 300 rsync -a "$PXC_CORPUS/" "$M/rsync/"
ok "rsync -a back out: identical" tmo 300 rsync -a "$M/rsync/" "$T/out/"
ok "diff -r of the rsync round trip" diff -r "$PXC_CORPUS" "$T/out"
# A second rsync finds nothing to transfer: sizes and mtimes through the mount are exact.
is "$(tmo 300 rsync -ai "$PXC_CORPUS/" "$M/rsync/" | wc -l)" 0 "rsync again: nothing to transfer"

# Sizes and modes as listed through the mount match the source (what ls -l shows).
listing() { (cd "$1" && find . -printf '%y %m %s %TY-%Tm-%Td %TH:%TM %p\n' | sort); }
is "$(listing "$M/cp")" "$(listing "$PXC_CORPUS")" "type, mode, size and mtime of every entry match"

# Nothing is stored as a plain copy: no stored file equals its source.
same=0
while IFS= read -r -d '' f; do
    rel=${f#"$PXC_CORPUS"/}
    cmp -s "$f" "$C/cp/$rel" && same=$((same + 1))
done < <(find "$PXC_CORPUS" -type f -size +0 -print0)
is "$same" 0 "no stored file is identical to its plaintext"

ok "unmount" pxc_umount "$M"
ok "remount" pxc_mount "$C" "$M"
ok "diff -r after remount" tmo 300 diff -r "$PXC_CORPUS" "$M/cp"
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
is "$(sums "$M/rsync")" "$(sums "$PXC_CORPUS")" "sha256 of every file after remount"
ok "unmount" pxc_umount "$M"
done_testing
