#!/bin/bash
# contrib/bench-images.sh PIXCRYPT_BINARY PNGDECODE_BINARY -- what storing images as
# images costs, measured in one run on this machine:
#   overhead   stored size / original size of PNGs, median per encoder family
#              (the corpus sets, and one photo-like image re-encoded by each encoder)
#   big PNG    writing a 4000x3000 RGB PNG into the mount and reading it back cold,
#              against `convert in.png out.png`, a plain libpng decode (tests/tools/
#              pngdecode) and the same copy through gocryptfs, as ratios
#   JPEG       stored / original size over the corpus JPEGs; a 4000x3000 JPEG
#              (baseline, progressive) written in against `jpegtran -copy all` and
#              read back cold against `djpeg`
#   header     exiftool and identify -ping over PXC_BENCH_HEADER_FILES (40) large
#              JPEGs through the mount against the same files on plain disk
# Environment: PXC_CORPUS (default ../shared/corpus), BENCH_DIR (default /var/tmp),
# BENCH_KEEP=1 keeps the work directory.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: bash contrib/bench-images.sh PIXCRYPT PNGDECODE CODEC_TIME" >&2; exit 2; }
PXC=$(readlink -f "$1")
PNGDECODE=$(readlink -f "$2")
CODEC_TIME=$(readlink -f "$3")
here=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${PXC_CORPUS:-$here/../shared/corpus}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/pixcrypt-bench-images.XXXXXX")
pass=$work/pass
printf 'bench passphrase\n' >"$pass"
C=$work/cipher M=$work/mnt G=$work/gcipher GM=$work/gmnt S=$work/src
mkdir -p "$C" "$M" "$G" "$GM" "$S"

cleanup() {
	set +e
	for m in "$M" "$GM"; do mountpoint -q "$m" && fusermount3 -u "$m"; done
	sleep 0.5
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT

mount_pxc() { "$PXC" mount --passfile "$pass" "$C" "$M"; }
umount_wait() {
	local i
	fusermount3 -u "$1"
	for i in $(seq 50); do pgrep -f -- " $1\$" >/dev/null || return 0; sleep 0.1; done
}
cold() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches || true; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
is_stored_png() { [ "$(dd if="$1" bs=1 skip=37 count=4 status=none 2>/dev/null | tr -d '\0')" = pxCR ]; }

"$PXC" init --kdf interactive --plaintext-names --passfile "$pass" "$C" >/dev/null
mount_pxc

# ---------------------------------------------------------------- overhead
echo "generating the encoder variants of a 1024x768 photo-like image ..."
convert -seed 7 -size 1024x768 plasma:fractal -blur 0x1 -depth 8 "$S/photo.png"
declare -A fam=()
add() { fam[$1]="${fam[$1]:-} $2"; }
for q in 1 6 9; do convert "$S/photo.png" -quality "${q}5" "$S/zlib$q.png" && add "ImageMagick/zlib -$q" "$S/zlib$q.png"; done
command -v optipng >/dev/null && optipng -quiet -o2 "$S/photo.png" -out "$S/optipng.png" && add optipng "$S/optipng.png"
command -v zopflipng >/dev/null && zopflipng -q "$S/photo.png" "$S/zopflipng.png" >/dev/null && add zopflipng "$S/zopflipng.png"
command -v advpng >/dev/null && cp "$S/photo.png" "$S/advpng.png" && advpng -q -z -3 "$S/advpng.png" && add advpng "$S/advpng.png"
command -v pngcrush >/dev/null && pngcrush -q "$S/photo.png" "$S/pngcrush.png" 2>/dev/null && add pngcrush "$S/pngcrush.png"
convert "$S/photo.png" -colors 256 "PNG8:$S/palette.png" && add "palette (ImageMagick)" "$S/palette.png"
if [ -d "$CORPUS/png" ]; then
	for set in pngsuite testpngs libjpeg-turbo; do
		[ -d "$CORPUS/png/$set" ] || continue
		for f in "$CORPUS/png/$set"/*.png; do add "corpus: $set" "$f"; done
	done
fi

# Copy every file in first, then unmount: the conversion runs when the last writer's
# handle is released, which close() does not wait for, and unmounting does.
keys=$(printf '%s\n' "${!fam[@]}" | sort)
declare -A dest=()
n=0
while IFS= read -r k; do
	for f in ${fam[$k]}; do
		n=$((n + 1))
		dest[$k]="${dest[$k]:-} f$n.png"
		cp "$f" "$M/f$n.png" 2>/dev/null || true
	done
done <<<"$keys"
umount_wait "$M"

echo
echo "| PNGs | files | stored as PNG | stored / original, median | stored / raw pixels, median |"
echo "| --- | --- | --- | --- | --- |"
while IFS= read -r k; do
	files=0 aspng=0
	: >"$work/r1" && : >"$work/r2"
	set -- ${dest[$k]}
	for f in ${fam[$k]}; do
		d=$1
		shift
		files=$((files + 1))
		is_stored_png "$C/$d" || continue
		aspng=$((aspng + 1))
		o=$(stat -c %s "$f") s=$(stat -c %s "$C/$d")
		echo "$s $o" | awk '{ printf "%.4f\n", $1 / $2 }' >>"$work/r1"
		# raw pixels: width x height x channels x depth / 8, as IHDR says
		echo "$s $(identify -format '%w %h %z %[channels]\n' "$f" 2>/dev/null | head -n 1)" |
			awk '{ c = 1; if ($5 ~ /rgba/) c = 4; else if ($5 ~ /rgb/) c = 3; else if ($5 ~ /graya/) c = 2
			       raw = $2 * $3 * c * $4 / 8; if (raw > 0) printf "%.4f\n", $1 / raw }' >>"$work/r2"
	done
	echo "| $k | $files | $aspng | $(median <"$work/r1") | $(median <"$work/r2") |"
done <<<"$keys"
mount_pxc

# ---------------------------------------------------------------- big PNG
echo
echo "generating a 4000x3000 8-bit RGB PNG ..."
convert -seed 3 -size 4000x3000 plasma:fractal -depth 8 "$S/big.png"
big_mb=$(awk -v b="$(stat -c %s "$S/big.png")" 'BEGIN { printf "%.1f", b / 1048576 }')
gocryptfs -q -init -extpass "cat $pass" -scryptn 10 "$G" >/dev/null 2>&1 &&
	gocryptfs -q -nosyslog -extpass "cat $pass" "$G" "$GM" >/dev/null 2>&1 && have_gc=1 || have_gc=0
cat "$S/big.png" >/dev/null

t0=$(now); convert "$S/big.png" "$work/convert-out.png"; t1=$(now); t_convert=$(secs "$t0" "$t1")
cold; t0=$(now); "$PNGDECODE" "$S/big.png"; t1=$(now); t_decode=$(secs "$t0" "$t1")
# Writes are timed through the unmount: the conversion runs on the last release, after
# close() has returned; the daemon exits only when it is done.
t0=$(now); cp "$S/big.png" "$M/big.png" && umount_wait "$M"; t1=$(now); t_write=$(secs "$t0" "$t1")
stored=$(is_stored_png "$C/big.png" && echo "stored as PNG" || echo "stored opaque")
cold; mount_pxc
t0=$(now); cat "$M/big.png" >/dev/null; t1=$(now); t_read=$(secs "$t0" "$t1")
t0=$(now); cat "$M/big.png" >/dev/null; t1=$(now); t_read_warm=$(secs "$t0" "$t1")
cmp -s "$S/big.png" "$M/big.png" && same=identical || same=DIFFERENT
if [ $have_gc = 1 ]; then
	t0=$(now); cp "$S/big.png" "$GM/big.png" && umount_wait "$GM"; t1=$(now); g_write=$(secs "$t0" "$t1")
	cold
	gocryptfs -q -nosyslog -extpass "cat $pass" "$G" "$GM" >/dev/null 2>&1
	t0=$(now); cat "$GM/big.png" >/dev/null; t1=$(now); g_read=$(secs "$t0" "$t1")
fi
r() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "4000x3000 RGB PNG, $big_mb MiB, $stored, read back $same"
echo
echo "| operation | time | ratio |"
echo "| --- | --- | --- |"
echo "| write into the mount (cp, unmount) | ${t_write} s | $(r "$t_write" "$t_convert") x convert in.png out.png (${t_convert} s) |"
echo "| read back, cold (cat) | ${t_read} s | $(r "$t_read" "$t_decode") x plain libpng decode (${t_decode} s) |"
echo "| read back again, cached | ${t_read_warm} s | $(r "$t_read_warm" "$t_decode") x plain libpng decode |"
if [ $have_gc = 1 ]; then
	echo "| gocryptfs: write / read cold | ${g_write} s / ${g_read} s | pixcrypt takes $(r "$t_write" "$g_write") x / $(r "$t_read" "$g_read") x as long |"
fi

# ---------------------------------------------------------------- JPEG
echo
echo "JPEG: corpus sizes and a 4000x3000 photo-like JPEG (baseline and progressive) ..."
if [ -d "$CORPUS/jpeg" ]; then
	mkdir -p "$M/jcorpus"
	i=0
	while IFS= read -r -d '' f; do i=$((i + 1)); cp "$f" "$M/jcorpus/j$i.jpg"; done \
		< <(find "$CORPUS/jpeg" -type f -iname '*.jp*g' -print0 | sort -z)
	umount_wait "$M"
	i=0 aspjpeg=0
	: >"$work/j1"
	while IFS= read -r -d '' f; do
		i=$((i + 1))
		[ "$(head -c 4 "$C/jcorpus/j$i.jpg" | od -An -tx1 | tr -d ' \n')" = ffd8ffef ] || continue
		aspjpeg=$((aspjpeg + 1))
		echo "$(stat -c %s "$C/jcorpus/j$i.jpg") $(stat -c %s "$f")" | awk '{ printf "%.4f\n", $1 / $2 }' >>"$work/j1"
	done < <(find "$CORPUS/jpeg" -type f -iname '*.jp*g' -print0 | sort -z)
	echo "corpus JPEGs: $aspjpeg of $i stored as JPEG; stored / original size, median $(median <"$work/j1")"
	# Codec cost per corpus file, in one process (no mount, no process start): encode
	# (verification included) and decode against libjpeg-turbo's lossless transcode.
	: >"$work/jw"
	: >"$work/jr"
	while IFS= read -r -d '' f; do
		read -r kind enc dec peer _ < <("$CODEC_TIME" "$f" 3)
		[ "$kind" = jpeg ] || continue
		awk -v a="$enc" -v p="$peer" 'BEGIN { if (p > 0) printf "%.3f\n", a / p }' >>"$work/jw"
		awk -v a="$dec" -v p="$peer" 'BEGIN { if (p > 0) printf "%.3f\n", a / p }' >>"$work/jr"
	done < <(find "$CORPUS/jpeg" -type f -iname '*.jp*g' -print0 | sort -z)
	echo "corpus JPEGs, codec in one process vs libjpeg-turbo transcode (jpegtran -copy all):" \
		"encode median $(median <"$work/jw") worst $(sort -g "$work/jw" | tail -n 1)," \
		"decode median $(median <"$work/jr") worst $(sort -g "$work/jr" | tail -n 1)"
	mount_pxc
fi
convert -seed 4 -size 4000x3000 plasma:fractal -quality 92 "$S/big.jpg"
jpegtran -progressive "$S/big.jpg" >"$S/bigp.jpg"
echo
echo "| 4000x3000 JPEG | pixcrypt | peer | ratio |"
echo "| --- | --- | --- | --- |"
for v in big bigp; do
	label=baseline
	[ $v = bigp ] && label=progressive
	cat "$S/$v.jpg" >/dev/null
	t0=$(now); jpegtran -copy all "$S/$v.jpg" >"$work/jt.jpg"; t1=$(now); t_jt=$(secs "$t0" "$t1")
	cold; t0=$(now); djpeg "$S/$v.jpg" >/dev/null; t1=$(now); t_dj=$(secs "$t0" "$t1")
	t0=$(now); cp "$S/$v.jpg" "$M/$v.jpg" && umount_wait "$M"; t1=$(now); t_w=$(secs "$t0" "$t1")
	kind=$([ "$(head -c 4 "$C/$v.jpg" | od -An -tx1 | tr -d ' \n')" = ffd8ffef ] && echo JPEG || echo opaque)
	cold; mount_pxc
	t0=$(now); cat "$M/$v.jpg" >/dev/null; t1=$(now); t_r=$(secs "$t0" "$t1")
	cmp -s "$S/$v.jpg" "$M/$v.jpg" && same=identical || same=DIFFERENT
	echo "| $label ($(awk -v b="$(stat -c %s "$S/$v.jpg")" 'BEGIN { printf "%.1f MiB", b / 1048576 }'), stored as $kind, $same): write (cp, unmount) vs jpegtran -copy all | ${t_w} s | ${t_jt} s | $(r "$t_w" "$t_jt") |"
	echo "| $label: read back cold vs jpegtran -copy all | ${t_r} s | ${t_jt} s | $(r "$t_r" "$t_jt") |"
	echo "| $label: read back cold vs djpeg | ${t_r} s | ${t_dj} s | $(r "$t_r" "$t_dj") |"
	read -r _ enc dec peer _ < <("$CODEC_TIME" "$S/$v.jpg" 3)
	echo "| $label: codec alone, encode / decode vs in-process transcode | ${enc} s / ${dec} s | ${peer} s | $(r "$enc" "$peer") / $(r "$dec" "$peer") |"
done

# ---------------------------------------------------------------- header reads
# Metadata readers over many large photos: exiftool and identify -ping through the mount
# (cold: freshly mounted, page cache dropped) against the same files on plain disk.
if command -v exiftool >/dev/null && command -v identify >/dev/null; then
	echo
	HR=${PXC_BENCH_HEADER_FILES:-40}
	echo "Header reads: $HR large JPEGs (2400x1600, camera-like Exif) ..."
	convert -seed 9 -size 2400x1600 plasma:fractal -quality 95 "$S/hr.jpg"
	[ -f "$CORPUS/jpeg/exiftool/Canon1DmkIII.jpg" ] && exiftool -q -overwrite_original \
		-TagsFromFile "$CORPUS/jpeg/exiftool/Canon1DmkIII.jpg" -all:all "$S/hr.jpg"
	exiftool -q -overwrite_original -Artist="Anna Example" -GPSLatitude=48.1 -GPSLatitudeRef=N \
		"$S/hr.jpg"
	mkdir -p "$S/hr" "$M/hr"
	for i in $(seq "$HR"); do cp "$S/hr.jpg" "$S/hr/h$i.jpg"; cp "$S/hr.jpg" "$M/hr/h$i.jpg"; done
	umount_wait "$M"
	echo "| $HR x $(awk -v b="$(stat -c %s "$S/hr.jpg")" 'BEGIN { printf "%.1f MiB", b / 1048576 }') JPEG | through the mount | plain files | ratio |"
	echo "| --- | --- | --- | --- |"
	for tool in "exiftool -q -q" "identify -ping"; do
		cold; mount_pxc
		t0=$(now); $tool "$M"/hr/*.jpg >/dev/null 2>&1; t1=$(now); t_m=$(secs "$t0" "$t1")
		umount_wait "$M"
		cold
		t0=$(now); $tool "$S"/hr/*.jpg >/dev/null 2>&1; t1=$(now); t_p=$(secs "$t0" "$t1")
		echo "| ${tool%% *} | ${t_m} s | ${t_p} s | $(r "$t_m" "$t_p") |"
	done
	mount_pxc
fi
