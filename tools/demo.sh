#!/usr/bin/env bash
# The end-to-end demo on loopback. Argument: the directory of built programs.
set -euo pipefail
bin=$1
echo "peerback demo: the end-to-end flow is still being built; showing what exists."
"$bin/peerback" version
