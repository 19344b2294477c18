#!/bin/bash
# Randomized operations (tests/tools/fsrandom.c) on the mount and, identically, on a
# shadow directory on the host filesystem; every result must match.  Half the
# operations, unmount/remount, full comparison, the other half, remount, comparison.
#
#   PXC_SEED=N            reproduce a run (the seed is printed)
#   PXC_FSRANDOM_OPS=N    operations in total (default 30000)
#   PXC_FSRANDOM_ARGS=..  extra fsrandom options, e.g. "-x l" to leave out links
#                         while narrowing down a failure
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
need_tool fsrandom

C=$T/cipher
M=$T/mnt
S=$T/shadow
mkdir -p "$C" "$M" "$S"
OPS=${PXC_FSRANDOM_OPS:-30000}
SEED=${PXC_SEED:-$(od -An -tu4 -N4 /dev/urandom | tr -d ' ')}
HALF=$((OPS / 2))
note "seed $SEED (reproduce with PXC_SEED=$SEED), $OPS operations"

run_fsrandom() { # DESC fsrandom-args...
    local desc=$1
    shift
    if tmo 400 "$PXC_TOOLS/fsrandom" "$@" >"$T/fsr.out" 2>"$T/fsr.err"; then
        pass "$desc"
        note "$(cat "$T/fsr.out")"
    else
        fail "$desc"
        diag "PXC_SEED=$SEED" "$(cat "$T/fsr.out" "$T/fsr.err")"
    fi
}

ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M" || { done_testing; }

run_fsrandom "$HALF random operations match the shadow directory (seed $SEED)" \
    -s "$SEED" -n "$HALF" -l "$T/ops1.log" ${PXC_FSRANDOM_ARGS:-} "$M" "$S"
ok "unmount mid-way" pxc_umount "$M"
ok "remount" pxc_mount "$C" "$M"
run_fsrandom "after remount every file matches the shadow" -V "$M" "$S"

run_fsrandom "$((OPS - HALF)) more operations on the remounted volume (seed $((SEED + 1)))" \
    -s "$((SEED + 1))" -n "$((OPS - HALF))" -l "$T/ops2.log" ${PXC_FSRANDOM_ARGS:-} "$M" "$S"
ok "unmount" pxc_umount "$M"
ok "remount" pxc_mount "$C" "$M"
run_fsrandom "after the second remount every file matches the shadow" -V "$M" "$S"

# Every name in the mount is one stored file at the same path (no leftovers such as
# .fuse_hidden* from files unlinked while open).
is "$(cd "$M" && find . | sort)" "$(cd "$S" && find . | sort)" "mount lists exactly the shadow's names"
is "$(cd "$C" && find . -path ./.pixcrypt -prune -o -print | sort)" "$(cd "$S" && find . | sort)" \
    "cipher dir holds exactly the shadow's names (plus .pixcrypt)"
bad=
for f in $(cd "$S" && find . -type f); do
    want=$(pxc_stored_size "$(fsize "$S/$f")")
    [ "$(fsize "$C/$f")" = "$want" ] || bad="$bad $f($(fsize "$C/$f")!=$want)"
done
is "$bad" "" "stored sizes follow the opaque format"
ok "unmount" pxc_umount "$M"

done_testing
