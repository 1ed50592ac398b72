#!/bin/bash
# netfilter filter guard (supervisor.filter_guard): instance ports answer only
# through the REDIRECT (conntrack state DNAT) or from this host (lo); a client
# on another host that dials an instance port directly is dropped. The guard
# covers both colours, survives flips, and goes away with `remove` or when the
# option is turned off. Private namespaces and a private xtables lock. The
# connections are the same for both backends; the rules are read from the
# legacy filter table or from our nftables table's input chain.
. "$(dirname "$0")/lib.sh"
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
# nft_guard P1 P2: the nftables guard rules for one family's two instance
# ports, as `nft list chain` prints them.
nft_guard() {
	local fam=$1 p
	shift
	for p in "$@"; do
		cat <<EOT
meta nfproto $fam iifname "lo" tcp dport $p accept
meta nfproto $fam tcp dport $p ct status dnat accept
meta nfproto $fam tcp dport $p drop
EOT
	done
}
if [ "$SY_NF_BACKEND" = nftables ]; then
	nft_input() {
		ip netns exec "$SRV" nft list chain inet switchyard input 2>/dev/null |
			sed -n 's/^[[:space:]]*\(meta nfproto .*\)$/\1/p'
	}
	filter4() { nft_input | grep 'nfproto ipv4'; }
	filter6() { nft_input | grep 'nfproto ipv6'; }
	guard4() { nft_guard ipv4 "$@"; }
	guard6() { nft_guard ipv6 "$@"; }
else
	filter4() { ip netns exec "$SRV" iptables-legacy-save -t filter | grep '^-A'; }
	filter6() { ip netns exec "$SRV" ip6tables-legacy-save -t filter | grep '^-A'; }
	guard6() { guard4 "$@"; }
fi

check "install blue with the guard" nf install blue
[ "$(filter4)" = "$(guard4 8443 9443)" ] || { filter4; fail "IPv4 filter guard differs"; }
[ "$(filter6)" = "$(guard6 8444 9444)" ] || { filter6; fail "IPv6 filter guard differs"; }
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
[ -z "$(filter4)" ] || fail "guard left after install without filter_guard"
open_expect remote 198.18.0.1 8443 8443
check "install with the guard again" nf install green
check "remove" nf remove
[ -z "$(filter4)" ] || fail "IPv4 guard left after remove"
[ -z "$(filter6)" ] || fail "IPv6 guard left after remove"
say "ok: nothing of ours left in filter"
exit 0
