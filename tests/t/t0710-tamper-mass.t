#!/bin/bash
# Tamper evidence over a few hundred stored files of every storage kind (PNG, JPEG,
# opaque; and PNGs of a chaos-profile volume): each stored file gets one change (a
# flipped byte anywhere, a cut at any length, a range of another stored file of the same
# kind written over it at the same offset, the whole file replaced by the stored file of
# the same content from another volume, or by another whole stored file of this volume).
# Every read of a changed file must fail with EIO and the log must name it, once;
# untouched files still read back identical.  fsck reports every changed file.
#
# PXC_TAMPER_SEED picks the random choices (printed, to replay a failure).
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
[ -d "$PXC_CORPUS/png/pngsuite" ] && [ -d "$PXC_CORPUS/jpeg/exiftool" ] ||
    skip_all "no image corpus at $PXC_CORPUS"

SEED=${PXC_TAMPER_SEED:-$(($(date +%s) % 32768))}
RANDOM=$SEED
note "seed $SEED (PXC_TAMPER_SEED=$SEED replays these choices)"

A=$T/a       # the volume under test
F=$T/foreign # a second volume holding the same plaintext (the chaos profile)
M=$T/mnt
P=$T/plain
LOG=$T/daemon.log
mkdir -p "$A" "$F" "$M" "$P"

# ---- the plaintext set: corpus PNGs and JPEGs, random files of many sizes
cp "$PXC_CORPUS"/png/pngsuite/*.png "$PXC_CORPUS"/png/testpngs/*.png "$P/" 2>/dev/null
cp "$PXC_CORPUS"/jpeg/exiftool/*.jpg "$PXC_CORPUS"/jpeg/libjpeg-turbo/*.jpg "$P/" 2>/dev/null
# JPEG variants: progressive, optimised, restarts, gray, every chroma subsampling
J=$PXC_CORPUS/jpeg/libjpeg-turbo/testorig.jpg
if command -v jpegtran >/dev/null && command -v convert >/dev/null; then
    jpegtran -progressive "$J" >"$P/v-prog.jpg"
    jpegtran -optimize "$J" >"$P/v-opt.jpg"
    jpegtran -restart 2 "$J" >"$P/v-rst.jpg"
    jpegtran -grayscale "$J" >"$P/v-gray.jpg"
    for q in 30 60 90; do
        for s in 1x1 2x1 1x2 2x2; do
            convert "$J" -resize 50% -quality $q -sampling-factor $s "$P/v-q$q-$s.jpg"
        done
    done
fi
sizes="0 1 15 16 17 4095 4096 4097 8192 12289 40000"
for i in $(seq 1 90); do
    if [ "$i" -le 11 ]; then
        set -- $sizes
        shift $((i - 1))
        s=$1
    else
        s=$(((RANDOM * 32768 + RANDOM) % 30000))
    fi
    random_file "$P/blob$i.bin" "$s"
done
nfiles=$(find "$P" -type f | wc -l)
note "$nfiles plaintext files"

ok "init the volume (plaintext names: the test reads stored files by name)" pxc_init "$A" --plaintext-names
ok "init a second volume (chaos profile) with the same content" pxc_init "$F" --profile chaos --plaintext-names
ok "mount" pxc_mount "$A" "$M" || done_testing
ok "copy the set in" cp -r "$P/." "$M/"
ok "unmount" pxc_umount "$M"
ok "mount the second volume" pxc_mount "$F" "$M" --allow-weak-profile || done_testing
ok "copy the set into it" cp -r "$P/." "$M/"
ok "unmount it" pxc_umount "$M"

# Storage kind of a stored file, from its first bytes.
kind_of() {
    case $(head -c 8 "$1" | od -An -tx1 | tr -d ' \n') in
    706978637279707[0-9]*) echo opaque ;;
    89504e470d0a1a0a) echo png ;;
    ffd8*) echo jpeg ;;
    *) echo other ;;
    esac
}

declare -A KIND SIZE
list=()
for f in "$P"/*; do
    b=${f##*/}
    KIND[$b]=$(kind_of "$A/$b")
    SIZE[$b]=$(fsize "$A/$b")
    list+=("$b")
done
for k in png jpeg opaque other; do
    n=0
    for b in "${list[@]}"; do [ "${KIND[$b]}" = $k ] && n=$((n + 1)); done
    note "stored as $k: $n"
done
npng=0 njpeg=0 nopaque=0
for b in "${list[@]}"; do
    case ${KIND[$b]} in png) npng=$((npng + 1)) ;; jpeg) njpeg=$((njpeg + 1)) ;; opaque) nopaque=$((nopaque + 1)) ;; esac
done
ok "at least 100 stored PNGs, 50 JPEGs and 80 opaque files" \
    test "$npng" -ge 100 -a "$njpeg" -ge 50 -a "$nopaque" -ge 80

cp -a "$A" "$T/a.orig"
samesize=0

# another stored file of kind k, other than b, preferably at least `min` bytes
donor() {
    local b=$1 k=$2 min=$3 tries=0 d
    while [ $tries -lt 200 ]; do
        d=${list[$((RANDOM % ${#list[@]}))]}
        tries=$((tries + 1))
        [ "$d" != "$b" ] && [ "${KIND[$d]}" = "$k" ] || continue
        [ "${SIZE[$d]}" -ge "$min" ] || [ $tries -gt 100 ] || continue
        echo "$d"
        return 0
    done
    return 1
}

rnd() { echo $(((RANDOM * 32768 + RANDOM) % $1)); }

# One change per file; about one in twelve stays untouched as a control.
declare -A METHOD SWAPFROM
methods="flip trunc splice foreign swap"
for b in "${list[@]}"; do
    if [ $((RANDOM % 12)) -eq 0 ]; then
        METHOD[$b]=control
        continue
    fi
    case $((RANDOM % 20)) in
    0 | 1 | 2 | 3 | 4 | 5 | 6) m=flip ;;
    7 | 8 | 9 | 10 | 11) m=trunc ;;
    12 | 13 | 14 | 15) m=splice ;;
    16 | 17) m=foreign ;;
    *) m=swap ;;
    esac
    METHOD[$b]=$m
done
for b in "${list[@]}"; do
    s=${SIZE[$b]}
    k=${KIND[$b]}
    m=${METHOD[$b]}
    [ "$m" = control ] && continue
    f=$A/$b
    case $m in
    flip) flip_byte "$f" "$(rnd "$s")" ;;
    trunc) truncate -s "$(rnd "$s")" "$f" ;;
    splice)
        # a range of another stored file of the same kind, at the same offset: a block
        # (or any bytes) moved in from elsewhere.  Retried until it changes something.
        d=$(donor "$b" "$k" "$s") || d=
        done_=0
        for try in 1 2 3 4 5 6 7 8; do
            [ -n "$d" ] || break
            lim=$s
            [ "${SIZE[$d]}" -lt "$lim" ] && lim=${SIZE[$d]}
            [ "$lim" -gt 1 ] || break
            len=$((1 + $(rnd 4136)))
            [ "$len" -gt "$lim" ] && len=$lim
            off=$(rnd $((lim - len + 1)))
            dd if="$A/$d" of="$f" bs=1 skip="$off" seek="$off" count="$len" conv=notrunc status=none
            if ! cmp -s "$f" "$T/a.orig/$b"; then
                done_=1
                break
            fi
        done
        if [ $done_ = 0 ]; then
            m=flip
            flip_byte "$f" "$(rnd "$s")"
        fi
        ;;
    foreign) cp "$F/$b" "$f" ;;
    swap)
        # the whole stored bytes of another file of this volume of the same kind: of
        # the same size if there is one, an untouched one if there is one
        d=
        for o in "${list[@]}"; do
            [ "$o" != "$b" ] && [ "${KIND[$o]}" = "$k" ] || continue
            [ "${SIZE[$o]}" = "$s" ] && [ "${METHOD[$o]}" = control ] && d=$o && break
        done
        for o in "${list[@]}"; do
            [ -z "$d" ] && [ "$o" != "$b" ] && [ "${KIND[$o]}" = "$k" ] || continue
            [ "${SIZE[$o]}" = "$s" ] && d=$o && break
        done
        for o in "${list[@]}"; do
            [ -z "$d" ] && [ "$o" != "$b" ] && [ "${KIND[$o]}" = "$k" ] || continue
            [ "${METHOD[$o]}" = control ] && d=$o && break
        done
        [ -n "$d" ] || d=$(donor "$b" "$k" 0)
        [ "${SIZE[$d]}" = "$s" ] && samesize=$((samesize + 1))
        SWAPFROM[$b]=$d
        cp "$T/a.orig/$d" "$f"
        ;;
    esac
    METHOD[$b]=$m
done

unchanged=0
for b in "${list[@]}"; do
    [ "${METHOD[$b]}" = control ] && continue
    cmp -s "$A/$b" "$T/a.orig/$b" && {
        unchanged=$((unchanged + 1))
        diag "$b: the change left the stored file as it was"
    }
done
is "$unchanged" 0 "every changed stored file differs from what was stored"

ok "mount in the foreground, logging to a file" pxc_mount_fg "$A" "$M" "$LOG" || done_testing

declare -A TOTAL CAUGHT LINES
missed=()
logless=()
for b in "${list[@]}"; do
    m=${METHOD[$b]}
    [ "$m" = control ] && continue
    key="${KIND[$b]} $m"
    TOTAL[$key]=$((${TOTAL[$key]:-0} + 1))
    err=$(tmo 30 cat "$M/$b" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 0 ] && printf '%s' "$err" | grep -q "Input/output error"; then
        CAUGHT[$key]=$((${CAUGHT[$key]:-0} + 1))
        nl=$(grep -cF "/$b:" "$LOG")
        LINES[$nl]=$((${LINES[$nl]:-0} + 1))
        [ "$nl" -gt 0 ] ||
            logless+=("$b ($key): ${err:0:60}; log: $(grep -F "$b" "$LOG" | head -n 2)")
    else
        if [ $rc -eq 0 ] && cmp -s "$M/$b" "$P/$b"; then
            missed+=("$b ($key): read back the original bytes")
        else
            missed+=("$b ($key): cat exit $rc ${err:0:80}")
        fi
    fi
done

note "detected / changed, per storage kind and change:"
for k in png jpeg opaque other; do
    line=
    for m in $methods; do
        t=${TOTAL["$k $m"]:-0}
        [ "$t" -gt 0 ] && line="$line  $m ${CAUGHT["$k $m"]:-0}/$t"
    done
    [ -n "$line" ] && note "  $k:$line"
done

all=0 got=0
for key in "${!TOTAL[@]}"; do
    all=$((all + ${TOTAL[$key]}))
    got=$((got + ${CAUGHT[$key]:-0}))
done
is "$got/$all" "$all/$all" "every read of a changed file fails with EIO (flip, cut, splice, foreign, swap)"
[ ${#missed[@]} -gt 0 ] && diag "not detected:" "${missed[@]}"
is "${#logless[@]}" 0 "the log names every file whose read failed"
is "$(for k in "${!LINES[@]}"; do printf '%s line(s): %s files; ' "$k" "${LINES[$k]}"; done)" \
    "1 line(s): $got files; " "one log line for each file whose read failed"
[ ${#logless[@]} -gt 0 ] && diag "no log line for:" "${logless[@]}"
for k in png jpeg opaque; do
    t=0
    for m in flip trunc splice foreign; do t=$((t + ${TOTAL["$k $m"]:-0})); done
    ok "$k: changed files of every method but swap were tried" test "$t" -ge 20
done

# Whole-file swaps within the volume: the header and every block authenticate, but the
# file is not where its file id was written.
sw=0 swc=0
for key in "${!TOTAL[@]}"; do
    case $key in *" swap")
        sw=$((sw + ${TOTAL[$key]}))
        swc=$((swc + ${CAUGHT[$key]:-0}))
        ;;
    esac
done
note "whole-file swaps within the volume: $swc of $sw detected on read ($samesize of the same size)"
ok "whole-file swaps were tried" test "$sw" -ge 10
is "$swc/$sw" "$sw/$sw" "every whole-file swap within the volume is detected on read"

bad=0 nc=0
for b in "${list[@]}"; do
    [ "${METHOD[$b]}" = control ] || continue
    nc=$((nc + 1))
    cmp -s "$M/$b" "$P/$b" || {
        bad=$((bad + 1))
        diag "control $b does not read back"
    }
done
note "$nc untouched control files"
ok "there are control files" test "$nc" -gt 5
is "$bad" 0 "untouched files still read back identical"
ok "unmount" pxc_umount "$M"

# fsck: each swapped-in copy is at a place its file id was never written to, and shares
# its file id with the file it was copied from.
tmo 120 "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$A" >"$T/fsck.out" 2>&1
is "$?" 7 "fsck of the changed volume: problems found and left (exit 7)"
nodup=0
ndup=0
for b in "${list[@]}"; do
    [ "${METHOD[$b]}" = swap ] || continue
    # (a donor changed in its turn no longer shares its id, or is damaged)
    [ "${METHOD[${SWAPFROM[$b]}]}" = control ] || continue
    ndup=$((ndup + 1))
    grep -E "^duplicate: " "$T/fsck.out" | grep -qF "$b" || {
        nodup=$((nodup + 1))
        diag "fsck does not report $b as a duplicate"
    }
done
is "$nodup" 0 "fsck reports every whole-file swap from an untouched file ($ndup) as a duplicate file id"
noplace=0
for b in "${list[@]}"; do
    [ "${METHOD[$b]}" = swap ] || continue
    grep -qE "^place: $b: the stored file is not where it was written" "$T/fsck.out" || {
        noplace=$((noplace + 1))
        diag "fsck does not report $b as misplaced"
    }
done
is "$noplace" 0 "fsck reports every whole-file swap ($sw) as misplaced"
for b in "${list[@]}"; do
    case ${METHOD[$b]} in control | swap) continue ;; esac
    grep -qE "^damaged: $b:" "$T/fsck.out" || diag "fsck does not report $b (${METHOD[$b]}) as damaged"
done
n=$(grep -c "^damaged: " "$T/fsck.out")
is "$n" "$((all - sw))" "fsck reports every other changed file as damaged"

# Each of the first 200 bytes of a small stored PNG and of a small stored JPEG (what
# getattr reads before anything is authenticated: signature, header, sizes), flipped in
# its own copy.
E=$T/every
mkdir -p "$E"
ok "init a volume for single-byte flips (plaintext names)" pxc_init "$E" --plaintext-names
ok "mount it" pxc_mount "$E" "$M"
EP=$PXC_CORPUS/png/testpngs/gray-2-1.8.png
EJ=$PXC_CORPUS/jpeg/exiftool/Writer.jpg
cp "$EP" "$M/p.png"
cp "$EJ" "$M/j.jpg"
np=200
nj=200
for i in $(seq 0 $((np - 1))); do cp "$EP" "$M/p$i.png"; done
for i in $(seq 0 $((nj - 1))); do cp "$EJ" "$M/j$i.jpg"; done
ok "unmount it" pxc_umount "$M"
ok "both are stored as images" eval '! has_magic "$E/p.png" && ! has_magic "$E/j.jpg"'
for i in $(seq 0 $((np - 1))); do flip_byte "$E/p$i.png" "$i"; done
for i in $(seq 0 $((nj - 1))); do flip_byte "$E/j$i.jpg" "$i"; done
ok "mount it, logging to a file" pxc_mount_fg "$E" "$M" "$T/every.log"
missed=()
for f in $(seq -f 'p%g.png' 0 $((np - 1))) $(seq -f 'j%g.jpg' 0 $((nj - 1))); do
    err=$(tmo 30 cat "$M/$f" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -eq 0 ] || ! printf '%s' "$err" | grep -q "Input/output error"; then
        missed+=("$f: cat exit $rc ${err:0:60}")
    elif ! grep -qF "/$f:" "$T/every.log"; then
        missed+=("$f: EIO but no log line")
    fi
done
is "${#missed[@]}" 0 "each of the first $np bytes of a PNG and of a JPEG, flipped: EIO and a log line"
[ ${#missed[@]} -gt 0 ] && printf '%s\n' "${missed[@]}" | head -n 20 | diag_stdin
ok "the unflipped copies still read back" eval 'cmp "$EP" "$M/p.png" && cmp "$EJ" "$M/j.jpg"'
ok "unmount it" pxc_umount "$M"

# The chaos-profile volume: the same changes on a few of its PNGs.
n=0 c=0
declare -A FM
for b in "${list[@]}"; do
    [ "${KIND[$b]}" = png ] || continue
    [ "$(kind_of "$F/$b")" = png ] || continue
    [ $((RANDOM % 3)) -eq 0 ] || continue
    s=$(fsize "$F/$b")
    if [ $((RANDOM % 2)) -eq 0 ]; then
        flip_byte "$F/$b" "$(rnd "$s")"
        FM[$b]=flip
    else
        truncate -s "$(rnd "$s")" "$F/$b"
        FM[$b]=trunc
    fi
done
ok "mount the chaos volume, logging to a file" pxc_mount_fg "$F" "$M" "$T/chaos.log" --allow-weak-profile
for b in "${!FM[@]}"; do
    n=$((n + 1))
    err=$(tmo 30 cat "$M/$b" 2>&1 >/dev/null)
    if [ $? -ne 0 ] && printf '%s' "$err" | grep -q "Input/output error" &&
        grep -qF "/$b:" "$T/chaos.log"; then
        c=$((c + 1))
    else
        diag "chaos volume: $b (${FM[$b]}) not detected"
    fi
done
note "chaos-profile PNGs: $c/$n changes detected"
ok "some chaos-profile PNGs were changed" test "$n" -ge 10
is "$c" "$n" "every changed chaos-profile PNG fails with EIO and a log line"
ok "unmount the chaos volume" pxc_umount "$M"
done_testing
