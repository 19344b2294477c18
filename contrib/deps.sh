#!/bin/sh
# contrib/deps.sh MODE -- make sure what MODE needs is installed (Debian 12).
#
#   MODE = build   compiler, make, pkg-config and the -dev libraries
#          test    what `make check` runs: FUSE, prove, image tools, ..., and fuzz's
#          fuzz    clang and its libFuzzer runtime (`make fuzz`)
#          bench   test's packages plus gocryptfs and /usr/bin/time
#          demo    FUSE and ImageMagick
#
# Nothing missing: prints nothing and exits 0 (no apt calls, only dpkg-query,
# pkg-config and command -v).  Something missing: as root, installs it with
# apt-get and carries on; otherwise prints one line
#   sudo apt-get install -y PACKAGES
# and exits 1.  Modes that mount also make sure /dev/fuse exists.
set -eu

usage() {
	echo "usage: sh contrib/deps.sh build|test|bench|demo|fuzz" >&2
	exit 2
}

[ $# -eq 1 ] || usage
mode=$1

missing=""
add() {
	case " $missing " in
	*" $1 "*) ;;
	*) missing="${missing:+$missing }$1" ;;
	esac
}

# need_cmd COMMAND PACKAGE
need_cmd() {
	command -v "$1" >/dev/null 2>&1 || add "$2"
}

# need_pkgs PACKAGE...: one dpkg-query call for all of them.
need_pkgs() {
	installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null |
		awk '$2 == "installed" { printf " %s ", $1 }') || true
	for p in "$@"; do
		case "$installed" in
		*" $p "*) ;;
		*) add "$p" ;;
		esac
	done
}

check_build() {
	need_cmd gcc gcc
	need_cmd make make
	if command -v pkg-config >/dev/null 2>&1; then
		for pair in fuse3:libfuse3-dev libsodium:libsodium-dev sqlite3:libsqlite3-dev \
			libpng:libpng-dev libjpeg:libjpeg62-turbo-dev zlib:zlib1g-dev \
			libqrencode:libqrencode-dev; do
			pkg-config --exists "${pair%%:*}" || add "${pair#*:}"
		done
	else
		add pkg-config
		need_pkgs libfuse3-dev libsodium-dev libsqlite3-dev libpng-dev \
			libjpeg62-turbo-dev zlib1g-dev libqrencode-dev
	fi
}

check_test() {
	need_cmd fusermount3 fuse3
	need_cmd prove perl
	need_cmd setpriv util-linux
	need_cmd runuser util-linux
	need_cmd setfattr attr
	need_cmd pgrep procps
	need_cmd cmp diffutils
	need_cmd file file
	need_cmd rsync rsync
	need_cmd sqlite3 sqlite3
	need_cmd script bsdutils
	need_cmd unshare util-linux
	need_cmd systemd-analyze systemd
	need_cmd strace strace
	need_cmd python3 python3
	need_cmd zbarimg zbar-tools
	need_cmd mandoc mandoc
	need_cmd man man-db
	need_cmd groff groff-base
	# By package: /usr/local/bin/convert may be a stand-in, and some of
	# these commands exist in more than one package.
	need_pkgs imagemagick libjpeg-turbo-progs pngcheck libimage-exiftool-perl \
		zopfli optipng advancecomp pngcrush chromium
	check_fuzz
}

# The fuzz targets (tests/fuzz/): clang, and libFuzzer with the sanitizer runtimes,
# which Debian 12 ships apart from clang.
check_fuzz() {
	need_cmd clang clang
	need_pkgs libclang-rt-14-dev
}

check_bench() {
	check_test
	need_cmd gocryptfs gocryptfs
	[ -x /usr/bin/time ] || add time
}

check_demo() {
	need_cmd fusermount3 fuse3
	need_pkgs imagemagick
}

apt_lists_empty() {
	for f in /var/lib/apt/lists/*_Packages*; do
		[ -e "$f" ] && return 1
	done
	return 0
}

install_missing() {
	export DEBIAN_FRONTEND=noninteractive
	echo "deps.sh ($mode): installing $missing" >&2
	if apt_lists_empty; then
		apt-get update
	fi
	# shellcheck disable=SC2086
	if ! apt-get install -y --no-install-recommends $missing; then
		apt-get update
		# shellcheck disable=SC2086
		apt-get install -y --no-install-recommends $missing
	fi
}

ensure_fuse() {
	[ -c /dev/fuse ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		modprobe fuse >/dev/null 2>&1 || true
		[ -c /dev/fuse ] && return 0
		mknod -m 0666 /dev/fuse c 10 229 >/dev/null 2>&1 || true
		[ -c /dev/fuse ] && return 0
	fi
	cat >&2 <<'EOF'
deps.sh: error: /dev/fuse does not exist, so nothing can be mounted.
  Load the kernel module as root (`modprobe fuse`); in a container, start it
  with the device passed through (e.g. `--device /dev/fuse --cap-add SYS_ADMIN`).
EOF
	exit 1
}

case "$mode" in
build) check_build ;;
test) check_test ;;
bench) check_bench ;;
demo) check_demo ;;
fuzz) check_fuzz ;;
*) usage ;;
esac

if [ -n "$missing" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		install_missing
	else
		echo "sudo apt-get install -y $missing"
		exit 1
	fi
fi

case "$mode" in
test | bench | demo) ensure_fuse ;;
esac
exit 0
