#!/bin/bash
# bench/30-proxy.sh BUILD: switchyard-proxy side by side with HAProxy 2.6 on
# the same 10,000 ECDSA certificates, the same echo backend and the same
# thread count, inside a private network namespace (loopback only).
#
# Figures (see docs/proxy.md "Benchmark figures" for their meaning):
#   cpu_us_per_conn  server process CPU time (utime+stime from /proc/PID/stat)
#                    / connections completed; each connection is a new TLS 1.3
#                    handshake with a random SNI, chain + host name verified by
#                    the client, one 64-byte request echoed back.
#   scaling_2v1      2 x (cpu_us_per_conn at 1 worker) / (at 2 workers): the
#                    connections/s two workers give per one, from CPU cost, as
#                    the load generator shares the 2 cores.
#   bulk_MBps        100 MB echoed through one connection (wall clock).
#   idle_rss_MB      server RSS with 9,500 idle TLS connections (after one
#                    request each), and the growth over the RSS before them.
#                    (9,500 because the hard descriptor limit here is 20,000
#                    and each proxied connection holds two.)
# Env: BENCH_CONNS (default 4000), BENCH_IDLE (default 9500), BENCH_SERVERS
# (default "switchyard haproxy"), TICKETS (on|off, default on: session
# tickets on both servers or on neither, see bench/lib-proxy.sh).
set -u
BUILD=${1:-build}
: "${SY_BENCH_CACHE:=/var/tmp/switchyard-bench}"
CONNS=${BENCH_CONNS:-4000}
IDLE=${BENCH_IDLE:-9500}
PKI=$SY_BENCH_CACHE/ec10k
LG=$BUILD/bench/loadgen
ECHO=$BUILD/tests/tools/echo_backend
PROXY=$BUILD/switchyard-proxy
TMP=$(mktemp -d /tmp/sy-bench-px.XXXXXX)
NS=sy-bench-px-$$
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.2
	ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/lib-proxy.sh"

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root for a network namespace"; exit 0; }
for f in "$LG" "$ECHO" "$PROXY"; do [ -x "$f" ] || { echo "skip: $f not built"; exit 0; }; done
if [ ! -f "$PKI/names.txt" ] || [ "$(ls "$PKI/certs" | wc -l)" -lt 10000 ]; then
	"$BUILD/tests/tools/gencerts" --out "$PKI" --count 10000 --type ec >/dev/null || exit 1
fi
# 10k idle connections need 2 descriptors each in the server.
ulimit -n "$(ulimit -Hn)"
ip netns add "$NS" && ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
ip netns exec "$NS" "$ECHO" -l 127.0.0.1:9000 &
PIDS+=($!)
SPID=$!

# wait_port PORT: until the server listens (it may take a while to load 10k
# certificates); fails if the server died.
wait_port() {
	for ((i = 0; i < 3000; i++)); do
		in_ns ss -Hltn "sport = :$1" | grep -q . && return 0
		kill -0 "$SPID" 2>/dev/null || { tail -3 "$TMP"/*.log >&2; return 1; }
		sleep 0.1
	done
	echo "port $1 never opened" >&2
	return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

# start NAME THREADS: starts the server, sets SPID.
start() {
	if [ "$1" = switchyard ]; then
		sy_config "$TMP/sy.yaml" sy 8443 "$2"
		ip netns exec "$NS" "$PROXY" -c "$TMP/sy.yaml" -i blue 2>"$TMP/sy.log" &
	else
		ha_config "$TMP/ha.cfg" 8443 "$2"
		ip netns exec "$NS" haproxy -db -f "$TMP/ha.cfg" 2>"$TMP/ha.log" &
	fi
	SPID=$!
	PIDS+=($SPID)
	wait_port 8443 || exit 1
	sleep 0.5
}
stop_server() {
	kill "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	for ((i = 0; i < 300; i++)); do
		in_ns ss -Hltn "sport = :8443" | grep -q . || break
		sleep 0.1
	done
}

# cpu_run -> prints "us_per_conn rate errors"
cpu_run() {
	# Warm-up: one handshake per name, so that work done once per
	# certificate (the store decodes a leaf and exports its key on first
	# use, see docs/certificates.md) is not billed to the steady state;
	# the cold figure is printed separately.
	local c0 c1
	c0=$(cpu_ticks "$SPID")
	in_ns "$LG" -c 127.0.0.1:8443 -a "$PKI/ca.pem" -n "$PKI/names.txt" -k 32 -N "$NNAMES" --seq \
		--tls13 >/dev/null
	c1=$(cpu_ticks "$SPID")
	awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$NNAMES" \
		'BEGIN{printf "%.0f", d * 1e6 / hz / n}' >"$TMP/cold"
	local t0 t1 out n rate errs
	t0=$(cpu_ticks "$SPID")
	out=$(in_ns "$LG" -c 127.0.0.1:8443 -a "$PKI/ca.pem" -n "$PKI/names.txt" -k 64 -N "$CONNS" --tls13)
	t1=$(cpu_ticks "$SPID")
	n=$(awk '/^connections/{print $2}' <<<"$out")
	rate=$(awk '/^rate/{print $2}' <<<"$out")
	errs=$(awk '/^err_/{s += $2} END{print s + 0}' <<<"$out")
	awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$n" -v r="$rate" -v e="$errs" \
		'BEGIN{printf "%.0f %.0f %d\n", d * 1e6 / hz / n, r, e}'
}

NNAMES=$(wc -l <"$PKI/names.txt")
declare -A R
echo "machine: $(nproc) cores; $CONNS connections per CPU run; $IDLE idle connections; session tickets $TICKETS"
for server in ${BENCH_SERVERS:-switchyard haproxy}; do
	if [ $server = haproxy ] && ! command -v haproxy >/dev/null; then
		echo "haproxy not installed: skipping it"
		continue
	fi
	for t in 1 2; do
		start $server $t
		cpu_run >"$TMP/cpu.out"
		read -r us rate errs <"$TMP/cpu.out"
		COLD=$(cat "$TMP/cold")
		R[$server.$t.us]=$us
		printf '%-10s threads=%d  cpu_us_per_conn %5s  wall_rate %6s conn/s  errors %s  (first use of each cert: %s us)\n' \
			$server $t "$us" "$rate" "$errs" "$COLD"
		if [ $t = 2 ]; then
			mb=$(in_ns "$LG" -c 127.0.0.1:8443 -a "$PKI/ca.pem" -n "$PKI/names.txt" \
				--bulk 100000000 | awk '/bulk_MBps/{print $2}')
			R[$server.bulk]=$mb
			printf '%-10s threads=2  bulk_MBps %s\n' $server "$mb"
			base=$(rss_kb "$SPID")
			ip netns exec "$NS" "$LG" -c 127.0.0.1:8443 -a "$PKI/ca.pem" -n "$PKI/names.txt" --idle "$IDLE" \
				-k 64 --tls13 >"$TMP/idle.out" 2>&1 &
			lg=$!
			for ((i = 0; i < 1200; i++)); do
				grep -q idle_ready "$TMP/idle.out" && break
				sleep 0.1
			done
			sleep 1
			rss=$(rss_kb "$SPID")
			kill -TERM $lg
			wait $lg 2>/dev/null
			grep -q '^err_.* [1-9]' "$TMP/idle.out" && grep '^err_' "$TMP/idle.out" | tr '\n' ' ' >&2
			printf '%-10s threads=2  %s; idle_rss_MB %.1f (before %.1f, +%.1f KB per connection)\n' \
				$server "$(head -1 "$TMP/idle.out")" "$(echo "$rss/1024" | bc -l)" \
				"$(echo "$base/1024" | bc -l)" "$(echo "($rss-$base)/$(awk '/idle_ready/{print $2}' "$TMP/idle.out")" | bc -l)"
			R[$server.rss]=$rss
		fi
		stop_server
	done
	awk -v a="${R[$server.1.us]}" -v b="${R[$server.2.us]}" -v s=$server \
		'BEGIN{printf "%-10s scaling_2v1 %.2fx (2 x cpu_us at 1 worker / cpu_us at 2 workers)\n", s, 2 * a / b}'
done
if [ -n "${R[haproxy.2.us]:-}" ] && [ -n "${R[switchyard.2.us]:-}" ]; then
	awk -v a="${R[switchyard.2.us]}" -v b="${R[haproxy.2.us]}" \
		'BEGIN{printf "ratio cpu_us_per_conn switchyard/haproxy (2 threads): %.2f (target <= 0.8)\n", a / b}'
	awk -v a="${R[switchyard.1.us]}" -v b="${R[haproxy.1.us]}" \
		'BEGIN{printf "ratio cpu_us_per_conn switchyard/haproxy (1 thread):  %.2f\n", a / b}'
fi
