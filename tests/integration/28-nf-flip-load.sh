#!/bin/bash
# Flips under connection load, at the netfilter layer: 1,000 flips while
# clients keep opening connections through PREROUTING (a second namespace
# over a veth pair, IPv4 and IPv6) and OUTPUT (this namespace, loopback).
# Every connection must land on an instance port and complete its round
# trip: 0 failed connections. Runs once per backend (run.sh).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-nf.sh"
command -v python3 >/dev/null || skip "python3 not installed"
nf_two_hosts -l "0.0.0.0,443,8443,9443" -l "198.18.0.1,80,8080,9080" -l "::,443,8444,9444" -l "fd00::1,80,8081,9081"
LOAD=$SY_ROOT/tests/tools/nfload.py
ALLOWED=8443,9443,8080,9080,8444,9444,8081,9081

check "install blue ($SY_NF_BACKEND)" nf install blue
STOP=$T_TMP/stop
LSTOP=$T_TMP/lstop
NFLOAD_UP=$T_TMP/remote.up ip netns exec "$CLI" python3 "$LOAD" "$LSTOP" "$ALLOWED" \
	198.18.0.1,443 198.18.0.1,80 fd00::1,443 fd00::1,80 >"$T_TMP/remote.out" 2>"$T_TMP/remote.err" &
rl=$!
NFLOAD_UP=$T_TMP/local.up ip netns exec "$SRV" python3 "$LOAD" "$LSTOP" "$ALLOWED" \
	127.0.0.1,443 198.18.0.1,80 ::1,443 >"$T_TMP/local.out" 2>"$T_TMP/local.err" &
ll=$!
T_PIDS+=("$rl" "$ll")
# The flips start once connections flow (every target of both loads has
# answered once: a loaded machine can take seconds to start them); they
# pause 1 ms between flips so that connections are opened across many
# flips, not between two.
loads_up() { [ -e "$T_TMP/remote.up" ] && [ -e "$T_TMP/local.up" ]; }
wait_until 60 loads_up || {
	touch "$LSTOP"
	wait "$rl" "$ll"
	fail "the loads did not start: $(cat "$T_TMP"/remote.out "$T_TMP"/remote.err "$T_TMP"/local.out "$T_TMP"/local.err)"
}
nf flips 1000 1000 >"$T_TMP/flips.out" 2>"$T_TMP/flips.err"
frc=$?
touch "$LSTOP"
wait "$rl"
rrc=$?
wait "$ll"
lrc=$?
cat "$T_TMP/flips.out" "$T_TMP/remote.out" "$T_TMP/local.out"
head -5 "$T_TMP/flips.err" "$T_TMP/remote.err" "$T_TMP/local.err"
[ $frc -eq 0 ] && grep -q '^flips [0-9]* failed 0$' "$T_TMP/flips.out" || fail "some flips failed"
[ $rrc -eq 0 ] || fail "remote connections failed (PREROUTING)"
[ $lrc -eq 0 ] || fail "local connections failed (OUTPUT)"
n=$(($(awk '{print $2}' "$T_TMP/remote.out") + $(awk '{print $2}' "$T_TMP/local.out")))
[ "$n" -ge 500 ] || fail "only $n connections during the flips: too few to mean anything"
say "ok: 1,000 flips with $SY_NF_BACKEND, $n connections, 0 failed"
out=$(nf read)
echo "$out" | grep -q '^live blue$' && echo "$out" | grep -q '^drift none$' || fail "after the flips: $out"
exit 0
