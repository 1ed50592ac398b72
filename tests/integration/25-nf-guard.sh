#!/bin/bash
# netfilter filter guard (supervisor.filter_guard): instance ports answer only
# through the REDIRECT (conntrack state DNAT) or from this host (lo); a client
# on another host that dials an instance port directly is dropped. The guard
# covers both colours, survives flips, and goes away with `remove` or when the
# option is turned off. Private namespaces and a private xtables lock.
. "$(dirname "$0")/lib.sh"
nf_backend_only iptables "reads the legacy filter table; 26 checks the nftables guard"
. "$(dirname "$0")/lib-nf.sh"
nf_two_hosts -g -l "0.0.0.0,443,8443,9443" -l "::,443,8444,9444"

# refused_expect WHO ADDR PORT: the connection must not get through (the
# guard drops the SYN; nfecho gives up after its bounded 5 s wait).
refused_expect() {
	ask "$1" "open $2 $3"
	[ "${REPLY_LINE%% *}" = err ] || fail "$1 connection to [$2]:$3 should be dropped, got: $REPLY_LINE"
	say "ok: $1 [$2]:$3 dropped ($REPLY_LINE)"
}
guard4() {
	cat <<EOT
-A INPUT -p tcp -j SWITCHYARD
-A SWITCHYARD -i lo -p tcp -m tcp --dport $1 -j ACCEPT
-A SWITCHYARD -p tcp -m tcp --dport $1 -m conntrack --ctstate DNAT -j ACCEPT
-A SWITCHYARD -p tcp -m tcp --dport $1 -j DROP
-A SWITCHYARD -i lo -p tcp -m tcp --dport $2 -j ACCEPT
-A SWITCHYARD -p tcp -m tcp --dport $2 -m conntrack --ctstate DNAT -j ACCEPT
-A SWITCHYARD -p tcp -m tcp --dport $2 -j DROP
EOT
}
filter4() { ip netns exec "$SRV" iptables-legacy-save -t filter | grep '^-A'; }
filter6() { ip netns exec "$SRV" ip6tables-legacy-save -t filter | grep '^-A'; }

check "install blue with the guard" nf install blue
[ "$(filter4)" = "$(guard4 8443 9443)" ] || { filter4; fail "IPv4 filter guard differs"; }
[ "$(filter6)" = "$(guard4 8444 9444)" ] || { filter6; fail "IPv6 filter guard differs"; }
say "ok: guard rules as expected in both families"
nf read | grep -q '^drift none$' || fail "no drift with the guard installed"

open_expect remote 198.18.0.1 443 8443
OLD=$ID
open_expect remote fd00::1 443 8444
open_expect local 127.0.0.1 443 8443
open_expect local 127.0.0.1 9443 9443
refused_expect remote 198.18.0.1 8443
refused_expect remote fd00::1 9444

check "flip green" nf flip green
[ "$(filter4)" = "$(guard4 8443 9443)" ] || fail "a flip must not touch the guard"
open_expect remote 198.18.0.1 443 9443
talk_expect remote "$OLD" 8443

# Turning the option off removes the guard; remove removes everything.
check "install without the guard" ip netns exec "$SRV" "$NFCTL" "${L[@]:1}" install green
filter4 | grep -q SWITCHYARD && fail "guard left after install without filter_guard"
open_expect remote 198.18.0.1 8443 8443
check "install with the guard again" nf install green
check "remove" nf remove
filter4 | grep -q SWITCHYARD && fail "IPv4 guard left after remove"
filter6 | grep -q SWITCHYARD && fail "IPv6 guard left after remove"
say "ok: nothing of ours left in filter"
exit 0
