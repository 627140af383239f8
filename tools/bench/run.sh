#!/usr/bin/env bash
# The benchmarks: peerback beside restic and Borg on the same generated data.
#
#   tools/bench/run.sh BIN_DIR [--quick] [--keep] [--skip-others] [--messages N] [--only PARTS]
#
# BIN_DIR holds the release-built programs (tools/run bench passes
# build-release/tools). --quick runs the small dataset only (a few minutes);
# without it the small and standard (about 1 GiB) datasets run, and
# single-message restores are timed against a store of a million messages
# (built once, kept under bench/work/). restic and borgbackup are installed
# from Debian when missing. Prints a table and writes bench/results.json.
set -euo pipefail
bin=$(cd "$1" && pwd)
shift
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

need=()
command -v restic >/dev/null || need+=(restic)
command -v borg >/dev/null || need+=(borgbackup)
command -v python3 >/dev/null || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "peerback bench: missing Debian packages: ${need[*]}" >&2
		echo "install them with: sudo apt-get install -y ${need[*]}" >&2
		exit 1
	fi
	echo "==> installing Debian packages: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q "${need[@]}" >/tmp/peerback-bench-apt.log 2>&1; then
		apt-get update -q >>/tmp/peerback-bench-apt.log 2>&1
		apt-get install -y -q "${need[@]}" >>/tmp/peerback-bench-apt.log 2>&1 || {
			tail -20 /tmp/peerback-bench-apt.log >&2
			echo "peerback bench: apt-get install failed; see /tmp/peerback-bench-apt.log" >&2
			exit 1
		}
	fi
fi

exec python3 "$top/tools/bench/bench.py" --bin "$bin" "$@"
