#!/bin/bash
# kill -9 the standby while it preloads (a `reload --restart`): the reload
# fails without flipping, the live instance keeps serving every client, and
# the standby is respawned and becomes ready again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 200
# The instances' test hook: a load holds after one file while $HOLD exists.
# Nothing holds at start; the restarted standby holds until it is killed,
# so the kill lands during its preload on purpose.
HOLD=$T_TMP/hold
export SWITCHYARD_TEST_LOAD_HOLD="1:$HOLD"
sv_start
live=$(sv_status .live)
standby=$([ "$live" = blue ] && echo green || echo blue)

# The clients run until stopped: they span the kill and the respawn.
sv_load_bg "$T_TMP/load.json" "$T_TMP/load.err" --threads 8 --duration 300 --json
sv_wait_traffic "$live" 8 || fail "the load did not start"

oldpid=$(sv_status ".instances[] | select(.colour == \"$standby\") | .pid")
pidfile=$T_TMP/state/$standby.pid
touch "$HOLD"
svc reload --restart --quiet >"$T_TMP/reload.out" 2>&1 &
RELOAD=$!
# switchyardd writes the pid file right after the fork; the new process
# then holds its preload until the hold file goes.
pid=$oldpid
for ((i = 0; i < 3000 && pid == oldpid; i++)); do
	{ read -r pid <"$pidfile"; } 2>/dev/null || pid=$oldpid
	[ "$pid" = "$oldpid" ] && sleep 0.01
done
[ "$pid" != "$oldpid" ] || fail "$standby was never restarted"
# Between the fork and the new process's first status reply, switchyardd
# reports the instance as "starting"; the hold keeps it in "loading" after.
preloading() {
	[ "$(sv_status ".instances[] | select(.colour == \"$standby\") | .state")" = loading ]
}
wait_until 30 preloading || { sv_dump_logs; fail "$standby never reported loading"; }
say "killing $standby (pid $pid) during its preload"
kill -9 "$pid"
rm -f "$HOLD"
wait "$RELOAD"
rc=$?
cat "$T_TMP/reload.out"
[ "$rc" -ne 0 ] || fail "reload succeeded although the standby died during preload"
[ "$(sv_status .live)" = "$live" ] || fail "the live colour changed"
say "ok: reload failed, no flip"

back() {
	sv_status_is ".instances[] | select(.colour == \"$standby\") | (.state == \"ready\" or .state == \"standby\") and .pid != $pid and .restarts >= 1"
}
wait_until 60 back || { sv_dump_logs; fail "$standby was not respawned"; }
say "ok: $standby respawned and ready (pid $(sv_status ".instances[] | select(.colour == \"$standby\") | .pid"))"
check "the same clients are still served by $live" sv_wait_traffic "$live" 8
kill -TERM "$LOAD"
wait "$LOAD"
cat "$T_TMP/load.json"
[ "$(jq .failed "$T_TMP/load.json")" -eq 0 ] || fail "clients of the live instance failed: $(cat "$T_TMP/load.json")"
say "ok: the live instance was unaffected"
