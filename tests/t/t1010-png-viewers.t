#!/bin/bash
# Stored PNGs are images any viewer decodes: headless Chromium, libpng and ImageMagick
# load every stored variant at its original size, and show noise.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
need_tool img_stats
command -v convert >/dev/null || skip_all "no ImageMagick (contrib/deps.sh test installs it)"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip_all "no chromium (contrib/deps.sh test installs it)"

C=$T/cipher
M=$T/mnt
S=$T/src
W=$T/web
mkdir -p "$C" "$M" "$S" "$W"
ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M" || done_testing

convert -seed 5 -size 300x200 plasma:fractal -depth 8 "$S/rgb8.png"
convert "$S/rgb8.png" -depth 16 "$S/rgb16.png"
convert "$S/rgb8.png" -colorspace Gray "$S/gray8.png"
convert "$S/rgb8.png" -colorspace Gray -depth 2 "$S/gray2.png"
convert "$S/rgb8.png" -alpha set -channel A -fx 'i/w' "$S/rgba.png"
convert "$S/rgb8.png" -colors 64 "PNG8:$S/palette.png"
convert "$S/rgb8.png" -interlace PNG "$S/adam7.png"
names="rgb8 rgb16 gray8 gray2 rgba palette adam7"
for n in $names; do cp "$S/$n.png" "$M/$n.png"; done
ok "unmount (every file committed)" pxc_umount "$M"

stored=0
for n in $names; do
    [ "$(dd if="$C/$n.png" bs=1 skip=37 count=4 status=none)" = pxCR ] && stored=$((stored + 1))
    cp "$C/$n.png" "$W/$n.png"
done
is "$stored" 7 "all 7 variants are stored as PNG"

chromium_image_sizes "$W" $(for n in $names; do echo "$n.png"; done) >"$T/chromium.out"
for n in $names; do
    is "$(sed -n "s/^$n.png //p" "$T/chromium.out")" "300x200" "Chromium decodes the stored $n.png at 300x200"
done

for n in $names; do
    ok "libpng decodes the stored $n.png" "$PXC_TOOLS/pngdecode" "$W/$n.png"
done
# Noise: the stored image's pixels look nothing like the original's.
read -r _ ent _ ch _ cv _ _ <<<"$(convert "$W/gray8.png" -depth 8 gray:- | "$PXC_TOOLS/img_stats" 300)"
ok "stored gray8 shows noise: entropy $ent > 7.9, correlation $ch/$cv below 0.05" \
    perl -e "exit !($ent > 7.9 && abs($ch) < 0.05 && abs($cv) < 0.05)"
done_testing
