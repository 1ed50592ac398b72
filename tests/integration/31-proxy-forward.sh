#!/bin/bash
# switchyard-proxy forwarding: several-MB random payloads through the proxy to
# an echo backend come back byte for byte on many connections at once; a
# half-close works both ways; a client stalled in the handshake is cut; a
# refusing server is retried on the next one; with no server up the client is
# closed cleanly; the PROXY v2 header reaches the backend with the right
# TLVs; at maxconn extra clients wait in the accept queue and are served.
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
(sleep 0.5) | in_ns openssl s_client -connect 127.0.0.1:8443 -servername site3.example.test \
	-alpn http/1.1 -CAfile "$CA" -quiet -no_ign_eof >/dev/null 2>&1
sleep 0.2
cat "$T_TMP/pp.log"
check "PROXY v2: source address" grep -q "^PP2 src=127.0.0.1:[0-9]* dst=127.0.0.1:8443" "$T_TMP/pp.log"
check "PROXY v2: authority TLV is the SNI" grep -q "authority=site3.example.test" "$T_TMP/pp.log"
check "PROXY v2: ALPN TLV" grep -q "alpn=http/1.1" "$T_TMP/pp.log"
check "PROXY v2: SSL version sub-TLV" grep -q "ssl_version=TLSv1.3" "$T_TMP/pp.log"
: >"$T_TMP/pp.log"
(sleep 0.5) | in_ns openssl s_client -connect [::1]:8443 -servername site3.example.test \
	-CAfile "$CA" -quiet -no_ign_eof >/dev/null 2>&1
sleep 0.2
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

# 4. maxconn 2: a third and fourth client wait in the kernel queue and are
# served once the first two leave; none is refused.
PX_PROXY_EXTRA="  maxconn: 2" PX_BACKEND_EXTRA="  proxy_protocol: v2" px_config "$T_TMP/d.yaml"
px_start blue "$T_TMP/d.yaml"
holders=()
for i in 1 2; do
	(sleep 3) | in_ns openssl s_client -connect 127.0.0.1:8443 -servername site1.example.test \
		-CAfile "$CA" -quiet -no_ign_eof >/dev/null 2>&1 &
	holders+=($!)
done
sleep 1
check "two connections active at the limit" test "$(px_get "$SOCK" status active)" -eq 2
check "queued clients are served after the holders leave" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site2.example.test -b 100000 -k 2
wait "${holders[@]}"
check "time at maxconn counted" test "$(px_get "$SOCK" stats maxconn_ms)" -gt 0
check "accepted = 4, nothing refused" test "$(px_get "$SOCK" stats accepted)" -eq 4
say "PASS"
