#!/bin/sh
# contrib/demo.sh start|stop -- a throwaway pixcrypt volume with sample images.
#
#   start  create demo/cipher (stored form) and mount it on demo/plain (plain
#          view), copy sample images in, show the two views side by side.
#          Already mounted: says so and shows it again.
#   stop   unmount demo/plain.  `rm -rf demo` deletes the demo volume.
#
# Run from anywhere; all paths are relative to the repository root and use
# ./pixcrypt, which `make demo` builds first.  The passphrase is stored in
# demo/passphrase in clear: this volume is for trying pixcrypt out only.
set -eu

cd "$(dirname "$0")/.."
root=$(pwd)
bin=$root/pixcrypt
demo=demo
cipher=$demo/cipher
plain=$demo/plain
passfile=$demo/passphrase
samples=$demo/samples
corpus=${PXC_CORPUS:-../shared/corpus}

usage() {
	echo "usage: sh contrib/demo.sh start|stop" >&2
	exit 2
}

# Is $root/$1 a mount point?  (/proc/mounts escapes blanks as \040.)
is_mounted() {
	awk -v p="$(printf '%s' "$root/$1" | sed 's/ /\\040/g')" \
		'$2 == p { found = 1 } END { exit !found }' /proc/mounts
}

hex16() {
	if command -v xxd >/dev/null 2>&1; then
		head -c 16 "$1" | xxd
	else
		head -c 16 "$1" | od -A x -t x1z
	fi
}

show() {
	echo
	echo "Plain view (read and write your files here):  $root/$plain"
	echo "Stored form (what a backup or cloud sync sees): $root/$cipher"
	echo
	echo "\$ ls -l $plain/generated"
	ls -l "$plain/generated"
	echo
	echo "\$ ls -l $cipher/generated"
	if [ -d "$cipher/generated" ]; then
		ls -l "$cipher/generated"
	else
		echo "(names are encrypted: no generated/ in the stored form)"
		ls -l "$cipher"
	fi
	echo
	f=generated/plasma.jpg
	if [ -f "$samples/plasma.jpg" ] && [ -f "$plain/$f" ]; then
		echo "\$ cmp $samples/plasma.jpg $plain/$f"
		if cmp "$samples/plasma.jpg" "$plain/$f"; then
			echo "identical: the mount returns exactly the bytes that were written"
		fi
		echo
		echo "First 16 bytes through the mount:"
		hex16 "$plain/$f"
		if [ -f "$cipher/$f" ]; then
			echo "First 16 bytes of the stored file $cipher/$f:"
			hex16 "$cipher/$f"
			if cmp -s "$plain/$f" "$cipher/$f"; then
				echo "warning: the stored file equals the plain file" >&2
			else
				echo "(the stored bytes differ: a JPEG whose APP15 segment holds the pixcrypt"
				echo " header and the sealed metadata, and whose pixels are noise)"
			fi
			if command -v identify >/dev/null 2>&1; then
				echo
				echo "\$ identify $plain/$f $cipher/$f"
				identify "$plain/$f" "$cipher/$f" 2>&1 | sed 's/^/  /'
				echo "Open both in an image viewer: the stored one is a valid JPEG of noise."
			fi
		fi
	fi
	echo
	echo "Unmount with:  make demo-stop   (or: fusermount3 -u $plain)"
	echo "Delete the demo volume with:  make demo-stop && rm -rf $demo"
}

# Writes the generated samples into $samples (on the host filesystem, so the
# copies in the mount can be compared with them).
make_samples() {
	mkdir -p "$samples"
	if [ ! -s "$samples/plasma.jpg" ]; then
		convert -size 800x600 plasma:fractal -quality 90 "$samples/plasma.jpg.tmp.jpg"
		mv "$samples/plasma.jpg.tmp.jpg" "$samples/plasma.jpg"
	fi
	if [ ! -s "$samples/gradient.png" ]; then
		convert -size 640x480 gradient:navy-orange "$samples/gradient.png.tmp.png"
		mv "$samples/gradient.png.tmp.png" "$samples/gradient.png"
	fi
	if [ ! -s "$samples/notes.txt" ]; then
		cat >"$samples/notes.txt" <<'EOF'
pixcrypt demo volume.
Files written here are stored encrypted in demo/cipher.
EOF
	fi
}

# Copies samples and corpus images into the mount (skipping what is already
# there) and compares every copy with its source.
populate() {
	list=$demo/.files
	: >"$list"
	mkdir -p "$plain/generated"
	for f in plasma.jpg gradient.png notes.txt; do
		printf '%s\t%s\n' "$samples/$f" "$plain/generated/$f" >>"$list"
	done
	if [ -d "$corpus" ]; then
		find "$corpus" -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) |
			LC_ALL=C sort | while IFS= read -r src; do
			printf '%s\t%s\n' "$src" "$plain/corpus/${src#"$corpus"/}" >>"$list"
		done
	else
		echo "($corpus not found: only generated samples are copied)"
	fi
	n=0 same=0 copied=0
	tab=$(printf '\t')
	while IFS="$tab" read -r src dst; do
		n=$((n + 1))
		if [ ! -e "$dst" ]; then
			mkdir -p "$(dirname "$dst")"
			cp "$src" "$dst"
			copied=$((copied + 1))
		fi
		if cmp -s "$src" "$dst"; then
			same=$((same + 1))
		else
			echo "MISMATCH: $dst differs from $src" >&2
		fi
	done <"$list"
	rm -f "$list"
	echo "Copied $copied file(s) in; $same of $n files read back identical through the mount."
	[ "$same" -eq "$n" ]
}

start() {
	sh contrib/deps.sh demo
	if [ ! -x "$bin" ]; then
		echo "demo.sh: $bin not found; run \`make demo\`, which builds it first" >&2
		exit 1
	fi
	echo "pixcrypt demo: a throwaway volume whose passphrase (\"demo passphrase\")"
	echo "is stored in clear in $passfile. Do not keep real data in it."

	if is_mounted "$plain"; then
		if ls "$plain" >/dev/null 2>&1; then
			echo
			echo "The demo volume is already mounted on $plain."
			show
			return 0
		fi
		echo "$plain is a dead mount (daemon gone); unmounting it first"
		fusermount3 -u "$plain" 2>/dev/null || fusermount3 -uz "$plain"
	fi

	mkdir -p "$cipher" "$plain"
	if [ ! -s "$passfile" ]; then
		(umask 077 && printf 'demo passphrase\n' >"$passfile")
	fi
	if [ ! -e "$cipher/.pixcrypt/keystore.db" ]; then
		echo
		echo "\$ pixcrypt init --kdf interactive --passfile $passfile $cipher"
		"$bin" init --kdf interactive --passfile "$passfile" "$cipher" </dev/null
	fi
	echo "\$ pixcrypt mount --passfile $passfile $cipher $plain"
	"$bin" mount --passfile "$passfile" "$cipher" "$plain" </dev/null
	if ! is_mounted "$plain"; then
		echo "demo.sh: pixcrypt mount returned but $plain is not mounted" >&2
		exit 1
	fi

	make_samples
	populate
	show
}

stop() {
	if is_mounted "$plain"; then
		fusermount3 -u "$plain"
		echo "Unmounted $plain. The stored files stay in $cipher;"
		echo "\`make demo\` mounts them again, \`rm -rf $demo\` deletes the demo volume."
	else
		echo "The demo volume is not mounted."
	fi
}

[ $# -eq 1 ] || usage
case "$1" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
