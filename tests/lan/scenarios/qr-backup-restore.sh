# Scenario 1: a phone pairs by scanning the host's QR code, backs up a
# generated phone over the LAN, and a fresh phone in another namespace
# (same account, the recovery passphrase, its own QR pairing) restores it.
scenario() {
	start_imd alice
	start_host
	phone old "$NET.10"
	phone new "$NET.11"
	device old 1
	inject "none (a clean LAN); device: $DEVICE_FILES files, $DEVICE_BYTES bytes (gen --seed 1 --size small)"

	pair_qr old
	check "paired by scanning $WORK/qr.png: $(cat "$WORK/pair-old.out")"
	backup_ok old backup
	check "backup done: snapshot $SNAP, $SENT bytes in $CHUNKS chunks sent in $SECS s ($(mbit "$SENT" "$SECS") Mbit/s)"
	pb old --json ls >"$WORK/ls.out" 2>&1 || fail "ls failed: $(cat "$WORK/ls.out")"
	grep -q "$SNAP" "$WORK/ls.out" || fail "ls does not list snapshot $SNAP"
	pb old --json verify >"$WORK/verify.out" 2>&1 || fail "verify failed: $(tail -n 3 "$WORK/verify.out")"
	check "ls lists the snapshot; phone-side verify: $(tail -n 1 "$WORK/verify.out")"

	pair_qr new
	restore_ok new restore "$WORK/new/restored" --from "$(device_id old)"
	check "restore on the fresh phone: $(last_event "$WORK/restore.out" restore-done)"
	same_data "$WORK/old/device" "$WORK/new/restored"
	stop_host
	host_verify
}
