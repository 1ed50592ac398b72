#!/bin/bash
# A long-lived connection opened before a flip keeps exchanging data after
# the flip, during the drain, and after the drain ends (here by the drain
# timeout, since the connection never closes; nothing is cut because
# hard_stop_after is 0). The client keeps its one connection until the test
# stops it, so it is open for every step whatever the machine's speed; each
# step waits for a state (bounded), not for a fixed time.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"
. "$SY_ROOT/tests/tools/px_lib.sh" # px_get: one field of an instance's reply

SV_DRAIN_TIMEOUT=4s sv_setup 20
sv_start
old=$(sv_status .live)

say "one keep-alive connection, a request every 100 ms until stopped"
sv_load_bg "$T_TMP/long.json" "$T_TMP/long.err" --threads 1 --long 100 --duration 300 --json
wait_until 10 sh -c "[ \$($SY_BUILD/switchyard -c $SV_CONF status --json | jq '[.instances[].active] | add') -ge 1 ]" ||
	fail "the long-lived connection did not show up"
# Bytes the old instance has read from its clients: it moves only if the
# long connection (the only client) still exchanges data with it.
bytes_in() { px_get "$T_TMP/state/$old.sock" stats bytes_in; }
bytes_above() { [ "$(bytes_in)" -gt "$1" ]; }
check "flip while it is open" svc flip
b_flip=$(bytes_in)
new=$(sv_status .live)
[ "$new" != "$old" ] || fail "live colour did not change"

# The drain lasts 4 s (the timeout), as the connection stays open; on a
# loaded machine (ASan) it can be over before status is read. One status
# then shows either $old draining with the connection, or the flip's
# record already closed as drain-timeout, which the supervisor writes only
# when the connection was still there at the end of the drain.
svc status --json >"$T_TMP/after-flip.json" || fail "status"
jq -e --arg c "$old" '(.instances[] | select(.colour == $c) | .state == "draining" and .active >= 1)
	or .flips[-1].result == "drain-timeout"' "$T_TMP/after-flip.json" >/dev/null ||
	fail "$old should be draining and hold the connection: $(cat "$T_TMP/after-flip.json")"
say "ok: $old is draining and still holds the connection"
check "data still flows to $old after the flip" wait_until 10 bytes_above "$b_flip"

wait_until 15 sh -c "[ \"\$($SY_BUILD/switchyard -c $SV_CONF status --json | jq -r '.instances[] | select(.colour == \"$old\") | .state')\" = standby ]" ||
	fail "$old never left draining"
result=$(sv_status '.flips[-1].result')
# drain-timeout (not drained) proves the connection was open all along.
[ "$result" = drain-timeout ] || fail "drain result is $result, want drain-timeout"
say "ok: drain ended by timeout; $old is standby"
b_end=$(bytes_in)
check "data still flows to $old after the drain ended" wait_until 10 bytes_above "$b_end"

kill -TERM "$LOAD"
wait "$LOAD" || { cat "$T_TMP/long.err"; fail "the long-lived connection failed: $(cat "$T_TMP/long.json")"; }
cat "$T_TMP/long.json"
reqs=$(jq .requests "$T_TMP/long.json")
[ "$(jq .failed "$T_TMP/long.json")" -eq 0 ] || fail "failures: $(cat "$T_TMP/long.json")"
# Each of the three checks above saw at least one request on it.
[ "$reqs" -ge 3 ] || fail "only $reqs requests on the long connection"
say "ok: $reqs requests on one connection across the flip, the drain and after it"
