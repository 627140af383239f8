#!/usr/bin/env bash
# The soak test: the host under hostile load while honest phones back up.
#
#   tools/bench/soak.sh BIN_DIR [UNAUTH NOREAD HONEST]
#
# BIN_DIR holds the programs (tools/run soak passes build-release/tools).
# On loopback, at once: UNAUTH (500) connections that never authenticate
# (half silent, half sending a large fragment sequence after the Noise
# handshake; each one closed is opened again), NOREAD (50) paired phones
# sending pings of 60,000 bytes and never reading a reply, and HONEST (20)
# paired phones each backing up a generated small device. Every honest
# backup must complete and `peerback verify` must pass; prints the host's
# peak RSS (VmHWM) and checks it against BOUND_MIB (512), the bound
# docs/PROTOCOL.md gives for this load.
set -euo pipefail
bin=$(cd "$1" && pwd)
unauth=${2:-500}
noread=${3:-50}
honest=${4:-20}
bound_mib=${BOUND_MIB:-512}
work=$(mktemp -d /tmp/peerback-soak.XXXXXX)
export PEERBACK_PASSWORD="soak-password-$$"
export PEERBACK_RECOVERY_PASSPHRASE="soak recovery passphrase"
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "soak: $*" >&2
	exit 1
}

# Waits until file has a line matching pattern (at least n of them).
wait_line() {
	local file=$1 pattern=$2 n=${3:-1} i
	for i in $(seq 1 300); do
		[ "$(grep -c "$pattern" "$file" 2>/dev/null || true)" -ge "$n" ] && return 0
		sleep 0.1
	done
	fail "no '$pattern' in $file"
}

json_str() { sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$1"; }

"$bin/peerback-imd" --home "$work/imd" add-account alice >/dev/null
"$bin/peerback-imd" --home "$work/imd" serve --listen 127.0.0.1:0 --json >"$work/imd.log" 2>&1 &
pids+=($!)
wait_line "$work/imd.log" listening
line=$(head -1 "$work/imd.log")
imd_addr=$(json_str "$line" listen)
imd_key=$(json_str "$line" key)

login() { "$bin/peerback" --home "$1" account login --imd "$imd_addr" --imd-key "$imd_key" --account alice --name "$2" >/dev/null; }

login "$work/host" desk
"$bin/peerback" --home "$work/host" host --json --listen 127.0.0.1:0 --no-announce --no-qr \
	--max-failures 100000 --max-connections $((unauth + noread + honest + 64)) \
	--max-per-address $((unauth + noread + honest + 64)) >"$work/host.log" 2>"$work/host.err" &
host_pid=$!
pids+=($host_pid)
wait_line "$work/host.log" '"event":"advertise"'

echo "==> pairing $honest honest and $noread non-reading phones"
n=1
for kind in honest noread; do
	count=$honest
	[ "$kind" = noread ] && count=$noread
	for i in $(seq 1 "$count"); do
		home="$work/$kind-$i"
		login "$home" "$kind-$i"
		uri=$(json_str "$(grep '"event":"advertise"' "$work/host.log" | tail -1)" uri)
		"$bin/peerback" --home "$home" pair "$uri" >/dev/null || fail "pairing $kind-$i failed"
		n=$((n + 1))
		wait_line "$work/host.log" '"event":"advertise"' "$n"
	done
done
for i in $(seq 1 "$honest"); do
	"$bin/peerback" --home "$work/honest-$i" gen --out "$work/honest-$i/device" --seed "$i" --size small >/dev/null
done
base_kib=$(awk '/VmRSS/ {print $2}' "/proc/$host_pid/status")

echo "==> load: $unauth unauthenticated, $noread not reading; then $honest backups at once"
uri=$(json_str "$(grep '"event":"advertise"' "$work/host.log" | tail -1)" uri)
secs=600
"$bin/soak-peer" unauth "$uri" "$unauth" "$secs" >"$work/unauth.out" 2>&1 &
pids+=($!)
unauth_pid=$!
noread_pids=()
for i in $(seq 1 "$noread"); do
	"$bin/soak-peer" noread "$work/noread-$i" "$secs" >"$work/noread-$i.out" 2>&1 &
	pids+=($!)
	noread_pids+=($!)
done
sleep 5
start=$(date +%s)
backup_pids=()
for i in $(seq 1 "$honest"); do
	"$bin/peerback" --home "$work/honest-$i" --json backup --device "$work/honest-$i/device" \
		>"$work/backup-$i.out" 2>"$work/backup-$i.err" &
	backup_pids+=($!)
done
failed=0
for i in $(seq 1 "$honest"); do
	if ! wait "${backup_pids[$((i - 1))]}"; then
		echo "soak: backup $i failed: $(tail -2 "$work/backup-$i.err")" >&2
		failed=$((failed + 1))
	fi
done
backup_secs=$(($(date +%s) - start))
for i in $(seq 1 "$honest"); do
	if ! "$bin/peerback" --home "$work/honest-$i" --json verify >"$work/verify-$i.out" 2>"$work/verify-$i.err" ||
		! grep -q '"bad_items":0' "$work/verify-$i.out"; then
		echo "soak: verify $i failed: $(tail -2 "$work/verify-$i.err") $(tail -1 "$work/verify-$i.out")" >&2
		failed=$((failed + 1))
	fi
done
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$host_pid/status")
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$host_pid/status")
kill "$unauth_pid" "${noread_pids[@]}" 2>/dev/null || true
wait "$unauth_pid" "${noread_pids[@]}" 2>/dev/null || true
fds=$(ls "/proc/$host_pid/fd" | wc -l)
sleep 0.5
unauth_line=$(cat "$work/unauth.out")
noread_line=$(cat "$work"/noread-*.out | awk '{p += $2; s += $5} END {print p " pings sent, " s " sends stalled by the host"}')

echo
echo "honest backups:        $honest, all at once, done in ${backup_secs} s; failures (backup or verify): $failed"
echo "attackers:             $unauth_line; noread: $noread_line"
echo "host RSS before load:  $((base_kib / 1024)) MiB"
echo "host peak RSS (VmHWM): $((hwm_kib / 1024)) MiB (bound $bound_mib MiB)"
echo "host RSS at the end:   $((rss_kib / 1024)) MiB, $fds descriptors open"
[ "$failed" -eq 0 ] || fail "$failed honest backups did not complete and verify"
[ "$hwm_kib" -le $((bound_mib * 1024)) ] || fail "the host's peak RSS is over $bound_mib MiB"
echo "soak: passed"
