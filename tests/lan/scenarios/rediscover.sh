# Scenario 7: the host's address changes between sessions; the remembered
# phone finds it again from the host's signed LAN announcement, without a
# new QR code. A rogue on the LAN forges announcements all along; the phone
# never follows them, and a rogue that takes over the host's address cannot
# complete the IK handshake.
scenario() {
	local key t0 t1 out n

	start_imd alice
	start_host
	phone roam "$NET.10"
	pair roam
	pb roam --json ping >"$WORK/ping1.out" 2>&1 || fail "first ping failed: $(cat "$WORK/ping1.out")"
	grep -q "\"$NET.2:7450\"" "$WORK/roam/hosts.json" || fail "the phone does not remember $NET.2:7450"
	check "paired; the phone remembers $NET.2:7450 and connects"

	lan_node rogue "$NET.66"
	key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["key"])' "$WORK/roam/hosts.json")
	bg rogue rogue-listen python3 "$LAN_DIR/rogue.py" listen "$NET.66" 7450 "$WORK/rogue-count"
	wait_line "$WORK/rogue-listen.out" listening 10
	bg rogue rogue-announce python3 "$LAN_DIR/rogue.py" announce "$key" "$NET.66" 7450 "$NET.255" 120
	wait_line "$WORK/rogue-announce.out" "captured a real certificate" 10
	inject "a rogue at $NET.66 broadcasts forged announcements of the host's key pointing at itself (a junk certificate, and the host's real certificate with the address changed)"

	inject "the host's address changes from $NET.2 to $NET.52 (host keeps running)"
	nsx host ip addr del "$NET.2/24" dev eth0
	nsx host ip addr add "$NET.52/24" dev eth0
	if nsx roam timeout 3 bash -c "exec 3<>/dev/tcp/$NET.2/7450" 2>/dev/null; then
		fail "the old address still answers"
	fi
	check "the old address $NET.2:7450 no longer answers"

	t0=$(date +%s.%N)
	pb roam --json ping >"$WORK/ping2.out" 2>&1 || fail "the phone did not find the moved host: $(cat "$WORK/ping2.out")"
	t1=$(date +%s.%N)
	grep -q "\"$NET.52:7450\"" "$WORK/roam/hosts.json" || fail "hosts.json does not hold the new address: $(cat "$WORK/roam/hosts.json")"
	n=$(cat "$WORK/rogue-count")
	[ "$n" = 0 ] || fail "the phone connected to the rogue ($n times)"
	check "found the host at $NET.52:7450 from its announcement in $(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') s; hosts.json updated; forged announcements sent: $(tail -n 1 "$WORK/rogue-announce.out" | awk '{print $2}'), rogue connections: 0"

	pb roam --json ping >"$WORK/ping3.out" 2>&1 || fail "third ping failed"
	check "the next session goes straight to the new address: $(grep -o '"connect_ms":[0-9.]*' "$WORK/ping3.out")"

	inject "the host stops; the rogue takes its address $NET.52 and answers on port 7450"
	kill -TERM "$HOST_PID"
	wait "$HOST_PID" 2>/dev/null || true
	nsx host ip link set eth0 down
	nsx rogue ip addr add "$NET.52/24" dev eth0
	# As after the rogue's gratuitous ARP: the phone forgets the host's MAC.
	nsx roam ip neigh flush dev eth0
	bg rogue rogue-impostor python3 "$LAN_DIR/rogue.py" listen "$NET.52" 7450 "$WORK/impostor-count"
	wait_line "$WORK/rogue-impostor.out" listening 10
	if pb roam --json ping >"$WORK/ping4.out" 2>&1; then
		fail "the phone completed a session with the impostor"
	fi
	n=$(cat "$WORK/impostor-count")
	[ "$n" -ge 1 ] || fail "the phone never tried the impostor address"
	grep -q "\"$NET.52:7450\"" "$WORK/roam/hosts.json" || fail "a failed session changed hosts.json"
	check "the impostor got $n connection(s) and no session: $(tail -n 1 "$WORK/ping4.out")"
}
