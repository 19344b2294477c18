#!/bin/bash
# The chaos research profile: init --profile chaos records it; mount refuses such a
# volume unless --allow-weak-profile is given; with it, PNGs are stored under the chaos
# cipher (header byte 11 = 1), JPEGs and other files as usual, all exact across a
# remount; fsck rebuilds a keystore that keeps the profile.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
command -v convert >/dev/null || skip_all "no ImageMagick convert"

C=$T/cipher
M=$T/mnt
S=$T/src
mkdir -p "$C" "$M" "$S"
convert -seed 1 -size 256x192 plasma:fractal -depth 8 "$S/photo.png"
convert -seed 2 -size 200x150 plasma:fractal -quality 85 "$S/photo.jpg"
seq 1 5000 >"$S/notes.txt"
profile_byte() { od -An -tu1 -j 52 -N 1 "$1" | tr -d ' '; } # header at 41, byte 11

expect_exit 2 "init --profile bogus is a usage error" pxc_init "$C" --profile bogus
ok "init --profile chaos (plaintext names: the test reads stored files by name)" pxc_init "$C" --profile chaos --plaintext-names
expect_exit 2 "mount refuses a chaos volume without --allow-weak-profile" pxc_mount "$C" "$M"
like "$("$PXC_BIN" mount --passfile "$PXC_PASSFILE" "$C" "$M" 2>&1)" "not secure" \
    "... and says why"
ok "mount --allow-weak-profile" pxc_mount "$C" "$M" --allow-weak-profile
ok "copy a PNG, a JPEG and a text file in" cp "$S/photo.png" "$S/photo.jpg" "$S/notes.txt" "$M/"
ok "unmount" pxc_umount "$M"
is "$(head -c 8 "$C/photo.png" | od -An -tx1 | tr -d ' \n')" 89504e470d0a1a0a "the PNG is stored as a PNG"
is "$(profile_byte "$C/photo.png")" 1 "... under the chaos profile"
is "$(head -c 4 "$C/photo.jpg" | od -An -tx1 | tr -d ' \n')" ffd8ffef "the JPEG is stored as a JPEG"
ok "mount again" pxc_mount "$C" "$M" --allow-weak-profile
for f in photo.png photo.jpg notes.txt; do ok "$f reads back identical" cmp "$S/$f" "$M/$f"; done
ok "unmount" pxc_umount "$M"

# A rebuilt keystore keeps the profile (it comes from the masterkey file).
rm -f "$C/.pixcrypt/keystore.db"
ok "fsck --rebuild-keystore" tmo 120 "$PXC_BIN" fsck --passfile "$PXC_PASSFILE" --rebuild-keystore "$C"
expect_exit 2 "the rebuilt volume is still refused without --allow-weak-profile" pxc_mount "$C" "$M"
ok "and mounts with it" pxc_mount "$C" "$M" --allow-weak-profile
ok "the PNG still reads back" cmp "$S/photo.png" "$M/photo.png"
ok "unmount" pxc_umount "$M"
done_testing
