#!/bin/sh
# run.sh NAME SOURCE_DIR BUILD_DIR CC [FLAGS]: the test of examples/NAME.c.
#
# Installs the build under a temporary prefix (cmake --install), then
# builds the example the way an application would, with nothing but
# `pkg-config --cflags --libs peerback` (the source tree is not on the
# include path), twice: against libpeerback.so, and statically against
# libpeerback.a with `pkg-config --static`. FLAGS are the build's sanitizer
# flags, which an instrumented library needs at link time. Then runs each:
#
#   tests/examples/NAME.sh EXAMPLE BUILD_DIR    when that driver exists
#   EXAMPLE                                     otherwise (must exit 0)
#
# A driver starts whatever the example needs (peerback-imd, a host, a
# phone: the build's programs are in BUILD_DIR/tools) and checks its
# output; it exits non-zero on failure (77: skipped). It runs in a scratch
# directory of its own ($PWD, removed afterwards) with LD_LIBRARY_PATH on
# the installed library and PB_EXAMPLE_LINK set to "shared" or "static".
set -eu
name=$1 src=$2 build=$3 cc=$4
flags=${5:-}

work=$(mktemp -d "${TMPDIR:-/tmp}/peerback-example-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || {
	cat "$work/install.log" >&2
	exit 1
}
pc=$(find "$prefix" -name peerback.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || { echo "no peerback.pc under $prefix" >&2; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir peerback)
cflags=$(pkg-config --cflags peerback)
libs=$(pkg-config --libs peerback)
static_libs=$(pkg-config --static --libs peerback)
case "$cflags $libs $static_libs" in
*"$src"*) echo "pkg-config names the source tree: $cflags $libs" >&2; exit 1 ;;
esac

# The example is compiled from a copy, so that nothing but the examples'
# own headers (examples/*.h, such as mem-provider.h) is found beside it by
# a quoted #include.
cp "$src/examples/$name.c" "$work/$name.c"
for h in "$src"/examples/*.h; do
	[ -f "$h" ] && cp "$h" "$work/"
done
cd "$work"
# shellcheck disable=SC2086
$cc -std=gnu11 -Wall -Wextra -Werror $flags $cflags -o "$name" "$name.c" $libs
# The same with libpeerback.a: -lpeerback is made to pick the archive.
static_libs=$(echo " $static_libs " | sed 's/ -lpeerback / -Wl,-Bstatic -lpeerback -Wl,-Bdynamic /')
# shellcheck disable=SC2086
$cc -std=gnu11 -Wall -Wextra -Werror $flags $cflags -o "$name-static" "$name.c" $static_libs

if readelf -d "$name-static" | grep -q 'NEEDED.*libpeerback'; then
	echo "$name-static needs libpeerback.so" >&2
	exit 1
fi
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
if ! ldd "./$name" | grep -q "$libdir/libpeerback.so"; then
	echo "$name does not load the installed libpeerback.so:" >&2
	ldd "./$name" >&2
	exit 1
fi

driver=$src/tests/examples/$name.sh
for link in shared static; do
	exe=$work/$name
	[ "$link" = static ] && exe=$work/$name-static
	echo "== $name ($link)"
	mkdir "$work/run-$link"
	rc=0
	if [ -f "$driver" ]; then
		(cd "$work/run-$link" && PB_EXAMPLE_LINK=$link sh "$driver" "$exe" "$build") || rc=$?
	else
		(cd "$work/run-$link" && "$exe") || rc=$?
	fi
	[ "$rc" -eq 0 ] || exit "$rc"
done
