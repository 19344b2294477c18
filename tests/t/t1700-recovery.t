#!/bin/bash
# Recovery codes: init --print-recovery-code and `pixcrypt recovery` print the same code,
# the QR code PNG decodes (zbarimg) to it, and what it says mounts the volume without the
# passphrase; passwd --recovery-code sets a new passphrase; a code with one character
# changed is refused naming its group (exit 3), as is another volume's code.
. "$(dirname "$0")/../lib.sh"
need_pixcrypt

C=$T/cipher
M=$T/mnt
mkdir -p "$M"

# ---- init prints the code and writes the QR code
ok "init --print-recovery-code --qr" sh -c "timeout 60 '$PXC_BIN' init --kdf interactive --passfile '$PXC_PASSFILE' \
    --print-recovery-code --qr '$T/init-qr.png' '$C' >'$T/init.out' 2>'$T/init.err'"
code=$(grep -E '^PXC1-' "$T/init.out")
like "$code" '^PXC1(-[0-9A-HJKMNP-TV-Z]{5}){14}$' "init printed a recovery code: 14 groups of 5"
like "$(cat "$T/init.err")" "keep it offline" "with a warning on stderr"
is "$(stat -c %a "$T/init-qr.png")" 600 "the QR code file is private (0600)"
like "$(file -b "$T/init-qr.png")" "^PNG image data" "and a PNG"

# ---- recovery prints the same code
expect_exit 0 "pixcrypt recovery" tmo 60 "$PXC_BIN" recovery --passfile "$PXC_PASSFILE" --qr "$T/qr.png" "$C"
is "$(cat "$T/last.out")" "$code" "the same code as init printed, alone on stdout"
expect_exit 1 "--qr does not replace an existing file" tmo 60 "$PXC_BIN" recovery --passfile "$PXC_PASSFILE" --qr "$T/qr.png" "$C"
like "$(cat "$T/last.err")" "already exists" "saying so"
echo "not the passphrase" >"$T/wrong"
expect_exit 3 "recovery with a wrong passphrase: exit 3" tmo 60 "$PXC_BIN" recovery --passfile "$T/wrong" "$C"
expect_exit 5 "recovery of a plain directory: exit 5" tmo 60 "$PXC_BIN" recovery --passfile "$PXC_PASSFILE" "$M"

# ---- some content, written with the passphrase
ok "mount with the passphrase" pxc_mount "$C" "$M"
head -c 300000 /dev/urandom >"$T/blob"
cp "$T/blob" "$M/blob"
echo "hello from before" >"$M/note.txt"
if [ -n "${PXC_CORPUS:-}" ] && png=$(find "$PXC_CORPUS" -name '*.png' -size -2M 2>/dev/null | head -n 1) && [ -n "$png" ]; then
    cp "$png" "$M/pic.png"
else
    png=
fi
ok "unmount" pxc_umount "$M"

# ---- the QR code decodes to the code, and that mounts the volume
if command -v zbarimg >/dev/null; then
    zbarimg -q --raw "$T/qr.png" >"$T/qr.txt" 2>"$T/zbar.err"
    is "$(cat "$T/qr.txt")" "$code" "zbarimg reads the code from the QR image"
    zbarimg -q --raw "$T/init-qr.png" >"$T/init-qr.txt" 2>/dev/null
    is "$(cat "$T/init-qr.txt")" "$code" "and from the one init wrote"
else
    skip "zbarimg reads the code from the QR image" "no zbarimg (contrib/deps.sh test installs zbar-tools)"
    skip "and from the one init wrote" "no zbarimg"
    echo "$code" >"$T/qr.txt"
fi
_pxc_mounts="$_pxc_mounts $M"
expect_exit 0 "mount --recovery-code FILE (what the QR code says)" \
    tmo 60 "$PXC_BIN" mount --recovery-code "$T/qr.txt" "$C" "$M"
ok "the blob reads back" cmp "$T/blob" "$M/blob"
is "$(cat "$M/note.txt")" "hello from before" "the note reads back"
if [ -n "$png" ]; then
    ok "the PNG reads back" cmp "$png" "$M/pic.png"
else
    skip "the PNG reads back" "no corpus PNG"
fi
echo "written under the code" >"$M/after.txt"
ok "unmount" pxc_umount "$M"

# typed by hand: lower case, spaces for hyphens, from standard input
echo "$code" | tr 'A-Z-' 'a-z ' >"$T/typed"
expect_exit 0 "mount --recovery-code from standard input, lower case with spaces" \
    tmo 60 "$PXC_BIN" mount --recovery-code "$C" "$M" <"$T/typed"
is "$(cat "$M/after.txt")" "written under the code" "files written under the code read back"
ok "unmount" pxc_umount "$M"
ok "the passphrase still mounts" pxc_mount "$C" "$M"
is "$(cat "$M/after.txt")" "written under the code" "and reads what the code mount wrote"
ok "unmount" pxc_umount "$M"

# ---- one character changed: refused, naming the group, exit 3
orig=${code:17:1}
new=$([ "$orig" = 7 ] && echo 8 || echo 7)
bad="${code:0:17}$new${code:18}"
echo "$bad" >"$T/bad"
expect_exit 3 "a code with one character changed: exit 3" \
    tmo 60 "$PXC_BIN" mount --recovery-code="$T/bad" "$C" "$M"
like "$(cat "$T/last.err")" "group 3 \(${bad:17:5}\)" "the error names group 3 and shows it"
ok_fails "nothing mounted" mountpoint -q "$M"
swapped="${code:0:6}${code:7:1}${code:6:1}${code:8}"
if [ "${code:6:1}" != "${code:7:1}" ]; then
    echo "$swapped" >"$T/swapped"
    expect_exit 3 "two neighbours swapped: exit 3" tmo 60 "$PXC_BIN" mount --recovery-code "$T/swapped" "$C" "$M"
    like "$(cat "$T/last.err")" "group 1 " "naming group 1"
else
    skip "two neighbours swapped: exit 3" "the code has two equal neighbours there"
    skip "naming group 1" "same"
fi
echo "${code%-*}" >"$T/short"
expect_exit 3 "a code missing its last group: exit 3" tmo 60 "$PXC_BIN" mount --recovery-code "$T/short" "$C" "$M"
like "$(cat "$T/last.err")" "length" "a length error"
echo "correct horse" >"$T/notacode"
expect_exit 3 "a passphrase given as a code: exit 3" tmo 60 "$PXC_BIN" mount --recovery-code "$T/notacode" "$C" "$M"
like "$(cat "$T/last.err")" "not a pixcrypt recovery code" "saying it is no recovery code"

# ---- another volume's code
C2=$T/other
ok "init a second volume" sh -c "timeout 60 '$PXC_BIN' init --kdf interactive --passfile '$PXC_PASSFILE' --print-recovery-code '$C2' >'$T/other.out' 2>/dev/null"
grep -E '^PXC1-' "$T/other.out" >"$T/other.code"
expect_exit 3 "the second volume's code on the first: exit 3" \
    tmo 60 "$PXC_BIN" mount --recovery-code "$T/other.code" "$C" "$M"
like "$(cat "$T/last.err")" "not this volume" "the error says it is another volume's key"
ok_fails "nothing mounted" mountpoint -q "$M"

# ---- passwd --recovery-code
echo "new passphrase after loss" >"$T/newpass"
expect_exit 3 "passwd with a mistyped code: exit 3" \
    tmo 60 "$PXC_BIN" passwd --recovery-code "$T/bad" --new-passfile "$T/newpass" "$C"
expect_exit 0 "passwd --recovery-code FILE --new-passfile" \
    tmo 60 "$PXC_BIN" passwd --recovery-code "$T/qr.txt" --new-passfile "$T/newpass" "$C"
expect_exit 3 "the old passphrase no longer mounts" \
    tmo 60 "$PXC_BIN" mount --passfile "$PXC_PASSFILE" "$C" "$M"
expect_exit 0 "the new one does" tmo 60 "$PXC_BIN" mount --passfile "$T/newpass" "$C" "$M"
ok "the blob reads back" cmp "$T/blob" "$M/blob"
ok "unmount" pxc_umount "$M"
expect_exit 0 "the recovery code still works after passwd" \
    tmo 60 "$PXC_BIN" mount --recovery-code "$T/qr.txt" "$C" "$M"
ok "unmount" pxc_umount "$M"

# ---- a keystore from before key checks: the code is refused until a passphrase unlock
if command -v sqlite3 >/dev/null; then
    sqlite3 "$C/.pixcrypt/keystore.db" "DROP TABLE key_check;"
    expect_exit 1 "no key check: the code cannot be verified, exit 1" \
        tmo 60 "$PXC_BIN" mount --recovery-code "$T/qr.txt" "$C" "$M"
    like "$(cat "$T/last.err")" "passphrase" "the error says to unlock with the passphrase once"
    expect_exit 0 "recovery with the passphrase" tmo 60 "$PXC_BIN" recovery --passfile "$T/newpass" "$C"
    expect_exit 0 "after which the code mounts" tmo 60 "$PXC_BIN" mount --recovery-code "$T/qr.txt" "$C" "$M"
    ok "unmount" pxc_umount "$M"
else
    skip "no key check" "no sqlite3 command"
fi

# ---- init on a terminal asks whether to print the code (script(1) gives it a terminal;
# the pauses let each prompt come first, as a terminal prompt flushes typed-ahead input)
if command -v script >/dev/null; then
    for answer in y n; do
        (sleep 1; echo tty-pass; sleep 1; echo tty-pass; sleep 2; echo $answer; sleep 1) |
            timeout 60 script -qec "'$PXC_BIN' init --kdf interactive '$T/tty-$answer'" /dev/null |
            tr -d '\r' >"$T/tty-$answer.out"
    done
    like "$(cat "$T/tty-y.out")" "Print a recovery code now\?" "init on a terminal asks"
    ttycode=$(grep -E '^PXC1-' "$T/tty-y.out")
    like "$ttycode" '^PXC1(-[0-9A-HJKMNP-TV-Z]{5}){14}$' "answered y: it prints the code"
    echo tty-pass >"$T/tty-pass"
    "$PXC_BIN" recovery --passfile "$T/tty-pass" "$T/tty-y" >"$T/tty-y.code" 2>/dev/null
    is "$(cat "$T/tty-y.code")" "$ttycode" "the volume's code"
    # typed on a terminal: shown as typed, then the new passphrase asked (twice)
    echo tty-new >"$T/tty-new"
    (sleep 1; echo "$ttycode"; sleep 2) |
        timeout 60 script -qec "'$PXC_BIN' passwd --recovery-code --new-passfile '$T/tty-new' '$T/tty-y'" /dev/null |
        tr -d '\r' >"$T/tty-passwd.out"
    like "$(cat "$T/tty-passwd.out")" "^Recovery code: $ttycode" "passwd --recovery-code on a terminal: the code is shown as typed"
    like "$(cat "$T/tty-passwd.out")" "Passphrase changed" "and the passphrase changed"
    expect_exit 0 "the new passphrase unlocks" tmo 60 "$PXC_BIN" recovery --passfile "$T/tty-new" "$T/tty-y"
    ok_fails "answered n: no code" grep -qE '^PXC1-' "$T/tty-n.out"
    ok "and the volume was made" test -f "$T/tty-n/.pixcrypt/keystore.db"
else
    skip "init on a terminal asks" "no script(1)"
fi
expect_exit 0 "init without a terminal does not ask" \
    tmo 60 "$PXC_BIN" init --kdf interactive --passfile "$PXC_PASSFILE" "$T/quiet"
ok_fails "and prints no code" grep -qE 'PXC1-|recovery code' "$T/last.out" "$T/last.err"

expect_exit 2 "mount --recovery-code with too many arguments: usage, exit 2" \
    tmo 60 "$PXC_BIN" mount --recovery-code "$T/qr.txt" "$C" "$M" extra
expect_exit 2 "init --qr without --print-recovery-code: exit 2" \
    tmo 60 "$PXC_BIN" init --qr "$T/x.png" --passfile "$PXC_PASSFILE" "$T/third"
done_testing
