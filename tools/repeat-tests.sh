#!/usr/bin/env bash
# tools/repeat-tests.sh: runs the same tests N times in a row with each of two
# builds, to show that no test depends on timing (how fast the machine or
# the build is):
#
#   sanitizer  build/, exactly as `tools/run test` configures it (clang,
#              Debug, AddressSanitizer, UBSan, -Werror)
#   release    build-release-tests/: gcc, Release (-O2), the tests on, no
#              sanitizers: the programs run several times faster
#
#   tools/repeat-tests.sh [-n RUNS] [-L LABELS] [-b "sanitizer release"] [-o SUMMARY]
#
# RUNS defaults to 5, LABELS (a ctest label regex) to 'unit|lan' (the LAN
# scenarios need root for network namespaces; elsewhere they are skipped).
# Every run of every build is run to its end, also after a failure; each
# prints one line (passed, failed, the failed tests, seconds) and the
# summary goes to SUMMARY (default build-repeat-tests.txt). Exits 1 when
# any run failed. Two of them may run at once on different builds, but not
# both with the label lan (the scenarios' namespaces have fixed names).
# Environment: PB_JOBS (parallel build and test jobs), PB_RELEASE_TESTS_DIR
# (the release build's directory).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

runs=5
labels='unit|lan'
builds="sanitizer release"
summary=$top/build-repeat-tests.txt
while getopts "n:L:b:o:" o; do
	case "$o" in
	n) runs=$OPTARG ;;
	L) labels=$OPTARG ;;
	b) builds=$OPTARG ;;
	o) summary=$(realpath -m "$OPTARG") ;;
	*) sed -n 2,23p "$0" >&2; exit 2 ;;
	esac
done
jobs=${PB_JOBS:-$(nproc)}

configure() {
	case "$1" in
	sanitizer)
		dir=build
		cmake -S . -B build -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
			-DPB_ASAN=ON -DPB_UBSAN=ON -DPB_WERROR=ON -DPB_FUZZ=ON >/dev/null
		;;
	release)
		dir=${PB_RELEASE_TESTS_DIR:-build-release-tests}
		cmake -S . -B "$dir" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Release \
			-DPB_BUILD_TESTS=ON -DPB_ASAN=OFF -DPB_UBSAN=OFF -DPB_FUZZ=OFF >/dev/null
		;;
	*)
		echo "repeat-tests: unknown build $1 (sanitizer or release)" >&2
		exit 2
		;;
	esac
	echo "==> building $1 ($dir)"
	cmake --build "$dir" -j "$jobs" >"$dir/repeat-build.log" 2>&1 || {
		tail -30 "$dir/repeat-build.log" >&2
		exit 1
	}
}

failed_any=0
{
	echo "# tools/repeat-tests.sh -n $runs -L '$labels' -b '$builds'"
	echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) CPUs, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
} >"$summary"
for b in $builds; do
	configure "$b"
	for ((i = 1; i <= runs; i++)); do
		log="$top/$dir/repeat-$(basename "$summary" .txt)-$i.log"
		t0=$(date +%s)
		rc=0
		(cd "$dir" && ctest -L "$labels" --output-on-failure -j "$jobs") >"$log" 2>&1 || rc=$?
		secs=$(($(date +%s) - t0))
		line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
		failed=$(sed -n '/The following tests FAILED/,$p' "$log" | grep -E '^\s+[0-9]+ - ' |
			sed -E 's/^\s+[0-9]+ - //' | tr '\n' ' ' || true)
		skipped=$(grep -c 'Not Run\|\*\*\*Skipped' "$log" || true)
		msg="$b run $i/$runs: ${line:-no ctest summary} (skipped $skipped) in $secs s${failed:+; FAILED: $failed}"
		echo "$msg" | tee -a "$summary"
		[ "$rc" = 0 ] || failed_any=1
	done
done
echo "summary: $summary"
exit "$failed_any"
