#!/usr/bin/env bash
# Runs one LAN scenario: tests/lan/lan.sh NAME (as root). Scenarios live in
# tests/lan/scenarios/NAME.sh; docs/TESTING.md describes each one.
#
# Exit status: 0 passed, 77 skipped (no network namespaces here; the reason
# is printed), anything else failed.
set -euo pipefail

LAN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -ne 1 ] || [ ! -f "$LAN_DIR/scenarios/$1.sh" ]; then
	echo "usage: $0 SCENARIO   (one of: $(cd "$LAN_DIR/scenarios" && ls | sed 's/\.sh$//' | tr '\n' ' '))" >&2
	exit 2
fi
# shellcheck source=tests/lan/lib.sh
. "$LAN_DIR/lib.sh"
# shellcheck disable=SC1090
. "$LAN_DIR/scenarios/$1.sh"
lan_init "$1"
scenario
lan_pass
