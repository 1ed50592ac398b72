#!/bin/bash
# netfilter rules: install, install again, flip, drift and repair, remove,
# compared line by line with iptables-legacy-save and ip6tables-legacy-save;
# foreign rules survive everything; a held xtables lock and a missing
# CAP_NET_ADMIN give errors that name the cause. Runs in a private netns with
# its own XTABLES_LOCKFILE.
. "$(dirname "$0")/lib.sh"
nf_backend_only iptables "compares the legacy tables with iptables-legacy-save; 26 is its nftables counterpart"
require_root
command -v iptables-legacy-save >/dev/null || skip "iptables-legacy not installed"
NFCTL=$SY_BUILD/tests/tools/nfctl
[ -x "$NFCTL" ] || fail "missing $NFCTL (build first)"
NS=$(netns_new rules)
export XTABLES_LOCKFILE=$T_TMP/xtables.lock
L=(-l "0.0.0.0,443,8443,9443" -l "198.18.0.1,80,8080,9080" -l "::,443,8444,9444" -l "fd00::1,80,8081,9081")
in_ns() { ip netns exec "$NS" "$@"; }
nf() { in_ns "$NFCTL" "${L[@]}" "$@"; }
# The nat table without comments and with counters zeroed.
save4() { in_ns iptables-legacy-save -t nat | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/'; }
save6() { in_ns ip6tables-legacy-save -t nat | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/'; }

expect4() { # $1 = 443 target, $2 = 80 target
	cat <<EOT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SWITCHYARD - [0:0]
-A PREROUTING -p tcp -m addrtype --dst-type LOCAL -j SWITCHYARD
-A PREROUTING -d 198.18.0.1/32 -p tcp -j SWITCHYARD
-A PREROUTING -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353
-A OUTPUT -p tcp -m addrtype --dst-type LOCAL -j SWITCHYARD
-A OUTPUT -d 198.18.0.1/32 -p tcp -j SWITCHYARD
-A OUTPUT -d 192.0.2.9/32 -p tcp -m tcp --dport 25 -j DNAT --to-destination 192.0.2.10
-A SWITCHYARD -p tcp -m tcp --dport 443 -j REDIRECT --to-ports $1
-A SWITCHYARD -d 198.18.0.1/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports $2
COMMIT
EOT
}
expect6() {
	cat <<EOT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SWITCHYARD - [0:0]
-A PREROUTING -p tcp -m addrtype --dst-type LOCAL -j SWITCHYARD
-A PREROUTING -d fd00::1/128 -p tcp -j SWITCHYARD
-A PREROUTING -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353
-A OUTPUT -p tcp -m addrtype --dst-type LOCAL -j SWITCHYARD
-A OUTPUT -d fd00::1/128 -p tcp -j SWITCHYARD
-A SWITCHYARD -p tcp -m tcp --dport 443 -j REDIRECT --to-ports $1
-A SWITCHYARD -d fd00::1/128 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports $2
COMMIT
EOT
}
foreign4() {
	cat <<EOT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353
-A OUTPUT -d 192.0.2.9/32 -p tcp -m tcp --dport 25 -j DNAT --to-destination 192.0.2.10
COMMIT
EOT
}
same() { # DESCRIPTION EXPECTED ACTUAL
	if [ "$2" != "$3" ]; then
		diff <(echo "$2") <(echo "$3") | sed 's/^/    /'
		fail "$1"
	fi
	say "ok: $1"
}

# Another writer's rules, there before us.
in_ns iptables-legacy -w -t nat -A PREROUTING -p udp --dport 53 -j REDIRECT --to-ports 5353 ||
	fail "iptables-legacy foreign rule"
in_ns iptables-legacy -w -t nat -A OUTPUT -d 192.0.2.9 -p tcp --dport 25 -j DNAT --to-destination 192.0.2.10 ||
	fail "iptables-legacy foreign rule 2"
in_ns ip6tables-legacy -w -t nat -A PREROUTING -p udp --dport 53 -j REDIRECT --to-ports 5353 ||
	fail "ip6tables-legacy foreign rule"

nf read | grep -q '^live none$' || fail "read before install should say live none"
nf read | grep -q 'chain SWITCHYARD is missing' || fail "read before install should report the missing chain"

check "install blue" nf install blue
same "IPv4 after install" "$(expect4 8443 8080)" "$(save4)"
same "IPv6 after install" "$(expect6 8444 8081)" "$(save6)"
check "install blue again" nf install blue
same "IPv4 after second install: no duplicate" "$(expect4 8443 8080)" "$(save4)"
same "IPv6 after second install: no duplicate" "$(expect6 8444 8081)" "$(save6)"
out=$(nf read)
echo "$out"
same "read after install" "live blue
listener 0 ok blue 8443
listener 1 ok blue 8080
listener 2 ok blue 8444
listener 3 ok blue 8081
drift none" "$out"

check "flip green" nf flip green
same "IPv4 after flip" "$(expect4 9443 9080)" "$(save4)"
same "IPv6 after flip" "$(expect6 9444 9081)" "$(save6)"
nf read | grep -q '^live green$' || fail "read after flip should say live green"
check "flip green twice" nf flip green
same "IPv4 after repeated flip" "$(expect4 9443 9080)" "$(save4)"

# Drift 1: our IPv4 rule for 443 deleted by hand (rule numbers are 1-based
# for the iptables command).
in_ns iptables-legacy -w -t nat -D SWITCHYARD 1 || fail "manual delete"
out=$(nf read)
echo "$out"
echo "$out" | grep -q '^listener 0 missing none 0$' || fail "read should report listener 0 missing"
echo "$out" | grep -q '^live none$' || fail "read should say live none while a rule is missing"
echo "$out" | grep -q 'listener0 (0.0.0.0 port 443): rule missing' || fail "drift text should name the listener"
check "install green repairs" nf install green
same "IPv4 after repair" "$(expect4 9443 9080)" "$(save4)"
nf read | grep -q '^drift none$' || fail "no drift after repair"

# Drift 2: an IPv6 rule pointed elsewhere, and a jump deleted.
in_ns ip6tables-legacy -w -t nat -R SWITCHYARD 2 -d fd00::1 -p tcp --dport 80 -j REDIRECT --to-ports 7777 ||
	fail "manual replace"
in_ns iptables-legacy -w -t nat -D OUTPUT -d 198.18.0.1/32 -p tcp -j SWITCHYARD || fail "manual jump delete"
out=$(nf read)
echo "$out"
echo "$out" | grep -q '^listener 3 foreign none 7777$' || fail "read should report listener 3 foreign"
echo "$out" | grep -q 'jumps from OUTPUT to SWITCHYARD missing' || fail "read should report the missing jump"
check "install green repairs again" nf install green
same "IPv4 after second repair" "$(expect4 9443 9080)" "$(save4)"
same "IPv6 after second repair" "$(expect6 9444 9081)" "$(save6)"

# Drift 3: a duplicate rule and a stray jump; install removes both.
in_ns iptables-legacy -w -t nat -A SWITCHYARD -p tcp --dport 443 -j REDIRECT --to-ports 9443 || fail "dup"
in_ns iptables-legacy -w -t nat -A PREROUTING -i lo -j SWITCHYARD || fail "stray jump"
out=$(nf read)
echo "$out" | grep -q '^listener 0 duplicate' || fail "read should report the duplicate"
echo "$out" | grep -q 'extra or changed jumps from PREROUTING' || fail "read should report the stray jump"
check "install green repairs duplicates" nf install green
same "IPv4 after third repair" "$(expect4 9443 9080)" "$(save4)"

# The lock: held by someone else, we wait a bounded time and name the holder.
lock_hold "$XTABLES_LOCKFILE"
holder=$LOCK_PID
start=$SECONDS
err=$(in_ns "$NFCTL" -w 500 "${L[@]}" flip blue 2>&1) && fail "flip succeeded while the lock was held"
echo "$err"
echo "$err" | grep -q "xtables lock .* is held by pid $holder (flock)" || fail "error should name the lock holder: $err"
[ $((SECONDS - start)) -lt 10 ] || fail "lock wait was not bounded"
lock_release
same "IPv4 unchanged by the failed flip" "$(expect4 9443 9080)" "$(save4)"

# Without CAP_NET_ADMIN the error says so.
err=$(in_ns setpriv --bounding-set=-net_admin,-net_raw --inh-caps=-net_admin,-net_raw "$NFCTL" "${L[@]}" read 2>&1) &&
	fail "read without CAP_NET_ADMIN succeeded"
echo "$err"
echo "$err" | grep -q "not root.*CAP_NET_ADMIN" || fail "error should name the missing capability: $err"

check "remove" nf remove
same "IPv4 after remove: only the foreign rules" "$(foreign4)" "$(save4)"
[ "$(save6 | grep -c -- '-A')" = 1 ] || fail "IPv6 after remove should hold only the foreign rule"
check "remove twice" nf remove
same "IPv4 after second remove" "$(foreign4)" "$(save4)"

# A family without listeners keeps nothing of ours.
check "install blue" nf install blue
check "install with IPv4 listeners only" in_ns "$NFCTL" -l 0.0.0.0,443,8443,9443 install blue
save6 | grep -q SWITCHYARD && fail "IPv6 chain left behind after the IPv6 listeners went away"
say "ok: IPv6 leftovers removed"
exit 0
