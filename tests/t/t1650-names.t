#!/bin/bash
# Encrypted file names: a tree of awkward names (UTF-8, spaces, control characters, names
# of 255 bytes, images, symlinks, hard links, xattrs) copied in shows as the source tree
# (`ls -R`), while no plain stem, symlink target or xattr name appears in the cipher dir;
# rename (across directories, case only, over files and empty directories), link,
# unlink, rmdir; encrypt-name / decrypt-name; tampered names, targets, IVs and xattrs
# give ENOENT or EIO and a log line; fsck finds and moves aside what does not decrypt;
# --plaintext-names and keystores from before names were encrypted.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt

C=$T/cipher
M=$T/mnt
S=$T/src
LOG=$T/daemon.log
mkdir -p "$C" "$M" "$S"

# ---- a source tree of awkward names
JPG=$(find "$PXC_CORPUS/jpeg" -name '*.jpg' 2>/dev/null | sort | head -n 1)
PNG=$(find "$PXC_CORPUS/png" -name '*.png' 2>/dev/null | sort | head -n 1)
[ -n "$JPG" ] && [ -n "$PNG" ] || skip_all "no corpus images in $PXC_CORPUS"
L255=$(printf 'L%.0s' $(seq 251)).jpg              # 255 bytes with its extension
D255=$(printf 'D%.0s' $(seq 255))                  # a directory name of 255 bytes
U200=$(printf '\xc3\xa9%.0s' $(seq 100))           # 100 x "é": 200 bytes of UTF-8
mkdir -p "$S/Photos/2024 Spring" "$S/Médecine/日本語 フォルダ" "$S/$D255/inner" "$S/empty dir"
cp "$JPG" "$S/Photos/2024 Spring/2024-06-12 Anna hospital.jpg"
cp "$PNG" "$S/Photos/Scan of passport.PNG"
cp "$JPG" "$S/$L255"
cp "$PNG" "$S/$D255/inner/$U200.png"
printf 'tab\n' >"$S/Photos/with	tab.txt"
printf 'newline\n' >"$S/Photos/line
break.txt"
printf 'ctl\n' >"$S/Médecine/ctl$(printf '\001\002\037')chars"
printf 'spaces\n' >"$S/Médecine/日本語 フォルダ/  leading and trailing spaces  "
printf 'dot\n' >"$S/.hidden-dotfile"
printf 'ext only\n' >"$S/.jpg"
printf 'notes\n' >"$S/Médecine/Patient Müller notes.txt"
ln -s "Photos/2024 Spring/2024-06-12 Anna hospital.jpg" "$S/link to Anna"
ln -s "/absolute/Geheim target" "$S/Médecine/abs link"
ln "$S/Photos/Scan of passport.PNG" "$S/Médecine/日本語 フォルダ/hard link of passport.PNG"

ok "init (names encrypted by default)" pxc_init "$C"
is "$(sqlite3 "$C/.pixcrypt/keystore.db" 'SELECT names FROM volume')" 1 \
    "the volume records encrypted names"
ok "mount in the foreground, logging to a file" pxc_mount_fg "$C" "$M" "$LOG" || done_testing
ok "copy the tree in (cp -a: links, symlinks, modes)" tmo 120 cp -a "$S/." "$M/"

# ls -R with escapes, so that names with newlines compare line by line
lsr() { (cd "$1" && LC_ALL=C ls -RAb --time-style=+ -l . | awk '{$2=""; print}'); }
tree() { (cd "$1" && find . -mindepth 1 \( -type l -printf '%y %p -> %l\n' \) -o \( -type d -printf '%y %p\n' \) -o -printf '%y %p %s %n\n' | LC_ALL=C sort); }
lsr "$S" >"$T/src.ls"
lsr "$M" >"$T/mnt.ls"
ok "ls -R through the mount is the source tree's" diff -u "$T/src.ls" "$T/mnt.ls"
tree "$S" >"$T/src.tree"
tree "$M" >"$T/mnt.tree"
ok "types, sizes, link counts and symlink targets match" diff -u "$T/src.tree" "$T/mnt.tree"
ok "contents match (diff -r, symlinks not followed)" diff -r --no-dereference "$S" "$M"
is "$(stat -c %i "$M/Photos/Scan of passport.PNG")" \
    "$(stat -c %i "$M/Médecine/日本語 フォルダ/hard link of passport.PNG")" \
    "the hard link is one inode through the mount"
is "$(stat -c %s "$M/link to Anna")" "$(stat -c %s "$S/link to Anna")" \
    "a symlink's size is its plain target's length"

# ---- at rest: nothing of the names
find "$C" -path "$C/.pixcrypt" -prune -o -mindepth 1 -printf '%f\n' >"$T/stored.names"
leaks=
while IFS= read -r -d '' p; do
    b=$(basename "$p")
    stem=${b%.*}
    case $b in .jpg) continue ;; .hidden-dotfile) stem=$b ;; esac
    [ ${#stem} -ge 4 ] || continue
    grep -qF -- "$stem" "$T/stored.names" && leaks="$leaks [$stem]"
done < <(find "$S" -mindepth 1 -print0)
is "$leaks" "" "no plain stem appears in a stored name"
ok_fails "a name that is only an extension is encrypted whole" grep -qx '\.jpg' "$T/stored.names"
for w in Anna Photos passport Müller Geheim absolute; do
    grep -rqF -- "$w" "$T/stored.names" && leaks="$leaks $w"
done
find "$C" -type l -printf '%l\n' >"$T/stored.targets"
for w in Anna Photos Geheim absolute; do
    grep -qF -- "$w" "$T/stored.targets" && leaks="$leaks target:$w"
done
is "$leaks" "" "no plain word in stored names or symlink targets"
is "$(grep -c '\.jpg$' "$T/stored.names")" 2 "the two .jpg files keep their extension at rest"
is "$(grep -c '\.PNG$' "$T/stored.names")" 2 "... and .PNG, its case kept (two links)"
stored_jpg=$(find "$C" -path "$C/.pixcrypt" -prune -o -name '*.jpg' -type f -print | head -n 1)
like "$(file -b "$stored_jpg")" '^JPEG image' "a stored .jpg is still a JPEG image"
is "$(find "$C" -name '*.name' | wc -l)" 3 "the three long names (255-byte file and directory, 200-byte UTF-8) have their .name files"
ok "every stored name fits the backing filesystem (<= 255 bytes)" \
    eval '[ "$(awk "length > 255" "$T/stored.names" | wc -l)" = 0 ]'

# ---- extended attributes
ok "setfattr user.comment" setfattr -n user.comment -v "Anna at the hospital" "$M/Médecine/Patient Müller notes.txt"
is "$(getfattr --only-values -n user.comment "$M/Médecine/Patient Müller notes.txt" 2>/dev/null)" \
    "Anna at the hospital" "getfattr reads it back"
ok "setfattr on a directory" setfattr -n user.tag -v private "$M/Photos"
is "$(getfattr --only-values -n user.tag "$M/Photos" 2>/dev/null)" private "... and reads it back"
stored_notes=$(pxc_stored "$C" "Médecine/Patient Müller notes.txt")
ok "the stored xattr is there" eval 'getfattr -d -m "^user\\." "$stored_notes" | grep -q "^user\\."'
ok_fails "its name is not in clear" eval 'getfattr -d -m - "$stored_notes" 2>/dev/null | grep -q comment'
ok_fails "its value is not in clear" eval 'getfattr -d -m - "$stored_notes" 2>/dev/null | grep -q hospital'
ok_fails "security.* attributes are refused" setfattr -n security.pxtest -v 1 "$M/Photos/with	tab.txt"
ok "setfattr on an image, then rewrite it (stored file replaced)" \
    eval 'setfattr -n user.gps -v "48.85 N" "$M/$L255" && cp "$JPG" "$M/$L255"'
is "$(getfattr --only-values -n user.gps "$M/$L255" 2>/dev/null)" "48.85 N" \
    "the xattr survives the conversion"
ok "removexattr" setfattr -x user.tag "$M/Photos"
ok_fails "... it is gone" getfattr -n user.tag "$M/Photos"

# ---- rename, link, unlink, rmdir: the same on the source and the mount
both() { (cd "$S" && "$@") && (cd "$M" && "$@"); }
ok "rename within a directory" both mv "Photos/with	tab.txt" "Photos/renamed	tab.txt"
ok "case-only rename of an image" both mv "Photos/Scan of passport.PNG" "Photos/scan of passport.png"
ok "case-only rename of a directory" both mv "Photos" "PHOTOS"
ok "rename across directories" both mv "PHOTOS/line
break.txt" "Médecine/日本語 フォルダ/moved.txt"
ok "rename a long name to a short one" both mv "$L255" "short.jpg"
ok "rename a short name to a long one" both mv ".hidden-dotfile" "Médecine/$U200"
ok "rename a directory with contents into another" both mv "$D255" "Médecine/$D255"
ok "rename over an existing file" both mv "Médecine/ctl$(printf '\001\002\037')chars" ".jpg"
ok "rename a directory onto an empty one" both eval 'mkdir "target dir" && mv "empty dir" "target dir"'
ok "hard link across directories, long name" both ln "short.jpg" "Médecine/$D255/inner/$L255"
ok "unlink one name of a hard link" both rm "Médecine/日本語 フォルダ/hard link of passport.PNG"
ok "mkdir and rmdir" both eval 'mkdir "new dir" && rmdir "new dir"'
ok_fails "rmdir of a non-empty directory fails" rmdir "$M/Médecine"
lsr "$S" >"$T/src.ls"
lsr "$M" >"$T/mnt.ls"
ok "ls -R matches after the changes" diff -u "$T/src.ls" "$T/mnt.ls"
ok "contents match after the changes" diff -r --no-dereference "$S" "$M"
is "$(find "$C" -name '*.name' | wc -l)" 4 ".name files follow the long names (one renamed away, two made)"

ok "unmount" pxc_umount "$M"
ok "mount again" pxc_mount_fg "$C" "$M" "$LOG" || done_testing
lsr "$M" >"$T/mnt.ls"
ok "ls -R matches after a remount" diff -u "$T/src.ls" "$T/mnt.ls"
ok "unmount" pxc_umount "$M"

# ---- encrypt-name / decrypt-name, fsck on a clean volume
stored=$(pxc_stored "$C" "PHOTOS/2024 Spring/2024-06-12 Anna hospital.jpg")
ok "encrypt-name gives an existing stored path" test -f "$stored"
is "$("$PXC_BIN" decrypt-name --passfile "$PXC_PASSFILE" "$C" "$stored" 2>&1)" \
    "PHOTOS/2024 Spring/2024-06-12 Anna hospital.jpg" "decrypt-name gives the plain path back"
n_ok=0
n_all=0
unmapped=
while IFS= read -r -d '' p; do
    n_all=$((n_all + 1))
    # "--": a stored name may start with "-" (base64url), which getopt would take for an option
    plain=$("$PXC_BIN" decrypt-name --passfile "$PXC_PASSFILE" "$C" -- "${p#"$C"/}" 2>&1)
    if [ $? = 0 ] && { [ -e "$S/$plain" ] || [ -L "$S/$plain" ]; }; then
        n_ok=$((n_ok + 1))
    else
        unmapped="$unmapped [${p#"$C"/} -> $plain]"
    fi
done < <(find "$C" -path "$C/.pixcrypt" -prune -o -mindepth 1 -maxdepth 2 \
    ! -name '*.name' ! -name .pixcrypt.diriv -print0)
ok "decrypt-name of every stored entry (two levels) is a source path ($n_ok of $n_all)" \
    test "$n_ok" = "$n_all" -a "$n_all" -gt 5
[ -n "$unmapped" ] && diag "not mapped:$unmapped"
expect_exit 1 "decrypt-name of a name that is not encrypted fails" \
    "$PXC_BIN" decrypt-name --passfile "$PXC_PASSFILE" "$C" "not-encrypted.jpg"
expect_exit 0 "fsck: clean" "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C"

# ---- encrypt / decrypt without FUSE
mkdir "$T/dec"
ok "decrypt -r of a stored directory" "$PXC_BIN" decrypt --volume "$C" --passfile "$PXC_PASSFILE" \
    -q -r "$(pxc_stored "$C" PHOTOS)" "$T/dec"
ok "... gives the plain names and contents back" diff -r --no-dereference "$S/PHOTOS" "$T/dec/PHOTOS"
expect_exit 2 "encrypt to a new stored name (not a directory of the volume) is refused" \
    "$PXC_BIN" encrypt --volume "$C" --passfile "$PXC_PASSFILE" "$S/short.jpg" "$C/plain.jpg"
like "$(cat "$T/last.err")" "encrypts file names" "... saying why"
ok_fails "... and writes nothing" test -e "$C/plain.jpg"

# ---- tampering in the cipher dir
# A stored name with one character changed, a symlink target changed, a directory's IV
# removed, an xattr value changed.
victim=$(pxc_stored "$C" "Médecine/Patient Müller notes.txt")
vdir=$(dirname "$victim")
vb=$(basename "$victim")
c5=${vb:5:1}
[ "$c5" = A ] && r=B || r=A
mv "$victim" "$vdir/${vb:0:5}$r${vb:6}"
link=$(pxc_stored "$C" "link to Anna")
ln -sfn "AAAA$(readlink "$link" | cut -c5-)" "$link"
ivdir=$(pxc_stored "$C" "Médecine/日本語 フォルダ")
rm -f "$ivdir/.pixcrypt.diriv"
xv=$(pxc_stored "$C" "short.jpg")
xname=$(getfattr -d -m '^user\.' "$xv" 2>/dev/null | sed -n 's/^\(user\.[^=]*\)=.*/\1/p' | head -n 1)
setfattr -n "$xname" -v 0sAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA "$xv"

: >"$LOG"
ok "mount the tampered volume" pxc_mount_fg "$C" "$M" "$LOG" || done_testing
ok_fails "the renamed entry is not listed" eval 'ls "$M/Médecine" | grep -q "Patient"'
expect_exit 1 "looking it up by its name: ENOENT" stat "$M/Médecine/Patient Müller notes.txt"
like "$(cat "$T/last.err")" "No such file" "... No such file or directory"
ok "a log line names the undecryptable entry" grep -q "does not decrypt" "$LOG"
expect_exit 1 "readlink of a changed target fails" readlink "$M/link to Anna"
ok "... and a log line says so" grep -q "symlink target does not decrypt" "$LOG"
expect_exit 2 "listing a directory without its IV fails" ls "$M/Médecine/日本語 フォルダ"
like "$(cat "$T/last.err")" "Input/output error" "... with EIO"
ok "... and a log line says so" grep -q "name key" "$LOG"
expect_exit 1 "a changed xattr value fails" getfattr -n user.gps "$M/short.jpg"
ok "... and a log line says so" grep -q "extended attribute user.gps fails authentication" "$LOG"
ok "the rest still reads" cmp "$S/short.jpg" "$M/short.jpg"
ok "the daemon is still alive" test -n "$(pxc_daemon_pids "$M")"
ok "unmount" pxc_umount "$M"

expect_exit 7 "fsck reports what does not decrypt" "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C"
grep '^name:' "$T/last.out" >"$T/fsck.names"
is "$(wc -l <"$T/fsck.names")" 3 "three name problems: an entry, a symlink, a directory's IV"
ok "... the changed entry, shown under its directory's plain name" grep -q "^name: Médecine/" "$T/fsck.names"
expect_exit 7 "fsck --move-damaged moves them aside (rows left: missing)" \
    "$PXC_BIN" fsck -q --move-damaged --passfile "$PXC_PASSFILE" "$C"
ok "the undecryptable entry is in .pixcrypt/damaged" \
    test -f "$C/.pixcrypt/damaged/${vdir#"$C"/}/${vb:0:5}$r${vb:6}"
"$PXC_BIN" fsck -q --repair --passfile "$PXC_PASSFILE" "$C" >/dev/null 2>&1
rm -rf "$ivdir" # its names are lost with its key: the test drops it
"$PXC_BIN" fsck -q --repair --passfile "$PXC_PASSFILE" "$C" >/dev/null 2>&1
expect_exit 0 "fsck: clean once repaired" "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C"
ok "the masterkey file records encrypted names too" grep -qx "names 1" "$C/.pixcrypt/masterkey"
rm -f "$C/.pixcrypt/keystore.db"*
expect_exit 0 "fsck --rebuild-keystore without keystore.db" \
    "$PXC_BIN" fsck -q --rebuild-keystore --passfile "$PXC_PASSFILE" "$C"
is "$(sqlite3 "$C/.pixcrypt/keystore.db" 'SELECT names FROM volume')" 1 \
    "the rebuilt keystore keeps encrypted names"
ok "mount the rebuilt volume" pxc_mount "$C" "$M" || done_testing
ok "its plain names are back" cmp "$S/short.jpg" "$M/short.jpg"
ok "unmount" pxc_umount "$M"

# ---- --plaintext-names, and keystores from before names were encrypted
P=$T/plain
ok "init --plaintext-names" pxc_init "$P" --plaintext-names
is "$(sqlite3 "$P/.pixcrypt/keystore.db" 'SELECT names FROM volume')" 0 "the volume records plaintext names"
ok "mount" pxc_mount "$P" "$T/pm" || done_testing
ok "copy a file in" cp "$S/short.jpg" "$T/pm/Anna.jpg"
ok "pxc_stored finds it at its plain name" test "$(pxc_stored "$P" Anna.jpg)" = "$P/Anna.jpg"
ok "setfattr" setfattr -n user.comment -v secret "$T/pm/Anna.jpg"
ok_fails "xattrs are encrypted there too" eval 'getfattr -d -m - "$P/Anna.jpg" | grep -q "comment\|secret"'
ok "unmount" pxc_umount "$T/pm"
ok "mount -o noxattr" pxc_mount "$P" "$T/pm" -o noxattr
expect_exit 1 "setfattr is refused" setfattr -n user.x -v 1 "$T/pm/Anna.jpg"
like "$(cat "$T/last.err")" "not supported" "... as not supported"
ok_fails "stored xattrs are not read either" getfattr -n user.comment "$T/pm/Anna.jpg"
ok "unmount" pxc_umount "$T/pm"
ok "a keystore without the names column (an older volume)" \
    sqlite3 "$P/.pixcrypt/keystore.db" 'ALTER TABLE volume DROP COLUMN names'
ok "mounts, with plaintext names" pxc_mount "$P" "$T/pm"
ok "and reads its files" cmp "$S/short.jpg" "$T/pm/Anna.jpg"
ok "unmount" pxc_umount "$T/pm"
expect_exit 0 "fsck of the older volume: clean" "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$P"

# ---- the unit tests' known answers come from the description, not from the code
if command -v python3 >/dev/null; then
    ok "tests/tools/names_kat.py recomputes tests/unit/names_kat.h" \
        eval 'python3 "$PXC_TESTS_DIR/tools/names_kat.py" | diff - "$PXC_TESTS_DIR/unit/names_kat.h"'
else
    skip "known answers recomputed" "python3 not installed"
fi

done_testing
