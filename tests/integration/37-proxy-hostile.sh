#!/bin/bash
# switchyard-proxy against hostile TLS clients: malformed ClientHellos
# (garbage, plaintext HTTP, oversized and empty records, broken extension
# lengths, SSLv2, TLS 1.0 only, no shared cipher), odd SNI bytes (newline,
# NUL, 0xff, empty, 256 and 16,000 bytes, two names), and slowloris clients
# that send three bytes and stop. Each hello gets an alert or a close, never
# a hang; held connections never stop other clients; the handshake timeout
# closes them; the proxy stays up and keeps serving every name.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"
HOSTILE="$PYTHON $SY_ROOT/tests/tools/hostile.py"

px_ns
# Wildcard-only certificates as well: unknown names probe that table.
px_certs 20 16
px_backend
PX_HS_TIMEOUT=60s px_config "$T_TMP/a.yaml"
px_start blue "$T_TMP/a.yaml"
SOCK=$T_TMP/blue.sock
serving() { in_ns "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/pki/names.txt"; }

# 1. Malformed hellos: an alert or a close, within the client's 10 s.
for c in $($HOSTILE cases); do
	r=$(in_ns $HOSTILE hello 127.0.0.1 8443 --case "$c")
	case $r in
	alert* | closed) say "ok: $c -> $r" ;;
	*) fail "malformed hello '$c' got '$r' (want an alert or a close)" ;;
	esac
	kill -0 "$PX_PID" || fail "proxy died on '$c'"
done

# 2. Odd SNI bytes: never a certificate for a name nobody covers.
hexof() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
for sni in "$(hexof 'site1.example.test')0a$(hexof 'forged line')" \
	"$(hexof 'site1')00$(hexof '.example.test')" "ff$(hexof '.example.test')" \
	"$(hexof '127.0.0.1')" "$(hexof '.example.test')" "$(hexof 'a..example.test')"; do
	r=$(in_ns $HOSTILE hello 127.0.0.1 8443 --sni-hex "$sni")
	case $r in
	alert* | closed) say "ok: SNI $sni -> $r" ;;
	*) fail "SNI bytes $sni got '$r' (want an alert or a close)" ;;
	esac
done
# Case and one trailing dot are the same name (RFC 6066 host names). A
# literal "*" label is looked up like any one label under the wildcard, so
# it gets the wildcard's certificate, which covers it: nothing is revealed.
for sni in SITE1.EXAMPLE.TEST site1.example.test. Host.Wild2.Example.Test '*.wild1.example.test'; do
	r=$(in_ns $HOSTILE hello 127.0.0.1 8443 --sni-hex "$(hexof "$sni")")
	check "SNI $sni is served" test "$r" = serverhello
done
check "every name still served after the malformed hellos" serving

# 3. Slowloris: 300 connections that sent 3 bytes, held open on purpose
# while every name is fetched; then released.
bg in_ns $HOSTILE hold 127.0.0.1 8443 300 "$T_TMP/ready" "$T_TMP/release"
HOLDER=$LAST_PID
wait_for 30 test -e "$T_TMP/ready" || fail "slowloris clients did not connect"
check "300 half-open handshakes counted as active" \
	test "$(px_get "$SOCK" status active)" -ge 300
check "every name served while 300 handshakes hang" serving
check "status still ready" test "$(px_get "$SOCK" status state)" = ready
touch "$T_TMP/release"
wait "$HOLDER"
kill "$PX_PID"
wait "$PX_PID" 2>/dev/null

# 4. The handshake timeout closes half-sent hellos (1 s here).
PX_HS_TIMEOUT=1s px_config "$T_TMP/b.yaml"
px_start blue "$T_TMP/b.yaml"
closed=$(in_ns $HOSTILE await-closed 127.0.0.1 8443 50 20)
check "the handshake timeout closed all 50 slow clients ($closed)" test "$closed" -eq 50
check "timeouts counted" test "$(px_get "$SOCK" stats handshake_fail.timeout)" -ge 50
check "every name served afterwards" serving
kill -0 "$PX_PID" || fail "proxy died"
