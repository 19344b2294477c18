#!/bin/bash
# Passphrases and the keystore: wrong passphrase (exit 3), second mount (exit 4), not a
# volume (exit 5), passwd rewraps without touching files, missing or corrupt keystore
# gives a clear error, a killed daemon's lock does not block the next mount.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
command -v sqlite3 >/dev/null || skip_all "no sqlite3 command (contrib/deps.sh test installs it)"

C=$T/cipher
M=$T/mnt
mkdir -p "$C" "$M"
ok "init" pxc_init "$C"
ok "mount" pxc_mount "$C" "$M"
echo "kept across passwd" >"$M/a.txt"
head -c 50000 /dev/urandom >"$T/b.bin"
cp "$T/b.bin" "$M/b.bin"
mkdir -p "$T/m2"
expect_exit 4 "second mount: exit 4 (locked)" tmo 60 "$PXC_BIN" mount --passfile "$PXC_PASSFILE" "$C" "$T/m2"
like "$(cat "$T/last.err")" "in use|locked|already mounted" "with a message saying the volume is in use"
ok_fails "nothing mounted on the second mount point" mountpoint -q "$T/m2"
ok "unmount" pxc_umount "$M"

# ---- wrong passphrase
echo "not the passphrase" >"$T/wrong"
expect_exit 3 "wrong passphrase: exit 3" tmo 60 "$PXC_BIN" mount --passfile "$T/wrong" "$C" "$M"
like "$(cat "$T/last.err")" "[Ww]rong passphrase|incorrect" "one-line reason"
is "$(wc -l <"$T/last.err")" 1 "exactly one line"
ok_fails "not mounted" mountpoint -q "$M"
: >"$T/empty"
ok_fails "an empty passfile is refused" tmo 60 "$PXC_BIN" mount --passfile "$T/empty" "$C" "$M"
ok_fails "a missing passfile is refused" tmo 60 "$PXC_BIN" mount --passfile "$T/nonexistent" "$C" "$M"
ok_fails "still not mounted" mountpoint -q "$M"

# ---- passwd
(cd "$C" && find . -path ./.pixcrypt -prune -o -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/stored.before"
echo "a new passphrase" >"$T/new"
ok "passwd with --passfile and --new-passfile" tmo 60 "$PXC_BIN" passwd --passfile "$PXC_PASSFILE" --new-passfile "$T/new" "$C"
(cd "$C" && find . -path ./.pixcrypt -prune -o -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/stored.after"
ok "no stored file changed" cmp "$T/stored.before" "$T/stored.after"
expect_exit 3 "the old passphrase no longer mounts" tmo 60 "$PXC_BIN" mount --passfile "$PXC_PASSFILE" "$C" "$M"
expect_exit 3 "passwd with a wrong old passphrase: exit 3" tmo 60 "$PXC_BIN" passwd --passfile "$T/wrong" --new-passfile "$T/wrong" "$C"
_pxc_mounts="$_pxc_mounts $M"
ok "the new passphrase mounts" tmo 60 "$PXC_BIN" mount --passfile "$T/new" "$C" "$M"
is "$(cat "$M/a.txt")" "kept across passwd" "files read as before"
ok "the binary file too" cmp "$T/b.bin" "$M/b.bin"

# ---- a killed daemon does not leave the volume locked
dp=$(pxc_daemon_pids "$M")
ok "the daemon is running" test -n "$dp"
kill -9 $dp
wait_for 10 _pxc_gone "$dp"
$PXC_FUSERMOUNT -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
ok "after kill -9 the volume mounts again" tmo 60 "$PXC_BIN" mount --passfile "$T/new" "$C" "$M"
is "$(cat "$M/a.txt")" "kept across passwd" "and reads"
ok "unmount" pxc_umount "$M"

# ---- not a volume, missing and corrupt keystore: clean errors, no crash
mkdir -p "$T/plain"
expect_exit 5 "a plain directory: exit 5 (not a volume)" tmo 60 "$PXC_BIN" mount --passfile "$T/new" "$T/plain" "$M"
like "$(cat "$T/last.err")" "pixcrypt" "message names the problem"
expect_exit 5 "a missing directory: exit 5" tmo 60 "$PXC_BIN" mount --passfile "$T/new" "$T/nope" "$M"
cp -a "$C" "$T/c-missing"
rm "$T/c-missing/.pixcrypt/keystore.db"
expect_exit 5 "keystore removed: exit 5" tmo 60 "$PXC_BIN" mount --passfile "$T/new" "$T/c-missing" "$M"
like "$(cat "$T/last.err")" "keystore" "message mentions the keystore"

corrupt_case() { # DESC how-to-corrupt
    local d=$T/c-$RANDOM
    cp -a "$C" "$d"
    "$2" "$d/.pixcrypt/keystore.db"
    tmo 60 "$PXC_BIN" mount --passfile "$T/new" "$d" "$M" >"$T/last.out" 2>"$T/last.err"
    local rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 124 ] && [ -s "$T/last.err" ] && ! mountpoint -q "$M"; then
        pass "$1: clean error (exit $rc: $(head -n 1 "$T/last.err"))"
    else
        fail "$1"
        diag "exit $rc" "$(cat "$T/last.err")"
        mountpoint -q "$M" && pxc_umount "$M"
    fi
}
garbage() { head -c 8192 /dev/urandom >"$1"; }
truncated() { truncate -s 1000 "$1"; }
zeroed() { truncate -s 0 "$1"; }
no_config() { sqlite3 "$1" "DROP TABLE $(sqlite3 "$1" "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name LIMIT 1")"; }
flipped_key() { # one bit of the sealed master key flipped: it no longer authenticates
    sqlite3 "$1" "UPDATE volume SET master_sealed =
        substr(master_sealed, 1, 30) || (CASE WHEN substr(master_sealed, 31, 1) = X'00' THEN X'01' ELSE X'00' END)
        || substr(master_sealed, 32)"
}
bad_salt() { sqlite3 "$1" "UPDATE volume SET kdf_salt = X'00'"; }
bad_limits() { sqlite3 "$1" "UPDATE volume SET kdf_memlimit = -5, kdf_opslimit = 0"; }
corrupt_case "keystore is random bytes" garbage
corrupt_case "keystore truncated to 1000 bytes" truncated
corrupt_case "keystore empty" zeroed
corrupt_case "keystore missing a table" no_config
corrupt_case "sealed master key with one byte changed" flipped_key
corrupt_case "KDF salt of the wrong length" bad_salt
corrupt_case "impossible KDF limits" bad_limits

# ---- passwd on a non-volume
expect_exit 5 "passwd on a plain directory: exit 5" tmo 60 "$PXC_BIN" passwd --passfile "$T/new" --new-passfile "$T/new" "$T/plain"
done_testing
