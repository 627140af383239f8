# Scenario 5: sixteen phones back up to one host at the same time: every
# backup completes, every store namespace verifies, every phone's data comes
# back.
scenario() {
	local i pids=() rc failed=0 t0 t1 total=0

	start_imd alice
	start_host
	for i in $(seq 1 16); do
		phone "p$i" "$NET.$((9 + i))"
		device "p$i" "$((100 + i))" 256
		total=$((total + DEVICE_BYTES))
		pair "p$i"
	done
	check "16 phones paired, $total bytes of generated data in all"
	inject "16 backups started at once"
	t0=$(date +%s.%N)
	for i in $(seq 1 16); do
		backup "p$i" "backup-p$i" &
		pids+=($!)
		LAN_PIDS+=($!)
	done
	for i in $(seq 1 16); do
		rc=0
		wait "${pids[$((i - 1))]}" || rc=$?
		if [ "$rc" != 0 ] || [ -z "$(last_event "$WORK/backup-p$i.out" backup-done)" ]; then
			say "backup of p$i failed (status $rc): $(tail -n 2 "$WORK/backup-p$i.err")"
			failed=$((failed + 1))
		fi
	done
	t1=$(date +%s.%N)
	[ "$failed" = 0 ] || fail "$failed of 16 backups failed"
	check "all 16 backups done in $(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') s"
	stop_host
	host_verify
	start_host
	pids=()
	for i in $(seq 1 16); do
		pb "p$i" --json restore --to "$WORK/p$i/restored" >"$WORK/restore-p$i.out" 2>"$WORK/restore-p$i.err" &
		pids+=($!)
		LAN_PIDS+=($!)
	done
	for i in $(seq 1 16); do
		wait "${pids[$((i - 1))]}" || fail "restore of p$i failed: $(tail -n 2 "$WORK/restore-p$i.err")"
	done
	for i in $(seq 1 16); do
		diff -r "$WORK/p$i/device" "$WORK/p$i/restored" >"$WORK/diff-p$i.out" 2>&1 ||
			fail "p$i: restored data differs: $(head -n 3 "$WORK/diff-p$i.out")"
	done
	check "all 16 phones restored (in parallel) exactly what they backed up"
}
