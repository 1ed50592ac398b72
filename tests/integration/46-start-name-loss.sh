#!/bin/bash
# Start-up is a promotion too (issue 15, section 1): with no rules in the
# kernel, switchyardd used to serve the saved live colour whatever it held.
# Here the saved colour holds a set that lacks 6 of the 8 names served
# before the restart, and the other instance holds all 8: the rules go to
# the other one. The comparison uses the names saved in
# state_dir/served-names.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 8
sv_start
full=$(sv_status .live)
lossy=$([ "$full" = blue ] && echo green || echo blue)

# The standby loads a set where 6 of the 8 files are broken (new file
# names, so no previous version stays served); no flip.
BAD=$T_TMP/bad
mkdir -p "$BAD"
for f in "$SV_PKI"/certs/*; do cp "$f" "$BAD/v2-$(basename "$f")"; done
for f in $(sed -n 3,8p "$SV_PKI/names.txt" | awk '{print $2}'); do
	echo "not a certificate" >"$BAD/v2-$f"
done
svc reload --no-flip --certs "$BAD" >/dev/null 2>&1 || fail "reload --no-flip"

# Restart with no rules and a state file that names the lossy colour live.
kill -TERM "$SV_PID"
wait "$SV_PID" 2>/dev/null
sv_ns "$SY_BUILD/switchyard" -c "$SV_CONF" rules remove >/dev/null || fail "rules remove"
sed -i "s/^live .*/live $lossy/" "$T_TMP/state/switchyardd.state"
ip netns exec "$SV_NS" "$SY_BUILD/switchyardd" -c "$SV_CONF" -f >>"$T_TMP/switchyardd.log" 2>&1 &
SV_PID=$!
T_PIDS+=("$SV_PID")
settled() { sv_status_is ".live == \"$full\" and (.rules | startswith(\"ok\")) and .names.lost == 0"; }
wait_until 30 settled || { sv_dump_logs; svc status; fail "not serving the full set from $full"; }
read -r NAME8 _ < <(sed -n 8p "$SV_PKI/names.txt")
[ -n "$(sv_served "$NAME8")" ] || fail "$NAME8 is not served"
[ "$(wc -l <"$T_TMP/state/served-names")" -eq 8 ] || fail "served-names does not hold the 8 names"
grep -E "start:|restore:" "$T_TMP/switchyardd.log"
say "ok: start-up served the instance that holds every name"
