#!/bin/bash
# Every flip record reaches a final state (issue 15, section 2). A record
# stayed "draining" forever when the draining instance died or was flipped
# back to before its drain ended; now it says "drain-cut" or "flipped-back".
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

SV_DRAIN_TIMEOUT=300s sv_setup 4
sv_start
a=$(sv_status .live)
b=$([ "$a" = blue ] && echo green || echo blue)
state_of() { sv_status ".instances[] | select(.colour == \"$1\") | .state"; }
active_on() { [ "$(sv_status ".instances[] | select(.colour == \"$1\") | .active")" -ge 1 ]; }
result_is() { [ "$(sv_status ".flips[$1].result")" = "$2" ]; }

# A connection that never closes keeps the old instance draining.
sv_load_bg "$T_TMP/l1.json" "$T_TMP/l1.err" --threads 1 --long 100 --duration 300 --json
wait_until 20 active_on "$a" || fail "the long-lived connection did not reach $a"
check "flip $a -> $b" svc flip
[ "$(state_of "$a")" = draining ] || fail "$a should be draining"
[ "$(sv_status '.flips[-1].result')" = draining ] || fail "the record should say draining"

# Flipped back while it drains.
check "flip back $b -> $a" svc flip
wait_until 5 result_is -2 flipped-back ||
	fail "the record of the first flip says $(sv_status '.flips[-2].result'), want flipped-back"
say "ok: a drain ended by a flip back is recorded as flipped-back"

# The instance that drains dies.
sv_load_bg "$T_TMP/l2.json" "$T_TMP/l2.err" --threads 1 --long 100 --duration 300 --json
wait_until 20 active_on "$a" || fail "the second long-lived connection did not reach $a"
check "flip $a -> $b again" svc flip
[ "$(state_of "$a")" = draining ] || fail "$a should be draining again"
kill -9 "$(sv_status ".instances[] | select(.colour == \"$a\") | .pid")"
wait_until 5 result_is -1 drain-cut ||
	fail "the record says $(sv_status '.flips[-1].result') after $a died, want drain-cut"
say "ok: a drain ended by the instance's death is recorded as drain-cut"
# The record changes in memory (what status shows) before the state file
# is written.
wait_until 10 grep -q "drain-cut" "$T_TMP/state/switchyardd.state" ||
	fail "the final state is not saved: $(cat "$T_TMP/state/switchyardd.state")"
