#!/bin/bash
# pixcrypt encrypt into a volume with encrypted names (the default): the stored tree
# has encrypted names, directory IVs and symlink targets as the mount makes them, fsck
# is clean, the mount shows the source tree, and decrypt gives it back.  A destination
# that is not an existing directory of such a volume is refused (its name could not be
# encrypted).
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
[ -d "$PXC_CORPUS" ] || skip_all "no corpus at $PXC_CORPUS"

C=$T/cipher
M=$T/mnt
S=$T/src
mkdir -p "$C" "$M" "$S"
ok "init (encrypted names)" pxc_init "$C"
px() { tmo 300 "$PXC_BIN" "$@"; }
enc() { px encrypt --volume "$C" --passfile "$PXC_PASSFILE" "$@"; }
dec() { px decrypt --volume "$C" --passfile "$PXC_PASSFILE" "$@"; }

# A tree with images, nested and awkward names, a long name and symlinks.
mkdir -p "$S/tree/Holidays 2024/Ärzte Befund" "$S/tree/empty dir"
i=0
for f in $(find "$PXC_CORPUS/png/pngsuite" -name 'basn*.png' | sort | head -n 6) \
    $(find "$PXC_CORPUS/jpeg" -name '*.jpg' | sort | head -n 6); do
    i=$((i + 1))
    cp "$f" "$S/tree/Holidays 2024/photo $i.${f##*.}"
done
cp "$(find "$PXC_CORPUS/jpeg" -name '*.jpg' | sort | head -n 1)" "$S/tree/Ärzte.JPG" 2>/dev/null ||
    cp "$(find "$PXC_CORPUS/jpeg" -name '*.jpg' | sort | head -n 1)" "$S/tree/Aerzte.JPG"
printf 'scan notes\n' >"$S/tree/Holidays 2024/Ärzte Befund/notes.txt"
long=$(printf 'a%.0s' $(seq 200))
printf 'long\n' >"$S/tree/$long.txt"
ln -s "Holidays 2024/photo 1.png" "$S/tree/first-photo"
ln -s ../elsewhere "$S/tree/dangling"

expect_exit 0 "encrypt -r the tree into the volume's root" enc -r "$S/tree" "$C"
stems=$(cd "$S/tree" && find . -mindepth 1 -printf '%f\n' | sed 's/\.[^.]*$//' | grep -v '^aaaa' | sort -u)
leaked=
while IFS= read -r stem; do
    [ -n "$stem" ] || continue
    find "$C" -path "$C/.pixcrypt" -prune -o -print | grep -qF -- "$stem" && leaked="$leaked [$stem]"
done <<<"$stems"
is "$leaked" "" "no plain name of the tree appears in the cipher dir"
find "$C" -path "$C/.pixcrypt" -prune -o -type l -print | while read -r l; do readlink "$l"; done >"$T/targets"
if grep -q "Holidays\|elsewhere" "$T/targets"; then fail "symlink targets are encrypted"; else pass "symlink targets are encrypted"; fi
ok "images keep their extension" sh -c "find '$C' -name '*.png' | grep -q . && find '$C' -name '*.JPG' | grep -q ."
expect_exit 0 "fsck: clean" px fsck --passfile "$PXC_PASSFILE" "$C"

ok "mount" pxc_mount "$C" "$M" || done_testing
ok "the mount shows the source tree (names, contents, symlinks)" diff -r --no-dereference "$S/tree" "$M/tree"
is "$(cd "$M/tree" && find . | sort)" "$(cd "$S/tree" && find . | sort)" "same listing, empty directory included"
ok "unmount" pxc_umount "$M"

stored=$(px encrypt-name --passfile "$PXC_PASSFILE" "$C" tree)
ok "encrypt-name finds the stored tree" test -d "$C/$stored"
mkdir -p "$T/out"
expect_exit 0 "decrypt -r the stored tree" dec -r "$C/$stored" "$T/out"
ok "decrypt gives the tree back" diff -r --no-dereference "$S/tree" "$T/out/tree"

expect_exit 2 "a destination that is not an existing directory of the volume is refused" \
    enc -r "$S/tree" "$C/new-name"
like "$(cat "$T/last.err")" "encrypts file names" "and the error says why"
ok "nothing was written for it" test ! -e "$C/new-name"

done_testing
