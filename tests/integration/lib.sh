# Shared helpers for integration tests. Source it:
#     . "$(dirname "$0")/lib.sh"
# Every test runs inside network namespaces it creates itself and never touches
# the host's firewall. Exit 0 = pass, 77 = skip (say why), anything else = fail.

: "${SY_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${SY_BUILD:=$SY_ROOT/build}"
export SY_ROOT SY_BUILD
# The netfilter backend under test (netfilter.backend): tests/run.sh runs
# every 2x and 4x test once per backend; a test run by hand gets iptables
# unless SY_NF_BACKEND says otherwise. nfctl reads it, and lib-sv.sh writes
# it into the configuration. A test that only makes sense for one backend
# pins it with nf_backend_only (run.sh then runs it once).
: "${SY_NF_BACKEND:=iptables}"
export SY_NF_BACKEND
T_NAME=$(basename "$0")
T_TMP=$(mktemp -d "/tmp/sy-${T_NAME%.*}.XXXXXX")
T_NETNS=()
T_PIDS=()

say() { echo "[$T_NAME] $*"; }
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# check DESCRIPTION COMMAND...: runs the command, fails the test if it fails.
check() {
	local what=$1; shift
	if "$@"; then say "ok: $what"; else fail "$what"; fi
}

t_cleanup() {
	local p ns
	for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.1
	for p in "${T_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	# netns_new usually runs in a command substitution, where its T_NETNS+=
	# is lost; every namespace it makes carries our pid, so find them here.
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -- "-$$\$"); do
		T_NETNS+=("$ns")
	done
	for ns in "${T_NETNS[@]}"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	[ -n "${T_KEEP:-}" ] || rm -rf "$T_TMP"
}
trap t_cleanup EXIT

# nf_backend_only NAME WHY: this test is for one backend; any other skips.
nf_backend_only() {
	[ "$SY_NF_BACKEND" = "$1" ] || skip "$1 only ($2)"
	true
}

# nf_backend_require: the tools that look at the backend's rules.
nf_backend_require() {
	case $SY_NF_BACKEND in
	iptables) command -v iptables-legacy >/dev/null || skip "iptables-legacy not installed" ;;
	nftables) command -v nft >/dev/null || skip "nft (package nftables) not installed" ;;
	*) fail "SY_NF_BACKEND=$SY_NF_BACKEND is neither iptables nor nftables" ;;
	esac
}

require_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces"
	ip netns add "sy-probe-$$" 2>/dev/null || skip "cannot create network namespaces here"
	ip netns del "sy-probe-$$"
}

# netns_new NAME: creates a namespace with loopback up; deleted at exit.
netns_new() {
	local ns="sy-$1-$$"
	ip netns add "$ns" || fail "ip netns add $ns"
	T_NETNS+=("$ns")
	ip -n "$ns" link set lo up
	# Load tests open hundreds of connections a second from one address
	# for minutes: with the default port range (28,000 ports) and 60 s of
	# TIME_WAIT they would run out of source ports (EADDRNOTAVAIL), which
	# is the test's limit, not the product's. Both settings belong to the
	# namespace.
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10240 65000" \
		net.ipv4.tcp_tw_reuse=1 >/dev/null
	echo "$ns"
}

# bg CMD...: starts CMD in the background, killed at exit; sets LAST_PID.
bg() {
	"$@" &
	LAST_PID=$!
	T_PIDS+=("$LAST_PID")
}

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds;
# returns 1 after SECONDS worth of polls. A test waits for the state it
# expects, never for a fixed time: another process or thread acts first,
# and under ASan on a loaded machine that can take seconds.
wait_until() {
	local secs=$1 i; shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# wait_port [NETNS] PORT [SECONDS]: waits until something listens on TCP PORT.
wait_port() {
	local ns=$1 port=$2 secs=${3:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		if [ -n "$ns" ]; then
			ip netns exec "$ns" ss -Hltn "sport = :$port" | grep -q . && return 0
		else
			ss -Hltn "sport = :$port" | grep -q . && return 0
		fi
		sleep 0.05
	done
	return 1
}

# lock_hold FILE: flock(1) holds FILE's lock in the background until
# lock_release; sets LOCK_PID (flock itself: lock holders are named after
# their command). Returns once the lock is held.
lock_hold() {
	rm -f "$T_TMP/lock.fifo"
	mkfifo "$T_TMP/lock.fifo" || fail "mkfifo"
	# -o: cat must not inherit the lock, so flock's exit releases it. cat
	# lives until the write end of the FIFO is closed by lock_release, so
	# the lock is held exactly as long as the test says, never for a guessed
	# time. Opening the write end blocks until cat has opened the FIFO,
	# which flock does only after it has taken the lock.
	flock -o "$1" cat "$T_TMP/lock.fifo" >/dev/null &
	LOCK_PID=$!
	T_PIDS+=("$LOCK_PID")
	exec {LOCK_FD}>"$T_TMP/lock.fifo"
}
lock_release() {
	exec {LOCK_FD}>&-
	wait "$LOCK_PID" 2>/dev/null
}

# gen_certs DIR COUNT [TYPE]: test certificates via the gencerts tool
# (DIR/ca.pem is the root to verify with, DIR/certs/ the served directory,
# DIR/names.txt lists "NAME FILE" pairs).
gen_certs() {
	"$SY_BUILD/tests/tools/gencerts" --out "$1" --count "$2" --type "${3:-ec}" >/dev/null ||
		fail "gencerts $*"
}

# set_file SETDIR FILE: the path that serves FILE in a certsync set (an
# index set names a blob; see CERT_SET_FILE in certstore/cert.h); fails when
# the index does not list it.
set_file() {
	awk -v d="$1" -v f="$2" 'NR == 1 {b = ($3 ~ /^\//) ? $3 : d "/" $3; next}
		$1 == f {print b "/" $2; found = 1; exit} END {exit !found}' "$1/.switchyard-set"
}

# set_count SETDIR: the number of files a certsync index set lists.
set_count() { echo $(($(wc -l <"$1/.switchyard-set") - 1)); }

# set_blobs_ok STATE: every blob that a set under STATE/certsync/sets names
# exists, and every blob is named by some set (none lost, none orphaned).
set_blobs_ok() {
	local cs=$1/certsync
	comm -3 <(for s in "$cs"/sets/*/; do tail -n +2 "$s/.switchyard-set" | cut -d' ' -f2; done | sort -u) \
		<(ls "$cs/blobs" | sort) >"$T_TMP/blobs.diff"
	[ ! -s "$T_TMP/blobs.diff" ] || { echo "named but missing (left) / orphaned (right):"; head "$T_TMP/blobs.diff"; return 1; }
}

# certsync_cfg FILE STATE CERTSYNC-YAML: a configuration for certsync runs
# without a supervisor (--no-reload, or a control socket that does not
# exist): one listener, the current set under STATE as the certificate
# directory, and CERTSYNC-YAML (indented lines) as the certsync section.
certsync_cfg() {
	cat >"$1" <<EOF2
listeners:
  - name: https
    address: 127.0.0.1
    port: 443
instances:
  blue: { ports: [8443] }
  green: { ports: [9443] }
backend:
  servers: [ "127.0.0.1:8080" ]
certificates:
  directory: $2/certsync/current
supervisor:
  state_dir: $2
  control_socket: $T_TMP/no-such-switchyardd.sock
certsync:
$3
EOF2
}
