#!/bin/bash
# Resource bounds: a thousand images held open at once, and sixteen readers decoding
# large images at the same time, keep the daemon's memory under the bound the README
# states: the plaintext cache (cache_mb), plus one image being converted or decoded per
# codec slot (codec_slots, default the number of CPUs), each needing about 8 times its
# raw pixel data for a PNG, plus the plaintext of each image a reader is in the middle
# of (let go when it reaches the end).
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
command -v convert >/dev/null || skip_all "no ImageMagick convert"

C=$T/cipher
M=$T/mnt
S=$T/src
mkdir -p "$C" "$M" "$S"
CACHE_MB=32
SLOTS=2

convert -seed 1 -size 96x64 plasma:fractal -depth 8 "$S/small.png"
convert -seed 2 -size 1600x1200 plasma:fractal -depth 8 "$S/large.png"
raw_mb=$((1600 * 1200 * 3 / 1048576)) # raw pixel data of one large image

ok "init" pxc_init "$C"
ok "mount with cache_mb=$CACHE_MB,codec_slots=$SLOTS" pxc_mount "$C" "$M" -o cache_mb=$CACHE_MB,codec_slots=$SLOTS
mkdir -p "$M/small" "$M/large"
# Distinct images (each copy is its own stored file with its own keys).
for i in $(seq 1000); do cp "$S/small.png" "$M/small/$i.png" || break; done
for i in $(seq 48); do cp "$S/large.png" "$M/large/$i.png" || break; done
is "$(ls "$M/small" | wc -l) $(ls "$M/large" | wc -l)" "1000 48" "1000 small and 48 large images written"
ok "unmount" pxc_umount "$M"
ok "mount again" pxc_mount "$C" "$M" -o cache_mb=$CACHE_MB,codec_slots=$SLOTS
pid=$(pxc_daemon_pids "$M" | head -n 1)
rss_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$pid/status"; }

# ---- a thousand open at once, each read
perl -e '
    my @fh;
    for my $f (@ARGV) { open(my $h, "<", $f) or die "$f: $!"; push @fh, $h; }
    my $n = 0;
    for my $h (@fh) { local $/; my $d = <$h>; $n++ if length $d; }
    print "$n\n";' "$M"/small/*.png >"$T/opened" 2>"$T/opened.err"
is "$(cat "$T/opened")" 1000 "1000 images open at once, all read"
peak1=$(rss_kib)
diag "daemon peak after 1000 open images: $((peak1 / 1024)) MiB"

# ---- sixteen concurrent readers of large images
readers=
for r in $(seq 16); do
    (for i in $(seq $r 16 48); do cmp -s "$S/large.png" "$M/large/$i.png" || echo "bad $i"; done) >"$T/r$r" &
    readers="$readers $!"
done
wait $readers # not a bare wait: the watchdog is a child too
is "$(cat "$T"/r* | wc -l)" 0 "16 concurrent readers: all 48 large images read back identical"
peak2=$(rss_kib)
plain_mb=$(($(stat -c %s "$S/large.png") / 1048576 + 1))
bound_mb=$((CACHE_MB + SLOTS * 8 * raw_mb + 16 * plain_mb + 64))
diag "daemon peak with 16 concurrent readers: $((peak2 / 1024)) MiB (bound $bound_mb MiB:" \
    "cache $CACHE_MB + $SLOTS slots x 8 x $raw_mb MiB + 16 readers x $plain_mb MiB + 64 MiB base)"
if ldd "$PXC_BIN" 2>/dev/null | grep -q libasan; then
    # AddressSanitizer's shadow memory and quarantine say nothing about pixcrypt's.
    skip "daemon memory under the stated bound" "the daemon is built with AddressSanitizer"
else
    ok "daemon memory under the stated bound" [ $((peak2 / 1024)) -le $bound_mb ]
fi
ok "unmount" pxc_umount "$M"
done_testing
