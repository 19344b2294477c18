#!/bin/bash
# pixcrypt encrypt / decrypt without FUSE: the corpus encrypted offline into a volume
# mounts and reads back identical, with the stored kinds and keystore rows the
# filesystem itself makes (fsck clean); stored files written by the mount and copied
# out decrypt offline; round trips of single files, trees, in place and large files;
# outputs and inputs never overwritten unless asked; the chaos profile refused without
# --allow-weak-profile; a mounted volume, a wrong passphrase, tampered and foreign files
# and rollbacks refused with the documented exit codes; the progress bar only on a
# terminal.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
[ -d "$PXC_CORPUS" ] || skip_all "no corpus at $PXC_CORPUS"
for t in sqlite3 file script; do
    command -v $t >/dev/null || skip_all "$t not installed (contrib/deps.sh test)"
done

C=$T/cipher
M=$T/mnt
mkdir -p "$C" "$M"
ok "init (plaintext names: encrypt writes into the volume, which needs them)" pxc_init "$C" --plaintext-names
px() { tmo 300 "$PXC_BIN" "$@"; }
enc() { px encrypt --volume "$C" --passfile "$PXC_PASSFILE" "$@"; }
dec() { px decrypt --volume "$C" --passfile "$PXC_PASSFILE" "$@"; }
rows() { sqlite3 "$C/.pixcrypt/keystore.db" "SELECT count(*) FROM files"; }
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
listing() { (cd "$1" && find . -printf '%y %m %s %TY-%Tm-%Td %TH:%TM:%TS %p\n' | sort); }
# The stored kind of every file under a cipher tree, as `file` sees it.
kinds() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 file --mime-type); }
nfiles=$(find "$PXC_CORPUS" -type f | wc -l)
note "corpus: $nfiles files"

# ---- into a volume, then mounted
expect_exit 0 "encrypt -r the corpus into the cipher dir" enc -r "$PXC_CORPUS" "$C/offline"
like "$(cat "$T/last.out")" "^pixcrypt encrypt: $nfiles files .*: [1-9][0-9]* png, [1-9][0-9]* jpeg, [1-9][0-9]* opaque" \
    "summary: every file, some of each stored kind"
is "$(cat "$T/last.err")" "" "nothing on stderr when not on a terminal"
is "$(rows)" "$nfiles" "one keystore row per file"
expect_exit 0 "fsck: clean (rows are exact copies of the headers)" \
    px fsck --passfile "$PXC_PASSFILE" "$C"
same=0
while IFS= read -r -d '' f; do
    cmp -s "$f" "$C/offline/${f#"$PXC_CORPUS"/}" && same=$((same + 1))
done < <(find "$PXC_CORPUS" -type f -size +0 -print0)
is "$same" 0 "no stored file is identical to its plaintext"
png=$(find "$C/offline" -name '*.png' -size +0 | head -n 1)
ok "a stored PNG passes pngcheck" pngcheck -q "$png"

ok "mount (foreground, its log kept)" pxc_mount_fg "$C" "$M" "$T/daemon.log" || done_testing
ok "diff -r: the offline tree reads back identical through the mount" diff -r "$PXC_CORPUS" "$M/offline"
is "$(listing "$M/offline")" "$(listing "$PXC_CORPUS")" "type, mode, size and mtime of every entry match"
ok "the corpus copied in through the mount too" tmo 300 cp -a "$PXC_CORPUS" "$M/viafs"
ok "unmount" pxc_umount "$M"
is "$(kinds "$C/offline")" "$(kinds "$C/viafs")" \
    "each file has the stored kind the filesystem gives it" ||
    grep -i "stored opaque" "$T/daemon.log" | head -n 20 | diag_stdin
is "$(rows)" $((2 * nfiles)) "keystore rows for both trees"

# ---- stored files the filesystem wrote, copied out and decrypted offline
cp -a "$C/viafs" "$T/copied"
expect_exit 0 "decrypt -r stored files copied out of the volume" dec -r "$T/copied" "$T/plain"
ok "identical to the corpus" diff -r "$PXC_CORPUS" "$T/plain"
expect_exit 0 "decrypt -r the volume's own tree" dec -r -j 1 "$C/offline" "$T/plain1"
is "$(sums "$T/plain1")" "$(sums "$PXC_CORPUS")" "sha256 of every file (one thread)"

# ---- outside any volume: trees, several sources, single files
expect_exit 0 "encrypt -r to a directory outside the volume" enc -r "$PXC_CORPUS/png" "$T/out"
is "$(rows)" $((2 * nfiles)) "no keystore rows for files outside the volume"
expect_exit 0 "decrypt them" dec -r "$T/out" "$T/back"
ok "round trip identical" diff -r "$PXC_CORPUS/png" "$T/back"
one=$(find "$PXC_CORPUS/jpeg" -name '*.jpg' | head -n 1)
two=$(find "$PXC_CORPUS/png" -name '*.png' | head -n 1)
mkdir "$T/many"
expect_exit 0 "several sources into a directory" enc "$one" "$two" "$T/many"
ok "both there, by their names" test -s "$T/many/$(basename "$one")" -a -s "$T/many/$(basename "$two")"
expect_exit 2 "several sources into a non-directory: usage error" enc "$one" "$two" "$T/nodir"
expect_exit 0 "single file to a file" enc "$one" "$T/one.jpg"
like "$(file -b --mime-type "$T/one.jpg")" "image/jpeg" "stored JPEG is a JPEG"
expect_exit 0 "and back" dec "$T/one.jpg" "$T/one.plain"
ok "identical" cmp "$one" "$T/one.plain"
ln -s "$one" "$T/link.jpg"
expect_exit 0 "a source named through a symlink: its target is read" enc "$T/link.jpg" "$T/fromlink.jpg"
ok "the link is left as it is" test -L "$T/link.jpg"
expect_exit 0 "and decrypts to the target's bytes" dec "$T/fromlink.jpg" "$T/fromlink.plain"
ok "identical" cmp "$one" "$T/fromlink.plain"
expect_exit 1 "a directory without -r" enc "$PXC_CORPUS/png" "$T/x"
like "$(cat "$T/last.err")" "png: is a directory \(use -r\)" "error names the directory and the reason"

# ---- nothing overwritten unless asked
before=$(sha256sum "$T/one.jpg")
expect_exit 1 "encrypt onto an existing output: refused" enc "$one" "$T/one.jpg"
like "$(cat "$T/last.err")" "one.jpg: output exists \(use --force" "error names the output and the reason"
is "$(sha256sum "$T/one.jpg")" "$before" "existing output unchanged"
expect_exit 0 "with --force" enc --force "$one" "$T/one.jpg"
isnt "$(sha256sum "$T/one.jpg")" "$before" "replaced (new per-file seed)"
cp "$T/one.jpg" "$T/self.jpg"
before=$(sha256sum "$T/self.jpg")
expect_exit 1 "output = input: refused even with --force" dec --force "$T/self.jpg" "$T/self.jpg"
like "$(cat "$T/last.err")" "self.jpg: output would overwrite an input" "says so"
is "$(sha256sum "$T/self.jpg")" "$before" "input unchanged"
expect_exit 1 "encrypt -r again into the volume: every output exists" enc -r "$PXC_CORPUS/png" "$C/offline"
like "$(head -n 1 "$T/last.err")" "offline/png/.*: output exists" "each one named"
is "$(find "$C" -name '.pixcrypt~*' | wc -l)" 0 "no temp files left behind"
expect_exit 0 "encrypt -r --force into the volume" enc -r --force "$PXC_CORPUS/png" "$C/offline"
is "$(rows)" $((2 * nfiles)) "replaced files' old rows dropped, new ones added"
expect_exit 0 "fsck still clean" px fsck --passfile "$PXC_PASSFILE" "$C"
ls -A "$C" >"$T/rootlist"
expect_exit 1 "decrypt into the cipher dir: refused" dec "$T/one.jpg" "$C/plain.jpg"
like "$(cat "$T/last.err")" "would put plaintext into the volume's cipher dir" "says why"
printf x >"$T/.pixcrypt"
expect_exit 1 "a file named .pixcrypt at the volume root: refused" enc "$T/.pixcrypt" "$C/"
is "$(ls -A "$C")" "$(cat "$T/rootlist")" "cipher dir root unchanged"

# ---- in place
cp -a "$PXC_CORPUS/jpeg" "$T/inplace"
expect_exit 0 "encrypt -r --in-place" enc -r --in-place "$T/inplace"
expect_exit 1 "encrypting stored files again: refused" enc -r --in-place "$T/inplace"
like "$(cat "$T/last.err")" "already encrypted" "says why"
expect_exit 0 "decrypt -r --in-place" dec -r --in-place "$T/inplace"
is "$(listing "$T/inplace")" "$(listing "$PXC_CORPUS/jpeg")" "modes, sizes and mtimes back"
ok "contents back" diff -r "$PXC_CORPUS/jpeg" "$T/inplace"

# ---- symlinks, large files (streamed, opaque)
mkdir -p "$T/links/sub"
ln -s ../x.bin "$T/links/sub/l"
random_file "$T/links/x.bin" $((20 * 1024 * 1024 + 123))
expect_exit 0 "encrypt a tree with a 20 MiB file and a symlink" enc -r "$T/links" "$T/links.enc"
is "$(readlink "$T/links.enc/sub/l")" "../x.bin" "symlink kept as it is"
is "$(fsize "$T/links.enc/x.bin")" "$(pxc_stored_size $((20 * 1024 * 1024 + 123)))" "stored size of the opaque form"
expect_exit 0 "decrypt it" dec -r "$T/links.enc" "$T/links.dec"
ok "large file identical" cmp "$T/links/x.bin" "$T/links.dec/x.bin"

# ---- a volume's whole tree; special files
expect_exit 0 "decrypt -r the cipher dir itself" dec -r "$C" "$T/wholevol"
ok "its .pixcrypt directory left out" test ! -e "$T/wholevol/.pixcrypt"
ok "the offline tree identical to the corpus" diff -r "$PXC_CORPUS" "$T/wholevol/offline"
ok "the tree written through the mount too" diff -r "$PXC_CORPUS" "$T/wholevol/viafs"
mkdir -p "$T/special" && mkfifo "$T/special/fifo" && printf hi >"$T/special/f.txt"
expect_exit 0 "a tree with a FIFO: done" enc -r "$T/special" "$T/special.enc"
like "$(cat "$T/last.err")" "special/fifo: not a regular file, directory or symlink: skipped" "the FIFO is named as skipped"
like "$(cat "$T/last.out")" "1 files .*; 1 skipped" "and counted"

# ---- an interrupted run leaves complete outputs and no temp files
random_file "$T/intr.bin" $((256 * 1024 * 1024))
mkdir "$T/intr"
"$PXC_BIN" encrypt --volume "$C" --passfile "$PXC_PASSFILE" -q "$T/intr.bin" "$T/intr/" &
ipid=$!
if wait_for 60 sh -c "ls -A '$T/intr' | grep -q '^\.pixcrypt~'"; then
    kill -INT $ipid
    wait $ipid
    irc=$?
    is "$irc" 130 "SIGINT while writing: the command ends by the signal"
    is "$(ls -A "$T/intr")" "" "its temp file removed, no partial output"
else
    wait $ipid
    skip "interrupt while writing" "the 256 MiB file was done before it could be interrupted"
    skip "temp file removed" "not interrupted"
fi
rm -f "$T/intr.bin"

# ---- damaged, foreign and rolled-back files
cp "$T/one.jpg" "$T/bad.jpg"
flip_byte "$T/bad.jpg" $(($(fsize "$T/bad.jpg") / 2))
mkdir "$T/badout"
expect_exit 1 "a tampered stored file: refused" dec "$T/bad.jpg" "$T/badout/bad.jpg"
like "$(cat "$T/last.err")" "bad.jpg: .*fails authentication" "error names the file and the reason"
is "$(ls -A "$T/badout")" "" "no output and no temp file left"
C2=$T/other
ok "a second volume" pxc_init "$C2"
expect_exit 1 "a file of another volume: refused" \
    px decrypt --volume "$C2" --passfile "$PXC_PASSFILE" "$T/one.jpg" "$T/foreign"
like "$(cat "$T/last.err")" "one.jpg: not a file of this volume" "says so"
expect_exit 1 "a file that is no pixcrypt file" dec "$one" "$T/notstored"
like "$(cat "$T/last.err")" "not a pixcrypt file" "says so"
# An opaque stored file's id is in its header (bytes 16..31): make its row newer.
victim=$(find "$C/offline" -name '*.txt' -size +0 | head -n 1)
vid=$(od -An -tx1 -j 16 -N 16 "$victim" | tr -d ' \n')
setv() { sqlite3 "$C/.pixcrypt/keystore.db" "UPDATE files SET version = version $1 WHERE hex(file_id) = upper('$vid')"; }
setv "+ 1"
expect_exit 1 "a stored file older than its keystore row: refused (rollback)" dec "$victim" "$T/rolled"
like "$(cat "$T/last.err")" "rollback" "says rollback"
cp "$victim" "$T/old-copy.txt"
expect_exit 0 "the same old version copied out of the volume (a backup): decrypted" \
    dec "$T/old-copy.txt" "$T/old-copy.plain"
setv "- 1"
expect_exit 0 "once the row matches again: decrypted" dec "$victim" "$T/rolled"

# ---- profiles, volume state, exit codes
expect_exit 2 "--profile chaos without --allow-weak-profile: refused" enc --profile chaos "$two" "$T/chaos.png"
like "$(cat "$T/last.err")" "not secure.*--allow-weak-profile" "says why"
ok "no output" test ! -e "$T/chaos.png"
expect_exit 0 "--profile chaos --allow-weak-profile" enc --profile chaos --allow-weak-profile "$two" "$T/chaos.png"
expect_exit 0 "decrypt the chaos file" dec "$T/chaos.png" "$T/chaos.plain"
ok "identical" cmp "$two" "$T/chaos.plain"
C3=$T/chaosvol
ok "a chaos-profile volume" pxc_init "$C3" --profile chaos
expect_exit 2 "encrypt with it: refused without --allow-weak-profile" \
    px encrypt --volume "$C3" --passfile "$PXC_PASSFILE" "$two" "$T/c3.png"

ok "mount" pxc_mount "$C" "$M"
expect_exit 4 "the volume is mounted: exit 4" enc "$one" "$T/while-mounted"
like "$(cat "$T/last.err")" "already mounted" "says so"
ok "unmount" pxc_umount "$M"
printf 'wrong\n' >"$T/wrong"
expect_exit 3 "wrong passphrase: exit 3" px encrypt --volume "$C" --passfile "$T/wrong" "$one" "$T/w"
expect_exit 5 "not a volume: exit 5" px encrypt --volume "$T/links" --passfile "$PXC_PASSFILE" "$one" "$T/w"
expect_exit 2 "no --volume: exit 2" px encrypt "$one" "$T/w"

# ---- progress: on a terminal only
expect_exit 0 "piped: quiet" enc -r "$PXC_CORPUS/jpeg" "$T/piped"
is "$(cat "$T/last.err")" "" "no progress output when stderr is not a terminal"
script -qec "$PXC_BIN encrypt --volume $C --passfile $PXC_PASSFILE -r $PXC_CORPUS/png $T/tty" \
    /dev/null >"$T/tty.out" 2>&1 </dev/null
like "$(tr '\r' '\n' <"$T/tty.out" | grep 'encrypting' | tail -n 1)" \
    "encrypting \[#+\] 100% [0-9]+/[0-9]+ files, .*/s, ETA [0-9:]+" \
    "on a terminal: bar, files, throughput and ETA"
done_testing
