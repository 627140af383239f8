#!/bin/sh
# Driver of examples/host-on-app-loop.c: EXAMPLE BUILD_DIR (see
# tests/examples/run.sh). test-host-embed starts a real account service,
# runs EXAMPLE as the host, pairs and backs up a real phone against it, and
# checks that the example stopped its host and closed its loop (exit 0).
set -eu
PB_EXAMPLE_HOST_ON_APP_LOOP=$1 exec "$2/tests/test-host-embed"
