#!/usr/bin/env bash
# Peak resident memory of importing a big Telegram export.
#
#   tools/bench/telegram-import-mem.sh [MIB] [BIN_DIR]
#
# Writes a synthetic full export of MIB MiB (default 1024) with
# build/tools/telegram-bigfile, imports it into a scratch device directory
# under /usr/bin/time -v, prints the peak RSS, and removes the files.
set -euo pipefail
mib=${1:-1024}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${2:-$top/build-release/tools}
if [ ! -x "$bin/telegram-bigfile" ]; then
	cmake -S "$top" -B "$top/build-release" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Release \
		-DPB_BUILD_TESTS=OFF >/dev/null
	cmake --build "$top/build-release" -j "${PB_JOBS:-1}" --target telegram-bigfile >/dev/null
	bin=$top/build-release/tools
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/pb-tg-mem.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$bin/telegram-bigfile" write "$work/result.json" "$mib" 4
ls -l "$work/result.json"
/usr/bin/time -v "$bin/telegram-bigfile" import "$work/device" "$work/result.json" 2>"$work/time.txt"
grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$work/time.txt"
du -sh "$work/device"
kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt")
echo "telegram import of ${mib} MiB: peak RSS ${kb} KiB ($((kb / 1024)) MiB)"
if [ "$kb" -gt $((128 * 1024)) ]; then
	echo "FAIL: over the 128 MiB limit" >&2
	exit 1
fi
