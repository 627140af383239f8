# Scenario 4: the host is killed with SIGKILL in the middle of a backup and
# started again: its store verifies clean and the backup completes.
scenario() {
	local rc i sent done_ committed mbit ppid paused

	start_imd alice
	# The kill must land in the middle whatever the machine's speed. The
	# host is armed to stop itself (SIGSTOP) inside the first snapshot
	# commit of the backup (PEERBACK_TEST_PAUSE, agent/util/testhook.h):
	# chunks are committed by then and the backup cannot finish before
	# the kill. The phone's link is shaped so the upload takes about 8 s,
	# and the phone is stopped once it reports half the bytes sent and a
	# commit's receipt (bytes committed), so on a slow machine the kill
	# lands there, earlier. Half the bytes sent alone did not mean a
	# commit had landed: what the phone counts as sent includes what waits
	# in its socket, in its sending thread's frames and in the shaped
	# link's queue, and a host whose disk is busy with other work may take
	# a while for its first sync.
	PEERBACK_TEST_PAUSE=snapshot-checked:1 PEERBACK_TEST_PAUSE_FILE="$WORK/host.paused" start_host
	phone p "$NET.10"
	device p 4
	pair p
	mbit=$(awk -v b="$DEVICE_BYTES" 'BEGIN { m = int(b * 8 / 1e6 / 8); print (m < 1 ? 1 : m) }')
	inject "rate: tbf $mbit Mbit/s on the phone's link ($DEVICE_BYTES bytes take about 8 s)"
	rate p "$mbit"
	backup p backup-1 &
	bpid=$!
	LAN_PIDS+=("$bpid")
	sent=0
	for ((i = 0; i < 1200; i++)); do
		read -r sent done_ < <( (grep '"event":"progress"' "$WORK/backup-1.out" 2>/dev/null || true) | tail -n 1 |
			python3 -c 'import json,sys; l=sys.stdin.read(); e=json.loads(l) if l else {}; print(e.get("bytes_sent", 0), e.get("bytes_committed", 0))' || echo 0 0)
		[ "${sent:-0}" -ge $((DEVICE_BYTES / 2)) ] && [ "${done_:-0}" -gt 0 ] && break
		[ -s "$WORK/host.paused" ] && break
		kill -0 "$bpid" 2>/dev/null || break
		sleep 0.05
	done
	ppid=$(pgrep -f -n -- "--home $WORK/p .*backup") || fail "the phone's backup is not running ($sent of $DEVICE_BYTES bytes reported)"
	kill -STOP "$ppid"
	paused=$(cat "$WORK/host.paused" 2>/dev/null || true)
	inject "phone (pid $ppid) stopped at $sent of $DEVICE_BYTES bytes sent, ${done_:-0} committed; host ${paused:-running}; SIGKILL to the host (pid $HOST_PID)"
	kill -KILL "$HOST_PID"
	wait "$HOST_PID" 2>/dev/null || true
	kill -CONT "$ppid"
	rc=0
	wait "$bpid" || rc=$?
	if [ "$rc" = 0 ]; then
		fail "the backup finished although the host was killed in the middle"
	fi
	check "the phone's backup stopped (status $rc): $(tail -n 1 "$WORK/backup-1.err")"
	host_verify
	committed=$(json_get "$(tail -n 1 "$WORK/host-verify.out")" bytes)
	[ "$committed" -gt 0 ] || fail "nothing was committed before the kill: not a mid-backup kill"
	PEERBACK_TEST_PAUSE= start_host
	check "host restarted"
	backup_ok p backup-2
	check "backup completed after the restart: $(last_event "$WORK/backup-2.out" backup-done)"
	awk -v s="$SENT" -v c="$committed" -v d="$DEVICE_BYTES" 'BEGIN { exit !(s <= d - 0.8 * c) }' ||
		fail "the re-run sent $SENT bytes although the host had $committed committed of $DEVICE_BYTES"
	check "the re-run sent $SENT bytes; the host had kept $committed bytes through the kill"
	restore_ok p restore "$WORK/p/restored"
	same_data "$WORK/p/device" "$WORK/p/restored"
	stop_host
	host_verify
}
