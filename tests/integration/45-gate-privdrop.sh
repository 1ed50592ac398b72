#!/bin/bash
# The health gate's handshakes do not run as root. With proxy.user and
# proxy.group set, every gate thread of switchyardd drops to that user and
# group (no supplementary group, no capability) before it talks to the
# standby, while switchyardd's main thread stays root for netfilter; the
# instances run as that user too; and a gated flip passes through the
# instances' control sockets, which they hand to their user at their drop.
# SWITCHYARD_TEST_GATE_HOLD holds the gate threads after their drop, so the
# test reads their credentials without a race.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"
PUID=$(id -u nobody 2>/dev/null) || skip "no user 'nobody'"
PGID=$(getent group nogroup | cut -d: -f3)
[ -n "$PGID" ] || skip "no group 'nogroup'"

sv_setup 10
sed -i 's/^proxy:$/proxy:\n  user: nobody\n  group: nogroup/' "$SV_CONF"
# The unprivileged user must reach the certificates and the state directory.
chmod 711 "$T_TMP"
chmod 755 "$SV_PKI" "$SV_PKI/certs"
chmod 644 "$SV_PKI"/certs/*
chmod 750 "$T_TMP/state"
HOLD=$T_TMP/gate.hold
export SWITCHYARD_TEST_GATE_HOLD=$HOLD
sv_start

uid_line() { awk '$1 == "Uid:" {print $2, $3, $4, $5}' "$1"; }
for c in blue green; do
	pid=$(sv_status ".instances[] | select(.colour == \"$c\") | .pid")
	check "instance $c (pid $pid) runs as nobody" test "$(uid_line "/proc/$pid/status")" = "$PUID $PUID $PUID $PUID"
done

touch "$HOLD"
svc flip >"$T_TMP/flip.out" 2>&1 &
FLIP=$!
T_PIDS+=("$FLIP")
# gate_threads: the threads of switchyardd that run as nobody.
gate_threads() {
	local f
	for f in /proc/"$SV_PID"/task/*/status; do
		[ "$(uid_line "$f" 2>/dev/null)" = "$PUID $PUID $PUID $PUID" ] && echo "$f"
	done
}
has_gate_threads() { [ -n "$(gate_threads)" ]; }
check "gate threads appear, running as nobody" wait_until 30 has_gate_threads
threads=$(gate_threads)
say "gate threads: $(echo "$threads" | wc -l)"
for f in $threads; do
	say "$f: $(grep -E '^(Uid|Gid|Groups|CapEff|CapPrm):' "$f" | tr '\t' ' ' | tr '\n' ';')"
	check "gid nogroup" test "$(awk '$1 == "Gid:" {print $2, $3, $4, $5}' "$f")" = "$PGID $PGID $PGID $PGID"
	check "no supplementary group but nogroup" test "$(awk '$1 == "Groups:" {$1 = ""; print}' "$f" | xargs)" = "$PGID"
	check "no effective capability" grep -q '^CapEff:[[:space:]]*0000000000000000$' "$f"
	check "no permitted capability" grep -q '^CapPrm:[[:space:]]*0000000000000000$' "$f"
done
check "switchyardd's main thread is still root" test "$(uid_line "/proc/$SV_PID/status")" = "0 0 0 0"
rm -f "$HOLD"
wait "$FLIP"
rc=$?
cat "$T_TMP/flip.out"
[ "$rc" -eq 0 ] || { sv_dump_logs; fail "gated flip: exit $rc"; }
# (The status's flip records carry the gate's time, not its counts; the
# flip's own report names how many it checked.)
check "the gate checked names" grep -Eq 'gate passed in [0-9]+ ms \([1-9][0-9]* names[,)]' "$T_TMP/flip.out"
left=$(gate_threads)
check "no gate thread is left (they are joined before the flip)" test -z "$left"
check "the service still answers" test -n "$(sv_served "$(sed -n '1{s/ .*//;p}' "$SV_PKI/names.txt")")"
say "PASS"
