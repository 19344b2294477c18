# Shared helpers for the integration tests in tests/t/*.t (sourced by bash scripts).
#
#   . "$(dirname "$0")/../lib.sh"
#
# Provides: TAP output (ok, is, skip, ...), a private temp dir $T removed at exit, a
# cleanup trap that unmounts whatever the test mounted and ends the daemons it started,
# a watchdog so no script can hang, and pixcrypt helpers (pxc_init, pxc_mount, ...).
#
# Environment:
#   PXC_BIN      the pixcrypt binary (default: <repo>/build/rel/pixcrypt)
#   PXC_BUILD    build dir holding tests/tools/* (default: <repo>/build/rel)
#   PXC_CORPUS   image corpus (default: <repo>/../shared/corpus)
#   PXC_TIMEOUT  seconds before the watchdog aborts a script (default 600)
#   PXC_KEEP=1   keep the temp dir (for debugging a failure)

PXC_TESTS_DIR=$(cd "$(dirname "$0")/.." && pwd)
PXC_ROOT=$(cd "$PXC_TESTS_DIR/.." && pwd)
: "${PXC_BUILD:=$PXC_ROOT/build/rel}"
: "${PXC_BIN:=$PXC_BUILD/pixcrypt}"
: "${PXC_CORPUS:=$PXC_ROOT/../shared/corpus}"
: "${PXC_TIMEOUT:=600}"
PXC_TOOLS=$PXC_BUILD/tests/tools
TEST_NAME=$(basename "$0" .t)
export LC_ALL=C.UTF-8

# Where fusermount3 lives; the tests run as root but use it for lazy unmounts.
PXC_FUSERMOUNT=fusermount3

# ---------------------------------------------------------------- TAP

_tap_n=0
_tap_failed=0
_tap_planned=

# plan N: print the plan up front (otherwise done_testing prints it at the end).
plan() {
    _tap_planned=$1
    echo "1..$1"
}

# skip_all REASON: the whole script does not apply here.
skip_all() {
    echo "1..0 # SKIP $*"
    exit 0
}

pass() {
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n - $*"
}

fail() {
    _tap_n=$((_tap_n + 1))
    _tap_failed=$((_tap_failed + 1))
    echo "not ok $_tap_n - $*"
}

# diag MSG: diagnostics shown by prove even without -v.
diag() {
    printf '%s\n' "$@" | sed 's/^/# /' >&2
}

# note MSG: diagnostics in the TAP stream (prove -v shows them).
note() {
    printf '%s\n' "$@" | sed 's/^/# /'
}

# ok DESC CMD...: passes when CMD exits 0.  Output of CMD is shown as diagnostics
# only when it fails.
ok() {
    _d=$1
    shift
    _out=$("$@" 2>&1)
    _rc=$?
    if [ $_rc -eq 0 ]; then
        pass "$_d"
    else
        fail "$_d"
        diag "command: $*" "exit status: $_rc"
        [ -n "$_out" ] && printf '%s\n' "$_out" | head -n 30 | diag_stdin
    fi
    return $_rc
}

# ok_fails DESC CMD...: passes when CMD exits nonzero (but was not killed by timeout).
ok_fails() {
    _d=$1
    shift
    _out=$("$@" 2>&1)
    _rc=$?
    if [ $_rc -ne 0 ] && [ $_rc -ne 124 ] && [ $_rc -lt 128 ]; then
        pass "$_d"
        return 0
    fi
    fail "$_d"
    diag "command: $*" "exit status: $_rc (expected a failure, not success/timeout/signal)"
    [ -n "$_out" ] && printf '%s\n' "$_out" | head -n 30 | diag_stdin
    return 1
}

diag_stdin() {
    sed 's/^/#   /' >&2
}

# is GOT EXPECTED DESC
is() {
    if [ "$1" = "$2" ]; then
        pass "$3"
    else
        fail "$3"
        diag "     got: '$1'" "expected: '$2'"
        return 1
    fi
}

# isnt GOT UNEXPECTED DESC
isnt() {
    if [ "$1" != "$2" ]; then
        pass "$3"
    else
        fail "$3"
        diag "got '$1', expected anything else"
        return 1
    fi
}

# like GOT REGEX DESC (extended regex, grep -E)
like() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then
        pass "$3"
    else
        fail "$3"
        diag "     got: '$1'" "expected to match: /$2/"
        return 1
    fi
}

# expect_exit CODE DESC CMD...: passes when CMD exits with exactly CODE.  The command's
# stderr is kept in $T/last.err and stdout in $T/last.out for further checks.
expect_exit() {
    _want=$1
    _d=$2
    shift 2
    "$@" >"$T/last.out" 2>"$T/last.err"
    _rc=$?
    if [ "$_rc" = "$_want" ]; then
        pass "$_d"
        return 0
    fi
    fail "$_d"
    diag "command: $*" "exit status $_rc, expected $_want"
    head -n 20 "$T/last.err" | diag_stdin
    return 1
}

# skip DESC REASON: a test that could not run here.  Reported as skipped, never as a pass.
skip() {
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n - $1 # SKIP $2"
}

# todo DESC: a known failure kept visible (TAP TODO).
todo_fail() {
    _tap_n=$((_tap_n + 1))
    echo "not ok $_tap_n - $1 # TODO $2"
}

done_testing() {
    [ -z "$_tap_planned" ] && echo "1..$_tap_n"
    if [ -n "$_tap_planned" ] && [ "$_tap_planned" != "$_tap_n" ]; then
        diag "planned $_tap_planned tests but ran $_tap_n"
    fi
    [ $_tap_failed -eq 0 ] && exit 0
    diag "$_tap_failed of $_tap_n tests failed"
    exit 1
}

# --------------------------------------------------------- temp dir, cleanup

T=$(mktemp -d "/tmp/pxc-$TEST_NAME.XXXXXX") || { echo "1..0 # SKIP cannot create temp dir"; exit 1; }
_pxc_mounts=     # mount points we mounted (absolute, space separated; no spaces in $T)
_pxc_pids=       # background processes we started (daemons in -f mode, workers)

# pids of processes whose command line mentions our temp dir: daemons we started
# (pixcrypt mount / gocryptfs) and anything else left behind by this test only.
_pxc_own_pids() {
    for _p in /proc/[0-9]*; do
        _pid=${_p#/proc/}
        [ "$_pid" = "$$" ] && continue
        # (2>/dev/null first: a process may exit between the glob and the read)
        if tr '\0' ' ' 2>/dev/null <"$_p/cmdline" | grep -qF -- "$T/"; then
            echo "$_pid"
        fi
    done
}

_pxc_cleanup() {
    _st=$?
    trap - EXIT INT TERM HUP
    if [ -n "${_pxc_watchdog:-}" ]; then
        pkill -P "$_pxc_watchdog" 2>/dev/null # its sleep
        kill "$_pxc_watchdog" 2>/dev/null
    fi
    for _m in $_pxc_mounts; do
        # (by the mount table: mountpoint(1) fails on the mount of a daemon that died)
        if grep -qF " $_m fuse" /proc/mounts; then
            $PXC_FUSERMOUNT -u "$_m" 2>/dev/null || $PXC_FUSERMOUNT -u -z "$_m" 2>/dev/null ||
                umount -l "$_m" 2>/dev/null
        fi
    done
    for _p in $_pxc_pids; do kill "$_p" 2>/dev/null; done
    # Give daemons a moment to exit on their own after the unmount, then insist.
    _i=0
    while [ $_i -lt 50 ] && [ -n "$(_pxc_own_pids)" ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
    for _p in $(_pxc_own_pids); do kill -9 "$_p" 2>/dev/null; done
    if [ "${PXC_KEEP:-0}" = 1 ]; then
        echo "# kept $T" >&2
    else
        # --one-file-system: never descend into a mount that is somehow still there.
        rm -rf --one-file-system "$T" 2>/dev/null
    fi
    exit $_st
}
trap _pxc_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Watchdog: a hung filesystem must not hang `make check`.  On expiry, unmount our
# mounts lazily (which unblocks nothing by itself, so also kill our daemons, which
# makes pending requests fail with ENOTCONN) and terminate the script.
_pxc_start_watchdog() {
    (
        trap - EXIT INT TERM HUP
        sleep "$PXC_TIMEOUT" &
        wait $! || exit 0 # sleep killed: the script ended in time
        echo "# watchdog: $TEST_NAME exceeded ${PXC_TIMEOUT}s, aborting" >&2
        # Daemons first: killing them makes every pending request on their mounts fail,
        # which frees processes blocked in the filesystem.
        for _p in $(_pxc_own_pids); do kill -9 "$_p" 2>/dev/null; done
        for _p in $(ps -o pid= --ppid $$); do
            [ "$_p" = "$BASHPID" ] || kill -9 "$_p" 2>/dev/null
        done
        kill -TERM $$ 2>/dev/null
    ) >/dev/null & # not holding stdout: prove waits for EOF on it
    _pxc_watchdog=$!
}
_pxc_start_watchdog

# tmo SECS CMD...: run CMD with a hard time limit (TERM, then KILL 5 s later).
tmo() {
    _s=$1
    shift
    timeout -k 5 "$_s" "$@"
}

# wait_for SECS CMD...: poll CMD every 0.1 s until it succeeds; 1 on timeout.
wait_for() {
    _limit=$(($1 * 10))
    shift
    _i=0
    while ! "$@" >/dev/null 2>&1; do
        _i=$((_i + 1))
        [ $_i -ge $_limit ] && return 1
        sleep 0.1
    done
    return 0
}

# ---------------------------------------------------------------- pixcrypt

PXC_PASS="correct horse battery staple"
PXC_PASSFILE=$T/passfile
printf '%s\n' "$PXC_PASS" >"$PXC_PASSFILE"

# need_pixcrypt: skip the whole script when there is no binary to test.
need_pixcrypt() {
    [ -x "$PXC_BIN" ] || skip_all "no pixcrypt binary at $PXC_BIN"
    [ -c /dev/fuse ] || skip_all "no /dev/fuse"
    command -v $PXC_FUSERMOUNT >/dev/null || skip_all "no $PXC_FUSERMOUNT"
}

need_tool() {
    [ -x "$PXC_TOOLS/$1" ] || skip_all "test tool $PXC_TOOLS/$1 not built (make check builds it)"
}

# pxc_init DIR [extra init args]: a new volume with the test passphrase.
pxc_init() {
    _dir=$1
    shift
    tmo 60 "$PXC_BIN" init --kdf interactive --passfile "$PXC_PASSFILE" "$@" "$_dir"
}

# pxc_stored CIPHER PLAIN-PATH: where PLAIN-PATH (relative to the mount) is stored, as
# CIPHER/STORED-PATH (names are encrypted unless the volume has plaintext names).
pxc_stored() {
    _s=$(tmo 60 "$PXC_BIN" encrypt-name --passfile "$PXC_PASSFILE" "$1" "$2") || return 1
    printf '%s/%s\n' "$1" "$_s"
}

_pxc_abs() {
    case $1 in
    /*) echo "$1" ;;
    *) echo "$PWD/$1" ;;
    esac
}

# pxc_mount CIPHER MNT [extra args]: mount (daemonized); returns pixcrypt's exit status,
# and 1 if it claimed success but the mount is not live.
pxc_mount() {
    _c=$1
    _m=$(_pxc_abs "$2")
    shift 2
    mkdir -p "$_m"
    _pxc_mounts="$_pxc_mounts $_m"
    tmo 60 "$PXC_BIN" mount --passfile "$PXC_PASSFILE" "$@" "$_c" "$_m"
    _rc=$?
    [ $_rc -ne 0 ] && return $_rc
    # The contract: mount returns only once the mount is live.
    if ! mountpoint -q "$_m"; then
        echo "pixcrypt mount returned 0 but $_m is not a mount point" >&2
        return 1
    fi
    return 0
}

# pxc_mount_fg CIPHER MNT LOG [extra args]: run the daemon in the foreground (-f) in the
# background of this script, its stderr appended to LOG; waits until the mount is live.
# Sets $PXC_FG_PID.
pxc_mount_fg() {
    _c=$1
    _m=$(_pxc_abs "$2")
    _log=$3
    shift 3
    mkdir -p "$_m"
    _pxc_mounts="$_pxc_mounts $_m"
    "$PXC_BIN" mount -f --passfile "$PXC_PASSFILE" "$@" "$_c" "$_m" </dev/null >>"$_log" 2>&1 &
    PXC_FG_PID=$!
    _pxc_pids="$_pxc_pids $PXC_FG_PID"
    _i=0
    while ! mountpoint -q "$_m"; do
        if ! kill -0 "$PXC_FG_PID" 2>/dev/null; then
            wait "$PXC_FG_PID"
            return $?
        fi
        _i=$((_i + 1))
        if [ $_i -ge 600 ]; then
            echo "mount -f did not come up within 60 s" >&2
            return 1
        fi
        sleep 0.1
    done
    return 0
}

# pid(s) of the daemon serving mount point $1: a pixcrypt (or gocryptfs, when testing
# the tests) process with the mount point as one of its arguments.
pxc_daemon_pids() {
    local m p pid argv0
    m=$(_pxc_abs "$1")
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = "$$" ] && continue
        tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -qxF -- "$m" || continue
        argv0=$(tr '\0' '\n' 2>/dev/null <"$p/cmdline" | head -n 1)
        case ${argv0##*/} in
        pixcrypt* | gocryptfs*) echo "$pid" ;;
        esac
    done
}

# pxc_umount MNT: unmount and wait until the daemon has exited (so its lock is free
# for the next mount).  Returns nonzero if the unmount failed or the daemon lingered.
pxc_umount() {
    _m=$(_pxc_abs "$1")
    _dp=$(pxc_daemon_pids "$_m")
    _i=0
    # A just-closed file can keep the mount busy for a moment.
    while mountpoint -q "$_m"; do
        $PXC_FUSERMOUNT -u "$_m" 2>/dev/null && break
        _i=$((_i + 1))
        if [ $_i -ge 50 ]; then
            echo "cannot unmount $_m (busy?)" >&2
            return 1
        fi
        sleep 0.2
    done
    for _p in $_dp; do
        if ! wait_for 30 _pxc_gone "$_p"; then
            echo "daemon $_p did not exit after unmount of $_m" >&2
            return 1
        fi
    done
    return 0
}

_pxc_gone() {
    ! kill -0 "$1" 2>/dev/null && return 0
    # A zombie child of ours (a -f daemon) counts as gone once reaped.
    _state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ "$_state" = Z ] && { wait "$1" 2>/dev/null; return 0; }
    return 1
}

# ------------------------------------------------------------ stored format

PXC_HEADER=144
PXC_BLOCK=4096
PXC_STORED_BLOCK=4136

# pxc_stored_size P: the size of an opaque stored file holding P plaintext bytes.
pxc_stored_size() {
    _p=$1
    if [ "$_p" -eq 0 ]; then
        echo $((PXC_HEADER + 40))
        return
    fi
    _s=$((PXC_HEADER + PXC_STORED_BLOCK * (_p / PXC_BLOCK)))
    [ $((_p % PXC_BLOCK)) -ne 0 ] && _s=$((_s + _p % PXC_BLOCK + 40))
    echo $_s
}

# has_magic FILE: the stored file starts with "pixcrypt".
has_magic() {
    printf pixcrypt | cmp -s -n 8 - "$1"
}

fsize() { stat -c %s "$1"; }

# flip_byte FILE OFFSET: invert all bits of one byte in place.
flip_byte() {
    _b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    [ -n "$_b" ] || return 1
    printf "$(printf '\\%03o' $((_b ^ 255)))" |
        dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}

# random_file FILE BYTES: incompressible, reproducible-enough content.
random_file() {
    head -c "$2" /dev/urandom >"$1"
}

# ------------------------------------------------------------ viewers

# chromium_image_sizes DIR FILE...: loads each FILE (relative to DIR) as an <img> in
# headless Chromium and prints "FILE WxH" or "FILE error" per line, as the browser saw
# it.  Needs $CHROMIUM (the browser binary).
chromium_image_sizes() {
    local dir=$1 f
    shift
    {
        echo '<!doctype html><html><body><script>'
        printf 'for (const f of ['
        for f in "$@"; do printf '"%s",' "$f"; done
        echo ']) {'
        cat <<'JS'
  const img = new Image();
  const say = (s) => { const p = document.createElement("p"); p.textContent = "IMG " + f + " " + s; document.body.appendChild(p); };
  img.onload = () => say(img.naturalWidth + "x" + img.naturalHeight);
  img.onerror = () => say("error");
  img.src = f;
}
JS
        echo '</script></body></html>'
    } >"$dir/page.html"
    tmo 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --allow-file-access-from-files \
        --user-data-dir="$T/chromium-profile" --virtual-time-budget=10000 \
        --dump-dom "file://$dir/page.html" 2>"$T/chromium.err" |
        grep -o 'IMG [^<]*' | sed 's/^IMG //'
}
