#!/bin/bash
# switchyard-proxy backends: leastconn sends new connections to the server
# with fewer open ones; the PROXY protocol v1 header reaches the backend (IPv4
# and IPv6) and data still echoes byte for byte; active TCP health checks mark
# a server that went away down without any client traffic, and up again when
# it returns; `status` shows each server's state.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"

px_ns
px_certs 3
SOCK=$T_TMP/blue.sock
# Each echo backend logs the PROXY header of every connection it gets: that
# is how a test tells which server a connection went to.
px_backend_on 9000 -p -o "$T_TMP/s0.log"
px_backend_on 9001 -p -o "$T_TMP/s1.log"
S1_PID=$BE_PID
TWO_SERVERS="    - name: s0
      address: 127.0.0.1
      port: 9000
    - name: s1
      address: 127.0.0.1
      port: 9001"
nlines() { grep -c '^PP1 ' "$1" 2>/dev/null || true; }
srv() { px_get "$SOCK" status "servers.$1.$2"; }
active_is() { [ "$(srv "$1" active)" -eq "$2" ]; }
total_active_is() { [ $(($(srv 0 active) + $(srv 1 active))) -eq "$1" ]; }
srv_is() { [ "$(srv "$1" "$2")" = "$3" ]; }

# 1. leastconn + PROXY v1.
PX_SERVERS=$TWO_SERVERS PX_BACKEND_EXTRA="  balance: leastconn
  proxy_protocol: v1
  health:
    check_interval: 0" px_config "$T_TMP/a.yaml"
px_start blue "$T_TMP/a.yaml"

check "PROXY v1: 4 x 1 MB echo byte for byte" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site1.example.test -b 1000000 -k 4
check "PROXY v1 header over IPv4" \
	grep -Eq '^PP1 PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 [0-9]+ 8443$' "$T_TMP/s0.log" "$T_TMP/s1.log"
in_ns "$PX_TOOLS/tls_check" echo -c ::1:8443 -a "$CA" -s site1.example.test -b 1000 -k 1 >/dev/null ||
	fail "echo over IPv6"
check "PROXY v1 header over IPv6" \
	grep -Eq '^PP1 PROXY TCP6 ::1 ::1 [0-9]+ 8443$' "$T_TMP/s0.log" "$T_TMP/s1.log"
check "no bad PROXY header at the backends" bash -c "! grep -q PPERR $T_TMP/s0.log $T_TMP/s1.log"
check "servers idle again" wait_for 10 total_active_is 0

# Three long connections: leastconn puts them 2 + 1 (each waits until the
# previous one reached its server, so the counts are settled).
holds=()
for i in 1 2 3; do
	px_hold 8443 site2.example.test
	holds+=("$HOLD_PID")
	check "hold $i reached a server" wait_for 10 total_active_is "$i"
done
a0=$(srv 0 active) a1=$(srv 1 active)
say "held: s0=$a0 s1=$a1"
if [ "$a0" -eq 1 ] && [ "$a1" -eq 2 ]; then light=0 heavy=1
elif [ "$a0" -eq 2 ] && [ "$a1" -eq 1 ]; then light=1 heavy=0
else fail "leastconn: three held connections are not spread 2 + 1 (s0=$a0 s1=$a1)"; fi
before_l=$(nlines "$T_TMP/s$light.log") before_h=$(nlines "$T_TMP/s$heavy.log")
# Four short connections one after another: each must go to the server with
# fewer open connections, never to the busier one.
for i in 1 2 3 4; do
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site3.example.test -b 1000 -k 1 \
		>/dev/null || fail "short connection $i"
	wait_for 10 active_is "$light" 1 || fail "short connection $i did not close"
done
check "leastconn: the 4 new connections went to the less loaded server s$light" \
	test "$(($(nlines "$T_TMP/s$light.log") - before_l))" -eq 4
check "leastconn: none went to the busier server s$heavy" \
	test "$(nlines "$T_TMP/s$heavy.log")" -eq "$before_h"
check "status: the busier server still shows its 2 connections" active_is "$heavy" 2
kill "${holds[@]}" 2>/dev/null
kill "$PX_PID"; wait "$PX_PID" 2>/dev/null

# 2. Active health checks. A high fail_threshold keeps passive mark-downs
# out of the picture, and no client connects while s1 is gone: only the
# checks can notice.
PX_SERVERS=$TWO_SERVERS PX_BACKEND_EXTRA="  proxy_protocol: v1
  health:
    fail_threshold: 1000
    check_interval: 200ms
    check_timeout: 200ms" px_config "$T_TMP/b.yaml"
PX_LOG=$T_TMP/b.log px_start blue "$T_TMP/b.yaml"
check "both servers up at start" wait_for 10 srv_is 1 up true && srv_is 0 up true
kill "$S1_PID"; wait "$S1_PID" 2>/dev/null
check "s1 gone: marked down by the active check" wait_for 10 srv_is 1 up false
check "s1 down by the check" srv_is 1 check_down true
check "s1 not down passively" srv_is 1 passive_down false
check "s0 still up" test "$(srv 0 up)" = true
# The check thread publishes its verdict (status) before it logs it.
check "the check's verdict is logged" \
	wait_for 10 grep -q "server s1 (127.0.0.1:9001) is down (active check)" "$T_TMP/b.log"
before0=$(nlines "$T_TMP/s0.log")
check "6 clients while s1 is down: all served" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site1.example.test -b 10000 -k 6
check "all 6 went to s0" test "$(($(nlines "$T_TMP/s0.log") - before0))" -eq 6
check "no connect was tried on the down server" test "$(px_get "$SOCK" stats backend_connect_fail)" -eq 0

: >"$T_TMP/s1.log"
px_backend_on 9001 -p -o "$T_TMP/s1.log"
check "s1 back: marked up by the active check" wait_for 10 srv_is 1 up true
check "the recovery is logged" \
	wait_for 10 grep -q "server s1 (127.0.0.1:9001) is up again (active check)" "$T_TMP/b.log"
for i in 1 2 3 4; do
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site1.example.test -b 1000 -k 1 \
		>/dev/null || fail "connection $i after s1 returned"
done
check "round robin uses s1 again" test "$(nlines "$T_TMP/s1.log")" -ge 1
say "PASS"
