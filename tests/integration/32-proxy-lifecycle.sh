#!/bin/bash
# switchyard-proxy life cycle: TLS sessions resume on a second instance that
# shares the ticket key file (TLS 1.2 and 1.3, also after a rotation),
# quit stops at hard_stop_after, reload-certs while handshakes run (none
# fails, the new certificate is served), drain keeps serving, and SIGTERM
# lets transfers in flight finish.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"

px_ns
px_certs 200
px_backend
PX_TICKETS=$T_TMP/ticket.keys
px_tickets "$PX_TICKETS"
PX_TICKETS=$PX_TICKETS px_config "$T_TMP/a.yaml"
PX_TICKETS=$PX_TICKETS PX_PROXY_EXTRA="    hard_stop_after: 2s" px_config "$T_TMP/b.yaml"
px_start blue "$T_TMP/a.yaml"
BLUE=$PX_PID
px_start green "$T_TMP/b.yaml"
GREEN=$PX_PID

# Session resumption across instances.
for v in -tls1_2 -tls1_3; do
	rm -f "$T_TMP/sess"
	(sleep 0.5) | in_ns openssl s_client $v -connect 127.0.0.1:8443 -servername site1.example.test \
		-CAfile "$CA" -sess_out "$T_TMP/sess" -no_ign_eof >/dev/null 2>&1
	out=$( (sleep 0.3) | in_ns openssl s_client $v -connect 127.0.0.1:8444 \
		-servername site1.example.test -CAfile "$CA" -sess_in "$T_TMP/sess" -no_ign_eof 2>&1)
	check "$v session from blue resumed on green" grep -q "^Reused" <<<"$out"
done
# Rotation: drop the oldest key, append a new one; both reload; the session
# issued before (with the second key) still resumes.
rm -f "$T_TMP/sess"
(sleep 0.5) | in_ns openssl s_client -tls1_3 -connect 127.0.0.1:8443 -servername site2.example.test \
	-CAfile "$CA" -sess_out "$T_TMP/sess" -no_ign_eof >/dev/null 2>&1
{ tail -n 2 "$PX_TICKETS"; openssl rand -base64 80 | tr -d '\n'; echo; } >"$T_TMP/tk.new"
mv "$T_TMP/tk.new" "$PX_TICKETS"
check "reload-tickets on blue" test "$(px_get "$T_TMP/blue.sock" reload-tickets keys)" -eq 3
check "reload-tickets on green" test "$(px_get "$T_TMP/green.sock" reload-tickets keys)" -eq 3
out=$( (sleep 0.3) | in_ns openssl s_client -tls1_3 -connect 127.0.0.1:8444 \
	-servername site2.example.test -CAfile "$CA" -sess_in "$T_TMP/sess" -no_ign_eof 2>&1)
check "session resumes after a rotation" grep -q "^Reused" <<<"$out"
echo garbage >"$T_TMP/bad.keys"
r=$(PX_TICKETS=x px_ctl "$T_TMP/blue.sock" reload-tickets)
check "reload-tickets replies" grep -q '"ok":true' <<<"$r"
# quit with hard_stop_after: green exits although a client still holds a
# connection open.
(sleep 20) | in_ns openssl s_client -connect 127.0.0.1:8444 -servername site1.example.test \
	-CAfile "$CA" -quiet -no_ign_eof >/dev/null 2>&1 &
holder=$!
for ((i = 0; i < 50; i++)); do
	[ "$(px_get "$T_TMP/green.sock" status active)" -ge 1 ] && break
	sleep 0.1
done
check "quit replies ok" grep -q '"ok":true' <<<"$(px_ctl "$T_TMP/green.sock" quit)"
for ((i = 0; i < 100; i++)); do
	kill -0 "$GREEN" 2>/dev/null || break
	sleep 0.1
done
# The holder keeps its connection for 20 s; the loop above waits at most 10.
check "quit + hard_stop_after: exited although a client held a connection" \
	bash -c "! kill -0 $GREEN 2>/dev/null"
kill "$holder" 2>/dev/null

# reload-certs while handshakes run.
old=$(px_get "$T_TMP/blue.sock" "cert site1.example.test" sha256)
grep -v '^site1\.' "$T_TMP/pki/names.txt" | head -150 >"$T_TMP/n.txt"
(for i in 1 2 3; do
	in_ns "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/n.txt" || exit 1
done) >"$T_TMP/hs.log" 2>&1 &
hs=$!
"$PX_TOOLS/gencerts" --out "$T_TMP/pki" --one site1.example.test --file "$CERTDIR/site1.pem" \
	--serial 4242 >/dev/null || fail "gencerts --one"
sleep 0.2
r=$(px_ctl "$T_TMP/blue.sock" reload-certs)
say "reload-certs: ${r:0:200}"
check "reload-certs ok" grep -q '"ok":true' <<<"$r"
check "generation moved" test "$(px_get "$T_TMP/blue.sock" status generation)" -ge 2
wait "$hs"
rc=$?
cat "$T_TMP/hs.log"
check "no handshake failed during the reload" test "$rc" -eq 0
new=$(px_get "$T_TMP/blue.sock" "cert site1.example.test" sha256)
check "the store serves the new certificate" test "$old" != "$new"
served=$(in_ns openssl s_client -connect 127.0.0.1:8443 -servername site1.example.test </dev/null \
	2>/dev/null | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f)
check "clients get the new certificate" test "$served" = "$new"

# drain: still listening and accepting.
check "drain" test "$(px_get "$T_TMP/blue.sock" drain state)" = draining
check "draining instance still serves" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site3.example.test -b 1000 -k 2

# SIGTERM with transfers in flight: they complete, then the process exits.
in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site4.example.test -b 40000000 -k 6 \
	>"$T_TMP/tr.log" 2>&1 &
tr=$!
for ((i = 0; i < 100; i++)); do
	[ "$(px_get "$T_TMP/blue.sock" status active)" -ge 6 ] && break
	sleep 0.05
done
check "transfers in flight" test "$(px_get "$T_TMP/blue.sock" status active)" -ge 1
kill -TERM "$BLUE"
sleep 0.3
check "listeners closed after SIGTERM" \
	bash -c "! ip netns exec $NS $PX_TOOLS/tls_check names -c 127.0.0.1:8443 -a $CA -n $T_TMP/n.txt -m 1 2>/dev/null"
wait "$tr"
rc=$?
cat "$T_TMP/tr.log"
check "every transfer in flight completed" test "$rc" -eq 0
for ((i = 0; i < 100; i++)); do
	kill -0 "$BLUE" 2>/dev/null || break
	sleep 0.1
done
check "proxy exited once idle" bash -c "! kill -0 $BLUE 2>/dev/null"
say "PASS"
