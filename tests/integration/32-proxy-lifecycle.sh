#!/bin/bash
# switchyard-proxy life cycle: TLS sessions resume on a second instance that
# shares the ticket key file (TLS 1.2 and 1.3, also after a rotation),
# quit stops at hard_stop_after, reload-certs while handshakes run (none
# fails, the new certificate is served), drain keeps serving, and SIGTERM
# lets transfers in flight finish. The transfers are held in flight by the
# backend (echo_backend -H) until the test releases them, so none of this
# depends on how fast the machine is.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"

px_ns
px_certs 200
# Every connection is held after 1 MB has been echoed, until px_release; only
# the transfers of the last step are that long.
HOLD_BYTES=1000000
px_backend_on 9000 -H "$HOLD_BYTES" -o "$T_TMP/backend.out"
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
	px_s_client "$T_TMP/sess" "END SSL SESSION" $v -connect 127.0.0.1:8443 \
		-servername site1.example.test -CAfile "$CA" -sess_out "$T_TMP/sess" -no_ign_eof >/dev/null
	out=$(px_s_client - "^(New|Reused)," $v -connect 127.0.0.1:8444 \
		-servername site1.example.test -CAfile "$CA" -sess_in "$T_TMP/sess" -no_ign_eof)
	check "$v session from blue resumed on green" grep -q "^Reused" <<<"$out"
done
# Rotation: drop the oldest key, append a new one; both reload; the session
# issued before (with the second key) still resumes.
rm -f "$T_TMP/sess"
px_s_client "$T_TMP/sess" "END SSL SESSION" -tls1_3 -connect 127.0.0.1:8443 \
	-servername site2.example.test -CAfile "$CA" -sess_out "$T_TMP/sess" -no_ign_eof >/dev/null
{ tail -n 2 "$PX_TICKETS"; openssl rand -base64 80 | tr -d '\n'; echo; } >"$T_TMP/tk.new"
mv "$T_TMP/tk.new" "$PX_TICKETS"
check "reload-tickets on blue" test "$(px_get "$T_TMP/blue.sock" reload-tickets keys)" -eq 3
check "reload-tickets on green" test "$(px_get "$T_TMP/green.sock" reload-tickets keys)" -eq 3
out=$(px_s_client - "^(New|Reused)," -tls1_3 -connect 127.0.0.1:8444 \
	-servername site2.example.test -CAfile "$CA" -sess_in "$T_TMP/sess" -no_ign_eof)
check "session resumes after a rotation" grep -q "^Reused" <<<"$out"
echo garbage >"$T_TMP/bad.keys"
r=$(PX_TICKETS=x px_ctl "$T_TMP/blue.sock" reload-tickets)
check "reload-tickets replies" grep -q '"ok":true' <<<"$r"
# quit with hard_stop_after: green exits although a client still holds a
# connection open (it never closes it on its own).
px_hold 8444 site1.example.test
holder=$HOLD_PID
active_on() { [ "$(px_get "$T_TMP/$1.sock" status active)" -ge "$2" ]; }
check "the holder is connected to green" wait_for 10 active_on green 1
check "quit replies ok" grep -q '"ok":true' <<<"$(px_ctl "$T_TMP/green.sock" quit)"
gone() { ! kill -0 "$1" 2>/dev/null; }
check "quit + hard_stop_after: exited although a client held a connection" wait_for 10 gone "$GREEN"
kill "$holder" 2>/dev/null

# reload-certs while handshakes run.
old=$(px_get "$T_TMP/blue.sock" "cert site1.example.test" sha256)
grep -v '^site1\.' "$T_TMP/pki/names.txt" | head -150 >"$T_TMP/n.txt"
# The handshakes go on, rounds of 150, until the reload is done: they have
# provably started before it (the counter moved) and run through it.
hs_ok() { px_get "$T_TMP/blue.sock" stats handshakes_ok; }
hs_at_least() { [ "$(hs_ok)" -ge "$1" ]; }
hs0=$(hs_ok)
(while :; do
	in_ns "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/n.txt" || exit 1
	[ -e "$T_TMP/hs.stop" ] && exit 0
done) >"$T_TMP/hs.log" 2>&1 &
hs=$!
check "handshakes running" wait_for 20 hs_at_least $((hs0 + 20))
"$PX_TOOLS/gencerts" --out "$T_TMP/pki" --one site1.example.test --file "$CERTDIR/site1.pem" \
	--serial 4242 >/dev/null || fail "gencerts --one"
r=$(px_ctl "$T_TMP/blue.sock" reload-certs)
say "reload-certs: ${r:0:200}"
check "reload-certs ok" grep -q '"ok":true' <<<"$r"
check "generation moved" test "$(px_get "$T_TMP/blue.sock" status generation)" -ge 2
check "the handshake loop ran through the reload (no round failed yet)" kill -0 "$hs"
touch "$T_TMP/hs.stop"
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

# SIGTERM with transfers in flight (on the draining instance): six 4 MB
# echo transfers, each held by the backend after 1 MB, so they are in flight
# for certain when the signal comes. The listeners close, the process stays
# while they are held, and once released every one completes with the
# bytes it sent (tls_check compares SHA-256 digests and byte counts).
in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site4.example.test -b 4000000 -k 6 \
	>"$T_TMP/tr.log" 2>&1 &
tr=$!
check "six transfers held mid-way by the backend" px_wait_held "$T_TMP/backend.out" 6
check "transfers in flight" test "$(px_get "$T_TMP/blue.sock" status active)" -ge 6
kill -TERM "$BLUE"
closed() { ! ip netns exec "$NS" "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/n.txt" -m 1 >/dev/null 2>&1; }
check "listeners closed after SIGTERM" wait_for 10 closed
check "the proxy waits for the held transfers" kill -0 "$BLUE"
check "all six still in flight" test "$(px_get "$T_TMP/blue.sock" status active)" -ge 6
px_release "$BE_PID"
wait "$tr"
rc=$?
cat "$T_TMP/tr.log"
check "every transfer in flight completed intact" test "$rc" -eq 0
check "six transfers, 4000000 bytes each" grep -q "^echo: 6 ok, 0 failed (4000000 bytes each" "$T_TMP/tr.log"
check "proxy exited once idle" wait_for 10 gone "$BLUE"
say "PASS"
