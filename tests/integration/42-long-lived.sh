#!/bin/bash
# A long-lived connection opened before a flip keeps exchanging data after
# the flip, during the drain, and after the drain ends (here by the drain
# timeout, since the connection never closes; nothing is cut because
# hard_stop_after is 0).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

SV_DRAIN_TIMEOUT=4s sv_setup 20
sv_start
old=$(sv_status .live)

say "one keep-alive connection, a request every 100 ms for 14 s"
sv_load_bg "$T_TMP/long.json" "$T_TMP/long.err" --threads 1 --long 100 --duration 14 --json
wait_until 5 sh -c "[ \$($SY_BUILD/switchyard -c $SV_CONF status --json | jq '[.instances[].active] | add') -ge 1 ]" ||
	fail "the long-lived connection did not show up"
check "flip while it is open" svc flip
new=$(sv_status .live)
[ "$new" != "$old" ] || fail "live colour did not change"

state_of() { sv_status ".instances[] | select(.colour == \"$1\") | .state"; }
sleep 1
[ "$(state_of "$old")" = draining ] || fail "$old should be draining, is $(state_of "$old")"
active=$(sv_status ".instances[] | select(.colour == \"$old\") | .active")
[ "$active" -ge 1 ] || fail "$old should still hold the connection (active $active)"
say "ok: $old is draining and still holds the connection"

wait_until 15 sh -c "[ \"\$($SY_BUILD/switchyard -c $SV_CONF status --json | jq -r '.instances[] | select(.colour == \"$old\") | .state')\" = standby ]" ||
	fail "$old never left draining"
result=$(sv_status '.flips[-1].result')
[ "$result" = drain-timeout ] || fail "drain result is $result, want drain-timeout"
say "ok: drain ended by timeout; $old is standby"

wait "$LOAD" || { cat "$T_TMP/long.err"; fail "the long-lived connection failed: $(cat "$T_TMP/long.json")"; }
reqs=$(jq .requests "$T_TMP/long.json")
[ "$reqs" -ge 80 ] || fail "only $reqs requests on the long connection"
[ "$(jq .failed "$T_TMP/long.json")" -eq 0 ] || fail "failures: $(cat "$T_TMP/long.json")"
say "ok: $reqs requests on one connection across the flip, the drain and after it"
