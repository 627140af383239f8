# Scenario 3: the link is cut about half way through a backup and comes
# back a few seconds later; the next run resumes and does not send again
# what the host had committed.
#
# What a cut wastes is what was sent but not yet committed. The phone's
# sink keeps at most two commits awaiting their receipts, each covering
# about COMMIT_BYTES (4 MiB), plus the puts behind the last one (another
# commit's bytes and a 4 MiB batch): about 16 MiB whatever the host's
# fsync costs. The device holds the chats of three generated phones
# (about 87 MB), so that window stays under the 0.3 of a whole backup
# checked below however slowly the host commits; with one phone's 28 MB
# the check held only while the host kept up.

# device_big ROLE: seed 3's phone plus the chats of seeds 4 and 5.
device_big() {
	local s
	device "$1" 3
	for s in 4 5; do
		"$PB" gen --out "$WORK/$1/extra" --seed "$s" --size small >/dev/null || fail "gen failed"
		mv "$WORK/$1/extra/chats/"* "$WORK/$1/device/chats/" || fail "moving seed $s's chats failed"
		rm -rf "$WORK/$1/extra"
	done
	DEVICE_BYTES=$(du -sb "$WORK/$1/device" | cut -f1)
	DEVICE_FILES=$(find "$WORK/$1/device" -type f | wc -l)
}

scenario() {
	local full half up1 rc committed

	start_imd alice
	start_host
	phone ref "$NET.10"
	phone p "$NET.11"
	device_big ref
	device_big p
	# The reference: the same data backed up without a cut, to know what a
	# whole backup sends.
	pair ref
	backup_ok ref backup-ref
	full=$SENT
	check "reference backup of the same data (another phone): $full bytes sent in $CHUNKS chunks"
	stop_host
	host_verify
	REF_STORE=$(json_get "$(tail -n 1 "$WORK/host-verify.out")" bytes)
	start_host

	half=$((full / 2))
	start_relay "$NET.3" "$NET.2:7450" --cut-after-up "$half" --cut-for-ms 4000
	pair p "$(via_relay "$(host_uri)" "$NET.3")"
	inject "the relay cuts the link (resets every connection, refuses new ones) after $half bytes up, for 4 s"
	rc=0
	backup p backup-1 || rc=$?
	wait_line "$WORK/relay.out" '"event":"cut"' 5
	up1=$(json_get "$(grep '"event":"cut"' "$WORK/relay.out" | head -n 1)" up)
	if [ "$rc" = 0 ]; then
		check "the backup rode out the cut by itself: $(last_event "$WORK/backup-1.out" backup-done)"
		SENT=$(json_get "$(last_event "$WORK/backup-1.out" backup-done)" bytes_sent)
	else
		check "the first run stopped at the cut (status $rc): $(tail -n 1 "$WORK/backup-1.err")"
		wait_line "$WORK/relay.out" '"event":"restored"' 10
		check "link restored after 4 s"
		# What the host committed before the cut, from its own check.
		stop_host
		host_verify
		committed=$(json_get "$(tail -n 1 "$WORK/host-verify.out")" bytes)
		start_host
		backup_ok p backup-2
		check "second run: $(last_event "$WORK/backup-2.out" backup-done)"
		awk -v s="$SENT" -v f="$full" -v c="$committed" -v r="$REF_STORE" \
			'BEGIN { exit !(c - r > 0 && s <= f - 0.95 * (c - r) + 1048576) }' ||
			fail "the second run sent $SENT bytes of $full although $((committed - REF_STORE)) were committed"
		check "the host had committed $((committed - REF_STORE)) bytes of this phone before the cut; the second run sent $SENT bytes, $(awk -v s="$SENT" -v f="$full" 'BEGIN { printf "%.0f", 100 * s / f }')% of a whole backup ($full)"
	fi
	awk -v a="$up1" -v s="$SENT" -v f="$full" 'BEGIN { exit !(a + s <= 1.3 * f) }' ||
		fail "before and after the cut together sent $up1 + $SENT bytes, more than 1.3 x $full"
	check "bytes before the cut ($up1, as the relay counted them) + after ($SENT) = $((up1 + SENT)), whole backup $full"
	restore_ok p restore "$WORK/p/restored"
	same_data "$WORK/p/device" "$WORK/p/restored"
	stop_host
	host_verify
}
