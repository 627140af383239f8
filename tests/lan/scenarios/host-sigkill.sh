# Scenario 4: the host is killed with SIGKILL in the middle of a backup and
# started again: its store verifies clean and the backup completes.
scenario() {
	local rc i

	start_imd alice
	start_host
	phone p "$NET.10"
	device p 4
	pair p
	backup p backup-1 &
	bpid=$!
	LAN_PIDS+=("$bpid")
	# Half way: wait for progress from the phone, then some more.
	for ((i = 0; i < 300; i++)); do
		[ "$(grep -c '"event":"progress"' "$WORK/backup-1.out" 2>/dev/null || true)" -ge 2 ] && break
		sleep 0.05
	done
	inject "SIGKILL to the host (pid $HOST_PID) after $(grep -c '"event":"progress"' "$WORK/backup-1.out" || true) progress events"
	kill -KILL "$HOST_PID"
	rc=0
	wait "$bpid" || rc=$?
	if [ "$rc" = 0 ]; then
		fail "the backup finished before the host was killed; the device is too small for this machine"
	fi
	check "the phone's backup stopped (status $rc): $(tail -n 1 "$WORK/backup-1.err")"
	host_verify
	mv "$WORK/host.out" "$WORK/host-1.out"
	start_host
	check "host restarted"
	backup_ok p backup-2
	check "backup completed after the restart: $(last_event "$WORK/backup-2.out" backup-done)"
	restore_ok p restore "$WORK/p/restored"
	same_data "$WORK/p/device" "$WORK/p/restored"
	host_verify
}
