#!/bin/bash
# kill -9 the supervisor in the middle of a flip: traffic continues (the
# instances run in their own sessions), and a restarted supervisor adopts
# both instances (same pids, no duplicates), reports a state consistent with
# the kernel's rules, and still shows the flip history from before the kill.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 50
sv_start
bpid=$(sv_status '.instances[] | select(.colour == "blue") | .pid')
gpid=$(sv_status '.instances[] | select(.colour == "green") | .pid')

# The load runs until stopped, so it spans the kill and the restart however
# long they take.
sv_load_bg "$T_TMP/load.json" "$T_TMP/load.err" --threads 8 --duration 300 --json
sv_wait_traffic "$(sv_status .live)" 8 || fail "the load did not start"
for i in 1 2 3; do svc flip >/dev/null || fail "flip $i"; done
# The three flips as status shows them, oldest first (at, from, to, result
# without the drain outcome, which may still change).
hist() { sv_status '[.flips[] | "\(.at) \(.from) \(.to) \(.from_generation) \(.to_generation) \(.commit_us) \(.latency_us)"] | join(",")'; }
before=$(hist)
[ "$(sv_status '.flips | length')" -eq 3 ] || fail "want 3 flips in the history: $before"
svc flip >/dev/null 2>&1 &
sleep 0.0$((RANDOM % 9 + 1))
say "kill -9 switchyardd (pid $SV_PID) during a flip"
kill -9 "$SV_PID"
wait "$SV_PID" 2>/dev/null
# Whichever colour the interrupted flip left live, one of them serves.
traffic_on_either() { sv_wait_traffic blue 8 2 || sv_wait_traffic green 8 2; }
check "traffic goes on while the supervisor is dead" wait_until 10 traffic_on_either
kill -0 "$bpid" && kill -0 "$gpid" || fail "an instance died with the supervisor"

say "restarting switchyardd"
sv_start
[ "$(sv_status '.instances[] | select(.colour == "blue") | .pid')" = "$bpid" ] || fail "blue not adopted"
[ "$(sv_status '.instances[] | select(.colour == "green") | .pid')" = "$gpid" ] || fail "green not adopted"
[ "$(sv_status '[.instances[] | select(.adopted)] | length')" -eq 2 ] || fail "status does not say adopted"
nprox=$(pgrep -f -- "switchyard-proxy -c $SV_CONF" | wc -l)
[ "$nprox" -eq 2 ] || fail "$nprox proxy processes, want 2"
live=$(sv_status .live)
port=$([ "$live" = blue ] && echo 8443 || echo 9443)
sv_redirects_to "$port" ||
	fail "status says $live but the kernel redirects elsewhere: $(sv_rules)"
[ "$(sv_status ".instances[] | select(.colour == \"$live\") | .state")" = live ] || fail "live instance state"
say "ok: adopted both, live $live matches the kernel"
after=$(hist)
check "the flip history survived the restart" test "${after#"$before"}" != "$after"
say "history before: $before"
say "history after:  $after"

kill -TERM "$LOAD"
wait "$LOAD"
cat "$T_TMP/load.json"
[ "$(jq .failed "$T_TMP/load.json")" -eq 0 ] || fail "traffic failed: $(cat "$T_TMP/load.json")"
check "flip works after the restart" svc flip
say "ok: traffic continued through the supervisor's death"
