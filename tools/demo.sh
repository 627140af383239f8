#!/usr/bin/env bash
# The end-to-end demo on loopback: account service, host showing its QR code,
# a phone pairing from the QR image, backup of a generated phone, restore onto
# a fresh phone, byte-for-byte comparison. Argument: the directory of built
# programs. Everything lives in a temporary directory that is removed after.
set -euo pipefail
bin=$1
size=${PB_DEMO_SIZE:-small}
work=$(mktemp -d "${TMPDIR:-/tmp}/peerback-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

export PEERBACK_PASSWORD="demo password 1"
export PEERBACK_RECOVERY_PASSPHRASE="demo recovery passphrase"
say() { printf '\n==> %s\n' "$*"; }
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

say "starting the IM account service (peerback-imd) with account 'alice'"
"$bin/peerback-imd" --home "$work/imd" add-account alice
"$bin/peerback-imd" --home "$work/imd" serve --listen 127.0.0.1:0 --json >"$work/imd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/imd.log" ] && break; sleep 0.1; done
line=$(head -1 "$work/imd.log")
imd=$(json "$line" listen); key=$(json "$line" key)
echo "service at $imd, key $key"

say "logging the host (a desktop) and the phone into the same account"
"$bin/peerback" --home "$work/host" account login --imd "$imd" --imd-key "$key" --account alice --name desktop
"$bin/peerback" --home "$work/phone" account login --imd "$imd" --imd-key "$key" --account alice --name phone

say "starting the backup host; it shows a one-time pairing QR code"
"$bin/peerback" --home "$work/host" host --listen 127.0.0.1:0 --qr-png "$work/qr.png" >"$work/host.log" 2>"$work/host.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "peerback pair" "$work/host.log" 2>/dev/null && break; sleep 0.1; done
cat "$work/host.log"

say "the phone scans the QR code (from the PNG) and pairs"
"$bin/peerback" --home "$work/phone" pair --qr-image "$work/qr.png"

say "generating a realistic phone ($size): credentials, MIFARE cards, SIM profiles, chats, contacts"
"$bin/peerback" --home "$work/phone" gen --out "$work/phone/device" --seed 42 --size "$size"

say "backing the phone up (encrypted; the host never sees plaintext)"
"$bin/peerback" --home "$work/phone" backup
say "backing up again: nothing changed, nothing is sent"
"$bin/peerback" --home "$work/phone" backup

say "a new phone on the same account pairs with the host and restores with the recovery passphrase"
"$bin/peerback" --home "$work/phone2" account login --imd "$imd" --imd-key "$key" --account alice --name new-phone
uri=$(grep -o "peerback://pair?[^']*" "$work/host.log" | tail -1)
"$bin/peerback" --home "$work/phone2" pair "$uri"
"$bin/peerback" --home "$work/phone2" restore --to "$work/phone2/device"

say "comparing the restored phone with the original, byte for byte"
if diff -r "$work/phone/device" "$work/phone2/device" >/dev/null; then
	echo "identical: $(find "$work/phone/device" -type f | wc -l) files, $(du -sh "$work/phone/device" | cut -f1)"
else
	echo "DIFFERENT" >&2
	exit 1
fi
say "the host's store verifies without any key"
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true; pids[1]=
"$bin/peerback" --home "$work/host" host verify
say "demo complete"
