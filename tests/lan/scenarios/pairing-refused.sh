# Scenario 6: on one LAN, a phone of another account is refused, and a phone
# that never saw the QR code cannot connect, while a phone of the account
# that scans the code pairs and connects.
scenario() {
	local uri out bad_secret

	start_imd alice mallory
	start_host
	phone good "$NET.10"
	phone other "$NET.11" mallory
	phone stranger "$NET.12"
	uri=$(host_uri)

	inject "a phone logged into another account (mallory) pairs with alice's QR code"
	if pb other --json pair "$uri" >"$WORK/other.out" 2>&1; then
		fail "a phone of another account paired"
	fi
	# The account service refuses the connect ticket: the host never
	# sees the phone.
	wait_line "$WORK/imd.out" '"event":"ticket".*"result":"PB_EACCT_WRONG"' 10
	grep -q '"event":"paired"' "$WORK/host.out" && fail "the host paired someone"
	check "refused by the account service (PB_EACCT_WRONG); phone says: $(tail -n 1 "$WORK/other.out")"

	inject "a phone of the right account guesses: the host key and address from the QR, a made-up secret"
	bad_secret=$(printf 'A%.0s' $(seq 43))
	out=$(echo "$uri" | sed -E "s/([?&])s=[^&]*/\1s=$bad_secret/")
	if pb stranger --json pair "$out" >"$WORK/guess.out" 2>&1; then
		fail "a pairing with a guessed secret succeeded"
	fi
	check "refused; phone says: $(tail -n 1 "$WORK/guess.out")"

	inject "the same phone copies a paired phone's hosts.json (host key and address) and connects with IK"
	new_qr
	pair good
	pb good --json ping >"$WORK/good-ping.out" 2>&1 || fail "the paired phone cannot connect: $(cat "$WORK/good-ping.out")"
	check "the paired phone connects: $(grep -o '"event":"pong"[^}]*' "$WORK/good-ping.out" | head -n 1)"
	cp "$WORK/good/hosts.json" "$WORK/stranger/hosts.json"
	if pb stranger --json ping >"$WORK/stranger-ping.out" 2>&1; then
		fail "a phone that never paired connected"
	fi
	wait_line "$WORK/host.out" '"event":"refused".*"error":"PB_EACCT_UNKNOWN_DEVICE"' 10
	check "refused: host logged PB_EACCT_UNKNOWN_DEVICE; phone says: $(tail -n 1 "$WORK/stranger-ping.out")"

	inject "the other account's phone copies hosts.json too"
	cp "$WORK/good/hosts.json" "$WORK/other/hosts.json"
	if pb other --json ping >"$WORK/other-ping.out" 2>&1; then
		fail "a phone of another account connected"
	fi
	check "refused; phone says: $(tail -n 1 "$WORK/other-ping.out")"

	out=$(nsx host "$PB" --home "$HOST_HOME" --json host devices)
	[ "$(echo "$out" | grep -c '"device"')" = 1 ] && echo "$out" | grep -q '"name":"good"' ||
		fail "the host's paired devices are not just 'good': $out"
	check "the host lists exactly one paired phone (good)"
}
