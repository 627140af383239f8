# Scenario 8: the phone goes away in the middle of a restore (its link is
# cut, then its interface goes down) and comes back: the restore resumes
# and does not fetch again what it already has.
scenario() {
	local full half down2 rc mark kept

	start_imd alice
	start_host
	phone p "$NET.10"
	device p 5
	start_relay "$NET.3" "$NET.2:7450"
	pair p "$(via_relay "$(host_uri)" "$NET.3")"
	backup_ok p backup
	check "backup through the relay: $SENT bytes"
	# The reference: a whole restore through the same relay.
	mark=$(relay_mark)
	restore_ok p restore-ref "$WORK/p/restored-ref"
	full=$(relay_down_since "$mark")
	check "reference restore: $full bytes down through the relay"
	kill -TERM "$RELAY_PID"
	wait "$RELAY_PID" 2>/dev/null || true
	mv "$WORK/relay.out" "$WORK/relay-ref.out"

	half=$((full / 2))
	start_relay "$NET.3" "$NET.2:7450" --cut-after-down "$half"
	inject "after $half bytes down the link is cut and the phone's interface goes down for 4 s"
	rc=0
	pb p --json restore --to "$WORK/p/restored" >"$WORK/restore-1.out" 2>"$WORK/restore-1.err" &
	rpid=$!
	LAN_PIDS+=("$rpid")
	wait_line "$WORK/relay.out" '"event":"cut"' 120
	nsx p ip link set eth0 down
	wait "$rpid" || rc=$?
	sleep 4
	nsx p ip link set eth0 up
	kill -USR2 "$RELAY_PID"
	wait_line "$WORK/relay.out" '"event":"restored"' 10
	[ "$rc" != 0 ] || fail "the restore finished although the phone went away"
	check "the first restore stopped (status $rc): $(tail -n 1 "$WORK/restore-1.err"); phone back"
	kept=$(du -sb "$WORK/p/restore-cache" 2>/dev/null | cut -f1)
	[ -n "$kept" ] && [ "$kept" -gt 0 ] || fail "the interrupted restore kept nothing to resume from"
	check "the interrupted restore kept $kept bytes of fetched chunks"

	mark=$(relay_mark)
	restore_ok p restore-2 "$WORK/p/restored"
	down2=$(relay_down_since "$mark")
	check "second run: $(last_event "$WORK/restore-2.out" restore-done); $down2 bytes down"
	awk -v d="$down2" -v k="$kept" -v f="$full" 'BEGIN { exit !(d <= 0.9 * f && d + k <= 1.05 * f) }' ||
		fail "the resumed restore fetched $down2 bytes of $full with $kept kept: it fetched again what it had"
	check "resumed: $down2 bytes fetched + $kept kept = $((down2 + kept)); a whole restore is $full"
	[ ! -e "$WORK/p/restore-cache" ] || fail "the completed restore left its cache behind"
	same_data "$WORK/p/device" "$WORK/p/restored"
}
