#!/bin/bash
# netfilter flows: the conntrack count per instance equals the connections
# the test holds open through the REDIRECT (IPv4 and IPv6, PREROUTING and
# OUTPUT), leaves out direct connections to an instance port, and its
# ESTABLISHED part falls to zero as the connections close (closed flows move
# to TIME_WAIT and are counted as closing).
. "$(dirname "$0")/lib.sh"
require_root
command -v iptables-legacy >/dev/null || skip "iptables-legacy not installed"
NFCTL=$SY_BUILD/tests/tools/nfctl
ECHO=$SY_BUILD/tests/tools/nfecho
[ -x "$NFCTL" ] && [ -x "$ECHO" ] || fail "missing test tools (build first)"
export XTABLES_LOCKFILE=$T_TMP/xtables.lock

SRV=$(netns_new srv)
CLI=$(netns_new cli)
ip link add sy-v0-$$ netns "$SRV" type veth peer name sy-v1-$$ netns "$CLI" || fail "veth"
ip -n "$SRV" link set sy-v0-$$ up
ip -n "$CLI" link set sy-v1-$$ up
ip -n "$SRV" addr add 198.18.0.1/24 dev sy-v0-$$
ip -n "$CLI" addr add 198.18.0.2/24 dev sy-v1-$$
ip -n "$SRV" addr add fd00::1/64 dev sy-v0-$$ nodad
ip -n "$CLI" addr add fd00::2/64 dev sy-v1-$$ nodad

L=(-l "0.0.0.0,443,8443,9443" -l "198.18.0.1,80,8080,9080" -l "::,443,8444,9444" -l "fd00::1,80,8081,9081")
nf() { ip netns exec "$SRV" "$NFCTL" "${L[@]}" "$@"; }

# The instances: one server answering on every instance port. The client
# namespace runs the "other hosts" on the service ports themselves.
bg ip netns exec "$SRV" "$ECHO" serve 8443 9443 8080 9080 8444 9444 8081 9081
bg ip netns exec "$CLI" "$ECHO" serve 443 80
wait_port "$SRV" 9081 || fail "instance server did not start"
wait_port "$CLI" 80 || fail "remote server did not start"

# Two interactive clients, one per namespace, driven through FIFOs: fds 3/4
# talk to the remote client (PREROUTING), 5/6 to the local one (OUTPUT).
# Opening a FIFO read-write never blocks, so open our ends first.
mkfifo "$T_TMP/ci" "$T_TMP/co" "$T_TMP/li" "$T_TMP/lo"
exec 3<>"$T_TMP/ci" 4<>"$T_TMP/co" 5<>"$T_TMP/li" 6<>"$T_TMP/lo"
# Not through bg(): bash gives a background command /dev/null as stdin unless
# the command itself carries the redirection.
ip netns exec "$CLI" "$ECHO" client <"$T_TMP/ci" >"$T_TMP/co" &
T_PIDS+=($!)
ip netns exec "$SRV" "$ECHO" client <"$T_TMP/li" >"$T_TMP/lo" &
T_PIDS+=($!)
# ask remote|local COMMAND: the client's one-line answer goes to $REPLY_LINE.
ask() {
	REPLY_LINE=
	if [ "$1" = remote ]; then
		echo "$2" >&3
		read -r -t 10 REPLY_LINE <&4
	else
		echo "$2" >&5
		read -r -t 10 REPLY_LINE <&6
	fi
}
# open_expect WHO ADDR PORT INSTANCE_PORT: opens a connection that must land
# on INSTANCE_PORT; its id is left in $ID. (Not a command substitution: fail()
# must end the test, not a subshell.)
open_expect() {
	local out got
	ask "$1" "open $2 $3"
	out=$REPLY_LINE
	read -r _ ID got <<<"$out"
	[ "${out%% *}" = ok ] && [ "$got" = "$4" ] ||
		fail "$1 connection to [$2]:$3 should land on $4, got: $out"
	say "ok: $1 [$2]:$3 -> $4"
}
# talk_expect WHO ID INSTANCE_PORT: one round trip that must be answered by
# INSTANCE_PORT.
talk_expect() {
	local out
	ask "$1" "send $2 ping$2"
	out=$REPLY_LINE
	[ "$out" = "ok $3 ping$2" ] || fail "$1 connection $2 should still talk to $3, got: $out"
	say "ok: $1 connection $2 still on $3"
}

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
