#!/bin/bash
# A full disk: the cipher dir on a small tmpfs.  Writes that do not fit fail with ENOSPC
# (never silently), files stored before stay intact and readable, an image whose
# conversion does not fit stays opaque and exact, the keystore stays a sound database,
# and unmount and remount work.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
[ "$(id -u)" = 0 ] || skip_all "needs root (to mount a tmpfs)"
command -v convert >/dev/null || skip_all "no ImageMagick convert"
command -v sqlite3 >/dev/null || skip_all "no sqlite3"

C=$T/cipher
M=$T/mnt
S=$T/src
mkdir -p "$C" "$M" "$S"
mount -t tmpfs -o size=24m tmpfs "$C" || skip_all "cannot mount a tmpfs"
_pxc_mounts="$_pxc_mounts $C" # unmounted (lazily) by the cleanup, after the FUSE mount

free_kib() { df -k --output=avail "$C" | tail -n 1 | tr -d ' '; }
stored_kind() { # png, jpeg or opaque, from the stored file's first bytes
    case $(head -c 8 "$1" | od -An -tx1 | tr -d ' \n') in
    89504e470d0a1a0a) echo png ;;
    ffd8ffef*) echo jpeg ;;
    *) echo opaque ;;
    esac
}

convert -seed 3 -size 400x300 plasma:fractal -depth 8 "$S/photo.png"
convert -seed 4 -size 400x300 plasma:fractal -quality 90 "$S/photo.jpg"
head -c 1000000 /dev/urandom >"$S/data.bin"
convert -seed 5 -size 700x500 plasma:fractal -depth 8 "$S/late.png"

ok "init on a 24 MiB tmpfs (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M"
ok "copy three files in" cp "$S/photo.png" "$S/photo.jpg" "$S/data.bin" "$M/"
ok "unmount" pxc_umount "$M"
is "$(stored_kind "$C/photo.png") $(stored_kind "$C/photo.jpg")" "png jpeg" "images stored as images"

# ---- fill the disk through the mount
ok "mount again" pxc_mount "$C" "$M"
tmo 60 dd if=/dev/zero of="$M/filler" bs=1M count=64 2>"$T/dd.err"
dd_rc=$?
isnt "$dd_rc" 0 "writing 64 MiB to a 24 MiB disk fails"
like "$(cat "$T/dd.err")" "No space left on device" "... with ENOSPC"
ok_fails "a new file cannot be written either" cp "$S/data.bin" "$M/more.bin"
for f in photo.png photo.jpg data.bin; do
    ok "$f still reads back identical on a full disk" cmp "$S/$f" "$M/$f"
done
is "$(sqlite3 "$C/.pixcrypt/keystore.db" 'PRAGMA integrity_check;' 2>&1)" ok \
    "keystore intact on a full disk"

# ---- free space again: everything works
ok "remove the filler" rm -f "$M/filler" "$M/more.bin"
# The backing file goes when the kernel forgets the inode, a moment after the unlink.
ok "its space is free again within 5 s" wait_for 5 sh -c "[ \$(df -k --output=avail '$C' | tail -n 1) -gt 4096 ]"
ok "a new file fits again" cp "$S/data.bin" "$M/again.bin"
ok "... and reads back" cmp "$S/data.bin" "$M/again.bin"
ok "unmount" pxc_umount "$M"

# ---- an image whose opaque form fits but whose conversion does not
ok "mount again" pxc_mount "$C" "$M"
size_kib=$(($(stat -c %s "$S/late.png") / 1024))
# Leave room for the opaque form and a third of a second copy: the conversion's
# temp file runs out of space and the file stays opaque.
avail=$(free_kib)
keep=$((size_kib + size_kib / 3 + 64))
[ "$avail" -gt "$keep" ] && fallocate -l $(((avail - keep) * 1024)) "$C/.pixcrypt/filler"
ok "copy an image in with little room left" cp "$S/late.png" "$M/late.png"
ok "unmount" pxc_umount "$M"
is "$(stored_kind "$C/late.png")" opaque "the image whose conversion did not fit stays opaque"
rm -f "$C/.pixcrypt/filler"
ok "mount after freeing space" pxc_mount "$C" "$M"
for f in photo.png photo.jpg data.bin late.png; do
    ok "$f reads back identical after remount" cmp "$S/$f" "$M/$f"
done
ok "again.bin too" cmp "$S/data.bin" "$M/again.bin"
is "$(sqlite3 "$C/.pixcrypt/keystore.db" 'PRAGMA integrity_check;' 2>&1)" ok "keystore intact"
ls -A "$C" | grep -q '^\.pixcrypt~' && fail "no temp file of a failed conversion left behind" ||
    pass "no temp file of a failed conversion left behind"
ok "unmount" pxc_umount "$M"
done_testing
