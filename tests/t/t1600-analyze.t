#!/bin/bash
# pixcrypt analyze on corpus images: the cipher statistics in their ideal ranges under
# the default profile, exact decryption under both profiles, the 16-bit bit planes, the
# JPEG AC-energy maps, JSON that parses, a directory walk with its summary, a progress
# bar only on a terminal, clear errors for bad input, and the HTML report rendered by
# headless Chromium into a non-blank screenshot of the requested size.
. "$(dirname "$0")/../lib.sh"
[ -x "$PXC_BIN" ] || skip_all "no pixcrypt binary at $PXC_BIN"
[ -d "$PXC_CORPUS/png" ] || skip_all "no image corpus at $PXC_CORPUS"

A=$T/images
mkdir -p "$A/sub"
cp "$PXC_CORPUS/png/libjpeg-turbo/testorig.png" "$A/gray8.png"       # 227x149 gray
cp "$PXC_CORPUS/png/libjpeg-turbo/monkey16.png" "$A/sub/rgb16.png"   # 149x227 RGB 16-bit
cp "$PXC_CORPUS/jpeg/libjpeg-turbo/testorig.jpg" "$A/sub/photo.jpg" # 227x149 4:2:0
cp "$PXC_CORPUS/png/pngsuite/ibasn2c08.png" "$A/adam7.png"          # 32x32 RGB interlaced
seq 1 100 >"$A/notes.txt"

# json FILE PERL-EXPR: evaluates EXPR with $j the parsed document (JSON::PP is core Perl).
json() {
    perl -MJSON::PP -e 'local $/; open my $f, "<", $ARGV[0] or die; my $j = decode_json(<$f>);
        my $v = eval $ARGV[1]; die $@ if $@; print defined $v ? $v : "undef"' "$1" "$2"
}
# within X LO HI: LO <= X <= HI.
within() { perl -e 'exit !($ARGV[0] >= $ARGV[1] && $ARGV[0] <= $ARGV[2])' -- "$@"; }

# ---- one 8-bit PNG, default profile --------------------------------------------------
ok "analyze the 8-bit PNG (default profile, JSON)" \
    tmo 120 "$PXC_BIN" analyze --profile default --json "$T/one.json" "$A/gray8.png"
is "$(json "$T/one.json" 'scalar @{$j->{results}}')" 1 "JSON parses: one result"
R='$j->{results}[0]'
is "$(json "$T/one.json" "$R->{decrypt}{exact} ? 1 : 0")" 1 "decryption is exact"
is "$(json "$T/one.json" "$R->{decrypt}{mse}") $(json "$T/one.json" "$R->{decrypt}{ssim}")" "0 1" \
    "decryption MSE 0, SSIM 1"
is "$(json "$T/one.json" "defined $R->{decrypt}{psnr} ? 'finite' : 'infinite'")" infinite \
    "decryption PSNR infinite (null in JSON)"
H=$(json "$T/one.json" "$R->{cipher}{entropy}")
ok "cipher entropy $H >= 7.99 bits (plain $(json "$T/one.json" "$R->{plain}{entropy}"))" within "$H" 7.99 8
for d in horizontal vertical diagonal; do
    r=$(json "$T/one.json" "$R->{cipher}{correlation}{$d}")
    p=$(json "$T/one.json" "$R->{plain}{correlation}{$d}")
    ok "cipher $d correlation $r within +-0.03 (plain $p > 0.9)" \
        perl -e 'exit !(abs($ARGV[0]) < 0.03 && $ARGV[1] > 0.9)' -- "$r" "$p"
done
r=$(json "$T/one.json" "$R->{plain_cipher_correlation}")
ok "plain-cipher correlation $r within +-0.03" within "$r" -0.03 0.03
p=$(json "$T/one.json" "$R->{cipher}{chi2_p}")
ok "cipher histogram uniform: chi2 p-value $p > 0.0001" within "$p" 0.0001 1
np=$(json "$T/one.json" "$R->{differential}{npcr}")
ua=$(json "$T/one.json" "$R->{differential}{uaci}")
ok "one-sample change at fixed keys: NPCR $np % within 99.61 +- 0.3" within "$np" 99.31 99.91
ok "... UACI $ua % within 33.46 +- 0.7" within "$ua" 32.76 34.16
np=$(json "$T/one.json" "$R->{key_sensitivity}{npcr}")
ok "one key bit flipped: NPCR $np % within 99.61 +- 0.3" within "$np" 99.31 99.91
is "$(json "$T/one.json" "$R->{ideal}{npcr}") $(json "$T/one.json" "$R->{ideal}{uaci}")" \
    "99.609375 33.46354167" "ideal NPCR / UACI for 8 bits"
t=$(json "$T/one.json" "$R->{time}{encrypt_seconds}")
ok "encryption time measured ($t s)" within "$t" 0.000001 60
like "$("$PXC_BIN" analyze --profile default "$A/gray8.png")" \
    'default +6\.98[0-9]+ +7\.99[0-9]+ .* yes .*gray8\.png' "text table: one row with entropies and exact"

# ---- 16-bit, JPEG, interlaced, both profiles, directory walk ---------------------------
expect_exit 0 "analyze the directory (both profiles, JSON, no terminal)" \
    tmo 300 "$PXC_BIN" analyze --json "$T/all.json" "$A"
is "$(cat "$T/last.err")" "" "no progress bar when stderr is not a terminal"
is "$(json "$T/all.json" 'join " ", map { (split m{/}, $_->{path})[-1] . ":" . $_->{profile} } @{$j->{results}}')" \
    "adam7.png:default adam7.png:chaos gray8.png:default gray8.png:chaos photo.jpg:default rgb16.png:default rgb16.png:chaos" \
    "every image found, sorted, the text file skipped; JPEG measured once"
is "$(json "$T/all.json" 'join " ", map { $_->{decrypt}{exact} ? 1 : 0 } @{$j->{results}}')" \
    "1 1 1 1 1 1 1" "decryption exact for every image and profile"
is "$(json "$T/all.json" 'join " ", sort keys %{$j->{summary}}')" "chaos/png default/jpeg default/png" \
    "a summary per profile, JPEG apart"
is "$(json "$T/all.json" '$j->{summary}{"default/png"}{measured}')" 2 \
    "... the 32x32 image listed but left out of the summary"
like "$(cat "$T/last.out")" '^summary default/png: 2 measured, 1 too small' "text summary"

G='(grep { $_->{path} =~ /rgb16/ && $_->{profile} eq "default" } @{$j->{results}})[0]'
is "$(json "$T/all.json" "scalar @{$G->{cipher}{bitplane_entropy}}")" 16 "16-bit: 16 bit planes"
planes=$(json "$T/all.json" "join ' ', @{$G->{cipher}{bitplane_entropy}}")
ok "16-bit: every cipher bit plane has entropy >= 0.999" perl -e 'exit grep { $_ < 0.999 } @ARGV' -- $planes
np=$(json "$T/all.json" "$G->{differential}{npcr}")
ok "16-bit: NPCR $np % (ideal 99.9985)" within "$np" 99.95 100

J='(grep { $_->{path} =~ /photo/ } @{$j->{results}})[0]'
ac=$(json "$T/all.json" "$J->{ac_energy_correlation}")
ok "JPEG: AC-energy block maps uncorrelated, r = $ac" within "$ac" -0.05 0.05
is "$(json "$T/all.json" "$J->{decrypt}{ssim}")" 1 "JPEG: decrypted pixels identical (SSIM 1)"
ok "JPEG: one changed coefficient re-keys the image: NPCR $(json "$T/all.json" "$J->{differential}{npcr}") % > 50" \
    within "$(json "$T/all.json" "$J->{differential}{npcr}")" 50 100

I='(grep { $_->{path} =~ /adam7/ && $_->{profile} eq "default" } @{$j->{results}})[0]'
is "$(json "$T/all.json" "$I->{differential}{measured} ? 1 : 0")" 1 \
    "interlaced PNG: the file keys reproduce the stored samples in pass order"
C='(grep { $_->{path} =~ /gray8/ && $_->{profile} eq "chaos" } @{$j->{results}})[0]'
ok "chaos profile: cipher entropy $(json "$T/all.json" "$C->{cipher}{entropy}") >= 7.99" \
    within "$(json "$T/all.json" "$C->{cipher}{entropy}")" 7.99 8
is "$(json "$T/all.json" "$C->{differential}{measured} ? 1 : 0")" 1 "chaos profile: differential test measured"

# A terminal gets a progress bar (script(1) provides the pty).
if command -v script >/dev/null; then
    tmo 300 script -qec "'$PXC_BIN' analyze --profile default '$A' >/dev/null" /dev/null >"$T/tty.out" 2>&1
    like "$(tr '\r' '\n' <"$T/tty.out")" 'analysing \[#* *\] +[0-9]+% [0-9]/4 files' "a progress bar on a terminal"
else
    skip "a progress bar on a terminal" "no script(1)"
fi

# ---- bad input -----------------------------------------------------------------------
expect_exit 2 "no image argument: usage error" "$PXC_BIN" analyze
expect_exit 2 "unknown profile: usage error" "$PXC_BIN" analyze --profile bogus "$A/gray8.png"
expect_exit 1 "a missing file: error" "$PXC_BIN" analyze "$T/nope.png"
like "$(cat "$T/last.err")" "nope.png: No such file" "... saying so"
expect_exit 1 "a text file: error" "$PXC_BIN" analyze "$A/notes.txt"
like "$(cat "$T/last.err")" "notes.txt: not a PNG or JPEG file" "... saying so"
mkfifo "$T/fifo.png"
expect_exit 1 "a FIFO: error, without waiting for a writer" tmo 20 "$PXC_BIN" analyze "$T/fifo.png"
like "$(cat "$T/last.err")" "fifo.png: not a regular file" "... saying so"
head -c 3000 "$A/gray8.png" >"$T/truncated.png"
expect_exit 1 "a truncated PNG: measured as not readable, no crash" \
    "$PXC_BIN" analyze --profile default "$T/truncated.png"
like "$(cat "$T/last.out")" "truncated.png: not a readable PNG" "... the table says why"
expect_exit 1 "a report in a missing directory: error" \
    "$PXC_BIN" analyze --report "$T/no/such/dir/r.html" "$A/gray8.png"

# ---- the HTML report in headless Chromium --------------------------------------------
ok "write the HTML report" tmo 300 "$PXC_BIN" analyze --report "$T/report.html" "$A/gray8.png" "$A/sub/photo.jpg"
is "$(grep -c '<img alt="plain"' "$T/report.html") $(grep -c '<svg' "$T/report.html")" "3 9" \
    "one section per image and profile: pictures and three histograms each"
is "$(grep -c 'src="http\|src="file\|href="http' "$T/report.html")" 0 "self-contained: nothing loaded from elsewhere"
is "$(grep -c 'Tripuram, CNN\|Khazaal, Falih\|AI in Encryption\|99.6094 %' "$T/report.html")" 4 "the reference table of published figures"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$CHROMIUM" ]; then
    tmo 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$T/chromium-profile" --window-size=1000,1400 \
        --screenshot="$T/shot.png" "file://$T/report.html" >"$T/chromium.out" 2>&1
    is "$(identify -format '%m %w %h' "$T/shot.png" 2>&1)" "PNG 1000 1400" "Chromium renders a 1000x1400 screenshot"
    colours=$(identify -format '%k' "$T/shot.png" 2>/dev/null || echo 0)
    sd=$(convert "$T/shot.png" -colorspace Gray -format '%[fx:standard_deviation]' info: 2>/dev/null || echo 0)
    ok "... that is not blank ($colours colours, grey deviation $sd)" \
        perl -e 'exit !($ARGV[0] > 64 && $ARGV[1] > 0.1)' -- "$colours" "$sd"
else
    skip "Chromium renders the report" "no chromium (contrib/deps.sh test installs it)"
    skip "... that is not blank" "no chromium"
fi
done_testing
