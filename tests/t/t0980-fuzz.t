#!/bin/bash
# The libFuzzer targets of tests/fuzz/ (PNG and JPEG codecs, stored-file parsers, opaque
# block decoder, deflate recipes), built by `make check` with clang under ASan + UBSan:
# each runs its generated and corpus seeds, every regression input in
# tests/fuzz/regress/TARGET/, then fuzzes for PXC_FUZZ_SECONDS (default 4) seconds.
# `make fuzz` runs the same for longer.
. "$(dirname "$0")/../lib.sh"

FUZZ_BUILD=${PXC_FUZZ_BUILD:-$PXC_ROOT/build/fuzz}
: "${PXC_FUZZ_SECONDS:=4}"

for src in "$PXC_ROOT"/tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    t=${t#fuzz_}
    if [ ! -x "$FUZZ_BUILD/fuzz_$t" ]; then
        fail "fuzz $t: $FUZZ_BUILD/fuzz_$t not built (make fuzz-build; needs clang)"
        continue
    fi
    # A fresh corpus: the run stays as short as its seeds, whatever `make fuzz` grew.
    out=$(FUZZ_BUILD=$FUZZ_BUILD FUZZ_SECONDS=$PXC_FUZZ_SECONDS FUZZ_CORPUS=$T/corpus \
        PXC_CORPUS=$PXC_CORPUS sh "$PXC_ROOT/tests/fuzz/run.sh" "$t" 2>&1)
    if [ $? -eq 0 ]; then
        pass "$(printf '%s\n' "$out" | tail -n 1)"
    else
        fail "fuzz $t"
        printf '%s\n' "$out" | diag_stdin
    fi
done
done_testing
