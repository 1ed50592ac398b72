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
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$TMP"' EXIT
export XTABLES_LOCKFILE=$TMP/xtables.lock

# The foreign rules of one case: FOREIGN rules in an nftables table of
# their own and FOREIGN in the legacy nat table.
foreign_rules() {
	local n=$1
	{
		echo "table inet foreign {"
		echo "  chain pre { type nat hook prerouting priority dstnat; policy accept; }"
		echo "  chain own {"
		for i in $(seq 1 "$n"); do
			echo "    ip daddr 10.$((i / 62500)).$((i / 250 % 250)).$((i % 250)) tcp dport $((2000 + i % 1000)) accept"
		done
		echo "  }"
		echo "}"
	} >"$TMP/foreign-$n.nft"
	{
		echo "*nat"
		echo ":FOREIGN - [0:0]"
		for i in $(seq 1 "$n"); do
			echo "-A FOREIGN -d 10.$((i / 62500)).$((i / 250 % 250)).$((i % 250))/32 -p tcp -m tcp --dport $((2000 + i % 1000)) -j RETURN"
		done
		echo "COMMIT"
	} >"$TMP/foreign-$n.ipt"
}

# stats FILE: median and p99 of the samples in FILE (one per line).
stats() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		printf "median_us %.1f p99_us %.1f (%d flips)", v[int(NR / 2) + 1], v[int(NR * 0.99) + 1], NR }'
}

# Each case is a network namespace of its own, held open by a sleeping
# process. Phase 1 holds only nftables foreign rules (a table of their own)
# and gives the nftables figures of record: ROUNDS rounds that visit the
# three cases in turn (FLIPS flips each), so that a change of load during
# the run weighs on every case alike and the ratio between the cases is
# measured in one run. Many short series rather than a few long ones: on a
# kernel with expedited RCU (below) a whole series can run at about 30 or at
# about 70 us per flip, and each case needs many draws. The
# rule-replacement variant (the product's flip before the port maps, kept
# for the comparison: nfbench ruleflips) runs in the same rounds.
# Phase 2 adds the legacy foreign rules (the nat table: x_tables has no
# other place for them) to the same namespaces: shorter nftables rounds
# show what a big legacy table beside them changes, then legacy runs once
# per case with the kernel's own read-and-replace for comparison.

# rounds NROUNDS TAG [ruleflips]: the nftables rounds; samples in
# $TMP/TAG-N (and $TMP/TAG-rules-N).
rounds() {
	local r n
	for r in $(seq 1 "$1"); do
		for n in 0 5000 50000; do
			NFBENCH_SAMPLES=$TMP/$2-$n nsenter -t "${ns[$n]}" -n "$NFB" flips "$flips" 5 5 nftables >/dev/null
			[ -z "${3:-}" ] ||
				NFBENCH_SAMPLES=$TMP/$2-rules-$n nsenter -t "${ns[$n]}" -n "$NFB" ruleflips "$flips" 5 5 >/dev/null
		done
	done
}

# median FILE
median() {
	sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int(NR / 2) + 1] }'
}

backends() {
	local rounds=${ROUNDS:-50} flips=${FLIPS:-20} n pid
	local -A ns
	for n in 0 5000 50000; do
		foreign_rules "$n"
		unshare -n sleep 100000 &
		pid=$!
		ns[$n]=$pid
		PIDS+=("$pid")
		sleep 0.2
		nsenter -t "$pid" -n nft -f "$TMP/foreign-$n.nft"
		echo "case $n: foreign rules: $(nsenter -t "$pid" -n nft -a list table inet foreign | grep -c 'accept # handle') nftables"
	done
	# Each nf_tables commit that deletes anything (a flip deletes the old
	# map elements) leaves the kernel a deferred cleanup that waits for an
	# RCU grace period. With /sys/kernel/rcu_expedited at 1 (this VM's
	# kernel sets it; Debian's default is 0) that wait is an expedited grace
	# period, which interrupts the flipping CPU. NF_BENCH_RCU_NORMAL=1 sets
	# it to 0 for the nftables rounds and restores it afterwards (a global
	# kernel setting: opt-in, never the default).
	local old_exp=""
	if [ "${NF_BENCH_RCU_NORMAL:-0}" = 1 ] && [ "$(cat /sys/kernel/rcu_expedited 2>/dev/null)" = 1 ]; then
		old_exp=1
		echo 0 >/sys/kernel/rcu_expedited
		trap 'echo 1 >/sys/kernel/rcu_expedited; kill "${PIDS[@]}" 2>/dev/null; rm -rf "$TMP"' EXIT
	fi
	echo "nftables rounds: $rounds x $flips flips per case; /sys/kernel/rcu_expedited $(cat /sys/kernel/rcu_expedited 2>/dev/null || echo unknown)$([ -n "$old_exp" ] && echo " (set for this run; 1 before)")"
	rounds "$rounds" nft ruleflips
	for n in 0 5000 50000; do
		echo "$n foreign rules: nftables (port maps) $(stats "$TMP/nft-$n"); rule replacement $(stats "$TMP/nft-rules-$n")"
	done
	awk -v a="$(median "$TMP/nft-50000")" -v b="$(median "$TMP/nft-0")" \
		'BEGIN { printf "nftables median, 50,000 foreign rules / none: %.2f\n", a / b }'

	for n in 0 5000 50000; do
		nsenter -t "${ns[$n]}" -n iptables-legacy-restore -w <"$TMP/foreign-$n.ipt"
		echo "case $n: plus $(nsenter -t "${ns[$n]}" -n iptables-legacy-save -t nat | grep -c '^-A') legacy nat rules"
	done
	rounds $((rounds / 2)) mixed
	for n in 0 5000 50000; do
		echo "$n nftables + $n legacy foreign rules: nftables (port maps) $(stats "$TMP/mixed-$n")"
	done
	awk -v a="$(median "$TMP/mixed-50000")" -v b="$(median "$TMP/mixed-0")" \
		'BEGIN { printf "nftables median beside a legacy nat table, 50,000 / none: %.2f\n", a / b }'
	if [ -n "$old_exp" ]; then
		echo 1 >/sys/kernel/rcu_expedited
		echo "/sys/kernel/rcu_expedited restored to 1"
	fi

	for n in 0 5000 50000; do
		lf=$([ "$n" -eq 50000 ] && echo 100 || echo 1000)
		nsenter -t "${ns[$n]}" -n "$NFB" flips "$lf" 5 5 iptables | sed "s/^/$n foreign rules: legacy /"
		[ "$n" -eq 0 ] || nsenter -t "${ns[$n]}" -n "$NFB" kernel $((lf < 300 ? lf : 300)) |
			sed "s/^/$n foreign rules: legacy kernel floor: /"
	done
	# Flips spaced out as in production (one every 20 ms rather than back
	# to back): the CPU idles in between and each flip starts cold.
	for b in nftables iptables; do
		NFBENCH_GAP_US=20000 nsenter -t "${ns[0]}" -n "$NFB" flips 200 5 5 "$b" |
			sed "s/^/0 foreign rules, 20 ms apart: /"
	done
	kill "${PIDS[@]}" 2>/dev/null || true
	PIDS=()
}
if [ "${2:-}" = backends ]; then
	echo "-- backends side by side: $(nproc) cores, kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')"
	backends
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
backends
