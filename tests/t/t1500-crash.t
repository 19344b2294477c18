#!/bin/bash
# Crash safety: a tree of a few hundred files (PNGs and JPEGs from the corpus and
# variants made here, other files from 0 bytes to several blocks) is copied into a
# mount; then, round after round, a writer starts giving a random part of it new
# versions (other bytes, often another size), new files and new names, and the daemon
# is killed with SIGKILL at a random moment.  After a lazy unmount and a remount, before
# any fsck, every file must read (no EIO), none may be lost, and each must hold its
# previous complete version or its new complete version (by SHA-256, against a manifest
# of both).  Then fsck must find the volume clean or repair it completely (exit 8, then
# a clean 0).
#
# The writer saves as careful programs do (and as pixcrypt's own conversions do): the
# new version goes to a temp name in the same directory, then is renamed over the old
# name.  Writing into an existing file in place is not atomic, on pixcrypt as on any
# filesystem (README: Limits); PXC_CRASH_INPLACE=1 adds such writes and reports what
# became of them without failing on them.
#
#   PXC_CRASH_ROUNDS  rounds (default 8; `make crash` runs CRASH_ROUNDS, default 100)
#   PXC_CRASH_SEED    the random choices (printed, to replay a run)
: "${PXC_CRASH_ROUNDS:=8}"
: "${PXC_TIMEOUT:=$((240 + PXC_CRASH_ROUNDS * 40))}"
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
command -v convert >/dev/null || skip_all "no ImageMagick convert"
command -v jpegtran >/dev/null || skip_all "no jpegtran"
[ -d "$PXC_CORPUS/png/pngsuite" ] || skip_all "no image corpus at $PXC_CORPUS"

SEED=${PXC_CRASH_SEED:-$(($(date +%s) % 32768))}
RANDOM=$SEED
note "seed $SEED (PXC_CRASH_SEED=$SEED replays the choices), $PXC_CRASH_ROUNDS rounds"

C=$T/cipher
M=$T/mnt
POOL=$T/pool # contents that versions are drawn from
V=$T/v       # new versions of this round
mkdir -p "$C" "$M" "$POOL/png" "$POOL/jpeg" "$POOL/bin"

rnd() { echo $(((RANDOM * 32768 + RANDOM) % $1)); }
hash_of() { sha256sum <"$1" | cut -c1-16; }

# ---- the pool: corpus images, variants, other files
cp "$PXC_CORPUS"/png/pngsuite/*.png "$POOL/png/"
ls "$PXC_CORPUS"/png/testpngs/*.png | head -n 40 | xargs -I{} cp {} "$POOL/png/"
cp "$PXC_CORPUS"/jpeg/exiftool/*.jpg "$POOL/jpeg/"
J=$PXC_CORPUS/jpeg/libjpeg-turbo/testorig.jpg
cp "$J" "$PXC_CORPUS/jpeg/libjpeg-turbo/testimgint.jpg" "$POOL/jpeg/"
jpegtran -progressive "$J" >"$POOL/jpeg/v-prog.jpg"
jpegtran -optimize "$J" >"$POOL/jpeg/v-opt.jpg"
jpegtran -restart 2 "$J" >"$POOL/jpeg/v-rst.jpg"
jpegtran -grayscale "$J" >"$POOL/jpeg/v-gray.jpg"
jpegtran -rotate 90 "$J" >"$POOL/jpeg/v-rot.jpg"
for q in 30 60 90; do
    for s in 1x1 2x1 2x2; do
        convert "$J" -quality $q -sampling-factor $s "$POOL/jpeg/v-q$q-$s.jpg"
    done
done
P=$PXC_CORPUS/png/libjpeg-turbo/testorig.png
for l in 0 1 9; do convert "$P" -define png:compression-level=$l "$POOL/png/v-l$l.png"; done
convert "$P" -resize 50% "$POOL/png/v-half.png"
convert "$P" -colors 16 "$POOL/png/v-pal.png"
convert "$P" -depth 16 "$POOL/png/v-16.png"
convert "$P" -interlace PNG "$POOL/png/v-adam7.png"
for s in 0 1 100 4095 4096 4097 8192 8193 20000 65536 200000; do random_file "$POOL/bin/s$s" $s; done
for i in $(seq 1 20); do random_file "$POOL/bin/r$i" "$(rnd 30000)"; done
pool_png=("$POOL"/png/*) pool_jpeg=("$POOL"/jpeg/*) pool_bin=("$POOL"/bin/*)

# A new version for path p: other bytes of the same kind, at random.
new_version() {
    local p=$1 out=$2 src
    case $p in
    *.png) src=${pool_png[$((RANDOM % ${#pool_png[@]}))]} ;;
    *.jpg) src=${pool_jpeg[$((RANDOM % ${#pool_jpeg[@]}))]} ;;
    *)
        # mostly random bytes of a new size, sometimes a pool file (0 bytes, multi-block)
        if [ $((RANDOM % 4)) -eq 0 ]; then
            src=${pool_bin[$((RANDOM % ${#pool_bin[@]}))]}
        else
            random_file "$out" "$(rnd 50000)"
            return
        fi
        ;;
    esac
    cp "$src" "$out"
}

# ---- the first version: a few hundred files in a few directories
declare -A CUR # path -> hash of its current complete version
S=$T/first
mkdir -p "$S"
n=0
for d in a b c d; do
    mkdir -p "$S/$d"
    for f in "${pool_png[@]}"; do [ $((RANDOM % 4)) -eq 0 ] && cp "$f" "$S/$d/${f##*/}"; done
    for f in "${pool_jpeg[@]}"; do [ $((RANDOM % 4)) -eq 0 ] && cp "$f" "$S/$d/${f##*/}"; done
    for i in $(seq 1 25); do new_version "x.bin" "$S/$d/f$i.bin"; done
done
while IFS= read -r -d '' f; do
    CUR[${f#"$S/"}]=$(hash_of "$f")
done < <(find "$S" -type f -print0)
note "first version: ${#CUR[@]} files ($(find "$S" -name '*.png' | wc -l) PNG, $(find "$S" -name '*.jpg' | wc -l) JPEG)"
ok "at least 200 files" test "${#CUR[@]}" -ge 200

ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M" || done_testing
ok "copy the first version in" cp -r "$S/." "$M/"
ok "unmount" pxc_umount "$M"

fsck_q() { tmo 300 "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$@" "$C"; }

# fsck after a crash: clean (0), or --repair repairs all (8) and then it is clean.
# Prints the problems found, one "KIND: PATH: ..." line each, on fd 3.
fsck_after_crash() {
    local r=$1 rc
    fsck_q >"$T/fsck.$r" 2>&1
    rc=$?
    grep -E '^[a-z]+: ' "$T/fsck.$r" >&3
    if [ $rc -eq 0 ]; then
        return 0
    fi
    if [ $rc -ne 7 ]; then
        echo "round $r: fsck exit $rc (expected 0 or 7): $(tail -n 3 "$T/fsck.$r")"
        return 1
    fi
    fsck_q --repair >"$T/fsck-repair.$r" 2>&1
    rc=$?
    if [ $rc -ne 8 ]; then
        echo "round $r: fsck --repair exit $rc, expected 8: $(head -n 5 "$T/fsck-repair.$r")"
        return 1
    fi
    fsck_q >"$T/fsck-again.$r" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "round $r: fsck after --repair exit $rc, expected 0: $(head -n 5 "$T/fsck-again.$r")"
        return 1
    fi
    return 0
}

# ---- rounds
# Each planned operation is one line "op path newpath src" of $V/plan:
#   save    path: new version src written to a temp name, renamed over path
#   create  path: a new file, saved the same way
#   move    path -> newpath (a rename, maybe into another directory)
#   inplace path: src written over path in place (PXC_CRASH_INPLACE=1 only)
writer() {
    local op p np src
    while read -r op p np src; do
        case $op in
        save | create)
            cp "$src" "$M/$p.new~" && mv -f "$M/$p.new~" "$M/$p" || return 1
            ;;
        move) mv "$M/$p" "$M/$np" || return 1 ;;
        inplace) cp "$src" "$M/$p" || return 1 ;;
        esac
        echo "$op $p" >>"$V/done"
    done <"$V/plan"
    date +%s%3N >"$V/end"
}

fails=()
tot_old=0 tot_new=0 tot_temp=0 tot_repaired=0 planted_seen=0 inplace_torn=0
dirs=(a b c d)
ncreate=0
est=1000 # ms the writer needs for a whole round, measured when a round completes
for r in $(seq 1 "$PXC_CRASH_ROUNDS"); do
    rm -rf "$V"
    mkdir -p "$V"
    paths=("${!CUR[@]}")
    declare -A OP=() NEWH=() TO=() TAKEN=()
    # about a fifth of the files, each once
    for p in "${paths[@]}"; do
        [ $((RANDOM % 5)) -eq 0 ] || continue
        k=$((RANDOM % 10))
        if [ $k -lt 2 ]; then
            d=${dirs[$((RANDOM % 4))]}
            base=${p##*/}
            np="$d/m$r-$base"
            [ -n "${CUR[$np]:-}" ] || [ -n "${TAKEN[$np]:-}" ] && continue
            TAKEN[$np]=1
            OP[$p]=move
            TO[$p]=$np
            echo "move $p $np -" >>"$V/plan"
        elif [ $k -lt 3 ] && [ "${PXC_CRASH_INPLACE:-0}" = 1 ]; then
            OP[$p]=inplace
            new_version "$p" "$V/$(echo "$p" | tr / _)"
            NEWH[$p]=$(hash_of "$V/$(echo "$p" | tr / _)")
            echo "inplace $p - $V/$(echo "$p" | tr / _)" >>"$V/plan"
        else
            OP[$p]=save
            src=$V/$(echo "$p" | tr / _)
            new_version "$p" "$src"
            NEWH[$p]=$(hash_of "$src")
            [ "${NEWH[$p]}" = "${CUR[$p]}" ] && { random_file "$src" 77; NEWH[$p]=$(hash_of "$src"); }
            echo "save $p - $src" >>"$V/plan"
        fi
    done
    for i in 1 2 3 4 5 6 7 8; do
        ncreate=$((ncreate + 1))
        ext=(png jpg bin)
        p="${dirs[$((RANDOM % 4))]}/new$ncreate.${ext[$((RANDOM % 3))]}"
        OP[$p]=create
        src=$V/new$ncreate
        new_version "$p" "$src"
        NEWH[$p]=$(hash_of "$src")
        echo "create $p - $src" >>"$V/plan"
    done
    shuf --random-source=<(yes "$r$SEED") "$V/plan" -o "$V/plan"
    nplan=$(wc -l <"$V/plan")

    if ! pxc_mount "$C" "$M" 2>"$T/mount.err"; then
        fails+=("round $r: mount failed: $(head -n 2 "$T/mount.err")")
        break
    fi
    dp=$(pxc_daemon_pids "$M")
    : >"$V/done"
    t0=$(date +%s%3N)
    writer 2>/dev/null &
    wpid=$!
    delay=$(rnd $((est + est / 4)))
    sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
    kill -9 $dp
    wait $wpid
    wrc=$?
    wait_for 10 _pxc_gone "$dp"
    $PXC_FUSERMOUNT -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
    ndone=$(wc -l <"$V/done")
    [ -s "$V/end" ] && est=$(($(cat "$V/end") - t0))

    if ! pxc_mount "$C" "$M" 2>"$T/mount.err"; then
        fails+=("round $r: remount failed: $(head -n 2 "$T/mount.err")")
        break
    fi
    t1=$(date +%s)
    old=0 new=0 bad=0 torn=0
    for p in "${!OP[@]}"; do [ "${OP[$p]}" = create ] && paths+=("$p"); done
    # Every file read once: its hash, or no line (and an error) if the read fails.
    declare -A SUM=()
    while read -r h f; do
        SUM[${f#./}]=${h:0:16}
    done < <(cd "$M" && find . -type f -print0 | tmo 300 xargs -0 sha256sum 2>"$T/sum.err")
    check() { # path: its hash, or "EIO" or "missing"
        if [ -n "${SUM[$1]:-}" ]; then
            echo "${SUM[$1]}"
        elif [ -e "$M/$1" ]; then
            echo EIO
        else
            echo missing
        fi
    }
    for p in "${paths[@]}"; do
        op=${OP[$p]:-}
        case $op in
        move)
            np=${TO[$p]}
            if [ -e "$M/$p" ] && [ -e "$M/$np" ]; then
                bad=$((bad + 1))
                fails+=("round $r: $p moved to $np: both names exist")
            elif [ -e "$M/$np" ]; then
                h=$(check "$np")
                if [ "$h" = "${CUR[$p]}" ]; then new=$((new + 1)); else
                    bad=$((bad + 1))
                    fails+=("round $r: $p moved to $np: reads $h, not its content")
                fi
                CUR[$np]=${CUR[$p]}
                unset "CUR[$p]"
            else
                h=$(check "$p")
                if [ "$h" = "${CUR[$p]}" ]; then old=$((old + 1)); else
                    bad=$((bad + 1))
                    fails+=("round $r: $p (to be moved to $np): $h, not its content")
                fi
            fi
            ;;
        *)
            # (a new file's previous version is none)
            h=$(check "$p")
            if [ "$h" = "${CUR[$p]:-missing}" ]; then
                [ -n "$op" ] && old=$((old + 1))
            elif [ -n "$op" ] && [ "$h" = "${NEWH[$p]}" ]; then
                new=$((new + 1))
                CUR[$p]=$h
            elif [ "$op" = inplace ] && [ "$h" != EIO ] && [ "$h" != missing ]; then
                torn=$((torn + 1))
                CUR[$p]=$h
            else
                bad=$((bad + 1))
                fails+=("round $r: $p (${op:-untouched}): $h; previous ${CUR[$p]:-none}, new ${NEWH[$p]:--}")
            fi
            ;;
        esac
    done
    # Nothing else may have appeared but the writer's own temp names.
    extra=0
    while IFS= read -r -d '' f; do
        rel=${f#"$M/"}
        case $rel in
        *.new~) rm -f "$f" ;;
        *) [ -n "${CUR[$rel]:-}" ] || {
            extra=$((extra + 1))
            fails+=("round $r: unexpected file $rel")
        } ;;
        esac
    done < <(find "$M" -type f -print0)
    inplace_torn=$((inplace_torn + torn))
    tot_old=$((tot_old + old))
    tot_new=$((tot_new + new))
    if ! pxc_umount "$M" 2>"$T/umount.err"; then
        fails+=("round $r: unmount failed: $(cat "$T/umount.err")")
        break
    fi

    # A temp file of a conversion caught between its link and its rename, as a crash
    # would leave it: fsck reports it and --repair removes it.
    planted=
    if [ "$r" -eq 1 ]; then
        victim=$(find "$C/a" -maxdepth 1 -name '*.png' -type f | head -n 1)
        planted="$C/a/.pixcrypt~00000000deadbeef"
        cp "$victim" "$planted"
    fi

    if ! out=$(fsck_after_crash "$r" 3>"$T/problems.$r"); then
        fails+=("$out")
    fi
    ntemp=$(grep -c '^temp: ' "$T/problems.$r")
    nprob=$(cut -d: -f1 "$T/problems.$r" | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}')
    tot_temp=$((tot_temp + ntemp))
    [ -s "$T/problems.$r" ] && tot_repaired=$((tot_repaired + 1))
    if [ -n "$planted" ]; then
        grep -q "^temp: a/.pixcrypt~00000000deadbeef" "$T/problems.$r" && planted_seen=1
        [ -e "$planted" ] && fails+=("round $r: the leftover temp file is still there after fsck --repair")
    fi
    leftover=$(find "$C" -name '.pixcrypt~*' | wc -l)
    [ "$leftover" -eq 0 ] || fails+=("round $r: $leftover .pixcrypt~ temp files left after fsck")

    diag "round $r: killed after ${delay} ms, $ndone of $nplan operations done (writer exit $wrc); fsck: ${nprob:-clean}; $old previous, $new new$([ $torn -gt 0 ] && echo ", $torn torn in place"), $bad wrong; ${#CUR[@]} files; checked and fsck'd in $(($(date +%s) - t1)) s"
    unset OP NEWH TO TAKEN SUM
done

is "${#fails[@]}" 0 "every round: every file its previous or its new version, readable, none lost; then fsck clean or repaired"
[ ${#fails[@]} -gt 0 ] && printf '%s\n' "${fails[@]}" | head -n 40 | diag_stdin
diag "over $PXC_CRASH_ROUNDS rounds: $tot_old operations found not done, $tot_new done; $tot_temp temp files reported; fsck repaired something after $tot_repaired rounds"
ok "some operations were cut off by the kill (the test hit its target)" test "$tot_old" -gt 0
ok "some operations completed" test "$tot_new" -gt 0
is "$planted_seen" 1 "fsck reports a leftover .pixcrypt~ temp file"
[ "${PXC_CRASH_INPLACE:-0}" = 1 ] && note "in-place writes left torn (neither version): $inplace_torn"

# A last look: the final tree as a whole, after a clean unmount.
expect_exit 0 "fsck after the last round: clean" fsck_q
ok "mount" pxc_mount "$C" "$M"
bad=0
for p in "${!CUR[@]}"; do
    [ "$(tmo 60 sha256sum <"$M/$p" | cut -c1-16)" = "${CUR[$p]}" ] || bad=$((bad + 1))
done
is "$bad" 0 "after a clean remount every file (${#CUR[@]}) holds its last version"
ok "unmount" pxc_umount "$M"
done_testing
