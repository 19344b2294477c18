#!/bin/sh
# tests/fuzz/run.sh [TARGET...] -- run the libFuzzer targets one after the other.
#
# For each target (default: every $FUZZ_BUILD/fuzz_*; TARGET is a name like `png`):
#   1. writes its generated seeds (from the image corpus and its own) into
#      $FUZZ_BUILD/seeds/TARGET, runs them, then fuzzes for $FUZZ_SECONDS seconds
#      (0: seeds only), growing $FUZZ_CORPUS/TARGET (default $FUZZ_BUILD/corpus);
#      a crash input goes to $FUZZ_BUILD/crashes/TARGET/;
#   2. runs every regression input in tests/fuzz/regress/TARGET/.
# Prints one line per target (runs, exec/s, coverage) and exits 1 if any failed.
#
# Environment: FUZZ_BUILD (default build/fuzz), FUZZ_SECONDS (default 60),
# FUZZ_CORPUS, PXC_CORPUS (the image corpus; default ../shared/corpus).
set -u

here=$(cd "$(dirname "$0")" && pwd)
: "${FUZZ_BUILD:=build/fuzz}"
: "${FUZZ_SECONDS:=60}"
: "${FUZZ_CORPUS:=$FUZZ_BUILD/corpus}"
: "${PXC_CORPUS:=$here/../../../shared/corpus}"
export PXC_CORPUS

# Largest input per target: enough for the corpus images that matter, small enough
# that every execution stays short.
max_len() {
	case $1 in
	opaque) echo 20000 ;;
	*) echo 65536 ;;
	esac
}

if [ $# -eq 0 ]; then
	set --
	for bin in "$FUZZ_BUILD"/fuzz_*; do
		case $bin in *.d | *.o) continue ;; esac
		[ -x "$bin" ] && set -- "$@" "${bin##*/fuzz_}"
	done
fi
[ $# -gt 0 ] || {
	echo "run.sh: no fuzz targets in $FUZZ_BUILD (make fuzz-build)" >&2
	exit 1
}

failed=0
for t in "$@"; do
	bin=$FUZZ_BUILD/fuzz_$t
	seeds=$FUZZ_BUILD/seeds/$t
	corpus=$FUZZ_CORPUS/$t
	crashes=$FUZZ_BUILD/crashes/$t
	log=$FUZZ_BUILD/fuzz_$t.log
	if [ ! -x "$bin" ]; then
		echo "fuzz $t: FAILED, no $bin"
		failed=1
		continue
	fi
	rm -rf "$seeds"
	mkdir -p "$seeds" "$corpus" "$crashes"
	opts="-max_len=$(max_len "$t") -timeout=20 -rss_limit_mb=2048 -artifact_prefix=$crashes/"

	# The target writes its seeds while it starts, before it reads them: one run
	# checks every seed, then fuzzes (a seed that fails fails the run).
	if [ "$FUZZ_SECONDS" -gt 0 ]; then
		time_opts="-max_total_time=$FUZZ_SECONDS"
	else
		time_opts="-runs=0"
	fi
	# shellcheck disable=SC2086
	if ! PXC_FUZZ_SEEDS=$seeds "$bin" $opts $time_opts -print_final_stats=1 \
		"$corpus" "$seeds" >"$log" 2>&1; then
		echo "fuzz $t: FAILED; crash input in $crashes/, see $log"
		grep -m1 -A12 'ERROR\|check failed\|runtime error' "$log" | sed 's/^/    /'
		failed=1
		continue
	fi
	nseeds=$(ls "$seeds" | wc -l)

	# Regression inputs: each must pass as it is.
	regress=$(ls "$here/regress/$t" 2>/dev/null | sed "s|^|$here/regress/$t/|")
	nreg=$(echo "$regress" | grep -c .)
	# shellcheck disable=SC2086
	if [ -n "$regress" ] && ! "$bin" $opts $regress >"$log.regress" 2>&1; then
		echo "fuzz $t: FAILED on a regression input; see $log.regress"
		grep -m1 -B2 -A12 'ERROR\|check failed\|runtime error' "$log.regress" | sed 's/^/    /'
		failed=1
		continue
	fi

	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	echo "fuzz $t: ok, $nseeds seeds, $nreg regression inputs, ${runs:-0} runs" \
		"in ${FUZZ_SECONDS}s (${speed:-0}/s), ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l)"
done
exit $failed
