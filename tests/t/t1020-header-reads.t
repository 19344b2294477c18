#!/bin/bash
# Metadata readers over large images through the mount read what the stored header seals
# (the bytes before the image data, a copy of the bytes after them and of the last
# pages) and decode no image: exiftool on JPEGs, `exiftool -fast2` on PNGs, `identify
# -ping` on both.  The daemon counts whole decodes and logs them at unmount.  Reading a
# file whole still decodes it and checks every byte; a damaged sealed header fails the
# header reads too.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
for t in convert cjpeg exiftool identify; do
    command -v $t >/dev/null || skip_all "no $t (contrib/deps.sh test installs it)"
done

C=$T/cipher
M=$T/mnt
S=$T/src
LOG=$T/daemon.log
mkdir -p "$C" "$M" "$S"
ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names

# Large images (over 1 MiB, where the copies are kept) with camera metadata.
convert -seed 7 -size 2400x1600 plasma:fractal -depth 8 "$S/src.ppm"
cjpeg -quality 95 "$S/src.ppm" >"$S/big.jpg"
cjpeg -quality 95 -progressive "$S/src.ppm" >"$S/prog.jpg"
EXIF=${PXC_CORPUS:-}/jpeg/exiftool/Canon1DmkIII.jpg
if [ -f "$EXIF" ]; then
    exiftool -q -overwrite_original -TagsFromFile "$EXIF" -all:all "$S/big.jpg" "$S/prog.jpg"
fi
exiftool -q -overwrite_original -Artist="Anna Example" -GPSLatitude=48.1 -GPSLatitudeRef=N \
    "$S/big.jpg" "$S/prog.jpg"
convert "$S/src.ppm" -crop 1200x900+0+0 "$S/big.png"
exiftool -q -overwrite_original -Artist="Anna Example" -Comment="ward 4" "$S/big.png"
for f in big.jpg prog.jpg big.png; do
    [ "$(fsize "$S/$f")" -ge 1048576 ] || diag "$f is only $(fsize "$S/$f") bytes"
done
COPIES=${PXC_HEADER_READ_COPIES:-12}
ok "mount" pxc_mount "$C" "$M" || done_testing
for i in $(seq "$COPIES"); do
    cp "$S/big.jpg" "$M/b$i.jpg"
    cp "$S/prog.jpg" "$M/p$i.jpg"
    cp "$S/big.png" "$M/n$i.png"
done
ok "unmount" pxc_umount "$M"
is "$(head -c 4 "$C/b1.jpg" | od -An -tx1 | tr -d ' \n')" ffd8ffef "the JPEGs are stored as JPEG"

# decodes_logged: the counts the daemon logged at its last unmount.
decodes_logged() { sed -n 's/.*images decoded whole: \([0-9]*\),.*/\1/p' "$LOG" | tail -n 1; }
header_reads_logged() { sed -n 's/.*served from sealed headers: \([0-9]*\)$/\1/p' "$LOG" | tail -n 1; }

# Each reader's output through the mount equals its output on the plain files (links
# of the same names; exiftool's System tags -- dates, permissions -- left out); the
# daemon decodes nothing for it.
check_reader() {
    local what=$1 glob=$2
    shift 2
    : >"$LOG"
    pxc_mount_fg "$C" "$M" "$LOG" || { fail "mount for $what"; return; }
    (cd "$M" && "$@" $glob) >"$T/through" 2>&1
    pxc_umount "$M"
    for i in $(seq "$COPIES"); do
        for f in b p n; do
            case $f in b) src=big.jpg ;; p) src=prog.jpg ;; n) src=big.png ;; esac
            ln -sf "$S/$src" "$T/plainview/$f$i.${src##*.}"
        done
    done
    (cd "$T/plainview" && "$@" $glob) >"$T/plain" 2>&1
    if cmp -s "$T/through" "$T/plain"; then
        pass "$what: same output through the mount as on the plain files"
    else
        fail "$what: output differs through the mount"
        diff "$T/plain" "$T/through" | head -n 20 | diag_stdin
    fi
    is "$(decodes_logged)" 0 "$what: no image decoded whole"
    local hr
    hr=$(header_reads_logged)
    ok "$what: ${hr:-?} reads served from sealed headers" test "${hr:-0}" -gt 0
}
mkdir -p "$T/plainview"
check_reader "exiftool over $COPIES baseline + $COPIES progressive JPEGs" "*.jpg" exiftool -a -G1 -s --System:all
check_reader "exiftool -fast over the JPEGs" "*.jpg" exiftool -fast -a -G1 -s --System:all
check_reader "exiftool -fast2 over $COPIES PNGs" "*.png" exiftool -fast2 -a -G1 -s --System:all
check_reader "identify -ping over JPEGs and PNGs" "*.jpg *.png" identify -ping -format '%f %m %wx%h\n'

# Whole reads still decode, byte for byte, and count.
: >"$LOG"
pxc_mount_fg "$C" "$M" "$LOG"
ok "a whole JPEG reads back identical" cmp "$S/big.jpg" "$M/b1.jpg"
ok "a whole PNG reads back identical" cmp "$S/big.png" "$M/n1.png"
pxc_umount "$M"
is "$(decodes_logged)" 2 "reading two files whole decodes two images"

# A damaged sealed record: header reads fail (EIO), not serve bad bytes.  The record
# starts right after the clear header fields (JPEG: in the first APP15 segment).
flip_byte "$C/b2.jpg" 400
flip_byte "$C/n2.png" 400
: >"$LOG"
pxc_mount_fg "$C" "$M" "$LOG"
ok_fails "head of a JPEG whose sealed record is damaged: error" head -c 100 "$M/b2.jpg"
ok_fails "head of a PNG whose sealed record is damaged: error" head -c 100 "$M/n2.png"
ok "an undamaged neighbour still reads its head" cmp -n 100 "$S/big.jpg" "$M/b3.jpg"
pxc_umount "$M"
like "$(cat "$LOG")" "b2.jpg" "the damaged JPEG is named in the log"

# Timing, for the record: exiftool over the JPEGs through the mount and on plain files.
pxc_mount "$C" "$M"
t0=$(date +%s.%N)
exiftool -q -q "$M"/b*.jpg >/dev/null 2>&1
t1=$(date +%s.%N)
exiftool -q -q "$T/plainview"/b*.jpg >/dev/null 2>&1
t2=$(date +%s.%N)
diag "exiftool over $COPIES large JPEGs: $(echo "$t1 - $t0" | bc) s through the mount (cold)," \
    "$(echo "$t2 - $t1" | bc) s on the plain files"
pxc_umount "$M"

done_testing
