#!/bin/bash
# PNG stored as PNG: corpus and generated variants (encoders, depths, palette, alpha,
# Adam7, text chunks) read back identical; the stored file is a valid PNG with the same
# IHDR, carries no readable metadata, looks like noise, and fails reads when tampered
# with; malformed and fake PNGs stay opaque and still round-trip.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
need_tool img_stats
for t in convert identify pngcheck exiftool; do
    command -v $t >/dev/null || skip_all "no $t (contrib/deps.sh test installs it)"
done

C=$T/cipher
M=$T/mnt
S=$T/src
LOG=$T/daemon.log
mkdir -p "$C" "$M" "$S"
ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount_fg "$C" "$M" "$LOG" || done_testing

is_stored_png() { # stored file: PNG signature and a pxCR chunk right after IHDR
    [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
        [ "$(dd if="$1" bs=1 skip=37 count=4 status=none)" = pxCR ]
}
ihdr() { dd if="$1" bs=1 skip=16 count=13 status=none | od -An -tx1 | tr -d ' \n'; }

# ---- generated variants, every one a real encoder's output
convert -seed 42 -size 512x512 plasma:fractal "$S/photo.png"
convert "$S/photo.png" -colorspace Gray "$S/gray8.png"
convert "$S/photo.png" -depth 16 "$S/rgb16.png"
convert "$S/photo.png" -colorspace Gray -depth 16 "$S/gray16.png"
convert "$S/photo.png" -alpha set -channel A -fx 'i/w' "$S/rgba.png"
convert "$S/photo.png" -colorspace Gray -alpha set -channel A -fx 'j/h' "$S/graya.png"
convert "$S/photo.png" -colors 200 "PNG8:$S/palette.png"
convert "$S/photo.png" -colors 4 -depth 2 "$S/palette2.png"
convert "$S/photo.png" -colorspace Gray -depth 1 -threshold 50% "$S/gray1.png"
convert "$S/photo.png" -colorspace Gray -depth 4 "$S/gray4.png"
convert "$S/photo.png" -interlace PNG "$S/adam7.png"
convert "$S/rgb16.png" -interlace PNG "$S/adam7-16.png"
for q in 0 1 9 95; do convert "$S/photo.png" -quality $q "$S/q$q.png"; done
convert "$S/photo.png" -set comment "SecretCommentText" -set Title "SecretTitleText" "$S/text.png"
convert -size 301x17 xc:orange "$S/odd.png"
command -v optipng >/dev/null && optipng -quiet -o3 "$S/photo.png" -out "$S/optipng.png"
command -v zopflipng >/dev/null && zopflipng -q "$S/gray8.png" "$S/zopfli.png" >/dev/null
command -v advpng >/dev/null && cp "$S/palette.png" "$S/advpng.png" && advpng -q -z -3 "$S/advpng.png"
command -v pngcrush >/dev/null &&
    pngcrush -q -text b Author SecretAuthorName -text b Description SecretDescriptionText \
        "$S/rgba.png" "$S/pngcrush.png" 2>/dev/null
printf 'trailing bytes after IEND' | cat "$S/odd.png" - >"$S/trailing.png"
note "generated $(ls "$S" | wc -l) PNGs"

ok "cp the generated PNGs in" cp "$S"/*.png "$M/"
for f in "$S"/*.png; do
    b=$(basename "$f")
    # Reading through the mount first: the transcoding runs when the last writer's
    # handle is released, which close() does not wait for; an open waits for it.
    if cmp -s "$f" "$M/$b" && is_stored_png "$C/$b" && [ "$(ihdr "$C/$b")" = "$(ihdr "$f")" ] &&
        pngcheck -q "$C/$b" >/dev/null 2>&1; then
        pass "$b: stored as a PNG with the same IHDR, pngcheck accepts it, reads back identical"
    else
        fail "$b: stored as a PNG with the same IHDR, pngcheck accepts it, reads back identical"
        diag "stored png: $(is_stored_png "$C/$b" && echo yes || echo no)" \
            "ihdr $(ihdr "$C/$b") vs $(ihdr "$f")" "pngcheck: $(pngcheck -q "$C/$b" 2>&1)" \
            "cmp: $(cmp "$f" "$M/$b" 2>&1)" "log: $(grep -F "$b" "$LOG" | tail -n 3)"
    fi
done
is "$(identify -format '%w %h %[bit-depth]\n' "$C/rgb16.png" 2>&1)" "512 512 16" "identify reads the stored 16-bit file"
is "$(convert "$C/palette.png" -format '%w %h' info: 2>&1)" "512 512" "convert decodes the stored palette file"

# ---- noise: entropy and adjacent-sample correlation of the stored pixels
read -r _ ent _ ch _ cv _ cd <<<"$(convert "$C/gray8.png" -depth 8 gray:- | "$PXC_TOOLS/img_stats" 512)"
read -r _ pent _ pch _ _ _ _ <<<"$(convert "$S/gray8.png" -depth 8 gray:- | "$PXC_TOOLS/img_stats" 512)"
note "plain gray8: entropy $pent, horizontal correlation $pch"
ok "stored gray8 entropy $ent >= 7.99" perl -e "exit !($ent >= 7.99)"
ok "stored gray8 correlations h $ch v $cv d $cd within 0.01" \
    perl -e "exit !(abs($ch) < 0.01 && abs($cv) < 0.01 && abs($cd) < 0.01)"

# ---- metadata sealed, not stripped
for s in SecretCommentText SecretTitleText SecretAuthorName SecretDescriptionText; do
    ok_fails "no stored file contains $s" grep -rqa "$s" "$C"
done
ok "the text comes back through the mount" grep -qa SecretCommentText "$M/text.png"
is "$(exiftool -s -s -s -Author "$M/pngcrush.png")" SecretAuthorName "exiftool through the mount sees Author"
is "$(exiftool -s -s -s -Author -Comment -Title -Description "$C/pngcrush.png" "$C/text.png" | grep -c Secret)" 0 \
    "exiftool on the stored files sees none of it"
is "$(pngcheck -t "$C/pngcrush.png" 2>&1 | grep -c Secret)" 0 "pngcheck -t on the stored file shows no text"

# ---- header reads are cheap and exact: the first 100 bytes, identify -ping
is "$(head -c 100 "$M/text.png" | md5sum)" "$(head -c 100 "$S/text.png" | md5sum)" "first 100 bytes"
is "$(identify -ping -format '%w %h' "$M/adam7.png")" "512 512" "identify -ping through the mount"

# ---- corpus PNGs
if [ -d "$PXC_CORPUS/png/pngsuite" ]; then
    n=0
    bad=0
    stored_png=0
    mkdir -p "$M/corpus"
    while IFS= read -r -d '' f; do
        n=$((n + 1))
        b=c$n-$(basename "$f")
        cp "$f" "$M/corpus/$b" || bad=$((bad + 1))
    done < <(find "$PXC_CORPUS/png" -type f -name '*.png' -print0 | sort -z)
    n=0
    while IFS= read -r -d '' f; do
        n=$((n + 1))
        cmp -s "$f" "$M/corpus/c$n-$(basename "$f")" || { bad=$((bad + 1)); diag "differs: $f"; }
        is_stored_png "$C/corpus/c$n-$(basename "$f")" && stored_png=$((stored_png + 1))
    done < <(find "$PXC_CORPUS/png" -type f -name '*.png' -print0 | sort -z)
    is "$bad" 0 "all $n corpus PNGs read back identical ($stored_png stored as PNG)"
    valid=$(find "$PXC_CORPUS/png/pngsuite" -name '[!x]*.png' | wc -l)
    ok "at least the $valid valid PngSuite files are stored as PNG ($stored_png)" test "$stored_png" -ge "$valid"
else
    skip "corpus PNGs" "no corpus at $PXC_CORPUS"
fi

# ---- bad input stays opaque and round-trips
: >"$S/empty.png"
echo "this is text, not a PNG" >"$S/fake.png"
head -c 5000 "$S/photo.png" >"$S/truncated.png"
# IHDR declaring 100000 x 100000 8-bit RGB, with a tiny IDAT
perl -e 'use Compress::Zlib; sub ch { my ($t,$d)=@_; pack("N",length $d).$t.$d.pack("N",crc32($t.$d)) }
  print "\x89PNG\r\n\x1a\n", ch("IHDR", pack("NNCCCCC",100000,100000,8,2,0,0,0)),
  ch("IDAT", compress("\0" x 1000)), ch("IEND","")' >"$S/bomb.png"
for b in empty.png fake.png truncated.png bomb.png; do
    cp "$S/$b" "$M/$b"
    ok "$b: stored opaque, reads back identical" sh -c "has_magic() { printf pixcrypt | cmp -s -n 8 - \"\$1\"; }; has_magic '$C/$b' && cmp '$S/$b' '$M/$b'"
done
ok "the daemon is still alive" test -n "$(pxc_daemon_pids "$M")"

# ---- rewrite: a PNG written again gets a new seed (stored bytes change), same plaintext
cp "$C/photo.png" "$T/photo.stored.1"
cp "$S/photo.png" "$M/photo.png"
ok "rewriting a PNG changes its stored bytes" sh -c "! cmp -s '$T/photo.stored.1' '$C/photo.png'"
ok "and it still reads back identical" cmp "$S/photo.png" "$M/photo.png"
# an in-place edit of a stored PNG (append) makes it opaque or PNG again, exact either way
printf 'x' >>"$M/odd.png"
cat "$S/odd.png" >"$T/odd.expect" && printf 'x' >>"$T/odd.expect"
ok "appending to a stored PNG keeps every byte" cmp "$T/odd.expect" "$M/odd.png"

# ---- remount, then tamper
ok "unmount" pxc_umount "$M"
ok "remount" pxc_mount_fg "$C" "$M" "$LOG"
bad=0
for f in "$S"/*.png; do cmp -s "$f" "$M/$(basename "$f")" || [ "$(basename "$f")" = odd.png ] || bad=$((bad + 1)); done
is "$bad" 0 "every generated PNG identical after remount"
ok "unmount" pxc_umount "$M"
for off in 20 50 200 $(($(fsize "$C/gray8.png") / 2)) $(($(fsize "$C/gray8.png") - 5)); do
    cp "$C/gray8.png" "$T/keep" && flip_byte "$C/gray8.png" "$off"
    pxc_mount_fg "$C" "$M" "$LOG"
    err=$(cat "$M/gray8.png" 2>&1 >/dev/null)
    like "$err" "Input/output error" "stored PNG with byte $off flipped: EIO"
    pxc_umount "$M"
    cp "$T/keep" "$C/gray8.png"
done
ok "a log line names the damaged PNG" grep -q "gray8.png" "$LOG"
done_testing
