#!/bin/bash
# The manual pages: mandoc -Tlint finds nothing, man -l renders them with groff, they
# cover every subcommand, every long option of every command's source and every exit
# code, and `make install` puts them in man1 and man5.
. "$(dirname "$0")/../lib.sh"
cd "$PXC_ROOT" || exit 1
PAGES="man/pixcrypt.1 man/pixcrypt-format.5"

if command -v mandoc >/dev/null; then
    for p in $PAGES; do
        out=$(mandoc -Tlint -Wall "$p" 2>&1)
        rc=$?
        is "$rc:$out" "0:" "mandoc -Tlint: $p is clean"
    done
else
    for p in $PAGES; do skip "mandoc -Tlint: $p" "no mandoc (contrib/deps.sh test installs it)"; done
fi

if command -v man >/dev/null && command -v groff >/dev/null; then
    for p in $PAGES; do
        MANWIDTH=80 man -l "$p" >"$T/rendered" 2>"$T/render.err"
        rc=$?
        is "$rc" 0 "man -l $p renders"
        is "$(grep -v '^$' "$T/render.err" | head -n 3)" "" "without warnings from groff"
        like "$(head -n 1 "$T/rendered")" "^PIXCRYPT" "with its title line"
    done
    MANWIDTH=80 man -l man/pixcrypt.1 2>/dev/null >"$T/p1"
    for s in NAME SYNOPSIS DESCRIPTION COMMANDS "EXIT STATUS" FILES "SEE ALSO"; do
        ok "pixcrypt(1) has the section $s" grep -q "^$s" "$T/p1"
    done
    MANWIDTH=80 man -l man/pixcrypt-format.5 2>/dev/null >"$T/p5"
    for s in "FILE HEADER" "OPAQUE FILES" "PNG FILES" "JPEG FILES" KEYSTORE "MASTERKEY FILE" \
        "RECOVERY CODES" "STEGO IMAGES"; do
        ok "pixcrypt-format(5) has the section $s" grep -q "^$s" "$T/p5"
    done
    ok "the table of the file header is rendered (tbl)" grep -Eq '^ +16 +16 +file id' "$T/p5"
else
    skip "man -l renders" "no man or groff"
fi

# ---- coverage: every subcommand main.c dispatches, every long option in fs/cmd_*.c
src=$(sed -n 's/.*strcmp(cmd, "\([a-z][a-z-]*\)") == 0)$/\1/p' fs/main.c | sort -u)
ok "main.c dispatches subcommands (found: $(echo $src | tr '\n' ' '))" test -n "$src"
missing=
for c in $src; do
    case $c in help | version) continue ;; esac
    grep -q "^\.SS $(printf '%s' "$c" | sed 's/-/\\\\-/g')\$" man/pixcrypt.1 || missing="$missing $c"
done
is "$missing" "" "every subcommand has its own subsection in pixcrypt(1)"
missing=
for o in $(grep -ho '{"[a-z][a-z-]*", \(no\|required\|optional\)_argument' fs/cmd_*.c | cut -d'"' -f2 | sort -u); do
    [ "$o" = help ] && continue
    grep -q -- "\\\\-\\\\-$(printf '%s' "$o" | sed 's/-/\\\\-/g')" man/pixcrypt.1 || missing="$missing --$o"
done
is "$missing" "" "every long option of every command is in pixcrypt(1)"
missing=
for code in $(sed -n 's/^ *PXC_EXIT_[A-Z_]* = \([0-9]*\),.*/\1/p' fs/cli.h); do
    awk '/^\.SH EXIT STATUS/ { on = 1; next } /^\.SH/ { on = 0 } on' man/pixcrypt.1 |
        grep -qx "\.B $code" || missing="$missing $code"
done
is "$missing" "" "every exit code of fs/cli.h is under EXIT STATUS"

# ---- make install puts both pages in place (-o pixcrypt: the binary as built, not
# rebuilt here under other flags)
if [ ! -x pixcrypt ]; then
    skip "make install" "no ./pixcrypt built (make builds it)"
elif make -s -o pixcrypt install DESTDIR="$T/root" PREFIX=/usr >"$T/install.log" 2>&1; then
    ok "make install: pixcrypt(1) in man1" test -f "$T/root/usr/share/man/man1/pixcrypt.1"
    ok "make install: pixcrypt-format(5) in man5" test -f "$T/root/usr/share/man/man5/pixcrypt-format.5"
    ok "make install: the binary" test -x "$T/root/usr/bin/pixcrypt"
    if command -v man >/dev/null; then
        MANPATH=$T/root/usr/share/man man -w pixcrypt-format >"$T/where" 2>/dev/null
        like "$(cat "$T/where")" "man5/pixcrypt-format.5" "man finds pixcrypt-format by name"
    fi
else
    fail "make install"
    diag_stdin <"$T/install.log"
fi
done_testing
