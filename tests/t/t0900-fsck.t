#!/bin/bash
# fsck and the keystore you can rebuild: a clean volume checks clean; every kind of
# damage (flipped bytes in opaque, PNG and JPEG files, a lost row, a file removed behind
# the mount's back, a temp file, an old copy put back, a torn tail, an interrupted create)
# is reported by kind and name with a nonzero exit, and repaired; a rolled-back file is
# refused on read unless the mount allows it; a lost or corrupt keystore.db is rebuilt
# from .pixcrypt/masterkey and the headers; a daemon killed in a bulk copy leaves a
# keystore that opens and a volume that fsck brings back to clean.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
for t in sqlite3 convert; do
    command -v $t >/dev/null || skip_all "no $t (contrib/deps.sh test installs it)"
done

C=$T/cipher
M=$T/mnt
O=$T/orig # what the mount should show
LOG=$T/daemon.log
mkdir -p "$C" "$M" "$O/docs" "$O/img"

fsck() { tmo 120 "$PXC_BIN" fsck --passfile "$PXC_PASSFILE" "$@"; }
# file_id FILE: the hex file id from a stored file's header (opaque, PNG or JPEG).
file_id() {
    local off=16
    case $(head -c 4 "$1" | od -An -tx1 | tr -d ' \n') in
    89504e47) off=$((41 + 16)) ;;
    ffd8ffef) off=$((6 + 16)) ;;
    esac
    od -An -tx1 -j $off -N 16 "$1" | tr -d ' \n'
}
row_count() { sqlite3 "$C/.pixcrypt/keystore.db" "SELECT count(*) FROM files"; }
row_version() { sqlite3 "$C/.pixcrypt/keystore.db" "SELECT version FROM files WHERE hex(file_id) = upper('$1')"; }

# ---- the files: text, binary, images (from the corpus if there is one)
echo "a short note" >"$O/docs/a.txt"
for f in op-flip.bin torn.bin; do random_file "$O/$f" $((3 * 4096 + 500)); done
for f in row-gone.txt deleted.txt lagging.txt rolled.txt; do echo "content of $f" >"$O/$f"; done
random_file "$O/docs/big.bin" 300000
if [ -f "$PXC_CORPUS/png/pngsuite/basn2c08.png" ] && [ -f "$PXC_CORPUS/jpeg/libjpeg-turbo/testorig.jpg" ]; then
    note "images from the corpus at $PXC_CORPUS"
    cp "$PXC_CORPUS/png/pngsuite/basn2c08.png" "$O/png-flip.png"
    cp "$PXC_CORPUS/jpeg/libjpeg-turbo/testorig.jpg" "$O/jpg-flip.jpg"
    find "$PXC_CORPUS/png/pngsuite" -name 'b*.png' | head -n 30 | xargs cp -t "$O/img"
    find "$PXC_CORPUS/jpeg" -name '*.jpg' | head -n 15 | xargs cp -t "$O/img"
else
    note "no corpus: generated images"
    convert -seed 3 -size 96x64 plasma:fractal "$O/png-flip.png"
    convert -seed 4 -size 96x64 plasma:fractal -quality 85 "$O/jpg-flip.jpg"
    for i in 1 2 3 4 5; do
        convert -seed $i -size $((40 + i))x32 plasma:fractal "$O/img/g$i.png"
        convert -seed $i -size 64x$((40 + i)) plasma:fractal "$O/img/g$i.jpg"
    done
fi

ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M" || done_testing
ok "copy the files in" cp -a "$O/." "$M/"
ok "unmount" pxc_umount "$M"

# ---- a clean volume
expect_exit 0 "a clean volume: exit 0" fsck "$C"
like "$(tail -n 1 "$T/last.out")" "files .* keystore rows: clean$" "summary line says clean"
is "$(cat "$T/last.err")" "" "no progress bar when stderr is not a terminal"
ok "the masterkey file is there, mode 0600" test "$(stat -c %a "$C/.pixcrypt/masterkey")" = 600
echo "not the passphrase" >"$T/wrong"
expect_exit 3 "a wrong passphrase: exit 3" tmo 60 "$PXC_BIN" fsck --passfile "$T/wrong" "$C"
ok "mount" pxc_mount "$C" "$M"
expect_exit 4 "fsck refuses a mounted volume: exit 4" fsck "$C"
like "$(cat "$T/last.err")" "already mounted" "saying why"

# ---- file ids stay, versions grow
id_before=$(file_id "$C/rolled.txt")
v_before=$(row_version "$id_before")
cp "$C/rolled.txt" "$T/rolled.old" # the stored file as it is now
echo "rewritten" >>"$M/rolled.txt"
cp "$O/rolled.txt" "$T/rolled.plain.old"
echo "rewritten" >>"$O/rolled.txt"
png=img/$(ls "$O/img" | grep '\.png$' | head -n 1)
png_id=$(file_id "$C/$png")
png_v=$(row_version "$png_id")
cat "$O/$png" >"$M/$png" # rewritten whole: opaque while written, a PNG again on close
ok "unmount" pxc_umount "$M"
is "$(file_id "$C/rolled.txt")" "$id_before" "a rewrite keeps the file id"
ok "and its row's version grows ($v_before -> $(row_version "$id_before"))" \
    test "$(row_version "$id_before")" -gt "$v_before"
ok "a stored PNG rewritten is a PNG again" test "$(head -c 4 "$C/$png" | od -An -tx1 | tr -d ' \n')" = 89504e47
is "$(file_id "$C/$png")" "$png_id" "with the same file id"
ok "and a higher version ($png_v -> $(row_version "$png_id"))" test "$(row_version "$png_id")" -gt "$png_v"

# ---- damage of every kind
H=$PXC_HEADER
flip_byte "$C/op-flip.bin" $((H + 4136 + 100))
chmod u+w "$C/png-flip.png" "$C/jpg-flip.jpg"
flip_byte "$C/png-flip.png" $(($(fsize "$C/png-flip.png") / 2))
flip_byte "$C/jpg-flip.jpg" $(($(fsize "$C/jpg-flip.jpg") - 100))
gone_id=$(file_id "$C/row-gone.txt")
sqlite3 "$C/.pixcrypt/keystore.db" "DELETE FROM files WHERE hex(file_id) = upper('$gone_id')"
deleted_id=$(file_id "$C/deleted.txt")
rm "$C/deleted.txt"
rm "$O/deleted.txt"
lag_id=$(file_id "$C/lagging.txt")
sqlite3 "$C/.pixcrypt/keystore.db" "UPDATE files SET version = version - 1 WHERE hex(file_id) = upper('$lag_id')"
cp "$C/docs/a.txt" "$C/docs/.pixcrypt~0123456789abcdef"
cp "$T/rolled.old" "$C/rolled.txt"
truncate -s $((H + 2 * 4136 + 1000)) "$C/torn.bin" # an append torn by a crash
head -c 8192 "$O/torn.bin" >"$T/torn.kept"
: >"$C/empty-crash.txt" # created, killed before its header was written

expect_exit 7 "fsck finds the damage: exit 7" fsck "$C"
out=$(cat "$T/last.out")
like "$out" "^damaged: op-flip.bin: .*block.*fails authentication" "flipped byte in an opaque file: damaged, named"
like "$out" "^damaged: png-flip.png: .*fails authentication" "flipped byte in a stored PNG: damaged, named"
like "$out" "^damaged: jpg-flip.jpg: .*fails authentication" "flipped byte in a stored JPEG: damaged, named"
like "$out" "^orphaned: row-gone.txt: no keystore row" "a deleted row: orphaned, named"
like "$out" "^missing: $deleted_id: .*without a stored file" "a file deleted outside the mount: missing, by file id"
like "$out" "^mismatch: lagging.txt: .*version" "a row behind its file: mismatch"
like "$out" "^temp: docs/.pixcrypt~0123456789abcdef: " "a stale temp file: temp, named"
like "$out" "^rollback: rolled.txt: .*older copy" "an old copy put back: rollback, named"
like "$out" "^damaged: torn.bin: " "a torn tail: damaged"
like "$out" "^damaged: empty-crash.txt: empty" "an empty file left by a create: damaged"
like "$(tail -n 1 "$T/last.out")" "[0-9]+ repaired, [0-9]+ left$" "summary line counts what is left"

# ---- a rollback is refused on read by default, readable when allowed
ok "mount in the foreground, logging" pxc_mount_fg "$C" "$M" "$LOG"
err=$(tmo 30 cat "$M/rolled.txt" 2>&1 >/dev/null)
like "$err" "Input/output error" "reading the rolled-back file: EIO"
like "$(grep rollback "$LOG")" "/rolled.txt: rollback" "a log line names it"
ok "other files still read" cmp "$O/docs/a.txt" "$M/docs/a.txt"
ok "unmount" pxc_umount "$M"
ok "mount -o allow_rollback" pxc_mount "$C" "$M" -o allow_rollback
ok "the rolled-back file reads (its old content)" cmp "$T/rolled.plain.old" "$M/rolled.txt"
ok "unmount" pxc_umount "$M"

# ---- repairs
expect_exit 7 "fsck --repair: damaged files and the rollback are left (exit 7)" fsck --repair "$C"
out=$(cat "$T/last.out")
like "$out" "^orphaned: row-gone.txt: .*; row added" "orphaned: row added"
like "$out" "^missing: $deleted_id: .*; row dropped" "missing: row dropped"
like "$out" "^mismatch: lagging.txt: .*; row updated" "mismatch: row updated"
like "$out" "^temp: docs/.pixcrypt~0123456789abcdef: .*; removed" "temp: removed"
like "$out" "^damaged: torn.bin: .*; torn tail cut: the first 8192 bytes kept" "torn tail: cut back"
like "$out" "^damaged: empty-crash.txt: .*; made an empty stored file" "empty file: initialised"
ok_fails "the temp file is gone" test -e "$C/docs/.pixcrypt~0123456789abcdef"
expect_exit 8 "fsck --repair --move-damaged --accept-rollback: all repaired (exit 8)" \
    fsck --repair --move-damaged --accept-rollback "$C"
out=$(cat "$T/last.out")
like "$out" "^damaged: op-flip.bin: .*moved to .pixcrypt/damaged/op-flip.bin" "damaged files are moved aside"
like "$out" "^rollback: rolled.txt: .*accepted" "the rollback is accepted"
ok "the damaged bytes are kept" test -s "$C/.pixcrypt/damaged/png-flip.png"
expect_exit 0 "then fsck: clean" fsck "$C"
rm "$O/op-flip.bin" "$O/png-flip.png" "$O/jpg-flip.jpg"
cp "$T/rolled.plain.old" "$O/rolled.txt"
cp "$T/torn.kept" "$O/torn.bin"
: >"$O/empty-crash.txt"
ok "mount" pxc_mount "$C" "$M"
ok "every file reads as expected" diff -r "$O" "$M"
ok "unmount" pxc_umount "$M"

# ---- a lost keystore: rebuilt from the masterkey file and the headers
nrows=$(row_count)
rm "$C/.pixcrypt/keystore.db"
expect_exit 5 "keystore.db deleted: mount fails (exit 5)" tmo 60 "$PXC_BIN" mount --passfile "$PXC_PASSFILE" "$C" "$M"
like "$(cat "$T/last.err")" "keystore.*fsck --rebuild-keystore" "and says how to rebuild it"
ok_fails "nothing mounted" mountpoint -q "$M"
expect_exit 5 "plain fsck: exit 5 too" fsck "$C"
expect_exit 0 "fsck --rebuild-keystore: exit 0" fsck --rebuild-keystore "$C"
like "$(tail -n 1 "$T/last.out")" "\($nrows recreated\): clean" "every row recreated ($nrows)"
expect_exit 0 "fsck after the rebuild: clean" fsck "$C"
ok "mount the rebuilt volume" pxc_mount "$C" "$M"
ok "every file reads back identical" diff -r "$O" "$M"
echo "written after the rebuild" >"$M/after.txt"
ok "unmount" pxc_umount "$M"
echo "written after the rebuild" >"$O/after.txt"
head -c 10000 /dev/urandom >"$C/.pixcrypt/keystore.db"
expect_exit 0 "a corrupt keystore.db: rebuilt as well" fsck --rebuild-keystore "$C"
ok "the corrupt one is kept as keystore.db.old" test -s "$C/.pixcrypt/keystore.db.old"
ok "mount" pxc_mount "$C" "$M"
ok "every file reads back identical" diff -r "$O" "$M"
ok "unmount" pxc_umount "$M"

# ---- kill -9 of the daemon during a bulk copy
B=$T/bulk
mkdir -p "$B"
for d in 0 1 2 3 4 5; do
    mkdir -p "$B/d$d"
    for i in $(seq 1 60); do head -c $((RANDOM % 40000 + 1)) /dev/urandom >"$B/d$d/f$i.bin"; done
    cp "$O"/img/* "$B/d$d/" 2>/dev/null
done
ok "mount" pxc_mount "$C" "$M"
dp=$(pxc_daemon_pids "$M")
cp -a "$B" "$M/bulk" 2>/dev/null &
cpid=$!
sleep 0.7
kill -9 $dp
wait $cpid
cp_rc=$?
wait_for 10 _pxc_gone "$dp"
$PXC_FUSERMOUNT -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
if [ $cp_rc -eq 0 ]; then note "the copy ended before the kill (a fast machine): the check below is weaker"; fi
is "$(sqlite3 "$C/.pixcrypt/keystore.db" "PRAGMA integrity_check")" ok "after kill -9 the keystore passes SQLite's integrity check"
fsck -q "$C" >"$T/kill.out" 2>&1
rc=$?
note "fsck after the kill: exit $rc" "$(head -n 5 "$T/kill.out")"
if [ $rc -eq 0 ]; then
    pass "fsck after the kill: clean, nothing to repair"
else
    expect_exit 8 "fsck --repair after the kill: everything repaired (exit 8)" fsck --repair "$C"
fi
expect_exit 0 "then fsck: clean" fsck "$C"
ok "the volume mounts" pxc_mount "$C" "$M"
bad=0
n=0
while IFS= read -r -d '' f; do
    rel=${f#"$M/bulk/"}
    n=$((n + 1))
    s=$(stat -c %s "$f")
    cat "$f" >/dev/null 2>&1 && cmp -s -n "$s" "$f" "$B/$rel" || bad=$((bad + 1))
done < <(find "$M/bulk" -type f -print0)
note "$n files made it into the mount before the kill"
is "$bad" 0 "every one of them reads, as a prefix (or all) of its source"
ok "the earlier files still read back identical" diff -r -x bulk "$O" "$M"
ok "unmount" pxc_umount "$M"
done_testing
