#!/bin/bash
# Stored JPEGs are images any viewer decodes: headless Chromium, djpeg and ImageMagick
# load every stored variant at its original size, and show no trace of the original.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
for t in convert cjpeg djpeg jpegtran; do
    command -v $t >/dev/null || skip_all "no $t (contrib/deps.sh test installs it)"
done
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip_all "no chromium (contrib/deps.sh test installs it)"

C=$T/cipher
M=$T/mnt
S=$T/src
W=$T/web
mkdir -p "$C" "$M" "$S" "$W"
ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M" || done_testing

convert -seed 5 -size 300x200 plasma:fractal -depth 8 "$S/src.ppm"
cjpeg -quality 90 "$S/src.ppm" >"$S/baseline.jpg"
cjpeg -quality 90 -progressive "$S/src.ppm" >"$S/progressive.jpg"
cjpeg -quality 90 -sample 1x1 -optimize "$S/src.ppm" >"$S/444.jpg"
cjpeg -quality 90 -restart 1 "$S/src.ppm" >"$S/restart.jpg"
cjpeg -grayscale "$S/src.ppm" >"$S/gray.jpg"
convert "$S/src.ppm" -colorspace CMYK "$S/cmyk.jpg"
names="baseline progressive 444 restart gray cmyk"
for n in $names; do cp "$S/$n.jpg" "$M/$n.jpg"; done
ok "unmount (every file converted)" pxc_umount "$M"

stored=0
for n in $names; do
    [ "$(head -c 4 "$C/$n.jpg" | od -An -tx1 | tr -d ' \n')" = ffd8ffef ] && stored=$((stored + 1))
    cp "$C/$n.jpg" "$W/$n.jpg"
done
is "$stored" 6 "all 6 variants are stored as JPEG"

chromium_image_sizes "$W" $(for n in $names; do echo "$n.jpg"; done) >"$T/chromium.out"
for n in $names; do
    is "$(sed -n "s/^$n.jpg //p" "$T/chromium.out")" "300x200" "Chromium decodes the stored $n.jpg at 300x200"
done
for n in $names; do
    ok "djpeg decodes the stored $n.jpg" sh -c "djpeg '$W/$n.jpg' >/dev/null"
done
# No trace of the original: the stored image correlates with neither the original
# nor itself at the pixel level the way a photo does.
convert "$S/baseline.jpg" -colorspace Gray -depth 8 gray:"$T/plain.gray"
convert "$W/baseline.jpg" -colorspace Gray -depth 8 gray:"$T/stored.gray"
r=$(perl -e 'open my $a, "<", $ARGV[0] or die; open my $b, "<", $ARGV[1] or die; binmode $a; binmode $b;
    local $/; my @x = unpack "C*", <$a>; my @y = unpack "C*", <$b>; my $n = @x;
    my ($sx, $sy, $sxx, $syy, $sxy) = (0) x 5;
    for my $i (0 .. $n - 1) { $sx += $x[$i]; $sy += $y[$i]; $sxx += $x[$i]**2; $syy += $y[$i]**2; $sxy += $x[$i] * $y[$i] }
    my $c = $sxy / $n - $sx * $sy / $n / $n; my $v = ($sxx / $n - ($sx / $n)**2) * ($syy / $n - ($sy / $n)**2);
    printf "%.4f", $v > 0 ? $c / sqrt($v) : 0' "$T/plain.gray" "$T/stored.gray")
ok "pixel correlation between original and stored image is $r (|r| < 0.1)" perl -e "exit !(abs($r) < 0.1)"
done_testing
