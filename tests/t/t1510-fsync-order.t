#!/bin/bash
# The machine-level view of crash safety: the daemon runs under strace while images and
# other files are copied in, overwritten, saved over, appended to and hard-linked.  From
# the trace: every rename of one of pixcrypt's temp files over a stored name comes after
# an fsync of that temp file's fd (and after its last write), and is followed by an
# fsync of the directory before the directory's fd is closed.
#
# Also the one place a stored file is rewritten in place instead (README: Limits): a
# stored image with several hard links opened for writing keeps its inode and links (no
# rename), while the same with one link is replaced by a rename.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
command -v strace >/dev/null || skip_all "no strace (contrib/deps.sh test installs it)"
[ -d "$PXC_CORPUS/png/pngsuite" ] || skip_all "no image corpus at $PXC_CORPUS"

C=$T/cipher
M=$T/mnt
S=$T/src
TRACE=$T/trace
mkdir -p "$C" "$M" "$S"
ls "$PXC_CORPUS"/png/pngsuite/*.png | head -n 20 | xargs -I{} cp {} "$S/"
ls "$PXC_CORPUS"/jpeg/exiftool/*.jpg | head -n 10 | xargs -I{} cp {} "$S/"
for s in 0 100 4096 9000 50000; do random_file "$S/blob$s.bin" $s; done

ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
strace -f -qq -o "$TRACE" \
    -e trace=open,openat,write,pwrite64,fsync,fdatasync,rename,renameat,renameat2,linkat,close \
    "$PXC_BIN" mount -f --passfile "$PXC_PASSFILE" "$C" "$M" </dev/null >"$T/daemon.log" 2>&1 &
spid=$!
_pxc_mounts="$_pxc_mounts $M"
ok "mount under strace" wait_for 60 mountpoint -q "$M" || done_testing

ok "copy images and other files in" cp "$S"/* "$M/"
mkdir -p "$M/sub"
ok "copy them into a subdirectory" cp "$S"/* "$M/sub/"
imgs=$(ls "$S" | grep -E '\.(png|jpg)$')
set -- $imgs
# overwritten in place (O_TRUNC), saved over (temp name + rename), appended to
cp "$S/$3" "$M/sub/$1"
cp "$S/$4" "$M/$5.tmp" && mv "$M/$5.tmp" "$M/$2"
printf 'tail' >>"$M/sub/$6"
# a hard-linked stored image opened for writing, and the same with one link
ln "$M/$7" "$M/$7.link"
ok "$7 and $8 are stored as images" eval '! has_magic "$C/$7" && ! has_magic "$C/$8"'
ino_linked=$(stat -c %i "$C/$7")
ino_single=$(stat -c %i "$C/$8")
exec 9<"$C/$8" # (holding the old inode, so that its number is not reused)
printf 'tail' >>"$M/$7"
printf 'tail' >>"$M/$8"
sleep 1 # the releases of the last files reach the daemon
is "$(stat -c %i "$C/$7")" "$ino_linked" "a stored image with two links is rewritten in place (same inode)"
is "$(stat -c %i "$C/$7.link")" "$ino_linked" "its other link still shares the inode"
is "$(stat -c %h "$C/$7")" 2 "it still has two links"
isnt "$(stat -c %i "$C/$8")" "$ino_single" "a stored image with one link is replaced by a rename (new inode)"
is "$(stat -L -c %h /proc/$$/fd/9)" 0 "its old inode has no name left"
exec 9<&-
cat "$S/$7" >"$T/want7" && printf tail >>"$T/want7"
cat "$S/$8" >"$T/want8" && printf tail >>"$T/want8"
ok "the linked image reads back with the appended bytes" cmp "$T/want7" "$M/$7.link"
ok "the other one too" cmp "$T/want8" "$M/$8"
ok "the overwritten file reads back" cmp "$S/$3" "$M/sub/$1"
ok "the saved-over file reads back" cmp "$S/$4" "$M/$2"

ok "unmount" pxc_umount "$M"
wait_for 30 _pxc_gone "$spid"
wait "$spid" 2>/dev/null

perl "$PXC_TESTS_DIR/tools/fsync_order.pl" "$TRACE" >"$T/verdict"
read -r _ renames _ synced _ dirsynced < <(head -n 1 "$T/verdict")
note "trace: $(wc -l <"$TRACE") lines; $renames renames of temp files over stored names, $synced after an fsync of the temp file, $dirsynced followed by a directory fsync"
nimg=0
for f in "$C"/* "$C"/sub/*; do [ -f "$f" ] && ! has_magic "$f" && nimg=$((nimg + 1)); done
ok "at least one rename per stored image ($renames >= $nimg)" test "$nimg" -gt 20 -a "$renames" -ge "$nimg"
is "$synced" "$renames" "every such rename comes after an fsync of the temp file, with no write in between"
is "$dirsynced" "$renames" "every such rename is followed by an fsync of its directory"
bad=$(grep -c '^BAD' "$T/verdict")
is "$bad" 0 "no rename out of order"
grep '^BAD' "$T/verdict" | head -n 10 | diag_stdin
done_testing
