#!/bin/bash
# Start-up with no rules in the kernel while the saved live colour cannot
# start (its port is taken, so it crash-loops) and the other instance is
# ready (issue 15, section 2). switchyardd used to wait for the saved colour
# and install no rules at all: a full outage until someone flipped by hand.
# It now serves from the ready instance.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 4
sv_start
live=$(sv_status .live)
other=$([ "$live" = blue ] && echo green || echo blue)
port=$([ "$live" = blue ] && echo 8443 || echo 9443)
read -r NAME _ < <(sed -n 1p "$SV_PKI/names.txt")

# Stop switchyardd (the instances keep running), remove the rules, stop
# both instances: the next start finds nothing but the state file, which
# says $live.
kill -TERM "$SV_PID"
wait "$SV_PID" 2>/dev/null
sv_ns "$SY_BUILD/switchyard" -c "$SV_CONF" rules remove || fail "rules remove"
for c in blue green; do
	p=$(cat "$T_TMP/state/$c.pid")
	kill -9 "$p"
	wait_until 10 sh -c "! kill -0 $p 2>/dev/null" || fail "$c did not die"
done
grep -q "^live $live" "$T_TMP/state/switchyardd.state" || fail "state file does not say live $live"

sv_ns python3 -c "
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', $port))
s.listen()
time.sleep(600)
" &
T_PIDS+=($!)
wait_port "$SV_NS" "$port" 10 || fail "could not take port $port"

ip netns exec "$SV_NS" "$SY_BUILD/switchyardd" -c "$SV_CONF" -f >>"$T_TMP/switchyardd.log" 2>&1 &
SV_PID=$!
T_PIDS+=("$SV_PID")
# The start-up path sets the live colour and the rules together; wait for
# both, on a reply (switchyardd takes a moment to listen, see sv_status_is).
rules_ok() { sv_status_is --arg c "$other" '(.rules | startswith("ok")) and .live == $c'; }
wait_until 30 rules_ok || {
	sv_dump_logs
	fail "no rules to $other while it was ready (live $(sv_status .live), rules $(sv_status .rules))"
}
[ -n "$(sv_served "$NAME")" ] || fail "$NAME is not served"
# The line is written before the rules go in (one thread, in that order),
# so it is there once status shows them.
grep -q "$live (the saved live colour) is crashing and $other is ready" "$T_TMP/switchyardd.log" || {
	sv_dump_logs
	echo "status: $(svc status --json)"
	fail "the choice is not logged"
}
say "ok: served from $other while $live crash-loops"
