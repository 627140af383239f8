#!/bin/sh
# Driver of examples/version.c: EXAMPLE BUILD_DIR (see tests/examples/run.sh).
set -eu
out=$("$1")
echo "$out"
echo "$out" | grep -q "^peerback [0-9][0-9.]* (built with [0-9][0-9.]*, protocol [0-9]*)$"
echo "$out" | grep -qx "PB_ESTORE_PASSPHRASE: wrong recovery passphrase"
