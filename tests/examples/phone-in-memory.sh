#!/bin/sh
# Driver of examples/phone-in-memory.c: EXAMPLE BUILD_DIR (see
# tests/examples/run.sh). test-example-phone starts a real account service
# and host, pairs a phone with the CLI, runs EXAMPLE on that phone's home,
# and checks that it backed up, canceled a backup, resumed it and restored
# into memory byte for byte.
set -eu
PB_EXAMPLE_PHONE_IN_MEMORY=$1 exec "$2/tests/test-example-phone"
