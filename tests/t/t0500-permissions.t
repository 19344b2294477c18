#!/bin/bash
# Who may do what: default_permissions, allow_other with a second user, files created
# by another user belong to that user (also at rest), -o ro, a read-only cipher dir.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt
[ "$(id -u)" = 0 ] || skip_all "needs root (to act as a second user)"
command -v setpriv >/dev/null || skip_all "no setpriv"

C=$T/cipher
M=$T/mnt
mkdir -p "$C" "$M"
chmod 755 "$T"
U=65534 # nobody
G=65534
as_user() { setpriv --reuid=$U --regid=$G --clear-groups -- "$@"; }

ok "init (plaintext names: the test reads stored files by name)" pxc_init "$C" --plaintext-names

# ---- without allow_other, another user cannot even look
ok "mount without allow_other" pxc_mount "$C" "$M"
echo "root's file" >"$M/root.txt"
chmod 644 "$M/root.txt"
ok_fails "nobody cannot list the mount" as_user ls "$M"
ok_fails "nobody cannot read a world-readable file" as_user cat "$M/root.txt"
ok "unmount" pxc_umount "$M"

# ---- with allow_other: the usual Unix permissions apply
ok "mount -o allow_other" pxc_mount "$C" "$M" -o allow_other
is "$(as_user cat "$M/root.txt")" "root's file" "nobody reads a 0644 file"
echo secret >"$M/private.txt"
chmod 600 "$M/private.txt"
ok_fails "nobody cannot read a 0600 file of root's" as_user cat "$M/private.txt"
ok_fails "nobody cannot write a 0644 file of root's" as_user sh -c "echo x >>'$M/root.txt'"
ok_fails "nobody cannot create in root's 0755 directory" as_user touch "$M/nobody-was-here"
ok_fails "nobody cannot chmod root's file" as_user chmod 666 "$M/root.txt"
ok_fails "nobody cannot chown to itself" as_user chown $U "$M/root.txt"

mkdir "$M/shared"
chmod 1777 "$M/shared"
ok "nobody creates a file in a 1777 directory" as_user sh -c "echo mine >'$M/shared/n.txt'"
is "$(stat -c %u:%g "$M/shared/n.txt")" "$U:$G" "it belongs to nobody through the mount"
is "$(stat -c %u:%g "$C/shared/n.txt")" "$U:$G" "and at rest"
ok "nobody creates a directory and a symlink" as_user sh -c "mkdir '$M/shared/nd' && ln -s n.txt '$M/shared/nl'"
is "$(stat -c %u "$M/shared/nd"):$(stat -c %u "$C/shared/nl")" "$U:$U" "owned by nobody too"
ok "nobody chmods its own file" as_user chmod 600 "$M/shared/n.txt"
is "$(stat -c %a "$M/shared/n.txt")" 600 "mode 600 through the mount"
ok "root still reads it" test "$(cat "$M/shared/n.txt")" = mine
echo r >"$M/shared/root-owned"
ok_fails "sticky directory: nobody cannot remove root's file" as_user rm -f "$M/shared/root-owned"
ok "root chowns a file to nobody" chown $U:$G "$M/root.txt"
is "$(stat -c %u:%g "$C/root.txt")" "$U:$G" "chown reaches the stored file"
ok "now nobody may append to it" as_user sh -c "echo more >>'$M/root.txt'"
is "$(tail -n 1 "$M/root.txt")" more "the append landed"

# setgid directory: new entries get the directory's group
mkdir "$M/sgid" && chgrp 100 "$M/sgid" && chmod 2777 "$M/sgid"
ok "nobody creates a file in a setgid directory" as_user touch "$M/sgid/f"
is "$(stat -c %u:%g "$M/sgid/f")" "$U:100" "it gets the directory's group"
ok "unmount" pxc_umount "$M"

# ---- -o ro
ok "mount -o ro" pxc_mount "$C" "$M" -o ro
is "$(cat "$M/shared/n.txt")" mine "reading works read-only"
ok_fails "writing fails read-only" sh -c "echo x >>'$M/root.txt'"
ok_fails "creating fails read-only" touch "$M/new"
ok_fails "removing fails read-only" rm -f "$M/root.txt"
ok "the file is still there" test -f "$M/root.txt"
ok "unmount" pxc_umount "$M"

# ---- a cipher dir on a read-only filesystem mounts read-only by itself
mkdir -p "$T/ro"
_pxc_mounts="$_pxc_mounts $T/ro" # cleanup unmounts it if the test stops early
if mount --bind "$C" "$T/ro" 2>/dev/null && mount -o remount,bind,ro "$T/ro" 2>/dev/null; then
    ok "a read-only cipher dir mounts" pxc_mount "$T/ro" "$M"
    is "$(cat "$M/shared/n.txt")" mine "and reads"
    ok_fails "but does not write" touch "$M/new"
    ok "unmount" pxc_umount "$M"
    umount "$T/ro"
else
    skip "read-only cipher dir" "cannot make a read-only bind mount here"
fi
done_testing
