#!/bin/bash
# JPEG stored as JPEG, through a mount: the corpus (camera files with real EXIF, MPF,
# progressive, arithmetic, 12-bit) and generated variants read back identical; stored
# files are JPEGs of the same size that djpeg and ImageMagick decode, carry none of
# the original tags, and fail reads when tampered with; unsupported kinds stay opaque.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
for t in convert identify djpeg cjpeg jpegtran exiftool; do
    command -v $t >/dev/null || skip_all "no $t (contrib/deps.sh test installs it)"
done

C=$T/cipher
M=$T/mnt
S=$T/src
LOG=$T/daemon.log
mkdir -p "$C" "$M" "$S"
ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount_fg "$C" "$M" "$LOG" || done_testing

is_stored_jpeg() { # SOI, then our APP15 segment
    [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = ffd8ffef ]
}
dims() { identify -format '%w %h %[colorspace]' "$1" 2>/dev/null | head -n 1; }

# ---- generated variants
convert -seed 9 -size 640x480 plasma:fractal -depth 8 "$S/src.ppm"
cjpeg -quality 85 "$S/src.ppm" >"$S/baseline.jpg"
cjpeg -quality 85 -progressive "$S/src.ppm" >"$S/progressive.jpg"
cjpeg -quality 70 -optimize -restart 3 "$S/src.ppm" >"$S/restart.jpg"
cjpeg -sample 1x1 "$S/src.ppm" >"$S/444.jpg"
cjpeg -sample 2x1 "$S/src.ppm" >"$S/422.jpg"
cjpeg -grayscale "$S/src.ppm" >"$S/gray.jpg"
convert "$S/src.ppm" -colorspace CMYK "$S/cmyk.jpg"
convert -size 4001x3 gradient: "$S/odd.jpg"
convert -size 1x1 xc:red "$S/tiny.jpg"
jpegtran -optimize -progressive "$S/baseline.jpg" >"$S/jpegtran.jpg"
cp "$S/baseline.jpg" "$S/exif.jpg"
exiftool -q -overwrite_original -Artist=SecretArtistName -GPSLatitude=48.8583 -GPSLatitudeRef=N \
    -Comment=SecretCommentText "$S/exif.jpg"
printf 'trailing bytes after EOI' | cat "$S/baseline.jpg" - >"$S/trailing.jpg"
ok "cp the generated JPEGs in" cp "$S"/*.jpg "$M/"
for f in "$S"/*.jpg; do cmp -s "$f" "$M/$(basename "$f")"; done # reads wait for the conversion
for f in "$S"/*.jpg; do
    b=$(basename "$f")
    if is_stored_jpeg "$C/$b" && [ "$(dims "$C/$b")" = "$(dims "$f")" ] &&
        djpeg "$C/$b" >/dev/null 2>&1 && cmp -s "$f" "$M/$b"; then
        pass "$b: stored as a JPEG of the same size and colour space, djpeg decodes it, reads back identical"
    else
        fail "$b: stored as a JPEG of the same size and colour space, djpeg decodes it, reads back identical"
        diag "stored jpeg: $(is_stored_jpeg "$C/$b" && echo yes || echo no)" \
            "dims $(dims "$C/$b") vs $(dims "$f")" "cmp: $(cmp "$f" "$M/$b" 2>&1)" \
            "log: $(grep -F "$b" "$LOG" | tail -n 3)"
    fi
done
ok_fails "no stored file contains SecretArtistName" grep -rqa SecretArtistName "$C"
ok_fails "no stored file contains SecretCommentText" grep -rqa SecretCommentText "$C"
is "$(exiftool -s -s -s -Artist "$M/exif.jpg")" SecretArtistName "exiftool through the mount sees the Artist tag"
is "$(exiftool -s -s -s -Artist -GPSLatitude -Comment "$C/exif.jpg" | wc -l)" 0 \
    "exiftool on the stored file sees no Artist, GPS or Comment"

# ---- corpus
if [ -d "$PXC_CORPUS/jpeg" ]; then
    n=0 stored=0 total=0
    mkdir -p "$M/corpus"
    while IFS= read -r -d '' f; do
        n=$((n + 1))
        cp "$f" "$M/corpus/c$n-$(basename "$f")"
    done < <(find "$PXC_CORPUS/jpeg" -type f -iname '*.jp*g' -print0 | sort -z)
    bad=0 n=0
    while IFS= read -r -d '' f; do
        n=$((n + 1))
        d=c$n-$(basename "$f")
        cmp -s "$f" "$M/corpus/$d" || { bad=$((bad + 1)); diag "differs: $f"; }
        total=$((total + 1))
        is_stored_jpeg "$C/corpus/$d" && stored=$((stored + 1))
    done < <(find "$PXC_CORPUS/jpeg" -type f -iname '*.jp*g' -print0 | sort -z)
    is "$bad" 0 "all $total corpus JPEGs read back identical"
    ok "at least 95 % stored as JPEG ($stored of $total)" test $((stored * 100)) -ge $((total * 95))
    gps_left=$(cd "$C/corpus" && exiftool -q -s -s -s -GPSLatitude -SerialNumber -ThumbnailImage . 2>/dev/null | grep -c .)
    is "$gps_left" 0 "exiftool finds no GPS position, serial number or thumbnail in any stored corpus file"
else
    skip "corpus JPEGs" "no corpus at $PXC_CORPUS"
fi

# ---- tamper and remount
ok "unmount" pxc_umount "$M"
cp "$C/baseline.jpg" "$T/keep"
flip_byte "$C/baseline.jpg" $(($(fsize "$C/baseline.jpg") / 2))
ok "remount" pxc_mount_fg "$C" "$M" "$LOG"
like "$(cat "$M/baseline.jpg" 2>&1 >/dev/null)" "Input/output error" "a flipped byte in a stored JPEG: EIO"
ok "a log line names it" grep -q "baseline.jpg" "$LOG"
bad=0
for f in "$S"/*.jpg; do
    [ "$(basename "$f")" = baseline.jpg ] && continue
    cmp -s "$f" "$M/$(basename "$f")" || bad=$((bad + 1))
done
is "$bad" 0 "every other JPEG identical after remount"
ok "unmount" pxc_umount "$M"
done_testing
