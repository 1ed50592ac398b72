#!/bin/bash
# Our rule deleted (or changed) by hand, with either backend (and, with
# nftables, the listener's map element deleted, and the whole table
# flushed): the supervisor detects the drift within a few seconds, logs it,
# and puts the rule back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 20
sv_start
live=$(sv_status .live)
port=$([ "$live" = blue ] && echo 8443 || echo 9443)
wrong=$([ "$live" = blue ] && echo 9443 || echo 8443)
repaired() { [ "$(sv_status .counters.drift_repairs)" -ge "$1" ]; }

say "flushing our redirect rules by hand ($SY_NF_BACKEND)"
sv_rules_flush || fail "flush by hand"
wait_until 10 repaired 1 || { sv_dump_logs; fail "drift not repaired"; }
sv_redirects_to "$port" || fail "rule not restored: $(sv_rules)"
grep -q DRIFT "$T_TMP/switchyardd.log" || fail "drift not logged"
say "ok: deleted rule restored"

say "pointing the rule at the wrong instance by hand"
sv_rules_point "$wrong" || fail "changing the rule by hand"
wait_until 10 repaired 2 || { sv_dump_logs; fail "drift not repaired"; }
sv_redirects_to "$port" || fail "rule not restored: $(sv_rules)"
[ "$(sv_status .live)" = "$live" ] || fail "live colour changed"
sv_load --threads 4 --duration 2 >/dev/null || fail "traffic fails after the repair"
say "ok: redirected rule restored, traffic clean"

# nftables only: the listener's element deleted from its map; the rule that
# reads the map is still there, but finds nothing for the service address.
if [ "$SY_NF_BACKEND" = nftables ]; then
	say "deleting the listener's map element by hand"
	sv_ns nft delete element inet switchyard exact4 "{ $SV_ADDR . 443 }" || fail "nft delete element"
	wait_until 10 repaired 3 || { sv_dump_logs; fail "element not restored"; }
	sv_redirects_to "$port" || fail "element not restored: $(sv_rules)"
	grep -q 'no element in map exact4' "$T_TMP/switchyardd.log" || fail "the drift log does not name the element"
	sv_load --threads 4 --duration 2 >/dev/null || fail "traffic fails after the repair"
	say "ok: deleted element restored"
fi

# nftables only: `nft flush ruleset` (what an nftables.service restart does)
# deletes our whole table; the drift check puts it back.
if [ "$SY_NF_BACKEND" = nftables ]; then
	say "nft flush ruleset"
	sv_ns nft flush ruleset || fail "nft flush ruleset"
	wait_until 10 repaired 4 || { sv_dump_logs; fail "table not restored after nft flush ruleset"; }
	sv_redirects_to "$port" || fail "rule not restored: $(sv_rules)"
	sv_load --threads 4 --duration 2 >/dev/null || fail "traffic fails after the repair"
	say "ok: table restored after nft flush ruleset"
fi
