#!/usr/bin/env bash
# The benchmarks. Argument: the directory of built programs.
set -euo pipefail
bin=$1
echo "peerback bench: benchmarks are still being built."
"$bin/peerback" version
