#!/usr/bin/env bash
# The NFC fallback latency on loopback with a remembered pairing: starts the
# account service and a host, logs a phone in, pairs it, backs up a
# generated phone, then runs bench-nfc (median of ROUNDS fallbacks, each
# from the request to a usable credential fetched from the host).
#
#   tools/bench/nfc-fallback.sh BIN_DIR [ROUNDS] [--json]
set -euo pipefail
bin=$1
rounds=${2:-100}
json=${3:-}
work=$(mktemp -d /tmp/peerback-bench-nfc.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
export PEERBACK_PASSWORD=bench-password PEERBACK_RECOVERY_PASSPHRASE=bench-recovery

# Waits until FILE holds a line with "event":"EVENT"; prints that line.
wait_event() {
	for _ in $(seq 200); do
		if grep -m1 "\"event\":\"$2\"" "$1" 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "nfc-fallback: no $2 event in $1" >&2
	return 1
}

"$bin/peerback-imd" --home "$work/imd" add-account bench >/dev/null
"$bin/peerback-imd" --home "$work/imd" serve --listen 127.0.0.1:0 --json >"$work/imd.log" &
pids+=("$!")
line=$(wait_event "$work/imd.log" listening)
imd_addr=$(sed -E 's/.*"listen":"([^"]*)".*/\1/' <<<"$line")
imd_key=$(sed -E 's/.*"key":"([^"]*)".*/\1/' <<<"$line")

"$bin/peerback" --home "$work/host" account login --imd "$imd_addr" --imd-key "$imd_key" --account bench \
	--name bench-host >/dev/null
"$bin/peerback" --home "$work/phone" account login --imd "$imd_addr" --imd-key "$imd_key" --account bench \
	--name bench-phone >/dev/null
"$bin/peerback" --home "$work/host" host --listen 127.0.0.1:0 --json --no-qr >"$work/host.log" &
pids+=("$!")
line=$(wait_event "$work/host.log" advertise)
uri=$(sed -E 's/.*"uri":"([^"]*)".*/\1/' <<<"$line")
"$bin/peerback" --home "$work/phone" pair "$uri" >/dev/null
"$bin/peerback" --home "$work/phone" gen --out "$work/phone/device" --seed 7 --size small >/dev/null
"$bin/peerback" --home "$work/phone" backup >/dev/null
# A credential that is usable now (the generator also makes expired ones).
id=
for f in "$work/phone/device/credentials"/*.json; do
	c=$(basename "$f" .json)
	if "$bin/peerback" --home "$work/phone" nfc use "$c" >/dev/null 2>&1; then id=$c; break; fi
done
[ -n "$id" ] || { echo "nfc-fallback: no usable credential generated" >&2; exit 1; }
"$bin/bench-nfc" --home "$work/phone" --id "$id" -n "$rounds" $json
