#!/bin/bash
# Trees and sizes: thousands of files, deep directories, UTF-8 and odd names, a
# streamed file larger than memory would like, a sparse 2 GiB file, offsets past 4 GiB.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt

C=$T/cipher
M=$T/mnt
R=$T/ref
mkdir -p "$C" "$M" "$R"
ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names
ok "mount" pxc_mount "$C" "$M" || done_testing

# ---- a tree of 3000 small files in 30 directories, built on the host, copied in
for d in $(seq 1 30); do
    mkdir -p "$R/tree/dir$d"
    for f in $(seq 1 100); do
        printf 'file %d/%d %*s\n' "$d" "$f" $((f * 7)) x >"$R/tree/dir$d/f$f.txt"
    done
done
# deep nesting: 40 levels
p=$R/tree/deep
for i in $(seq 1 40); do p=$p/level$i; done
mkdir -p "$p" && echo bottom >"$p/bottom.txt"
# names: UTF-8, spaces, leading dash, newline-free control-ish chars, 255 bytes
mkdir -p "$R/tree/names"
for n in "grüße.txt" "日本語の名前.png" "emoji 📷 photo.jpg" " leading space" "-dash" \
    "semi;colon" "quote'\"s" "tab	in name" "$(head -c 255 /dev/zero | tr '\0' n)"; do
    printf '%s\n' "$n" >"$R/tree/names/$n"
done
ln -s "grüße.txt" "$R/tree/names/link to grüße"
ln -s /nonexistent/target "$R/tree/names/dangling"
mkdir "$R/tree/empty dir"
: >"$R/tree/empty file"

ok "cp -a a tree of $(find "$R/tree" | wc -l) entries in" tmo 300 cp -a "$R/tree" "$M/"
ok "diff -r: identical" tmo 300 diff -r --no-dereference "$R/tree" "$M/tree"
is "$(cd "$M/tree" && find . | sort | md5sum)" "$(cd "$R/tree" && find . | sort | md5sum)" \
    "find lists the same names"
is "$(readlink "$M/tree/names/link to grüße")" "grüße.txt" "symlink target with UTF-8"
is "$(readlink "$M/tree/names/dangling")" "/nonexistent/target" "dangling symlink"
is "$(cat "$M/tree/deep$(printf '/level%d' $(seq 1 40))/bottom.txt")" bottom "file 40 levels deep"
is "$(ls "$M/tree/dir7" | wc -l)" 100 "a directory of 100 files lists 100"
is "$(ls -l "$M/tree/dir30/f100.txt" | awk '{print $5}')" "$(fsize "$R/tree/dir30/f100.txt")" "ls -l size"

# ---- streaming: 256 MiB through a pipe, checksummed on both sides
want=$(head -c $((256 << 20)) /dev/urandom | tee "$M/stream.bin" | sha256sum)
got=$(tmo 120 sha256sum <"$M/stream.bin")
is "$got" "$want" "256 MiB streamed in and read back (sha256)"
is "$(fsize "$M/stream.bin")" $((256 << 20)) "st_size of the streamed file"
is "$(fsize "$C/stream.bin")" "$(pxc_stored_size $((256 << 20)))" "its stored size"

# ---- sparse: 2 GiB with data at both ends; holes read as zeros and stay holes at rest
ok "truncate -s 2G" truncate -s 2G "$M/sparse.bin"
printf 'START' | dd of="$M/sparse.bin" conv=notrunc status=none
printf 'END' | dd of="$M/sparse.bin" bs=1 seek=$(((2 << 30) - 3)) conv=notrunc status=none
is "$(fsize "$M/sparse.bin")" $((2 << 30)) "sparse file has size 2 GiB"
is "$(head -c 5 "$M/sparse.bin")" START "data at the start"
is "$(tail -c 3 "$M/sparse.bin")" END "data at the end"
is "$(dd if="$M/sparse.bin" bs=1M skip=1000 count=4 status=none | tr -d '\0' | wc -c)" 0 \
    "4 MiB in the middle read as zeros"
used_kb=$(du -k "$C/sparse.bin" | cut -f1)
ok "the stored file stays sparse ($used_kb KiB on disk)" test "$used_kb" -lt 10240

# ---- offsets past 4 GiB (32-bit overflow) and past 2^32 blocks of nothing
printf 'beyond4g' | dd of="$M/big-offset.bin" bs=1 seek=$(((5 << 30) + 12345)) status=none
is "$(fsize "$M/big-offset.bin")" $(((5 << 30) + 12345 + 8)) "write at 5 GiB + 12345 sets the size"
is "$(dd if="$M/big-offset.bin" bs=1 skip=$(((5 << 30) + 12345)) count=8 status=none)" beyond4g \
    "read back at 5 GiB + 12345"
ok "shrink it to 4 GiB + 1" truncate -s $(((4 << 30) + 1)) "$M/big-offset.bin"
is "$(fsize "$C/big-offset.bin")" "$(pxc_stored_size $(((4 << 30) + 1)))" "stored size after shrinking"

ok "unmount" pxc_umount "$M"
ok "remount" pxc_mount "$C" "$M"
ok "diff -r after remount" tmo 300 diff -r --no-dereference "$R/tree" "$M/tree"
is "$(tmo 120 sha256sum <"$M/stream.bin")" "$want" "streamed file after remount"
is "$(tail -c 3 "$M/sparse.bin")" END "sparse file after remount"

# ---- rm -rf of the whole tree leaves nothing behind at rest
ok "rm -rf the tree" tmo 120 rm -rf "$M/tree"
is "$(find "$C" -path "$C/.pixcrypt" -prune -o -path "$C/tree*" -print | wc -l)" 0 "no stored leftovers"
ok "unmount" pxc_umount "$M"
done_testing
