# Scenario 2: backup and restore over a bad Wi-Fi: 5% packet loss, 100 ms
# +- 20 ms round trip, 20 Mbit/s. The phone reaches the host through the
# impairment relay (namespace "relay"): the relay delays each direction by
# 50 +- 10 ms, tbf limits its link, nftables drops 5% of its packets at
# random. Every impairment is measured before it is relied on.
scenario() {
	local rtt base bulk seen dropped pct

	start_imd alice
	start_host
	phone p "$NET.10"
	device p 2 1200
	bg host echo "$RELAY" echo --listen "$NET.2:7470"
	wait_line "$WORK/echo.out" listening 10
	start_relay "$NET.3" "$NET.2:7450" --delay-ms 50 --jitter-ms 10
	bg relay relay-probe "$RELAY" relay --listen "$NET.3:7461" --to "$NET.2:7470" --delay-ms 50 --jitter-ms 10
	wait_line "$WORK/relay-probe.out" listening 10
	# The same relay without delay: what this machine adds by itself to a
	# round trip through a relay right now (a loaded machine's timers fire
	# late; that is not the link's fault).
	bg relay relay-base "$RELAY" relay --listen "$NET.3:7462" --to "$NET.2:7470"
	wait_line "$WORK/relay-base.out" listening 10

	inject "rate: tbf 20 Mbit/s on the relay's link"
	rate relay 20
	bulk=$(probe p "$NET.3:7461" --count 5 --bulk 8000000 | grep '"bulk"')
	rate_m=$(json_get "$bulk" mbit_s)
	awk -v r="$rate_m" 'BEGIN { exit !(r <= 21 && r >= 8) }' || fail "measured $rate_m Mbit/s, not about 20"
	check "measured rate through the relay: $rate_m Mbit/s (8 MB one way)"

	inject "latency: 50 +- 10 ms each way in the relay (100 +- 20 ms round trip)"
	base=$(probe p "$NET.3:7462" --count 40 | grep '"rtt"')
	rtt=$(probe p "$NET.3:7461" --count 40 | grep '"rtt"')
	# The median and the spread of most samples, beyond what the machine
	# adds without the delay (measured just before); a lone late sample
	# does not make the link wrong.
	awk -v m="$(json_get "$rtt" p50_ms)" -v mn="$(json_get "$rtt" min_ms)" -v p9="$(json_get "$rtt" p90_ms)" \
		-v b5="$(json_get "$base" p50_ms)" -v b9="$(json_get "$base" p90_ms)" \
		'BEGIN { exit !(m - b5 >= 90 && m - b5 <= 115 && mn >= 78 && p9 - b9 <= 135) }' ||
		fail "round trip not 100 +- 20 ms beyond the machine's own $base: $rtt"
	check "measured round trip: $rtt (without the delay: $base)"

	inject "loss: nftables drops 5% of the packets in and out of the relay"
	loss relay 5
	pair p "$(via_relay "$(host_uri)" "$NET.3")"
	grep -q "\"$NET.3:7460\"" "$WORK/p/hosts.json" || fail "the phone does not go through the relay"
	backup_ok p backup
	read -r seen dropped <<<"$(loss_counts relay)"
	pct=$(awk -v s="$seen" -v d="$dropped" 'BEGIN { printf "%.1f", 100 * d / (s ? s : 1) }')
	check "backup done through the relay: $SENT bytes in $SECS s ($(mbit "$SENT" "$SECS") Mbit/s); $DEVICE_FILES files"
	check "loss during the backup: $dropped of $seen packets dropped ($pct%)"

	restore_ok p restore "$WORK/p/restored"
	check "restore through the same link: $(last_event "$WORK/restore.out" restore-done)"
	same_data "$WORK/p/device" "$WORK/p/restored"
	read -r seen dropped <<<"$(loss_counts relay)"
	pct=$(awk -v s="$seen" -v d="$dropped" 'BEGIN { printf "%.1f", 100 * d / (s ? s : 1) }')
	# 5% within a 99.9% binomial interval for the packets counted (the
	# kernel counts a segmentation-offload batch as one packet, so how many
	# a run sees varies): about 3.5-6.5% at 2,000 packets.
	awk -v d="$dropped" -v s="$seen" \
		'BEGIN { m = 0.05 * s; e = 3.3 * sqrt(s * 0.05 * 0.95) + 1; exit !(s >= 40 && d >= m - e && d <= m + e) }' ||
		fail "loss not about 5%: $dropped of $seen packets"
	check "measured loss over backup and restore: $dropped of $seen packets dropped ($pct%)"
	stop_host
	host_verify
}
