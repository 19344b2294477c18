#!/bin/bash
# pixcrypt stego: messages hidden in PNG covers of every colour type and bit depth
# (palette, gray 1-16 bits, alpha, interlaced) come back intact with the passphrase; the
# stego image is a valid PNG within one least significant bit of the cover; a wrong
# passphrase and an image without a message are refused alike (exit 3); too long a
# message is refused before anything is written; bad input gets a clear error.
. "$(dirname "$0")/../lib.sh"
[ -x "$PXC_BIN" ] || skip_all "no pixcrypt binary at $PXC_BIN"
SUITE=$PXC_CORPUS/png/pngsuite
[ -d "$SUITE" ] || skip_all "no PngSuite in the corpus ($SUITE)"

echo "stego passphrase" >"$T/pass"
echo "another passphrase" >"$T/wrong"
printf 'meet at\000noon, mill\n' >"$T/msg" # binary: a NUL inside
S() { tmo 120 "$PXC_BIN" stego "$@"; }

# ---- every kind of cover
for f in basn0g01 basn0g02 basn0g04 basn0g08 basn0g16 basn2c08 basn2c16 basn3p01 basn3p08 \
    basn4a08 basn4a16 basn6a08 basn6a16 ibasn2c08 ibasn3p08 ftbrn2c08; do
    cover=$SUITE/$f.png
    out=$T/$f-stego.png
    cap=$(S capacity "$cover")
    if [ "${cap:-0}" -lt "$(stat -c %s "$T/msg")" ]; then
        skip "$f: hide and reveal" "capacity $cap bytes"
        continue
    fi
    if ! S hide --kdf interactive --passfile "$T/pass" "$cover" "$T/msg" "$out" 2>"$T/hide.err"; then
        fail "$f: hide"
        diag_stdin <"$T/hide.err"
        continue
    fi
    S reveal --passfile "$T/pass" "$out" >"$T/back" 2>"$T/reveal.err"
    if cmp -s "$T/msg" "$T/back" && pngcheck -q "$out" >/dev/null 2>&1; then
        pass "$f: hidden in a valid PNG and revealed intact"
    else
        fail "$f: hidden in a valid PNG and revealed intact"
        diag_stdin <"$T/reveal.err"
    fi
done

# ---- a larger cover: a 20 KB message, the image within one LSB of the cover
convert -size 400x300 -seed 7 plasma:fractal -depth 8 "$T/cover.png" 2>/dev/null ||
    convert -size 400x300 gradient:red-blue -depth 8 "$T/cover.png"
head -c 20000 /dev/urandom >"$T/big"
expect_exit 0 "hide 20000 bytes in a 400x300 RGB cover" \
    S hide --kdf interactive --passfile "$T/pass" "$T/cover.png" "$T/big" "$T/stego.png"
like "$(cat "$T/last.err")" "Hid 20000 bytes" "says what it hid"
like "$(file -b "$T/stego.png")" "PNG image data, 400 x 300" "the output is a 400x300 PNG"
S reveal --passfile "$T/pass" "$T/stego.png" "$T/big.back" 2>/dev/null
ok "revealed to a file, intact" cmp "$T/big" "$T/big.back"
is "$(stat -c %a "$T/big.back")" 600 "the revealed message is private (0600)"
# Largest difference of any sample from the cover's: 1 (ImageMagick, 8-bit scale).
maxdiff=$(compare -metric PAE "$T/cover.png" "$T/stego.png" null: 2>&1 | sed 's/.*(\(.*\))/\1/')
like "$maxdiff" '^0\.00[0-9]+$|^0$' "no sample moved by more than its last bit (PAE $maxdiff)"
psnr=$(compare -metric PSNR "$T/cover.png" "$T/stego.png" null: 2>&1 | cut -d' ' -f1)
ok "PSNR against the cover is above 50 dB ($psnr)" awk -v p="$psnr" 'BEGIN { exit !(p > 50) }'
# The first thousand samples in raster order, where plain LSB embedding puts its bits,
# hardly change: positions are spread over the whole image.
changed_head=$(cmp -l <(convert "$T/cover.png" rgb:- 2>/dev/null | head -c 3000) \
    <(convert "$T/stego.png" rgb:- 2>/dev/null | head -c 3000) | wc -l)
ok "the first 3000 samples are not where the bits go ($changed_head changed)" test "$changed_head" -lt 1200

# ---- wrong passphrase and no message: the same refusal, exit 3
expect_exit 3 "a wrong passphrase: exit 3" S reveal --passfile "$T/wrong" "$T/stego.png"
like "$(cat "$T/last.err")" "no message for this passphrase" "saying there is no message for it"
is "$(stat -c %s "$T/last.out")" 0 "and nothing on stdout"
expect_exit 3 "an image without a message: exit 3" S reveal --passfile "$T/pass" "$T/cover.png"
like "$(cat "$T/last.err")" "no message for this passphrase" "the same message"

# ---- capacity, checked up front
cap=$(S capacity "$T/cover.png")
head -c $((cap + 1)) /dev/zero >"$T/toolarge"
expect_exit 1 "a message one byte over capacity: exit 1" \
    S hide --passfile "$T/nonexistent-passfile" "$T/cover.png" "$T/toolarge" "$T/x.png"
like "$(cat "$T/last.err")" "holds at most $cap" "naming the capacity (before asking for a passphrase)"
ok_fails "no output written" test -e "$T/x.png"
head -c "$cap" /dev/zero >"$T/exact"
expect_exit 0 "a message of exactly the capacity fits" \
    S hide --kdf interactive --passfile "$T/pass" "$T/cover.png" "$T/exact" "$T/exact.png"

# ---- standard input, refusing to overwrite, bad input
printf 'from a pipe' | S hide --kdf interactive --passfile "$T/pass" "$T/cover.png" - "$T/pipe.png" 2>/dev/null
is "$(S reveal --passfile "$T/pass" "$T/pipe.png" 2>/dev/null)" "from a pipe" "message from standard input, revealed to standard output"
expect_exit 1 "an existing output is not replaced" \
    S hide --kdf interactive --passfile "$T/pass" "$T/cover.png" "$T/msg" "$T/pipe.png"
like "$(cat "$T/last.err")" "exists.*--force" "saying so"
expect_exit 0 "unless --force" S hide --force --kdf interactive --passfile "$T/pass" "$T/cover.png" "$T/msg" "$T/pipe.png"
jpeg=$(find "$PXC_CORPUS" -iname '*.jpg' | head -n 1)
expect_exit 1 "a JPEG cover: exit 1" S hide --passfile "$T/pass" "$jpeg" "$T/msg" "$T/j.png"
like "$(cat "$T/last.err")" "not a PNG" "saying it is not a PNG"
head -c 2000 "$T/stego.png" >"$T/truncated.png"
expect_exit 1 "a truncated PNG: exit 1" S reveal --passfile "$T/pass" "$T/truncated.png"
like "$(cat "$T/last.err")" "damaged PNG" "saying it is damaged"
for bad in "$PXC_CORPUS"/png/malformed/*.png; do
    [ -e "$bad" ] || continue
    tmo 60 "$PXC_BIN" stego reveal --passfile "$T/pass" "$bad" >/dev/null 2>&1
    rc=$?
    [ $rc -ge 1 ] && [ $rc -le 3 ] || { fail "malformed $(basename "$bad"): exit $rc"; continue; }
done
pass "malformed corpus PNGs give errors, never a crash"
expect_exit 0 "options before the action work too" \
    S --passfile "$T/pass" reveal "$T/pipe.png" "$T/before-action.out"
ok "with the same result" cmp "$T/msg" "$T/before-action.out"
expect_exit 2 "stego without an action: usage, exit 2" S
expect_exit 2 "stego hide with two arguments: exit 2" S hide "$T/cover.png" "$T/msg"
done_testing
