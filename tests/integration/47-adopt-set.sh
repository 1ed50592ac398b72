#!/bin/bash
# Adopted instances report the certificate set they actually serve (issue
# 15, section 2). After `reload --certs OTHER` the live instance serves
# OTHER; a switchyardd restarted after a crash used to show the configured
# directory for both instances. The instances now say which directory they
# loaded (`status` "directory"), and the adopting supervisor reports that.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 4
sv_start
OTHER=$T_TMP/v2
gen_certs "$OTHER" 4
check "reload --certs $OTHER/certs" svc reload --certs "$OTHER/certs"
live=$(sv_status .live)
set_of() { sv_status ".instances[] | select(.colour == \"$1\") | .$2"; }
[ "$(set_of "$live" directory)" = "$OTHER/certs" ] || fail "before the restart: $(set_of "$live" directory)"

kill -9 "$SV_PID"
wait "$SV_PID" 2>/dev/null
ip netns exec "$SV_NS" "$SY_BUILD/switchyardd" -c "$SV_CONF" -f >>"$T_TMP/switchyardd.log" 2>&1 &
SV_PID=$!
T_PIDS+=("$SV_PID")
adopted() { [ "$(svc status --json | jq -r "[.instances[] | select(.adopted)] | length")" = 2 ]; }
wait_until 20 adopted || { sv_dump_logs; fail "the instances were not adopted"; }
dir=$(set_of "$live" directory)
[ "$dir" = "$OTHER/certs" ] || fail "adopted $live reports $dir, but serves $OTHER/certs"
say "ok: adopted $live reports the set it serves ($dir)"

# Its respawn loads that set too, not certificates.directory.
kill -9 "$(set_of "$live" pid)"
respawned() { [ "$(set_of "$live" pid)" -gt 0 ] && [ "$(set_of "$live" adopted)" = false ] &&
	[ "$(set_of "$live" state)" != failed ] && [ "$(set_of "$live" state)" != starting ]; }
wait_until 20 respawned || { sv_dump_logs; fail "$live was not respawned"; }
[ "$(set_of "$live" directory)" = "$OTHER/certs" ] ||
	fail "respawned $live loaded $(set_of "$live" directory), want $OTHER/certs"
say "ok: the respawn loads the set its instance held"
