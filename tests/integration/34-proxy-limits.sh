#!/bin/bash
# switchyard-proxy per-listener maxconn and the access log. Two listeners, a
# limit of 2 on one: a third client of that listener waits in the accept
# queue (not accepted, not refused) while the other listener keeps serving,
# and is served once a slot frees. With proxy.access_log on, every connection
# gives one line with its client address, SNI, listener, backend, bytes,
# duration and termination reason.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"

px_ns
px_certs 3
px_backend_on 9000
SOCK=$T_TMP/blue.sock
LOG=$T_TMP/proxy.log
st() { px_get "$SOCK" "$1" "$2"; }
is() { [ "$(st "$1" "$2")" = "$3" ]; }

PX_LISTENER_EXTRA="    maxconn: 2
  - name: other
    port: 444" PX_BLUE_PORTS="8443, 8445" PX_GREEN_PORTS="8444, 8446" PX_HS_TIMEOUT=1s \
	PX_BACKEND_EXTRA="  health:
    check_interval: 0" px_config "$T_TMP/a.yaml"
PX_LOG=$LOG px_start blue "$T_TMP/a.yaml"
check "status shows the listener limit" is status listeners.0.maxconn 2
check "the other listener has none" is status listeners.1.maxconn 0

# 1. Per-listener maxconn.
px_hold 8443 site1.example.test
h1=$HOLD_PID
px_hold 8443 site1.example.test
h2=$HOLD_PID
check "two connections on https, its limit" wait_for 10 is status listeners.0.active 2
in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site2.example.test -b 50000 -k 1 \
	>"$T_TMP/queued.out" 2>&1 &
queued=$!
# The queued client's TCP connect completes in the kernel; wait until it sits
# in the listener's accept queue (Recv-Q of the listening socket).
qlen() { in_ns ss -Hltn "sport = :8443" | awk '$1 == "LISTEN" && $2 > 0 {n += $2} END {print n + 0}'; }
in_queue() { [ "$(qlen)" -ge 1 ]; }
check "the third https client waits in the accept queue" wait_for 10 in_queue
check "the other listener still serves (3 x 200 KB)" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8445 -a "$CA" -s site3.example.test -b 200000 -k 3
check "the queued client was not accepted meanwhile" is stats accepted 5
check "the queued client is still waiting, not refused" kill -0 "$queued"
check "https still at its limit" is status listeners.0.active 2
kill "$h1"
check "a slot frees: the queued client is served" wait "$queued"
check "accepted = 6" is stats accepted 6
check "time at the https limit counted" test "$(st status listeners.0.maxconn_ms)" -gt 0
check "none at the other listener" is status listeners.1.maxconn_ms 0
kill "$h2"
check "all connections closed" wait_for 10 is status active 0
check "nothing cut for lack of resources" is stats close.resource 0
check "no handshake failed" is stats handshake_fail.other 0

# 2. Access log: one line per connection with every field.
# A client that reports its own port, sends 12345 bytes, reads them back and
# stays 300 ms before closing.
cport=$(in_ns $PYTHON - "$CA" <<'EOP'
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[1])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 8445)),
                    server_hostname="site2.example.test")
port = s.getsockname()[1]
data = b"x" * 12345
s.sendall(data)
got = b""
while len(got) < len(data):
    got += s.recv(65536)
time.sleep(0.3)
s.unwrap()
s.close()
print(port)
EOP
)
check "python client ran" test -n "$cport"
acc() { grep -E "access client=$1 " "$LOG"; }
check "the connection's access line is written at close" wait_for 10 acc "127\.0\.0\.1:$cport"
line=$(acc "127\.0\.0\.1:$cport")
say "access line: $line"
check "exactly one line for that connection" test "$(acc "127\.0\.0\.1:$cport" | wc -l)" -eq 1
check "access: SNI and listener" grep -q " sni=site2.example.test listener=other " <<<"$line"
check "access: backend" grep -q " backend=server0 " <<<"$line"
check "access: bytes in and out" grep -q " in=12345 out=12345 " <<<"$line"
ms=$(sed -n 's/.* ms=\([0-9]*\) .*/\1/p' <<<"$line")
check "access: duration covers the 300 ms the client stayed" test "${ms:-0}" -ge 300
check "access: clean end" grep -q " end=done$" <<<"$line"

# No SNI over IPv6, and no default certificate: the handshake fails. The
# address is bracketed, the SNI and the backend are "-".
px_s_client - "alert|error" -connect '[::1]:8443' -noservername -CAfile "$CA" \
	-no_ign_eof >/dev/null
check "access: IPv6 client without SNI" wait_for 10 grep -Eq \
	'access client=\[::1\]:[0-9]+ sni=- listener=https backend=- in=0 out=0 ms=[0-9]+ end=handshake_fail$' "$LOG"
# A client that never sends a ClientHello: cut at the 1 s handshake timeout.
in_ns $PYTHON -c '
import socket
s = socket.create_connection(("127.0.0.1", 8445)); s.settimeout(8)
try:
    s.recv(10)
except OSError:
    pass'
check "access: stalled handshake" wait_for 10 grep -Eq \
	'access client=127\.0\.0\.1:[0-9]+ sni=- listener=other backend=- in=0 out=0 ms=[0-9]+ end=handshake_timeout$' "$LOG"
# The backend goes away: the client is closed, the line says why.
kill "$BE_PID"; wait "$BE_PID" 2>/dev/null
echo hi | in_ns openssl s_client -connect 127.0.0.1:8443 -servername site3.example.test \
	-CAfile "$CA" >/dev/null 2>&1
# The line names the server whose connect failed (the last one tried).
check "access: refused backend" wait_for 10 grep -Eq \
	'access client=127\.0\.0\.1:[0-9]+ sni=site3.example.test listener=https backend=server0 in=[0-9]+ out=0 ms=[0-9]+ end=(connect_fail|no_backend)$' "$LOG"
check "one access line per accepted connection" \
	test "$(grep -c ' access client=' "$LOG")" -eq "$(st stats accepted)"
say "PASS"
