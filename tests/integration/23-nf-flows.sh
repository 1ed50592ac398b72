#!/bin/bash
# netfilter flows: the conntrack count per instance equals the connections
# the test holds open through the REDIRECT (IPv4 and IPv6, PREROUTING and
# OUTPUT), leaves out direct connections to an instance port, and its
# ESTABLISHED part falls to zero as the connections close (closed flows move
# to TIME_WAIT and are counted as closing).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-nf.sh"
nf_two_hosts -l "0.0.0.0,443,8443,9443" -l "198.18.0.1,80,8080,9080" -l "::,443,8444,9444" -l "fd00::1,80,8081,9081"

# flows_expect COLOUR ESTABLISHED: waits (bounded) until the count of
# established flows pinned to COLOUR is ESTABLISHED, or fails. The wait covers
# the FIN handshake of a just-closed connection, not a timing claim.
flows_expect() {
	local i line
	for ((i = 0; i < 100; i++)); do
		line=$(nf flows | grep "^$1 ") || fail "nfctl flows failed"
		set -- "$1" "$2" $line
		[ "$5" = "$2" ] && { say "ok: $1 has $2 established flows ($line)"; return 0; }
		sleep 0.05
	done
	fail "$1 should have $2 established flows, nf_count_flows says: $line"
}

check "install blue" nf install blue
flows_expect blue 0
flows_expect green 0
BLUE=()
for a in 198.18.0.1 198.18.0.1 198.18.0.1 fd00::1 fd00::1; do
	p=8443; [ "$a" = fd00::1 ] && p=8444
	open_expect remote $a 443 $p
	BLUE+=("remote $ID")
done
open_expect local 127.0.0.1 443 8443
BLUE+=("local $ID")
# Direct connections to instance ports are not pinned flows.
open_expect remote 198.18.0.1 8443 8443
open_expect local ::1 9444 9444
flows_expect blue 6
flows_expect green 0

check "flip green" nf flip green
GREEN=()
for a in 198.18.0.1 198.18.0.1 fd00::1 fd00::1; do
	p=9443; [ "$a" = fd00::1 ] && p=9444
	open_expect remote $a 443 $p
	GREEN+=("remote $ID")
done
flows_expect blue 6
flows_expect green 4
line=$(nf flows | grep '^blue ')
[ "$line" = "blue 0 6 0 6" ] || fail "blue should count 6 established and nothing else: $line"

n=6
for c in "${BLUE[@]}"; do
	ask ${c% *} "close ${c#* }"
	n=$((n - 1))
	flows_expect blue $n
done
line=$(nf flows | grep '^blue ')
set -- $line
[ "$4" -ge 1 ] || fail "closed blue flows should show up as closing (TIME_WAIT): $line"
say "ok: closed flows are counted as closing: $line"
flows_expect green 4
for c in "${GREEN[@]}"; do ask ${c% *} "close ${c#* }"; done
flows_expect green 0
# Counting never removes entries: the TIME_WAIT ones are all still there.
line2=$(nf flows | grep '^blue ')
set -- $line2
[ "$4" -ge 1 ] || fail "TIME_WAIT entries disappeared: $line2"
exit 0
