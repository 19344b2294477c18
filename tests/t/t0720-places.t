#!/bin/bash
# Places: every stored file is bound to the path it was written at (keystore table
# `places`, MACed under the master key).  A stored file swapped with another stored file
# of the same volume, or moved outside the mount, is refused (EIO, one log line); fsck
# reports it and --accept-moved keeps it where it is.  Renames, links and removals
# through the mount (files, whole directory trees, exchanges) keep the places right;
# a keystore from before places learns them; a rebuilt one records them; a place row
# altered in the keystore does not count.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
command -v sqlite3 >/dev/null || skip_all "sqlite3 not installed"

M=$T/mnt
LOG=$T/daemon.log
mkdir -p "$M"

# read_all DIR: "sha256  relative path" of every regular file under DIR, sorted.
read_all() {
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
}
places() { sqlite3 "$1/.pixcrypt/keystore.db" "SELECT count(*) FROM places"; }
eio() { # eio FILE: reading FILE fails with EIO
    err=$(tmo 30 cat "$1" 2>&1 >/dev/null) && return 1
    printf '%s' "$err" | grep -q "Input/output error"
}

# ---- a tree through the mount: renames of files and directories, links, removals

P=$T/plain
mkdir -p "$P/a/b/c" "$P/d" "$P/e"
for i in 1 2 3 4 5 6; do random_file "$P/a/f$i.bin" $((1000 * i + 7)); done
for i in 1 2 3; do random_file "$P/a/b/g$i.bin" $((5000 + i)); done
random_file "$P/a/b/c/deep.bin" 77777
random_file "$P/d/x.bin" 3000
random_file "$P/d/y.bin" 4000
random_file "$P/e/z.bin" 5000
PNG=
for f in "$PXC_CORPUS"/png/pngsuite/basn2c08.png "$PXC_CORPUS"/png/pngsuite/basn0g08.png; do
    [ -f "$f" ] && cp "$f" "$P/d/" && PNG="$PNG $(basename "$f")"
done

# exchange A B: renameat2(A, B, RENAME_EXCHANGE) (x86-64 and arm64 syscall numbers)
exchange() {
    perl -e '
        my $nr = { x86_64 => 316, aarch64 => 276 }->{(POSIX::uname())[4]} // die "arch\n";
        syscall($nr, -100, $ARGV[0], -100, $ARGV[1], 2) == 0 or die "renameat2: $!\n";
    ' -MPOSIX "$1" "$2"
}

for names in plain encrypted; do
    C=$T/cipher-$names
    mkdir -p "$C"
    if [ $names = plain ]; then
        ok "$names names: init" pxc_init "$C" --plaintext-names
    else
        ok "$names names: init" pxc_init "$C"
    fi
    ok "$names names: mount" pxc_mount "$C" "$M" || done_testing
    cp -a "$P/." "$M/"
    # What the operations below do to the plain tree, done to a copy of it too.
    E=$T/expect-$names
    rm -rf "$E"
    cp -a "$P" "$E"
    ops_ok=1
    do_both() { # do_both CMD ARGS... (paths relative to the tree root)
        local cmd=$1
        shift
        (cd "$M" && "$cmd" "$@") || ops_ok=0
        (cd "$E" && "$cmd" "$@") || ops_ok=0
    }
    do_both mv a/f1.bin a/f1-renamed.bin
    do_both mv a/f2.bin d/f2.bin           # to another directory
    do_both mv -f a/f3.bin d/x.bin         # over an existing file
    do_both mv a/b e/b                     # a directory tree
    do_both mv e a/e2                      # a tree holding that tree
    do_both mkdir -p new/deeper
    do_both mv a/e2 new/deeper/tree
    do_both ln a/f4.bin a/f4-link.bin      # a hard link
    do_both mv a/f4.bin d/f4-moved.bin     # one of its names moved
    do_both rm a/f5.bin
    do_both mv d/y.bin d/y2.bin
    do_both mv d/y2.bin d/y.bin            # and back
    do_both rm -r new/deeper/tree/b/c
    do_both exchange d/x.bin a/f6.bin      # renameat2(RENAME_EXCHANGE): two files
    do_both exchange a new/deeper          # and two directory trees
    do_both exchange new/deeper a
    is "$ops_ok" 1 "$names names: renames, links and removals through the mount"
    is "$(read_all "$M")" "$(read_all "$E")" "$names names: every file reads as expected"
    ok "$names names: unmount" pxc_umount "$M"
    nf=$(cd "$E" && find . -type f | wc -l)
    is "$(places "$C")" "$nf" "$names names: one place per name ($nf), none left over"
    tmo 120 "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
    is "$?" 0 "$names names: fsck clean" || diag_stdin <"$T/fsck.out"
    ok "$names names: mount again" pxc_mount "$C" "$M"
    is "$(read_all "$M")" "$(read_all "$E")" "$names names: the same after a remount"
    ok "$names names: unmount" pxc_umount "$M"
done

# ---- swaps and moves outside the mount (plaintext names: the stored files by name)

C=$T/cipher-plain
E=$T/expect-plain
cp -a "$C" "$T/pristine"
mv "$C/new/deeper/tree/b/g1.bin" "$T/t1"
mv "$C/new/deeper/tree/b/g2.bin" "$C/new/deeper/tree/b/g1.bin"
mv "$T/t1" "$C/new/deeper/tree/b/g2.bin"                   # g1 <-> g2, same directory
mv "$C/a/f1-renamed.bin" "$T/t2"
mv "$C/d/f2.bin" "$C/a/f1-renamed.bin"
mv "$T/t2" "$C/d/f2.bin"                                   # across directories
mv "$C/d/y.bin" "$C/d/y-moved.bin"                         # renamed in the cipher dir
swapped="a/f1-renamed.bin d/f2.bin new/deeper/tree/b/g1.bin new/deeper/tree/b/g2.bin d/y-moved.bin"
if [ -n "$PNG" ]; then
    set -- $PNG
    if [ $# -ge 2 ]; then
        mv "$C/d/$1" "$T/t3" && mv "$C/d/$2" "$C/d/$1" && mv "$T/t3" "$C/d/$2"
        swapped="$swapped d/$1 d/$2"
    fi
fi
ok "mount in the foreground, logging to a file" pxc_mount_fg "$C" "$M" "$LOG" || done_testing
refused=0 logged=0 n=0
for f in $swapped; do
    n=$((n + 1))
    eio "$M/$f" && refused=$((refused + 1)) || diag "$f: read without error"
    eio "$M/$f" # a second read: no second log line
    [ "$(grep -cF "/$f: the stored file is not where it was written" "$LOG")" = 1 ] &&
        logged=$((logged + 1))
done
is "$refused/$n" "$n/$n" "every swapped or moved stored file is refused (EIO)"
is "$logged/$n" "$n/$n" "with one log line naming it"
ok "an untouched file still reads" cmp "$M/a/f4-link.bin" "$E/a/f4-link.bin"
ok "unmount" pxc_umount "$M"

tmo 120 "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
is "$?" 7 "fsck: problems found and left (exit 7)"
miss=0
for f in $swapped; do
    grep -qE "^place: $f: the stored file is not where it was written" "$T/fsck.out" ||
        { miss=$((miss + 1)); diag "fsck does not report $f"; }
done
is "$miss" 0 "fsck reports every one of them as misplaced"
like "$(grep -F "g1.bin: the stored" "$T/fsck.out")" "written at new/deeper/tree/b/g2.bin" \
    "and says where its file id was written"
tmo 120 "$PXC_BIN" fsck -q --repair --passfile "$PXC_PASSFILE" "$C" >/dev/null 2>&1
is "$?" 7 "--repair alone does not accept them (exit 7)"

# decrypt without mounting refuses them too, and decrypts the rest.
tmo 120 "$PXC_BIN" decrypt --volume "$C" --passfile "$PXC_PASSFILE" -q -r "$C" "$T/dec" \
    >"$T/dec.out" 2>&1
is "$?" 1 "decrypt -r of the volume: exit 1"
miss=0
for f in $swapped; do
    grep -F "$f" "$T/dec.out" | grep -q "not where it was written" ||
        { miss=$((miss + 1)); diag "decrypt does not refuse $f"; }
done
is "$miss" 0 "it names every swapped or moved file as not where it was written"
ok "and decrypts the others" cmp "$T/dec/a/f4-link.bin" "$E/a/f4-link.bin"

# Putting them back makes them readable again.
mv "$C/new/deeper/tree/b/g1.bin" "$T/t1"
mv "$C/new/deeper/tree/b/g2.bin" "$C/new/deeper/tree/b/g1.bin"
mv "$T/t1" "$C/new/deeper/tree/b/g2.bin"
ok "mount" pxc_mount "$C" "$M"
ok "a swap undone in the cipher dir reads again" cmp "$M/new/deeper/tree/b/g1.bin" "$E/new/deeper/tree/b/g1.bin"
ok "unmount" pxc_umount "$M"

tmo 120 "$PXC_BIN" fsck -q --accept-moved --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
is "$?" 8 "fsck --accept-moved: all accepted (exit 8)"
tmo 120 "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
is "$?" 0 "then fsck: clean" || diag_stdin <"$T/fsck.out"
ok "mount" pxc_mount "$C" "$M"
ok "an accepted move reads where it is now" cmp "$M/d/y-moved.bin" "$E/d/y.bin"
ok "an accepted swap reads as the other file" cmp "$M/d/f2.bin" "$E/a/f1-renamed.bin"
ok "unmount" pxc_umount "$M"

# ---- a place row altered in the keystore

C=$T/pristine
sqlite3 "$C/.pixcrypt/keystore.db" \
    "UPDATE places SET path = 'd/x.bin' WHERE path = 'a/f6.bin'" || fail "sqlite3 update"
mv "$C/a/f6.bin" "$T/f6" && mv "$C/d/x.bin" "$C/a/f6.bin" && mv "$T/f6" "$C/d/x.bin"
ok "mount (the altered row points a swapped file at its new name)" pxc_mount_fg "$C" "$M" "$LOG"
ok "a place row that does not authenticate does not count" eio "$M/d/x.bin"
ok "unmount" pxc_umount "$M"
tmo 120 "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
like "$(cat "$T/fsck.out")" "place: d/x.bin: a place row that does not authenticate" \
    "fsck reports the altered row"

# ---- a keystore from before places learns them; --repair completes it

C=$T/cipher-encrypted
sqlite3 "$C/.pixcrypt/keystore.db" "DROP TABLE places; DROP TABLE places_state;" ||
    fail "sqlite3 drop"
tmo 120 "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
is "$?" 0 "a volume from before places: fsck clean"
like "$(tail -n 1 "$T/fsck.out")" "places not yet recorded" "and says its places are not recorded yet"
ok "it mounts" pxc_mount "$C" "$M"
is "$(read_all "$M")" "$(read_all "$T/expect-encrypted")" "every file reads (bound where found)"
ok "unmount" pxc_umount "$M"
tmo 120 "$PXC_BIN" fsck -q --repair --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
is "$?" 0 "fsck --repair records the rest: exit 0"
is "$(sqlite3 "$C/.pixcrypt/keystore.db" "SELECT complete FROM places_state")" 1 \
    "the volume now knows every place"
# Now a swap is caught: two stored files in one directory, by their stored names.
s1=$(pxc_stored "$C" d/x.bin) && s2=$(pxc_stored "$C" d/f2.bin) && s3=$(pxc_stored "$C" a/f6.bin)
mv "$s1" "$T/s" && cp "$s3" "$s1" 2>/dev/null
ok "mount" pxc_mount "$C" "$M"
ok "after it, a copy of another stored file in its place is refused" eio "$M/d/x.bin"
ok "the original still reads" cmp "$M/a/f6.bin" "$T/expect-encrypted/a/f6.bin"
ok "unmount" pxc_umount "$M"
mv "$T/s" "$s1"

# ---- a rebuilt keystore records every place

tmo 120 "$PXC_BIN" fsck -q --rebuild-keystore --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
is "$?" 0 "fsck --rebuild-keystore: exit 0" || diag_stdin <"$T/fsck.out"
nf=$(cd "$T/expect-encrypted" && find . -type f | wc -l)
is "$(places "$C")" "$nf" "every name has its place again ($nf)"
is "$(sqlite3 "$C/.pixcrypt/keystore.db" "SELECT complete FROM places_state")" 1 \
    "and the rebuilt keystore knows every place"
mv "$s1" "$T/s" && mv "$s2" "$s1" && mv "$T/s" "$s2"
ok "mount" pxc_mount "$C" "$M"
ok "a swap after the rebuild is refused" eio "$M/d/x.bin"
ok "unmount" pxc_umount "$M"

# ---- kill -9 during renames: every file still reads (each rename's new places are
# written before it, the old ones dropped after), and fsck --repair leaves it clean

C=$T/cipher-crash
mkdir -p "$C"
ok "init a volume for renames under kill -9" pxc_init "$C"
ok "mount" pxc_mount "$C" "$M"
for d in d0 d1 d2 d3; do
    mkdir -p "$M/$d/sub"
    for i in 1 2 3 4 5; do random_file "$M/$d/f$i.bin" $((700 * i + ${d#d})); done
    random_file "$M/$d/sub/s.bin" 999
done
ok "unmount" pxc_umount "$M"
want=$(cd "$T" && mkdir -p crashref && pxc_mount "$C" "$M" && read_all "$M" | cut -c1-64 | sort;
    pxc_umount "$M")
renamer() { # renames files and whole directories until the mount goes away
    local k=${1}000 a b
    while :; do
        k=$((k + 1))
        a=d$((RANDOM % 4))
        b=d$((RANDOM % 4))
        echo >>"$T/renames"
        case $((RANDOM % 3)) in
        0) f=$(ls "$M/$a" 2>/dev/null | grep -m1 '\.bin$') || return 0
           [ -n "$f" ] && { mv "$M/$a/$f" "$M/$b/r$k.bin" || return 0; } ;;
        1) mv "$M/$a" "$M/tmp$k" && mv "$M/tmp$k" "$M/$a" || return 0 ;;
        2) mv "$M/$a/sub" "$M/$b/sub$k" 2>/dev/null && mv "$M/$b/sub$k" "$M/$a/sub" ||
               { mountpoint -q "$M" || return 0; } ;;
        esac
    done
}
bad_rounds=0 unread=0 fsck_bad=0
for r in 1 2 3 4 5 6; do
    pxc_mount "$C" "$M" || { bad_rounds=$((bad_rounds + 1)); break; }
    dp=$(pxc_daemon_pids "$M")
    renamer $r 2>/dev/null &
    rpid=$!
    sleep "0.$((2 + RANDOM % 7))"
    kill -9 $dp
    wait $rpid
    wait_for 10 _pxc_gone "$dp"
    $PXC_FUSERMOUNT -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
    pxc_mount "$C" "$M" || { bad_rounds=$((bad_rounds + 1)); break; }
    got=$(read_all "$M" 2>"$T/read.err" | cut -c1-64 | sort)
    [ -s "$T/read.err" ] && { unread=$((unread + 1)); diag "round $r:" "$(head -n 3 "$T/read.err")"; }
    [ "$got" = "$want" ] || { bad_rounds=$((bad_rounds + 1)); diag "round $r: contents differ"; }
    pxc_umount "$M"
    tmo 120 "$PXC_BIN" fsck -q --repair --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
    frc=$?
    tmo 120 "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C" >"$T/fsck2.out" 2>&1
    frc2=$?
    if [ $frc -gt 8 ] || [ $frc = 7 ] || [ $frc2 != 0 ]; then
        fsck_bad=$((fsck_bad + 1))
        diag "round $r: fsck --repair exit $frc:" "$(head -n 5 "$T/fsck.out")"
    fi
    note "round $r: fsck --repair exit $frc$(grep -c '^place: ' "$T/fsck.out" | sed 's/^/, place lines: /')"
done
nren=$(wc -l <"$T/renames")
note "$nren renames started over 6 rounds"
ok "renames ran before the kills" test "$nren" -ge 30
is "$bad_rounds" 0 "6 rounds of kill -9 during renames: every file's content is there"
is "$unread" 0 "and every file reads"
is "$fsck_bad" 0 "fsck --repair after each leaves the volume clean"

# ---- offline encrypt into the volume records places

C=$T/cipher-offline
mkdir -p "$C"
ok "init a volume for offline encrypt" pxc_init "$C"
tmo 120 "$PXC_BIN" encrypt --volume "$C" --passfile "$PXC_PASSFILE" -q -r "$P" "$C" >"$T/enc.out" 2>&1
is "$?" 0 "encrypt a tree into it" || diag_stdin <"$T/enc.out"
nf=$(cd "$P" && find . -type f | wc -l)
is "$(places "$C")" "$nf" "every file has its place ($nf)"
ok "mount" pxc_mount "$C" "$M"
is "$(read_all "$M"/*)" "$(read_all "$P")" "every file reads through the mount"
ok "unmount" pxc_umount "$M"
tmo 120 "$PXC_BIN" fsck -q --passfile "$PXC_PASSFILE" "$C" >"$T/fsck.out" 2>&1
is "$?" 0 "fsck clean" || diag_stdin <"$T/fsck.out"

# ---- an fsync through the mount makes the file's place durable too: the keystore's
# write-ahead log is synced (it is otherwise synced only at checkpoints)

if command -v strace >/dev/null && command -v python3 >/dev/null; then
    C=$T/cipher-sync
    mkdir -p "$C"
    ok "init a volume for the fsync trace" pxc_init "$C"
    strace -f -qq -o "$T/trace" -e trace=openat,fsync,fdatasync \
        "$PXC_BIN" mount -f --passfile "$PXC_PASSFILE" "$C" "$M" </dev/null >"$T/sync.log" 2>&1 &
    _pxc_pids="$_pxc_pids $!"
    _pxc_mounts="$_pxc_mounts $M"
    ok "mount under strace" wait_for 60 mountpoint -q "$M"
    python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"x" * 5000)
os.fsync(fd)
print("fsynced", flush=True)
os.close(fd)
' "$M/new.bin" >"$T/py.out" 2>&1
    is "$(cat "$T/py.out")" fsynced "a file written and fsynced through the mount"
    ok "unmount" pxc_umount "$M"
    # openat(..., ".../keystore.db-wal", O_RDONLY|O_CLOEXEC) = N, then fsync(N)
    walfds=$(grep -E 'openat\(.*keystore\.db-wal", O_RDONLY\|O_CLOEXEC\) = [0-9]+' "$T/trace" |
        sed -E 's/^([0-9]+) .* = ([0-9]+)$/\1 \2/')
    synced=0
    while read -r pid fd; do
        [ -n "$pid" ] && grep -qE "^$pid +fsync\($fd\) += 0" "$T/trace" && synced=1
    done <<<"$walfds"
    is "$synced" 1 "the daemon fsyncs the keystore's write-ahead log for it"
else
    for k in 1 2 3 4; do skip "fsync trace $k" "no strace or python3"; done
fi

done_testing
