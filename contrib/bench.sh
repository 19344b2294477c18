#!/bin/bash
# contrib/bench.sh PIXCRYPT_BINARY -- pixcrypt against gocryptfs, same run,
# same machine, same workloads, both cipher dirs on the same filesystem.
#
# Workloads (each runs on pixcrypt, then on gocryptfs):
#   write      dd 1 GiB of zeros into one file, conv=fsync
#   read       read it back after a remount and dropping the page cache
#   corpus     cp -a ../shared/corpus in 10 times (to be long enough to time);
#              read every file back after a remount
#   tree       cp -a a generated tree of 10,000 files of 1-8 KiB in; read it
#              back after a remount
#   ls -lR     of that tree after a remount (cold), then again (warm)
#   create     $BENCH_FILES empty files named like photos (100 a directory), one
#              process; then delete them (rm -r).  Both sides encrypt names.
#   jpeg ttfb  time to the first byte of a 12-megapixel JPEG after a remount
#              (mean over 5 copies, each cold)
#   memory     the daemon's peak resident memory (VmHWM, highest over all the
#              mounts of the run) and its resident memory at the end
#
# Environment:
#   BENCH_SIZE_MB  size of the streaming file in MiB (default 1024)
#   BENCH_FILES    files in the generated tree (default 10000)
#   BENCH_DIR      where the temporary cipher dirs go (default /var/tmp)
#   BENCH_KEEP=1   keep the temporary directory
#   PXC_CORPUS     the image corpus (default ../shared/corpus)
#   BENCH_CORPUS_COPIES  how many times the corpus is copied in (default 10)
#
# Run as root for dropping the page cache (skipped, with a note, otherwise).
# The Makefile runs this with sh: switch to bash first.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck disable=SC2317  # functions are called through run/both and trap
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: bash contrib/bench.sh PIXCRYPT_BINARY" >&2
	exit 2
fi
PXC=$1
case "$PXC" in /*) ;; *) PXC=$(pwd)/$PXC ;; esac
here=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MB=${BENCH_SIZE_MB:-1024}
NFILES=${BENCH_FILES:-10000}
CORPUS=${PXC_CORPUS:-$here/../shared/corpus}
COPIES=${BENCH_CORPUS_COPIES:-10}
NJPEG=5
base=${BENCH_DIR:-/var/tmp}

for c in gocryptfs fusermount3 pgrep awk dd; do
	command -v "$c" >/dev/null 2>&1 || {
		echo "bench.sh: $c not found (sh contrib/deps.sh bench installs it)" >&2
		exit 1
	}
done

# Enough room for the streaming file twice plus the trees, with a margin.
need_kb=$(((SIZE_MB * 2 + NFILES * 12 * 3 / 1024 + 256) * 1024))
avail_kb=$(df -Pk "$base" | awk 'NR == 2 { print $4 }')
if [ "$avail_kb" -lt "$need_kb" ]; then
	echo "bench.sh: $base has $((avail_kb / 1024)) MiB free, needs about $((need_kb / 1024)) MiB;" \
		"set BENCH_SIZE_MB/BENCH_FILES lower or BENCH_DIR elsewhere" >&2
	exit 1
fi

work=$(mktemp -d "$base/pixcrypt-bench.XXXXXX")
pass=$work/passphrase
printf 'bench passphrase\n' >"$pass"
chmod 600 "$pass"

FS=(pixcrypt gocryptfs)
declare -A up=() hwm=() pid=() ok=()

mnt() { echo "$work/$1.mnt"; }
cdir() { echo "$work/$1.cipher"; }

is_mounted() {
	awk -v p="$1" '$2 == p { f = 1 } END { exit !f }' /proc/mounts
}

daemon_pid() { # the process serving mount point $1 (the largest, if several match)
	local p best="" bestrss=-1 rss
	for p in $(pgrep -f -- "$1" || true); do
		[ "$p" = "$$" ] && continue
		rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
		[ -n "$rss" ] || continue
		if [ "$rss" -gt "$bestrss" ]; then
			best=$p bestrss=$rss
		fi
	done
	echo "$best"
}

status_kb() { # status_kb PID FIELD
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

fs_init() {
	local d
	d=$(cdir "$1")
	mkdir -p "$d" "$(mnt "$1")"
	case $1 in
	pixcrypt) "$PXC" init --kdf interactive --passfile "$pass" "$d" </dev/null ;;
	gocryptfs) gocryptfs -q -init -extpass "cat $pass" -scryptn 10 "$d" </dev/null ;;
	esac >>"$work/$1.log" 2>&1
}

fs_mount() {
	local m
	m=$(mnt "$1")
	case $1 in
	pixcrypt) "$PXC" mount --passfile "$pass" "$(cdir "$1")" "$m" </dev/null ;;
	gocryptfs) gocryptfs -q -nosyslog -extpass "cat $pass" "$(cdir "$1")" "$m" </dev/null ;;
	esac >>"$work/$1.log" 2>&1 || return 1
	is_mounted "$m" || return 1
	up[$1]=1
	pid[$1]=$(daemon_pid "$m")
}

fs_umount() {
	local m p h
	m=$(mnt "$1")
	p=${pid[$1]:-}
	if [ -n "$p" ]; then
		h=$(status_kb "$p" VmHWM)
		if [ -n "$h" ] && [ "$h" -gt "${hwm[$1]:-0}" ]; then hwm[$1]=$h; fi
	fi
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		is_mounted "$m" || break
		fusermount3 -u "$m" 2>/dev/null && break
		sleep 0.5
	done
	if is_mounted "$m"; then
		echo "bench.sh: $m busy, unmounting lazily" >&2
		fusermount3 -uz "$m" || true
	fi
	up[$1]=
	# Wait for the daemon to finish (it may still be converting images written just
	# before), so the next mount finds the volume free.
	if [ -n "$p" ]; then
		for _ in $(seq 600); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
	fi
	pid[$1]=
}

drop_caches() {
	sync
	if [ -w /proc/sys/vm/drop_caches ]; then
		echo 3 >/proc/sys/vm/drop_caches
	fi
}

remount() { # unmount and remount every working side, with a cold page cache
	local f
	for f in "${FS[@]}"; do [ -n "${up[$f]:-}" ] && fs_umount "$f"; done
	drop_caches
	for f in "${FS[@]}"; do
		if [ "${ok[$f]}" = 1 ] && ! fs_mount "$f"; then
			echo "bench.sh: $f: remount failed (log: $work/$f.log)" >&2
			ok[$f]=0
		fi
	done
}

cleanup() {
	local f
	set +e
	for f in "${FS[@]}"; do
		is_mounted "$(mnt "$f")" && fs_umount "$f"
	done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "kept $work"
	elif ! grep -q " $work/" /proc/mounts; then
		rm -rf "$work"
	else
		echo "bench.sh: something under $work is still mounted; not removing it" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }

# res[fs,workload] = seconds, or FAIL; verify[fs] collects content mismatches.
declare -A res=() note=()

# run WORKLOAD FS COMMAND...: time COMMAND on one side.
run() {
	local w=$1 f=$2 t0 t1
	shift 2
	if [ "${ok[$f]}" != 1 ]; then
		res[$f,$w]=NA
		return 0
	fi
	t0=$(now)
	if "$@" >>"$work/$f.out" 2>&1; then
		t1=$(now)
		res[$f,$w]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	else
		res[$f,$w]=FAIL
		echo "bench.sh: $f: workload '$w' failed: $(tail -n 3 "$work/$f.out" | tr '\n' ' ')" >&2
	fi
}

both() { # both WORKLOAD FUNCTION [ARGS]: FUNCTION MOUNTPOINT ARGS on each side
	local w=$1 fn=$2 f
	shift 2
	for f in "${FS[@]}"; do run "$w" "$f" "$fn" "$(mnt "$f")" "$@"; done
}

check_same() { # check_same WHAT SRC: compare SRC with its copy on each side (not timed)
	local f
	for f in "${FS[@]}"; do
		[ "${ok[$f]}" = 1 ] || continue
		if ! diff -r "$2" "$(mnt "$f")/$1" >"$work/$f.diff" 2>&1; then
			note[$f]="${note[$f]:-}$1 read back differs ($(wc -l <"$work/$f.diff") diff lines); "
			echo "bench.sh: $f: $1 read back differs from the source:" >&2
			head -n 5 "$work/$f.diff" >&2
		fi
	done
}

warm() { find "$1" -type f -exec cat {} + >/dev/null; } # source into the host page cache

w_write() { dd if=/dev/zero of="$1/big" bs=128k count=$((SIZE_MB * 8)) conv=fsync status=none; }
w_read() { dd if="$1/big" of=/dev/null bs=128k status=none; }
w_copy_in() { cp -a "$2" "$1/$3"; }
w_read_tree() { find "$1/$2" -type f -exec cat {} + >/dev/null; }
w_ls() { ls -lR "$1/tree" >/dev/null; }
w_create() {
	perl -e '
		my ($root, $n) = @ARGV;
		mkdir $root or die "$root: $!";
		for my $i (0 .. $n - 1) {
			my $d = sprintf("%s/d%03d", $root, int($i / 100));
			mkdir $d unless -d $d;
			open(my $o, ">", sprintf("%s/IMG_%05d.jpg", $d, $i)) or die "$d: $!";
			close $o or die;
		}' "$1/new" "$NFILES"
}
w_delete() { rm -r "$1/new"; }
w_ttfb() { local i; for i in $(seq "$NJPEG"); do head -c 1 "$1/big$i.jpg" >/dev/null; done; }
w_copy_corpus() { local i; mkdir "$1/corpus" && for i in $(seq "$COPIES"); do cp -a "$CORPUS" "$1/corpus/$i"; done; }

gen_tree() { # $1: directory, $2: number of files; 100 files a directory, 1-8 KiB each
	mkdir -p "$1"
	perl -e '
		my ($root, $n) = @ARGV;
		open(my $r, "<", "/dev/urandom") or die; binmode $r;
		read($r, my $pool, 65536) == 65536 or die; close $r;
		srand(1);
		for my $i (0 .. $n - 1) {
			my $d = sprintf("%s/d%03d", $root, int($i / 100));
			mkdir $d unless -d $d;
			my $size = 1024 + int(rand(7 * 1024 + 1));
			open(my $o, ">", sprintf("%s/f%05d.dat", $d, $i)) or die "$d: $!";
			binmode $o; print $o substr($pool, int(rand(65536 - $size)), $size); close $o;
		}' "$1" "$2"
}

# ---------------------------------------------------------------- setup
echo "pixcrypt benchmark: pixcrypt ($PXC) vs gocryptfs $(gocryptfs -version 2>/dev/null | awk '{ sub(/;$/, "", $2); print $2; exit }')"
echo "machine: $(nproc) cores, $(awk '/^model name/ { $1 = $2 = $3 = ""; sub(/^ +/, ""); print; exit }' /proc/cpuinfo)," \
	"$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
echo "cipher dirs: $work ($(df -PT "$work" | awk 'NR == 2 { print $2 }'))"
[ -w /proc/sys/vm/drop_caches ] || echo "note: /proc/sys/vm/drop_caches not writable; cold reads rely on the remount only"

for f in "${FS[@]}"; do
	ok[$f]=1
	if ! fs_init "$f"; then
		echo "bench.sh: $f init failed; skipping it. Log ($work/$f.log):" >&2
		tail -n 5 "$work/$f.log" >&2 || true
		ok[$f]=0
	elif ! fs_mount "$f"; then
		echo "bench.sh: $f mount failed; skipping it. Log ($work/$f.log):" >&2
		tail -n 5 "$work/$f.log" >&2 || true
		ok[$f]=0
	fi
done
if [ "${ok[pixcrypt]}" != 1 ] && [ "${ok[gocryptfs]}" != 1 ]; then
	echo "bench.sh: neither filesystem could be mounted" >&2
	exit 1
fi

echo "generating a tree of $NFILES files ..."
gen_tree "$work/src-tree" "$NFILES"
have_corpus=0
if [ -d "$CORPUS" ]; then
	have_corpus=1
	corpus_files=$(find "$CORPUS" -type f | wc -l)
	corpus_bytes=$(find "$CORPUS" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
else
	echo "note: $CORPUS not found; skipping the corpus workload"
fi
have_jpeg=0
if [ -x /usr/bin/convert ]; then
	echo "generating a 4000x3000 JPEG ..."
	/usr/bin/convert -size 4000x3000 plasma:fractal -quality 92 "$work/big.jpg" && have_jpeg=1
else
	echo "note: ImageMagick not installed; skipping the JPEG time-to-first-byte workload"
fi
tree_bytes=$(find "$work/src-tree" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')

# ---------------------------------------------------------------- workloads
echo "running: streaming write of $SIZE_MB MiB ..."
both write w_write
remount
echo "running: streaming read ..."
both read w_read
for f in "${FS[@]}"; do
	if [ "${ok[$f]}" = 1 ] && [ "${res[$f,write]}" != FAIL ]; then
		sz=$(stat -c %s "$(mnt "$f")/big" 2>/dev/null || echo 0)
		[ "$sz" -eq $((SIZE_MB * 1048576)) ] || note[$f]="${note[$f]:-}big file has size $sz; "
		rm -f "$(mnt "$f")/big"
	fi
done

if [ $have_corpus = 1 ]; then
	echo "running: corpus copy in and read back ..."
	warm "$CORPUS"
	both corpus-in w_copy_corpus
	remount
	both corpus-read w_read_tree corpus
	for i in $(seq "$COPIES"); do check_same "corpus/$i" "$CORPUS"; done
fi

echo "running: $NFILES-file tree copy in, read back, ls -lR ..."
warm "$work/src-tree"
both tree-in w_copy_in "$work/src-tree" tree
remount
both tree-read w_read_tree tree
check_same tree "$work/src-tree"
remount
both ls-cold w_ls
both ls-warm w_ls
echo "running: create and delete $NFILES empty files ..."
remount # a fresh kernel inode cache: the tree's entries are not held by either daemon
both create w_create
both delete w_delete

if [ $have_jpeg = 1 ]; then
	echo "running: JPEG time to first byte ..."
	for f in "${FS[@]}"; do
		[ "${ok[$f]}" = 1 ] || continue
		for i in $(seq $NJPEG); do cp "$work/big.jpg" "$(mnt "$f")/big$i.jpg"; done
	done
	remount
	both jpeg-ttfb w_ttfb
	for f in "${FS[@]}"; do # mean per file
		case ${res[$f,jpeg-ttfb]} in NA | FAIL) ;; *)
			res[$f,jpeg-ttfb]=$(awk -v t="${res[$f,jpeg-ttfb]}" -v n=$NJPEG 'BEGIN { printf "%.4f", t / n }') ;;
		esac
	done
fi

declare -A rss_end=()
for f in "${FS[@]}"; do
	if [ "${ok[$f]}" != 1 ] || [ -z "${pid[$f]:-}" ]; then continue; fi
	rss_end[$f]=$(status_kb "${pid[$f]}" VmRSS)
	h=$(status_kb "${pid[$f]}" VmHWM)
	if [ -n "$h" ] && [ "$h" -gt "${hwm[$f]:-0}" ]; then hwm[$f]=$h; fi
done

# ---------------------------------------------------------------- report
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

cell() { # cell FS WORKLOAD [BYTES [FILES]]
	local t=${res[$1,$2]:-NA}
	case $t in
	NA) echo "n/a" ;;
	FAIL) echo "FAILED" ;;
	*)
		if [ -n "${3:-}" ]; then
			awk -v t="$t" -v b="$3" -v n="${4:-}" 'BEGIN {
				s = sprintf("%.2f s, %.1f MiB/s", t, b / 1048576 / (t > 0 ? t : 1e-9))
				if (n != "") s = s sprintf(", %.0f files/s", n / (t > 0 ? t : 1e-9))
				print s }'
		else
			awk -v t="$t" 'BEGIN { if (t < 1) printf "%.1f ms\n", t * 1000; else printf "%.2f s\n", t }'
		fi
		;;
	esac
}

ratio() { # pixcrypt speed / gocryptfs speed = gocryptfs time / pixcrypt time
	local p=${res[pixcrypt,$1]:-NA} g=${res[gocryptfs,$1]:-NA}
	case "$p$g" in *NA* | *FAIL*) echo "-"; return ;; esac
	awk -v p="$p" -v g="$g" 'BEGIN { if (p <= 0) print "-"; else printf "%.2f\n", g / p }'
}

rows=()
row() { rows+=("$1|$2|$3|$4"); }
wl() { # wl WORKLOAD LABEL [BYTES [FILES]]
	row "$2" "$(cell pixcrypt "$1" "${3:-}" "${4:-}")" "$(cell gocryptfs "$1" "${3:-}" "${4:-}")" "$(ratio "$1")"
}

size_b=$((SIZE_MB * 1048576))
wl write "write $SIZE_MB MiB (dd bs=128k, fsync)" $size_b
wl read "read $SIZE_MB MiB (cold)" $size_b
if [ $have_corpus = 1 ]; then
	wl corpus-in "corpus x$COPIES: cp -a in ($((corpus_files * COPIES)) files, $(mib $((corpus_bytes * COPIES))) MiB)" \
		$((corpus_bytes * COPIES)) $((corpus_files * COPIES))
	wl corpus-read "corpus x$COPIES: read back (cold)" $((corpus_bytes * COPIES)) $((corpus_files * COPIES))
fi
wl tree-in "tree: cp -a in ($NFILES files, $(mib "$tree_bytes") MiB)" "$tree_bytes" "$NFILES"
wl tree-read "tree: read back (cold)" "$tree_bytes" "$NFILES"
wl ls-cold "tree: ls -lR (cold)"
wl ls-warm "tree: ls -lR (warm)"
wl create "create $NFILES empty files (names encrypted)" "" "$NFILES"
wl delete "delete them (rm -r)" "" "$NFILES"
[ $have_jpeg = 1 ] && wl jpeg-ttfb "4000x3000 JPEG: first byte (cold, mean of $NJPEG)"

memcell() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN { printf "%.1f MiB\n", k / 1024 }' || echo "n/a"; }
memratio() { # gocryptfs / pixcrypt: > 1 means pixcrypt uses less
	if [ -n "${1:-}" ] && [ -n "${2:-}" ] && [ "$1" -gt 0 ]; then
		awk -v p="$1" -v g="$2" 'BEGIN { printf "%.2f\n", g / p }'
	else echo "-"; fi
}
row "daemon peak memory (VmHWM)" "$(memcell "${hwm[pixcrypt]:-}")" "$(memcell "${hwm[gocryptfs]:-}")" \
	"$(memratio "${hwm[pixcrypt]:-}" "${hwm[gocryptfs]:-}")"
row "daemon memory at end (VmRSS)" "$(memcell "${rss_end[pixcrypt]:-}")" "$(memcell "${rss_end[gocryptfs]:-}")" \
	"$(memratio "${rss_end[pixcrypt]:-}" "${rss_end[gocryptfs]:-}")"

echo
echo "Absolute times are noise (shared machine, one run); the ratios are the result."
echo "ratio = pixcrypt speed / gocryptfs speed (> 1: pixcrypt faster);"
echo "for memory, gocryptfs / pixcrypt (> 1: pixcrypt uses less)."
echo
w1=8 w2=8 w3=9
for r in "${rows[@]}"; do
	IFS='|' read -r a b c _ <<<"$r"
	[ ${#a} -gt "$w1" ] && w1=${#a}
	[ ${#b} -gt "$w2" ] && w2=${#b}
	[ ${#c} -gt "$w3" ] && w3=${#c}
done
printf "| %-${w1}s | %-${w2}s | %-${w3}s | %s |\n" workload pixcrypt gocryptfs ratio
printf "| %s | %s | %s | %s |\n" "$(printf '%*s' "$w1" '' | tr ' ' -)" "$(printf '%*s' "$w2" '' | tr ' ' -)" \
	"$(printf '%*s' "$w3" '' | tr ' ' -)" -----
for r in "${rows[@]}"; do
	IFS='|' read -r a b c d <<<"$r"
	printf "| %-${w1}s | %-${w2}s | %-${w3}s | %s |\n" "$a" "$b" "$c" "$d"
done
status=0
for f in "${FS[@]}"; do
	for w in write read corpus-in corpus-read tree-in tree-read ls-cold ls-warm create delete jpeg-ttfb; do
		if [ "${res[$f,$w]:-}" = FAIL ]; then note[$f]="${note[$f]:-}$w failed; "; fi
	done
	if [ -n "${note[$f]:-}" ]; then echo "PROBLEM: $f: ${note[$f]}"; status=1; fi
	if [ "${ok[$f]}" != 1 ]; then
		echo "PROBLEM: $f could not be initialised or mounted (see messages above)"
		status=1
	fi
done
exit $status
