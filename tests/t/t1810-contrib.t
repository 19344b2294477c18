#!/bin/bash
# contrib/: `make install-contrib` puts the completion, the systemd user unit and the
# fstab helper in place; a real `mount -t fuse.pixcrypt` and an /etc/fstab line with
# `mount MOUNTPOINT` mount a volume through the helper (in a private mount namespace,
# with the helper bound over /sbin and a test fstab over /etc/fstab there: the
# machine's own stay untouched); the bash completion completes subcommands, options
# and their values; the systemd unit passes `systemd-analyze verify`, and its ExecStart
# and ExecStop lines, run by hand, mount and unmount the volume with the passphrase
# from a file or from a command.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
for t in unshare mount systemd-analyze make; do
    command -v $t >/dev/null || skip_all "$t not installed (contrib/deps.sh test)"
done

C=$T/cipher
M=$T/mnt
mkdir -p "$C" "$M"
ok "init" pxc_init "$C"
ok "mount to put a file in" pxc_mount "$C" "$M"
random_file "$T/data" 100000
cp "$T/data" "$M/data"
ok "unmount" pxc_umount "$M"

# ---- make install-contrib
R=$T/root
expect_exit 0 "make install-contrib DESTDIR=..." make -s -C "$PXC_ROOT" install-contrib DESTDIR="$R" PREFIX=/usr
ok "mount helper installed as /sbin/mount.fuse.pixcrypt, executable" test -x "$R/sbin/mount.fuse.pixcrypt"
ok "bash completion installed" test -s "$R/usr/share/bash-completion/completions/pixcrypt"
ok "systemd user unit installed" test -s "$R/usr/lib/systemd/user/pixcrypt@.service"
like "$(grep '^PIXCRYPT=' "$R/sbin/mount.fuse.pixcrypt")" 'PIXCRYPT:-/usr/bin/pixcrypt' "helper points at the installed binary"

# ---- the fstab helper through mount(8), in a private mount namespace
sbin=$(readlink -f /sbin)
mkdir -p "$T/sbin"
cp "$PXC_ROOT/contrib/mount.pixcrypt" "$T/sbin/mount.fuse.pixcrypt"
printf '%s %s fuse.pixcrypt passfile=%s,ro,noauto,nofail,x-systemd.automount 0 0\n' \
    "$C" "$M" "$PXC_PASSFILE" >"$T/fstab"
printf 'wrong\n' >"$T/wrongpass"
fstab_before=$(sha256sum /etc/fstab 2>/dev/null)
cat >"$T/ns.sh" <<EOF
# Runs in its own mount namespace: what it mounts, binds and unmounts stays there.
export PIXCRYPT=$PXC_BIN
r() { echo "\$1=\$2" >>"$T/ns.out"; }
mount --bind "$T/sbin" "$sbin" || { r bind fail; exit 1; }
mount -t fuse.pixcrypt -o passfile=$PXC_PASSFILE,noauto,nofail,_netdev,cache_mb=64 "$C" "$M" </dev/null
r mount_rc \$?
r mtype "\$(awk -v m="$M" '\$2 == m { print \$3 }' /proc/self/mounts)"
cmp -s "$T/data" "$M/data"; r read_rc \$?
$PXC_FUSERMOUNT -u "$M"; r umount_rc \$?
mount -f -t fuse.pixcrypt -o passfile=$PXC_PASSFILE "$C" "$M" </dev/null
r fake_rc \$?
r fake_mounted "\$(awk -v m="$M" '\$2 == m' /proc/self/mounts | wc -l)"
mount -t fuse.pixcrypt -o passfile=$T/wrongpass "$C" "$M" </dev/null 2>"$T/wrong.err"
r wrong_rc \$?
mount -t fuse.pixcrypt "$C" "$M" </dev/null 2>"$T/nopass.err"
r nopass_rc \$?
mount --bind "$T/fstab" /etc/fstab || { r fstab_bind fail; exit 1; }
mount "$M" </dev/null
r fstab_rc \$?
r fstab_opts "\$(awk -v m="$M" '\$2 == m { print \$4 }' /proc/self/mounts)"
cmp -s "$T/data" "$M/data"; r fstab_read_rc \$?
echo x 2>/dev/null >"$M/new"; r fstab_write_rc \$?
$PXC_FUSERMOUNT -u "$M"; r fstab_umount_rc \$?
EOF
: >"$T/ns.out"
if tmo 120 unshare -m --propagation private bash "$T/ns.sh" >"$T/ns.log" 2>&1; then
    pass "private mount namespace ran"
else
    fail "private mount namespace ran"
    diag_stdin <"$T/ns.log"
fi
got() { sed -n "s/^$1=//p" "$T/ns.out"; }
is "$(got mount_rc)" 0 "mount -t fuse.pixcrypt -o passfile=...: exit 0"
is "$(got mtype)" "fuse.pixcrypt" "mounted, of type fuse.pixcrypt"
is "$(got read_rc)" 0 "a file reads back identical through it"
is "$(got umount_rc)" 0 "unmounted"
is "$(got fake_rc)/$(got fake_mounted)" "0/0" "mount -f: nothing mounted"
isnt "$(got wrong_rc)" 0 "wrong passphrase file: mount fails"
like "$(cat "$T/wrong.err")" "wrong passphrase" "and says why"
isnt "$(got nopass_rc)" 0 "no passfile and no terminal: mount fails"
like "$(cat "$T/nopass.err")" "no passfile= option and no terminal" "and says why"
is "$(got fstab_rc)" 0 "an /etc/fstab line: mount MOUNTPOINT"
like "$(got fstab_opts)" "^ro," "with its options (ro)"
is "$(got fstab_read_rc)" 0 "reads back identical"
isnt "$(got fstab_write_rc)" 0 "and refuses writes (ro)"
is "$(got fstab_umount_rc)" 0 "unmounted"
is "$(sha256sum /etc/fstab 2>/dev/null)" "$fstab_before" "the machine's /etc/fstab unchanged"
ok "nothing left mounted here" test "$(awk -v m="$M" '$2 == m' /proc/self/mounts | wc -l)" = 0
ok "no helper left in the real $sbin" test ! -e "$sbin/mount.fuse.pixcrypt"

# ---- bash completion
complete_words() {
    PATH=$(dirname "$PXC_BIN"):$PATH bash -c '
        . "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        _pixcrypt; printf "%s\n" "${COMPREPLY[@]}"' _ "$PXC_ROOT/contrib/pixcrypt.bash-completion" "$@" |
        sort | tr '\n' ' ' | sed 's/ $//'
}
is "$(complete_words pixcrypt en)" "encrypt encrypt-name" "subcommand: en -> encrypt, encrypt-name"
like "$(complete_words pixcrypt '')" "decrypt .*encrypt .*fsck .*init .*mount .*passwd" "every subcommand"
is "$(complete_words pixcrypt encrypt --vo)" "--volume" "option: encrypt --vo -> --volume"
like "$(complete_words pixcrypt decrypt --)" "--force .*--in-place .*--passfile .*--recursive .*--volume" "decrypt's options"
is "$(complete_words pixcrypt fsck --re)" "--rebuild-keystore --repair" "fsck's options"
is "$(complete_words pixcrypt init --kdf '')" "interactive moderate sensitive" "--kdf values"
is "$(complete_words pixcrypt encrypt --profile c)" "chaos" "--profile values"
is "$(complete_words pixcrypt mount -o ro,allow_o)" "ro,allow_other" "mount -o: the last option of a list"
is "$(complete_words pixcrypt stego '')" "capacity hide reveal" "stego: its actions"
is "$(complete_words pixcrypt stego --passfile f re)" "reveal" "stego: the action after an option and its value"
mkdir -p "$T/compdir/volA" && : >"$T/compdir/volB.pass"
is "$(complete_words pixcrypt mount "$T/compdir/vo")" "$T/compdir/volA" "mount arguments: directories"
is "$(complete_words pixcrypt mount --passfile "$T/compdir/volB")" "$T/compdir/volB.pass" "--passfile: files"

# ---- systemd user unit
U=$R/usr/lib/systemd/user/pixcrypt@.service
mkdir -p "$T/units" "$T/run"
cp "$U" "$T/units/pixcrypt@.service"
XDG_RUNTIME_DIR=$T/run tmo 60 systemd-analyze verify --user --man=no "$T/units/pixcrypt@photos.service" \
    >"$T/verify.out" 2>&1
rc=$?
is "$rc" 0 "systemd-analyze verify --user: exit 0"
is "$(cat "$T/verify.out")" "" "and no complaint"
cp "$T/units/pixcrypt@.service" "$T/units/broken@.service"
sed -i 's/^Type=forking/Type=forkng/' "$T/units/broken@.service"
XDG_RUNTIME_DIR=$T/run systemd-analyze verify --user --man=no "$T/units/broken@x.service" >"$T/verify.out" 2>&1
isnt "$(cat "$T/verify.out")" "" "(a broken copy is reported: the check can fail)"

# ExecStart / ExecStop as systemd would run them: continuation lines joined, $$ and %%
# unescaped, %i the instance, the EnvironmentFile's variables in the environment.
unit_line() {
    awk -v k="$1=" 'index($0, k) == 1 { on = 1; $0 = substr($0, length(k) + 1) }
        on { c = sub(/\\$/, ""); printf "%s", $0; if (!c) exit }' "$U" |
        sed 's/\$\$/$/g; s/%%/%/g; s/%i/photos/g; s/\\\\/\\/g'
}
start=$(unit_line ExecStart)
stop=$(unit_line ExecStop)
like "$start" "^/bin/sh -c " "ExecStart runs a shell"
run_unit_line() { # CONF LINE: the conf read as EnvironmentFile= reads it (VAR=rest of line)
    (
        while IFS= read -r l; do export "${l?}"; done <"$1"
        export VOLUME=photos PIXCRYPT=$PXC_BIN
        eval "$2"
    ) </dev/null
}
printf 'CIPHERDIR=%s\nMOUNTPOINT=%s\nPASSFILE=%s\nMOUNT_OPTIONS=-o cache_mb=32\n' \
    "$C" "$M" "$PXC_PASSFILE" >"$T/photos.conf"
_pxc_mounts="$_pxc_mounts $M"
ok "ExecStart with PASSFILE=: mounts" run_unit_line "$T/photos.conf" "$start"
ok "the volume is mounted" mountpoint -q "$M"
ok "and reads back" cmp "$T/data" "$M/data"
ok "ExecStop unmounts" run_unit_line "$T/photos.conf" "$stop"
ok "not mounted any more" wait_for 10 eval '! mountpoint -q "$M"'
wait_for 10 eval '[ -z "$(pxc_daemon_pids "$M")" ]'
printf 'CIPHERDIR=%s\nMOUNTPOINT=%s\nPASSCMD=cat %s\n' "$C" "$M" "$PXC_PASSFILE" >"$T/photos2.conf"
ok "ExecStart with PASSCMD=: mounts" run_unit_line "$T/photos2.conf" "$start"
ok "and reads back" cmp "$T/data" "$M/data"
ok "ExecStop unmounts" run_unit_line "$T/photos2.conf" "$stop"
wait_for 10 eval '[ -z "$(pxc_daemon_pids "$M")" ]'
printf 'CIPHERDIR=%s\nMOUNTPOINT=%s\nPASSCMD=true\n' "$C" "$M" >"$T/photos3.conf"
ok_fails "no passphrase from the command: fails" run_unit_line "$T/photos3.conf" "$start"
ok "nothing mounted" test "$(mountpoint -q "$M" && echo yes)" = ""
done_testing
