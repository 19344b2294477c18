#!/bin/bash
# init, mount, a first file through the mount, what it looks like at rest, remount;
# command-line usage errors.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt

C=$T/cipher
M=$T/mnt
mkdir -p "$C" "$M"

# ---- init
ok "init creates a volume" pxc_init "$C"
ok "keystore exists at .pixcrypt/keystore.db" test -s "$C/.pixcrypt/keystore.db"
is "$(head -c 16 "$C/.pixcrypt/keystore.db" | tr -d '\0')" "SQLite format 3" "keystore is an SQLite database"

# ---- mount
ok "mount returns 0" pxc_mount "$C" "$M"
ok "mount is live when mount returns" mountpoint -q "$M"
is "$(tmo 20 ls -A "$M")" "" "empty volume lists as empty"
ok_fails ".pixcrypt is not visible through the mount" tmo 20 stat "$M/.pixcrypt"
ok_fails ".pixcrypt cannot be created through the mount" tmo 20 mkdir "$M/.pixcrypt"

# ---- a first file
printf 'The quick brown fox jumps over the lazy dog, secret-marker-7f3a.\n' >"$T/small.txt"
head -c 10000 /dev/urandom >"$T/rand.bin"
ok "write a small file" tmo 20 cp "$T/small.txt" "$M/hello.txt"
ok "write a 10000-byte file" tmo 20 cp "$T/rand.bin" "$M/rand.bin"
ok "read back the small file" tmo 20 cmp "$T/small.txt" "$M/hello.txt"
ok "read back the 10000-byte file" tmo 20 cmp "$T/rand.bin" "$M/rand.bin"
is "$(stat -c %s "$M/hello.txt")" "$(stat -c %s "$T/small.txt")" "st_size through the mount"
is "$(cd "$M" && ls -A | sort | tr '\n' ' ')" "hello.txt rand.bin " "listing shows the two files"

# ---- at rest (under encrypted names: pxc_stored finds them)
SH=$(pxc_stored "$C" hello.txt)
SR=$(pxc_stored "$C" rand.bin)
ok_fails "the stored name is not the plain name" test -e "$C/hello.txt"
ok "the stored file exists under its encrypted name" test -f "$SH"
ok "stored file starts with the pixcrypt magic" has_magic "$SH"
is "$(fsize "$SH")" "$(pxc_stored_size "$(fsize "$T/small.txt")")" "stored size of the small file"
is "$(fsize "$SR")" "$(pxc_stored_size 10000)" "stored size of the 10000-byte file"
ok_fails "plaintext does not appear in the stored file" grep -q secret-marker-7f3a "$SH"
ok_fails "no stored file contains the plaintext" grep -rq secret-marker-7f3a "$C"

# ---- remount
ok "unmount" pxc_umount "$M"
ok_fails "not mounted any more" mountpoint -q "$M"
is "$(ls -A "$M")" "" "mount point is empty after unmount"
ok "remount" pxc_mount "$C" "$M"
ok "small file unchanged after remount" tmo 20 cmp "$T/small.txt" "$M/hello.txt"
ok "10000-byte file unchanged after remount" tmo 20 cmp "$T/rand.bin" "$M/rand.bin"
ok "unmount again" pxc_umount "$M"

# ---- usage errors: exit 2
expect_exit 2 "no subcommand: exit 2" tmo 20 "$PXC_BIN"
expect_exit 2 "unknown subcommand: exit 2" tmo 20 "$PXC_BIN" frobnicate
expect_exit 2 "init without a directory: exit 2" tmo 20 "$PXC_BIN" init --passfile "$PXC_PASSFILE"
expect_exit 2 "init with two directories: exit 2" tmo 20 "$PXC_BIN" init --passfile "$PXC_PASSFILE" "$T/a" "$T/b"
expect_exit 2 "init with an unknown --kdf level: exit 2" tmo 20 "$PXC_BIN" init --kdf bogus --passfile "$PXC_PASSFILE" "$T/c"
expect_exit 2 "init with an unknown option: exit 2" tmo 20 "$PXC_BIN" init --no-such-option "$T/c"
expect_exit 2 "mount without a mount point: exit 2" tmo 20 "$PXC_BIN" mount --passfile "$PXC_PASSFILE" "$C"
expect_exit 2 "mount with an unknown option: exit 2" tmo 20 "$PXC_BIN" mount --no-such-option "$C" "$M"
ok_fails "nothing got mounted by the usage errors" mountpoint -q "$M"
expect_exit 2 "passwd without a directory: exit 2" tmo 20 "$PXC_BIN" passwd --passfile "$PXC_PASSFILE"

# ---- init refuses a non-empty directory and an existing volume
mkdir -p "$T/full"
echo data >"$T/full/existing.txt"
ok_fails "init on a non-empty directory is refused" pxc_init "$T/full"
ok "the existing file is untouched" test "$(cat "$T/full/existing.txt")" = data
ok_fails "init on the non-empty dir created no keystore" test -e "$T/full/.pixcrypt/keystore.db"
cp "$C/.pixcrypt/keystore.db" "$T/ks.before"
ok_fails "init on an existing volume is refused" pxc_init "$C"
ok "the existing keystore is untouched" cmp "$T/ks.before" "$C/.pixcrypt/keystore.db"

# init creates the directory if it does not exist yet, or refuses cleanly: both are
# acceptable; a crash is not.
tmo 60 "$PXC_BIN" init --kdf interactive --passfile "$PXC_PASSFILE" "$T/new/vol" >/dev/null 2>&1
rc=$?
ok "init of a not yet existing directory: created, or a clean error (exit $rc)" test $rc -lt 128 -a $rc -ne 124

# passphrase on stdin (not a terminal): one line for init
mkdir -p "$T/c2"
echo "stdin passphrase" | tmo 60 "$PXC_BIN" init --kdf interactive "$T/c2" >/dev/null 2>"$T/init.err"
ok "init reads the passphrase from stdin" test $? -eq 0
echo "stdin passphrase" >"$T/pf2"
mkdir -p "$T/m2"
_pxc_mounts="$_pxc_mounts $T/m2"
ok "the stdin passphrase mounts the volume" tmo 60 "$PXC_BIN" mount --passfile "$T/pf2" "$T/c2" "$T/m2"
ok "and the mount is live" mountpoint -q "$T/m2"
ok "unmount" pxc_umount "$T/m2"

done_testing
