# The LAN scenario runner's library, sourced by tests/lan/lan.sh.
#
# Every scenario gets its own network namespaces pb-<tag>-<scenario>-<role>
# (one per program: account service, host, phones, relay; <tag> names the
# build directory) and one more, pb-<tag>-<scenario>-lan, holding the bridge br0 that joins them through veth
# pairs. Addresses are 10.77.<N>.0/24, on those veths only: nothing leaves
# the namespaces. Everything is removed on any exit.

SRC=${PB_SOURCE_DIR:-$(cd "$LAN_DIR/../.." && pwd)}
BIN=${PB_BINARY_DIR:-$SRC/build}
TOOLS=${PB_TOOLS_DIR:-$BIN/tools}
PB=$TOOLS/peerback
IMD=$TOOLS/peerback-imd
RELAY=$TOOLS/pb-lan-relay
export PEERBACK_PASSWORD="correct-horse-battery"
export PEERBACK_RECOVERY_PASSPHRASE="recovery passphrase for the LAN tests"

LAN_PIDS=()
LAN_OK=0
LAN_T0=$(date +%s.%N)

elapsed() { awk -v a="$(date +%s.%N)" -v b="$LAN_T0" 'BEGIN { printf "%.1f", a - b }'; }
say() { printf '[%s %6ss] %s\n' "$SC" "$(elapsed)" "$*"; }
inject() { say "INJECT: $*"; }
check() { say "CHECK: $*"; }
fail() {
	say "FAIL: $*"
	exit 1
}

# Every scenario has a subnet number; two scenarios never share one, so
# they could run side by side.
lan_subnet() {
	case "$1" in
	qr-backup-restore) echo 1 ;; impaired-backup) echo 2 ;; cut-resume) echo 3 ;;
	host-sigkill) echo 4 ;; sixteen-phones) echo 5 ;; pairing-refused) echo 6 ;;
	rediscover) echo 7 ;; restore-resume) echo 8 ;; *) echo 9 ;;
	esac
}

lan_skip() {
	echo "SKIP: $SC: $*"
	exit 77
}

lan_cleanup() {
	local rc=$? pid ns
	set +e
	for pid in "${LAN_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	sleep 0.3
	for pid in "${LAN_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS-"); do
		# Processes still inside (a program that forked) go with it.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns del "$ns" 2>/dev/null
	done
	if [ "$LAN_OK" != 1 ]; then
		echo "---- $SC failed (status $rc); logs in $WORK; last lines:"
		for f in "$WORK"/*.out "$WORK"/*.err; do
			[ -s "$f" ] || continue
			echo "== $f"
			tail -n 15 "$f"
		done
		[ "$rc" = 0 ] && rc=1
	fi
	exit "$rc"
}

lan_init() {
	SC=$1
	N=$(lan_subnet "$SC")
	NET=10.77.$N
	WORK=$BIN/lan-work/$SC
	# Namespace names carry a tag of the build directory, so that two
	# builds (two checkouts, say) can run their scenarios at the same time
	# without removing each other's namespaces.
	NS=pb-$(printf '%s' "$BIN" | md5sum | cut -c1-6)-$SC
	[ "$(id -u)" = 0 ] || lan_skip "network namespaces need root (run as root, as CI does)"
	command -v ip >/dev/null || lan_skip "iproute2 (ip) is not installed"
	for t in "$PB" "$IMD" "$RELAY"; do
		[ -x "$t" ] || fail "$t is not built (cmake --build build)"
	done
	# Namespaces left over by a run that was killed.
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS-"); do
		ip netns del "$ns" 2>/dev/null || true
	done
	if ! ip netns add "$NS-lan" 2>/dev/null; then
		lan_skip "cannot create a network namespace here (ip netns add failed)"
	fi
	trap lan_cleanup EXIT
	trap 'exit 130' INT TERM
	if ! ip -n "$NS-lan" link add br0 type bridge 2>/dev/null; then
		lan_skip "cannot create a bridge inside a network namespace"
	fi
	ip -n "$NS-lan" link set br0 up
	ip -n "$NS-lan" link set lo up
	rm -rf "$WORK"
	mkdir -p "$WORK"
	say "work directory $WORK, subnet $NET.0/24"
}

lan_pass() {
	LAN_OK=1
	say "PASS ($(elapsed) s)"
}

# lan_node ROLE ADDR: a namespace pb-SC-ROLE with eth0 = ADDR/24 on the bridge.
lan_node() {
	local role=$1 addr=$2 ns=$NS-$1
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip link add eth0 netns "$ns" type veth peer name "p-$role" netns "$NS-lan"
	ip -n "$NS-lan" link set "p-$role" master br0 up
	ip -n "$ns" addr add "$addr/24" dev eth0
	ip -n "$ns" link set eth0 up
}

# in ROLE CMD...: runs CMD inside the role's namespace.
nsx() {
	local role=$1
	shift
	ip netns exec "$NS-$role" "$@"
}

# bg ROLE NAME CMD...: starts CMD in the background in ROLE's namespace,
# stdout to WORK/NAME.out and stderr to WORK/NAME.err; sets BG_PID.
bg() {
	local role=$1 name=$2
	shift 2
	ip netns exec "$NS-$role" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	BG_PID=$!
	LAN_PIDS+=("$BG_PID")
	echo "$BG_PID" >"$WORK/$name.pid"
}

# wait_line FILE REGEX SECONDS: waits for a line matching REGEX in FILE.
wait_line() {
	local f=$1 re=$2 t=$3 i
	for ((i = 0; i < t * 10; i++)); do
		if grep -Eq "$re" "$f" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	fail "no line matching '$re' in $f after $t s"
}

# json_get LINE KEY: a string or number value from a one-line JSON object.
json_get() {
	python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

# --- The account service, hosts and phones ------------------------------------

# start_imd ACCOUNT...: the account service at NET.1 with these accounts.
start_imd() {
	local a line
	lan_node imd "$NET.1"
	for a in "$@"; do
		"$IMD" --home "$WORK/imd" add-account "$a" >/dev/null
	done
	bg imd imd "$IMD" --home "$WORK/imd" serve --listen "$NET.1:7400" --json
	wait_line "$WORK/imd.out" '"listen"' 20
	line=$(head -n 1 "$WORK/imd.out")
	IMD_ADDR=$(json_get "$line" listen)
	IMD_KEY=$(json_get "$line" key)
}

# login ROLE HOME ACCOUNT NAME
login() {
	nsx "$1" "$PB" --home "$2" account login --imd "$IMD_ADDR" --imd-key "$IMD_KEY" --account "$3" --name "$4" \
		>"$WORK/login-$4.out" 2>&1 || fail "login of $4 into $3 failed: $(cat "$WORK/login-$4.out")"
}

# start_host [ARGS...]: the host in namespace "host" (NET.2 unless
# HOST_ADDR is set), listening on every interface at port 7450.
HOST_HOME=
start_host() {
	HOST_HOME=$WORK/host
	if ! ip netns list | grep -q "^$NS-host\b"; then
		lan_node host "${HOST_ADDR:-$NET.2}"
		login host "$HOST_HOME" alice desk
	fi
	# A restart keeps the earlier run's log.
	[ -f "$WORK/host.out" ] && mv "$WORK/host.out" "$WORK/host-$(date +%s%N).out"
	bg host host "$PB" --home "$HOST_HOME" host --json --listen 0.0.0.0:7450 --qr-png "$WORK/qr.png" \
		--qr-ttl 600 --max-failures 1000 --announce-interval 1 "$@"
	HOST_PID=$BG_PID
	wait_line "$WORK/host.out" '"event":"advertise"' 20
}

# host_uri: the latest pairing URI the host advertised.
host_uri() {
	json_get "$(grep '"event":"advertise"' "$WORK/host.out" | tail -n 1)" uri
}

# new_qr: asks the running host for a fresh code and waits for it.
new_qr() {
	local n
	n=$(grep -c '"event":"advertise"' "$WORK/host.out")
	kill -USR1 "$HOST_PID"
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c '"event":"advertise"' "$WORK/host.out")" -gt "$n" ] && return 0
		sleep 0.1
	done
	fail "host showed no new QR code"
}

# phone ROLE ADDR [ACCOUNT]: a phone namespace, logged in (account alice).
phone() {
	lan_node "$1" "$2"
	mkdir -p "$WORK/$1"
	login "$1" "$WORK/$1" "${3:-alice}" "$1"
}

# pb ROLE ARGS...: peerback --home WORK/ROLE ARGS in the role's namespace.
pb() {
	local role=$1
	shift
	nsx "$role" "$PB" --home "$WORK/$role" "$@"
}

# pair ROLE [URI]: pairs with the latest URI (or URI), waits for a fresh one.
pair() {
	local uri=${2:-$(host_uri)} n i
	n=$(grep -c '"event":"advertise"' "$WORK/host.out" || true)
	pb "$1" --json pair "$uri" >"$WORK/pair-$1.out" 2>&1 || fail "$1 could not pair: $(cat "$WORK/pair-$1.out")"
	# The host shows a new code after a pairing: wait for it.
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c '"event":"advertise"' "$WORK/host.out" || true)" -gt "$n" ] && return 0
		sleep 0.1
	done
	fail "the host showed no new code after pairing $1"
}

# pair_qr ROLE: pairs by scanning the host's latest QR code (the PNG it
# writes), as a phone's camera would.
pair_qr() {
	local n i
	n=$(grep -c '"event":"advertise"' "$WORK/host.out" || true)
	cp "$WORK/qr.png" "$WORK/$1/scanned.png"
	pb "$1" --json pair --qr-image "$WORK/$1/scanned.png" >"$WORK/pair-$1.out" 2>&1 ||
		fail "$1 could not pair from the QR image: $(cat "$WORK/pair-$1.out")"
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c '"event":"advertise"' "$WORK/host.out" || true)" -gt "$n" ] && return 0
		sleep 0.1
	done
	fail "the host showed no new code after pairing $1"
}

# --- Impairments ---------------------------------------------------------------

# start_relay ADDR TO [ARGS...]: the impairment relay in namespace "relay"
# at ADDR, listening on ADDR:7460 and forwarding to TO.
start_relay() {
	local addr=$1 to=$2
	shift 2
	ip netns list | grep -q "^$NS-relay\b" || lan_node relay "$addr"
	bg relay relay "$RELAY" relay --listen "$addr:7460" --to "$to" "$@"
	RELAY_PID=$BG_PID
	wait_line "$WORK/relay.out" '"event":"listening"' 10
}

# via_relay URI ADDR: the URI with its addresses replaced by ADDR:7460, so
# the phone reaches the host through the relay.
via_relay() {
	echo "$1" | sed -E "s/([?&])a=[^&]*/\1a=$2:7460/"
}

# loss ROLE PERCENT: drops PERCENT% of the packets entering and leaving the
# role's eth0, at random, counting what it sees and what it drops.
loss() {
	nsx "$1" nft -f - <<NFT
table inet pbloss {
	chain in {
		type filter hook input priority 0; policy accept;
		iifname "eth0" counter
		iifname "eth0" numgen random mod 100 < $2 counter drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		oifname "eth0" counter
		oifname "eth0" numgen random mod 100 < $2 counter drop
	}
}
NFT
}

# loss_counts ROLE: prints "SEEN DROPPED" packet totals of the loss rules.
loss_counts() {
	nsx "$1" nft list table inet pbloss | awk '
		/counter packets/ {
			for (i = 1; i <= NF; i++) if ($i == "packets") v = $(i + 1)
			if ($0 ~ /drop/) d += v; else s += v
		}
		END { print s + 0, d + 0 }'
}

# rate ROLE MBIT: a token bucket on the role's eth0 egress.
rate() {
	nsx "$1" tc qdisc add dev eth0 root tbf rate "${2}mbit" burst 32k latency 400ms
}

# --- Data ----------------------------------------------------------------------

# same_tree A B: the two directories hold the same files with the same bytes.
same_tree() {
	diff -r "$1" "$2" >"$WORK/diff.out" 2>&1
}

# tree_digest DIR: one digest of every file's path and bytes.
tree_digest() {
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

# device ROLE SEED [MAX_KB]: a generated phone in WORK/ROLE/device (the
# default device directory of HOME=WORK/ROLE); with MAX_KB, media files
# larger than that are left out to keep slow links quick.
device() {
	"$PB" gen --out "$WORK/$1/device" --seed "$2" --size small >/dev/null || fail "gen failed"
	if [ -n "${3:-}" ]; then
		find "$WORK/$1/device" -type f -size "+${3}k" ! -name '*.json' -delete
		find "$WORK/$1/device" -type d -empty -delete
	fi
	DEVICE_BYTES=$(du -sb "$WORK/$1/device" | cut -f1)
	DEVICE_FILES=$(find "$WORK/$1/device" -type f | wc -l)
}

# last_event FILE EVENT: the last JSON line of that event in FILE.
last_event() {
	grep "\"event\":\"$2\"" "$1" | tail -n 1
}

# backup ROLE NAME [ARGS...]: one backup run; output in WORK/NAME.out/.err.
backup() {
	local role=$1 name=$2
	shift 2
	pb "$role" --json backup "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
}

# backup_ok ROLE NAME: a backup that must complete; sets SNAP, SENT, CHUNKS, SECS.
backup_ok() {
	backup "$@" || fail "backup $2 failed: $(tail -n 3 "$WORK/$2.err")"
	done_line=$(last_event "$WORK/$2.out" backup-done)
	[ -n "$done_line" ] || fail "backup $2 printed no backup-done"
	SNAP=$(json_get "$done_line" snapshot)
	SENT=$(json_get "$done_line" bytes_sent)
	CHUNKS=$(json_get "$done_line" chunks_sent)
	SECS=$(json_get "$done_line" seconds)
}

# restore_ok ROLE NAME DIR [ARGS...]: a restore into DIR that must complete.
restore_ok() {
	local role=$1 name=$2 dir=$3
	shift 3
	pb "$role" --json restore --to "$dir" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
		fail "restore $name failed: $(tail -n 3 "$WORK/$name.err")"
	[ -n "$(last_event "$WORK/$name.out" restore-done)" ] || fail "restore $name printed no restore-done"
}

# same_data A B: the restored directory B holds exactly the files of A.
same_data() {
	diff -r "$1" "$2" >"$WORK/diff.out" 2>&1 || fail "restored data differs from the backup: $(head -n 5 "$WORK/diff.out")"
	check "restored data equals the backed-up data: $(find "$2" -type f | wc -l) files, $(du -sb "$2" | cut -f1) bytes, digest $(tree_digest "$2")"
}

# stop_host: SIGTERM to the host, and wait for it.
stop_host() {
	kill -TERM "$HOST_PID" 2>/dev/null || true
	wait "$HOST_PID" 2>/dev/null || true
}

# host_verify: the host-side check of every store namespace (the host
# holds the store while it runs: stop it first).
host_verify() {
	"$PB" --home "$HOST_HOME" --json host verify >"$WORK/host-verify.out" 2>&1 ||
		fail "host verify failed: $(tail -n 5 "$WORK/host-verify.out")"
	check "host verify: $(tail -n 1 "$WORK/host-verify.out")"
}

# probe ROLE TO [ARGS...]: measures the path to an echo server (pb-lan-relay probe).
probe() {
	local role=$1
	shift
	nsx "$role" "$RELAY" probe --to "$@"
}

# mbit BYTES SECONDS
mbit() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.2f", b * 8 / s / 1e6 }'; }

# relay_mark: the relay log's length now, for relay_down_since.
relay_mark() { wc -l <"$WORK/relay.out"; }

# relay_down_since MARK: bytes the relay carried host-to-phone on
# connections that closed after MARK.
relay_down_since() {
	tail -n "+$(($1 + 1))" "$WORK/relay.out" | grep '"event":"closed"' |
		python3 -c 'import json,sys; print(sum(json.loads(l)["down"] for l in sys.stdin))'
}

# device_id NAME: the device id of the phone NAME, as the host lists it.
device_id() {
	"$PB" --home "$HOST_HOME" --json host devices |
		python3 -c 'import json,sys; print([d["device"] for d in map(json.loads, sys.stdin) if d["name"] == sys.argv[1]][0])' "$1"
}
