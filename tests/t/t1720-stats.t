#!/bin/bash
# pixcrypt stats: files and bytes per storage kind match what was written through the
# mount and what lies in the cipher dir; why files stayed opaque (content, codec's
# reason); the keystore's health: integrity_check, rows against files (missing rows,
# rows without files, shared ids), and a damaged database.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
SUITE=$PXC_CORPUS/png/pngsuite
[ -d "$SUITE" ] || skip_all "no PngSuite in the corpus ($SUITE)"
command -v sqlite3 >/dev/null || skip_all "no sqlite3 command (contrib/deps.sh test installs it)"

C=$T/cipher
M=$T/mnt
ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M"
cp "$SUITE/basn2c08.png" "$SUITE/basn6a08.png" "$M/"
jpeg=$(find "$PXC_CORPUS/jpeg" -iname '*.jpg' -size -200k | head -n 1)
cp "$jpeg" "$M/photo.jpg"
echo "plain text" >"$M/notes.txt"
echo "this is no image" >"$M/fake.png"
# PNGs cut short (no IEND, or half the image data): the codec declines them
head -c $(($(stat -c %s "$SUITE/basn2c08.png") - 12)) "$SUITE/basn2c08.png" >"$M/cut.png"
head -c $(($(stat -c %s "$SUITE/basn6a08.png") / 2)) "$SUITE/basn6a08.png" >"$M/cut2.png"
sum_sizes() { local s=0 f; for f in "$@"; do s=$((s + $(stat -c %s "$f"))); done; echo $s; }
png_plain=$(sum_sizes "$M/basn2c08.png" "$M/basn6a08.png")
jpeg_plain=$(sum_sizes "$M/photo.jpg")
opaque_plain=$(sum_sizes "$M/notes.txt" "$M/fake.png" "$M/cut.png" "$M/cut2.png")
ok "unmount" pxc_umount "$M"
stored_total=$(find "$C" -path "$C/.pixcrypt" -prune -o -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')

expect_exit 0 "stats" tmo 120 "$PXC_BIN" stats --passfile "$PXC_PASSFILE" "$C"
out=$(cat "$T/last.out")
row() { printf '%s\n' "$out" | awk -v k="$1" '$1 == k { print $2, $3, $4 }'; }
like "$(row PNG)" "^2 $png_plain [0-9]+$" "PNG: 2 files, $png_plain plain bytes"
like "$(row JPEG)" "^1 $jpeg_plain [0-9]+$" "JPEG: 1 file, $jpeg_plain plain bytes"
like "$(row opaque)" "^4 $opaque_plain [0-9]+$" "opaque: 4 files, $opaque_plain plain bytes"
like "$(row total)" "^7 $((png_plain + jpeg_plain + opaque_plain)) $stored_total$" \
    "total: 7 files, stored bytes = the cipher dir's files ($stored_total)"
like "$out" "total .* [+-][0-9]+\.[0-9]%" "with the overhead in percent"
like "$out" " 2  content is neither PNG nor JPEG \(28 bytes\)" "2 opaque for their content (notes.txt, fake.png)"
like "$out" " 1  PNG declined by the codec: .*IEND" "the PNG without IEND: declined by the codec, with its reason"
is "$(printf '%s\n' "$out" | grep -c 'PNG declined by the codec: ')" 2 "two PNGs declined, each with its reason"
like "$out" "integrity_check ok" "keystore integrity_check ok"
like "$out" "places [0-9]+: every file's is recorded" "places counted, every file's recorded"
like "$out" "rows 7, stored files 7" "7 rows for 7 files"
like "$out" "healthy" "healthy"

expect_exit 0 "stats --quick" tmo 120 "$PXC_BIN" stats --quick --passfile "$PXC_PASSFILE" "$C"
like "$(cat "$T/last.out")" " 2  PNG content kept opaque \(reason not derived" "--quick: no encoder run, said so"
expect_exit 0 "stats --no-unlock needs no passphrase" tmo 60 "$PXC_BIN" stats --no-unlock "$C" </dev/null
like "$(cat "$T/last.out")" "not derived without the passphrase" "and says reasons need it"
like "$(cat "$T/last.out")" "opaque +4 +$opaque_plain " "the counts are the same"
echo "wrong" >"$T/wrong"
expect_exit 3 "wrong passphrase: exit 3" tmo 60 "$PXC_BIN" stats --passfile "$T/wrong" "$C"
expect_exit 5 "not a volume: exit 5" tmo 60 "$PXC_BIN" stats --no-unlock "$T"

# ---- the keystore against the files
victim=$(find "$C" -path "$C/.pixcrypt" -prune -o -type f -print | head -n 1)
cp "$victim" "$T/victim.copy"
rm "$victim"
expect_exit 0 "stats after a stored file was removed outside the mount" tmo 60 "$PXC_BIN" stats --no-unlock "$C"
like "$(cat "$T/last.out")" "rows without a file 1" "one row without a file"
like "$(cat "$T/last.out")" "needs attention: run pixcrypt fsck" "and a hint"
cp "$T/victim.copy" "$victim"
cp "$T/victim.copy" "$C/copy-of-a-stored-file"
ln "$victim" "$C/hardlink"
echo "dropped in by hand" >"$C/stray.txt"
expect_exit 0 "stats with a copy, a hard link and a stray file" tmo 60 "$PXC_BIN" stats --no-unlock "$C"
like "$(cat "$T/last.out")" "shared file ids 1" "the copy shares a file id"
like "$(cat "$T/last.out")" "1 more names of hard-linked files counted once" "the hard link counted once"
like "$(cat "$T/last.out")" "unrecognised files: 1 \(19 bytes\)" "the stray file is unrecognised"
rm "$C/copy-of-a-stored-file" "$C/hardlink" "$C/stray.txt"
sqlite3 "$C/.pixcrypt/keystore.db" "DELETE FROM files WHERE rowid IN (SELECT rowid FROM files LIMIT 1);" 2>/dev/null ||
    sqlite3 "$C/.pixcrypt/keystore.db" "DELETE FROM files WHERE file_id = (SELECT file_id FROM files LIMIT 1);"
expect_exit 0 "stats after a row was dropped" tmo 60 "$PXC_BIN" stats --no-unlock "$C"
like "$(cat "$T/last.out")" "rows 6, stored files 7" "6 rows for 7 files"
like "$(cat "$T/last.out")" "files without a row 1" "one file without a row"
sqlite3 "$C/.pixcrypt/keystore.db" "UPDATE files SET plain_size = plain_size + 1 WHERE file_id = (SELECT file_id FROM files LIMIT 1);"
expect_exit 0 "stats after a row was changed" tmo 60 "$PXC_BIN" stats --no-unlock "$C"
like "$(cat "$T/last.out")" "rows that disagree 1" "one row disagrees with its file"

# ---- a damaged database page: integrity_check says so
page=$(sqlite3 "$C/.pixcrypt/keystore.db" "PRAGMA page_size;")
root=$(sqlite3 "$C/.pixcrypt/keystore.db" "SELECT rootpage FROM sqlite_master WHERE name = 'files';")
printf '\x0d\xff\xff\xff\xff\xff\xff\xff' | dd of="$C/.pixcrypt/keystore.db" bs=1 seek=$(((root - 1) * page)) conv=notrunc 2>/dev/null
tmo 60 "$PXC_BIN" stats --no-unlock "$C" >"$T/damaged.out" 2>"$T/damaged.err"
rc=$?
ok "a damaged files table: no crash (exit $rc)" test $rc -le 5
if [ $rc -eq 0 ]; then
    line=$(grep 'integrity_check' "$T/damaged.out")
    like "$line" "integrity_check " "integrity_check reported"
    isnt "$line" "$(printf '%s' "$line" | sed 's/integrity_check .*/integrity_check ok/')" "and not ok: $line"
    like "$(cat "$T/damaged.out")" "needs attention" "the keystore needs attention"
else
    like "$(cat "$T/damaged.err")" "corrupt" "the keystore is reported corrupt"
fi
done_testing
