#!/bin/bash
# netfilter under a concurrent writer: 1,000 flips while an iptables-legacy
# loop adds and deletes its own rules in the same nat table (PREROUTING,
# OUTPUT and a chain of its own, IPv4 and IPv6), all sharing one xtables lock.
# Afterwards neither side has lost a rule, and every flip succeeded.
. "$(dirname "$0")/lib.sh"
nf_backend_only iptables "its concurrent writer is iptables-legacy, which takes the xtables lock; 27 covers concurrent nftables writers"
require_root
command -v iptables-legacy >/dev/null || skip "iptables-legacy not installed"
NFCTL=$SY_BUILD/tests/tools/nfctl
[ -x "$NFCTL" ] || fail "missing $NFCTL (build first)"
NS=$(netns_new conc)
export XTABLES_LOCKFILE=$T_TMP/xtables.lock
L=(-l "0.0.0.0,443,8443,9443" -l "198.18.0.1,80,8080,9080" -l "::,443,8444,9444")
in_ns() { ip netns exec "$NS" "$@"; }
nf() { in_ns "$NFCTL" "${L[@]}" "$@"; }

check "install blue" nf install blue
in_ns iptables-legacy -w -t nat -N FOREIGN || fail "create FOREIGN chain"
in_ns ip6tables-legacy -w -t nat -N FOREIGN || fail "create IPv6 FOREIGN chain"

# The flipper: at least 1,000 alternating flips, ending on blue, 2 ms apart,
# and on until the writer says stop: the two overlap on purpose.
STOP=$T_TMP/stop
nf flips 1000 2000 "$STOP" >"$T_TMP/flips.out" 2>"$T_TMP/flips.err" &
flipper=$!
T_PIDS+=("$flipper")

# The writer: adds a rule per round and deletes the one added two rounds
# before on every other round, for at least 50 rounds and until the flipper
# has done its 1,000 (bounded), then tells the flipper to stop. Every
# command must succeed; -w makes it wait for the lock as the flips hold it.
expected4=$T_TMP/expected4
expected6=$T_TMP/expected6
: >"$expected4"
: >"$expected6"
rounds=0 errors=0
while kill -0 "$flipper" 2>/dev/null && [ $rounds -lt 3000 ] &&
	! { [ $rounds -ge 50 ] && grep -q '^reached' "$T_TMP/flips.out"; }; do
	port=$((20000 + rounds))
	case $((rounds % 3)) in
	0) chain=PREROUTING ;;
	1) chain=OUTPUT ;;
	2) chain=FOREIGN ;;
	esac
	rule="-A $chain -p tcp -m tcp --dport $port -j REDIRECT --to-ports $((port + 1))"
	if [ $((rounds % 5)) -eq 4 ]; then
		in_ns ip6tables-legacy -w -t nat $rule || errors=$((errors + 1))
		echo "$rule" >>"$expected6"
	else
		in_ns iptables-legacy -w -t nat $rule || errors=$((errors + 1))
		echo "$rule" >>"$expected4"
	fi
	# Delete an older IPv4 rule on every other round.
	if [ $((rounds % 2)) -eq 1 ]; then
		old=$(sed -n 1p "$expected4")
		if [ -n "$old" ]; then
			in_ns iptables-legacy -w -t nat ${old/-A/-D} || errors=$((errors + 1))
			sed -i 1d "$expected4"
		fi
	fi
	rounds=$((rounds + 1))
done
touch "$STOP"
wait "$flipper"
rc=$?
cat "$T_TMP/flips.out"
head -5 "$T_TMP/flips.err"
[ $rc -eq 0 ] || fail "some flips failed"
grep -q '^reached 1000$' "$T_TMP/flips.out" || fail "flipper did not finish 1000 flips"
grep -q '^flips [0-9]* failed 0$' "$T_TMP/flips.out" || fail "some flips failed"
[ $errors -eq 0 ] || fail "$errors iptables-legacy commands failed"
[ $rounds -ge 50 ] || fail "the writer ran only $rounds rounds alongside the flips"
say "ok: $(sed -n 's/^flips \([0-9]*\).*/\1/p' "$T_TMP/flips.out") flips and $rounds concurrent writer rounds, no error"

# No foreign rule lost: everything that is not ours equals the writer's list.
foreign() { grep '^-A' | grep -v SWITCHYARD | sort; }
diff <(in_ns iptables-legacy-save -t nat | foreign) <(sort "$expected4") || fail "IPv4 foreign rules differ"
diff <(in_ns ip6tables-legacy-save -t nat | foreign) <(sort "$expected6") || fail "IPv6 foreign rules differ"
say "ok: $(wc -l <"$expected4") IPv4 and $(wc -l <"$expected6") IPv6 foreign rules all present"

# None of ours lost either: exactly our layout, pointing at blue.
out=$(nf read)
echo "$out"
[ "$(echo "$out" | sed -n 1p)" = "live blue" ] || fail "live should be blue after the flips"
echo "$out" | grep -q '^drift none$' || fail "drift after the concurrent run"
[ "$(in_ns iptables-legacy-save -t nat | grep -c -- '-j SWITCHYARD')" = 4 ] || fail "IPv4 jumps"
[ "$(in_ns ip6tables-legacy-save -t nat | grep -c -- '-j SWITCHYARD')" = 2 ] || fail "IPv6 jumps"
say "ok: our chain, jumps and rules intact"
exit 0
