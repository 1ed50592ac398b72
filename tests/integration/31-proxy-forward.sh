#!/bin/bash
# switchyard-proxy forwarding: several-MB random payloads through the proxy to
# an echo backend come back byte for byte on many connections at once; a
# half-close works both ways; a client stalled in the handshake is cut; a
# refusing server is retried on the next one; with no server up the client is
# closed cleanly; the PROXY v2 header reaches the backend with the right
# TLVs; with either proxy.accept strategy (shared, reuseport: a second
# instance on the same ports fails to bind with either), at maxconn
# extra clients wait in the accept queue and are served, and SIGTERM lets
# transfers in flight finish.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"

px_ns
px_certs 5
px_backend -p -o "$T_TMP/pp.log"
SOCK=$T_TMP/blue.sock

# 1. PROXY v2 + integrity + half-close + handshake timeout.
PX_BACKEND_EXTRA="  proxy_protocol: v2" PX_HS_TIMEOUT=1s PX_PROXY_EXTRA="  buffer_size: 16384" \
	px_config "$T_TMP/a.yaml"
px_start blue "$T_TMP/a.yaml"
check "40 concurrent connections x 4 MB echo byte for byte" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site1.example.test -b 4000000 -k 40
check "half-close both ways: all data back, then close_notify" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site2.example.test -b 3000000 -k 4 -H
check "bytes_in counted" test "$(px_get "$SOCK" stats bytes_in)" -ge 172000000

: >"$T_TMP/pp.log"
# The backend logs the header as soon as the proxy has connected to it,
# which comes after the handshake: wait for the line, not for a fixed time.
pp_logged() { grep -q "^PP2 " "$T_TMP/pp.log"; }
px_s_client - "^(New|Reused)," -connect 127.0.0.1:8443 -servername site3.example.test \
	-alpn http/1.1 -CAfile "$CA" -no_ign_eof >/dev/null
check "PROXY v2 header received" wait_for 10 pp_logged
cat "$T_TMP/pp.log"
check "PROXY v2: source address" grep -q "^PP2 src=127.0.0.1:[0-9]* dst=127.0.0.1:8443" "$T_TMP/pp.log"
check "PROXY v2: authority TLV is the SNI" grep -q "authority=site3.example.test" "$T_TMP/pp.log"
check "PROXY v2: ALPN TLV" grep -q "alpn=http/1.1" "$T_TMP/pp.log"
check "PROXY v2: SSL version sub-TLV" grep -q "ssl_version=TLSv1.3" "$T_TMP/pp.log"
: >"$T_TMP/pp.log"
px_s_client - "^(New|Reused)," -connect [::1]:8443 -servername site3.example.test \
	-CAfile "$CA" -no_ign_eof >/dev/null
check "PROXY v2 header received over IPv6" wait_for 10 pp_logged
check "PROXY v2 over IPv6" grep -q "^PP2 src=::1:[0-9]* dst=::1:8443" "$T_TMP/pp.log"

# A client that connects and never sends a ClientHello is cut at the timeout.
r=$(in_ns $PYTHON -c '
import socket, time
s = socket.create_connection(("127.0.0.1", 8443)); s.settimeout(8)
t = time.time()
try:
    d = s.recv(10)
except ConnectionResetError:
    d = b""
print("closed" if d == b"" else "data")')
check "stalled handshake closed by the proxy" test "$r" = closed
check "handshake timeout counted" test "$(px_get "$SOCK" stats handshake_fail.timeout)" -ge 1
kill "$PX_PID"; wait "$PX_PID" 2>/dev/null

# 2. First server refuses: the connection is retried on the second one.
PX_SERVERS="    - address: 127.0.0.1
      port: 9001
    - address: 127.0.0.1
      port: 9000" PX_BACKEND_EXTRA="  proxy_protocol: v2
  retries: 2
  health:
    check_interval: 0" px_config "$T_TMP/b.yaml"
px_start blue "$T_TMP/b.yaml"
check "refusing first server: all clients served by the next" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site1.example.test -b 1000 -k 8
check "backend_connect_fail counted" test "$(px_get "$SOCK" stats backend_connect_fail)" -ge 1
kill "$PX_PID"; wait "$PX_PID" 2>/dev/null

# 3. Every server refuses: the client gets a clean close, counted.
PX_SERVERS="    - address: 127.0.0.1
      port: 9001" PX_BACKEND_EXTRA="  retries: 1
  health:
    fail_threshold: 2
    check_interval: 0" px_config "$T_TMP/c.yaml"
px_start blue "$T_TMP/c.yaml"
out=$(echo hello | in_ns openssl s_client -connect 127.0.0.1:8443 -servername site1.example.test \
	-CAfile "$CA" 2>&1)
check "refused backend: handshake completes, then a clean close" grep -q "Verify return code: 0" <<<"$out"
in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site1.example.test -b 10 -k 2 >/dev/null 2>&1
check "connect_fail or no_backend counted" \
	test "$(($(px_get "$SOCK" stats close.connect_fail) + $(px_get "$SOCK" stats no_backend)))" -ge 2
check "server marked down after fail_threshold: no_backend" \
	test "$(px_get "$SOCK" stats no_backend)" -ge 1
check "proxy still alive" kill -0 "$PX_PID"
kill "$PX_PID"; wait "$PX_PID" 2>/dev/null

# 4. The same behaviour with either accept strategy (proxy.accept), 2 threads
# and maxconn 2: many clients through the limit are all served; at the limit
# extra clients wait in the kernel's accept queue, not accepted and closed,
# and are served once a slot frees; SIGTERM closes every listening socket and
# lets the transfers in flight finish.
nlisten() { in_ns ss -Hltn "sport = :8443" | grep -c LISTEN; }
qlen() { in_ns ss -Hltn "sport = :8443" | awk '$1 == "LISTEN" {n += $2} END {print n + 0}'; }
in_queue() { [ "$(qlen)" -ge "$1" ]; }
none_listen() { [ "$(nlisten)" -eq 0 ]; }
is() { [ "$(px_get "$SOCK" "$1" "$2")" = "$3" ]; }
for mode in shared reuseport; do
	PX_PROXY_EXTRA="  maxconn: 2
  accept: $mode" PX_BACKEND_EXTRA="  proxy_protocol: v2" px_config "$T_TMP/d-$mode.yaml"
	px_start blue "$T_TMP/d-$mode.yaml"
	# Two bind addresses; with reuseport one socket for each of the two
	# workers.
	want=2
	[ "$mode" = reuseport ] && want=4
	check "$mode: $want listening sockets" test "$(nlisten)" -eq "$want"
	check "$mode: status says bound" is status listeners.0.bound true
	# A second instance on the same ports (its own control socket and pid
	# file) must fail to bind rather than take a share of the connections,
	# which SO_REUSEPORT alone would let it do.
	sed "s|$T_TMP/blue\.|$T_TMP/dup.|" "$T_TMP/d-$mode.yaml" >"$T_TMP/dup.yaml"
	dup_rc=0
	in_ns timeout 60 "$PX_BIN" -c "$T_TMP/dup.yaml" -i blue 2>"$T_TMP/dup.log" || dup_rc=$?
	check "$mode: a second instance on the same ports exits with an error" \
		test "$dup_rc" -ne 0 -a "$dup_rc" -ne 124
	check "$mode: ... naming the listener and the address in use" \
		grep -q "listener https: bind 127.0.0.1 port 8443: Address already in use" "$T_TMP/dup.log"
	check "$mode: ... and the first instance still has all its sockets" test "$(nlisten)" -eq "$want"
	# tls_check has no handshake timeout: a socket that no worker polls
	# would hang it, hence the timeout.
	check "$mode: 40 concurrent clients through maxconn 2, all served" \
		in_ns timeout 60 "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" \
		-s site1.example.test -b 20000 -k 40
	check "$mode: accepted = 40" is stats accepted 40

	px_hold 8443 site1.example.test
	h1=$HOLD_PID
	px_hold 8443 site1.example.test
	h2=$HOLD_PID
	check "$mode: two connections active at the limit" wait_for 10 is status active 2
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site2.example.test \
		-b 100000 -k 2 >"$T_TMP/queued.out" 2>&1 &
	queued=$!
	check "$mode: two more clients wait in the accept queue" wait_for 10 in_queue 2
	check "$mode: ... not accepted meanwhile" is stats accepted 42
	check "$mode: ... nor refused" kill -0 "$queued"
	kill "$h1" "$h2"
	check "$mode: the queued clients are served once below the limit" wait "$queued"
	check "$mode: accepted = 44" is stats accepted 44
	check "$mode: time at maxconn counted" test "$(px_get "$SOCK" stats maxconn_ms)" -gt 0

	rm -f "$T_TMP/go"
	trs=()
	for i in 1 2; do
		in_ns $PYTHON - "$CA" "$T_TMP/go" <<'EOP' &
import os, socket, ssl, sys, time
# Echoes 1 MB, waits for the go file, then echoes 1 MB more: the transfer is
# in flight across the SIGTERM whatever the machine's speed.
ctx = ssl.create_default_context(cafile=sys.argv[1])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 8443)),
                    server_hostname="site3.example.test")
s.settimeout(20)
def echo(data):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        d = s.recv(65536)
        if not d:
            sys.exit("closed after %d bytes" % len(got))
        got += d
    if got != data:
        sys.exit("echo differs")
echo(os.urandom(1 << 20))
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
echo(os.urandom(1 << 20))
s.unwrap()
EOP
		trs+=($!)
	done
	check "$mode: two transfers in flight" wait_for 10 is status active 2
	kill -TERM "$PX_PID"
	check "$mode: SIGTERM closes every listening socket" wait_for 10 none_listen
	touch "$T_TMP/go"
	rc=0
	for t in "${trs[@]}"; do wait "$t" || rc=1; done
	check "$mode: every transfer in flight completed" test "$rc" -eq 0
	check "$mode: the proxy exits once idle" wait_for 10 bash -c "! kill -0 $PX_PID 2>/dev/null"
	wait "$PX_PID" 2>/dev/null
done
say "PASS"
