#!/bin/bash
# Netfilter figures (issue 4): flip latency with 10 listeners on an otherwise
# empty nat table and with 5,000 foreign rules, and flow-count time and memory
# with 100,000 conntrack entries. Everything runs in private network
# namespaces (unshare -n) with a private xtables lock; the host's tables are
# never touched.
# Then both backends side by side (issue 13): flip latency, command to
# acknowledged and verified commit, median and p99, 10 listeners (5 IPv4 +
# 5 IPv6), with 0, 5,000 and 50,000 foreign rules in other tables (nftables:
# a table of their own; legacy: the nat table, where x_tables keeps them),
# and the kernel's own read-and-replace of the legacy nat table.
#   bench/20-netfilter.sh BUILD_DIR [backends]   ("backends": only that part)
set -eu
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (figures scale with it on 2 cores)"
BUILD=$(cd "${1:-build}" && pwd)
NFB=$BUILD/bench/nfbench
[ -x "$NFB" ] || { echo "missing $NFB (make first)"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for network namespaces"; exit 0; }
TMP=$(mktemp -d /tmp/sy-bench-nf.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export XTABLES_LOCKFILE=$TMP/xtables.lock

# backends FOREIGN LEGACY_FLIPS: one namespace with FOREIGN rules in an
# nftables table of their own and FOREIGN in the legacy nat table.
backends() {
	local n=$1 lf=$2
	{
		echo "table inet foreign {"
		echo "  chain pre { type nat hook prerouting priority dstnat; policy accept; }"
		echo "  chain own {"
		for i in $(seq 1 "$n"); do
			echo "    ip daddr 10.$((i / 62500)).$((i / 250 % 250)).$((i % 250)) tcp dport $((2000 + i % 1000)) accept"
		done
		echo "  }"
		echo "}"
	} >"$TMP/foreign.nft"
	{
		echo "*nat"
		echo ":FOREIGN - [0:0]"
		for i in $(seq 1 "$n"); do
			echo "-A FOREIGN -d 10.$((i / 62500)).$((i / 250 % 250)).$((i % 250))/32 -p tcp -m tcp --dport $((2000 + i % 1000)) -j RETURN"
		done
		echo "COMMIT"
	} >"$TMP/foreign.ipt"
	unshare -n bash -c "nft -f '$TMP/foreign.nft' && iptables-legacy-restore -w <'$TMP/foreign.ipt' &&
	echo \"foreign rules: \$(nft -a list table inet foreign | grep -c 'accept # handle') nftables, \$(iptables-legacy-save -t nat | grep -c '^-A') legacy nat\" &&
	'$NFB' flips 1000 5 5 nftables | sed 's/^/  /' &&
	'$NFB' flips $lf 5 5 iptables | sed 's/^/  /' &&
	{ [ $n -eq 0 ] || '$NFB' kernel $((lf < 300 ? lf : 300)) | sed 's/^/  legacy kernel floor: /'; }"
}
if [ "${2:-}" = backends ]; then
	echo "-- backends side by side: $(nproc) cores, kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')"
	backends 0 1000
	backends 5000 1000
	backends 50000 100
	exit 0
fi

echo "-- flip latency (lock + init + edit + commit + read-back), 1000 flips"
unshare -n bash -c "'$NFB' flips 1000 10 0 | sed 's/^/empty nat table:        /' &&
	'$NFB' raw 1000 | sed 's/^/  bare libiptc floor:    /'"
unshare -n "$NFB" flips 1000 5 5 | sed 's/^/dual stack, 2 commits:  /'

# 5,000 foreign rules: 4,000 in a chain of their own, 1,000 in PREROUTING
# after our jump, all loaded in one iptables-legacy-restore. Twice: with
# DNAT targets (what docker and kube-proxy write; the kernel checks each
# DNAT rule against conntrack on every table replace) and with RETURN.
foreign() {
	echo "*nat"
	echo ":FOREIGN - [0:0]"
	for i in $(seq 1 4000); do
		echo "-A FOREIGN -d 10.$((i / 250)).$((i % 250)).1/32 -p tcp -m tcp --dport $((2000 + i % 1000)) -j $1"
	done
	for i in $(seq 1 1000); do
		echo "-A PREROUTING -s 10.8.$((i / 250)).$((i % 250))/32 -j FOREIGN"
	done
	echo "COMMIT"
}
foreign "DNAT --to-destination 10.9.9.9" >"$TMP/dnat.rules"
foreign RETURN >"$TMP/return.rules"
for kind in dnat return; do
	unshare -n bash -c "iptables-legacy-restore -w <'$TMP/$kind.rules' &&
	echo \"foreign rules loaded ($kind): \$(iptables-legacy-save -t nat | grep -c '^-A')\" &&
	'$NFB' flips 1000 10 0 | sed 's/^/5000 foreign rules:     /' &&
	'$NFB' raw 1000 | sed 's/^/  bare libiptc floor:    /' &&
	'$NFB' kernel 300 | sed 's/^/  kernel floor:         /'"
done

echo "-- flow count (streaming ctnetlink dump, kernel-side filter)"
unshare -n bash -c "'$NFB' ctfill 1000 >/dev/null && '$NFB' count 20 | sed 's/^/1,000 entries:    /'"
unshare -n bash -c "'$NFB' ctfill 100000 | sed 's/^/created: /' && '$NFB' count 20 | sed 's/^/100,000 entries:  /'"

echo "-- backends side by side (issue 13)"
backends 0 1000
backends 5000 1000
backends 50000 100
