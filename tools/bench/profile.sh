#!/usr/bin/env bash
# tools/bench/profile.sh: where the CPU time of a backup and of a restore
# goes, on the phone and on the host: a standard backup and a full restore
# of a dataset, each program sampled by `perf record -e cpu-clock -g` (this
# machine has no hardware counters), then the top symbols of each profile
# (perf report --no-children --sort dso,symbol), for docs/BENCH.md.
#
#   tools/bench/profile.sh BIN_DIR [small|standard] [TOP]
#
# BIN_DIR holds release-built programs (build-release/tools). The dataset
# (default standard) is the bench's, generated under bench/work/data when
# missing. The perf data files stay in bench/work/profile/ for a closer look
# (perf report -i bench/work/profile/phone-backup.data).
set -euo pipefail
bin=$(cd "$1" && pwd)
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
command -v perf >/dev/null || { echo "profile: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
exec python3 "$top/tools/bench/perfprofile.py" --bin "$bin" --size "${2:-standard}" --top "${3:-25}"
