#!/bin/bash
# The nftables backend: install, flip, guard and remove leave exactly the
# expected table, maps and elements included (nft -j list table inet
# switchyard, compared with jq); a flip moves the elements of IPv4 and IPv6
# in one transaction (one new generation in nft monitor, no rule); drift
# made with nft (an element, a rule, a map, a jump) is reported and
# repaired; foreign tables (an nft table of its own, iptables-nft's ip
# nat) survive everything; a switchyard table we did not create is refused;
# a backend change leaves one redirect; errors name the cause (no
# CAP_NET_ADMIN); `switchyard rules show` names the backend and why; a
# flip's one-exchange read-back falls back to a whole read when it must.
. "$(dirname "$0")/lib.sh"
nf_backend_only nftables "checks the nftables table itself; 20 and 24 check the legacy layout"
require_root
command -v nft >/dev/null || skip "nft (package nftables) not installed"
command -v jq >/dev/null || skip "jq not installed"
command -v strace >/dev/null || skip "strace not installed"
NFCTL=$SY_BUILD/tests/tools/nfctl
SY=$SY_BUILD/switchyard
[ -x "$NFCTL" ] && [ -x "$SY" ] || fail "missing nfctl or switchyard (build first)"
NS=$(netns_new nft)
export XTABLES_LOCKFILE=$T_TMP/xtables.lock
L=(-l "0.0.0.0,443,8443,9443" -l "198.18.0.1,80,8080,9080" -l "::,443,8444,9444" -l "fd00::1,80,8081,9081")
in_ns() { ip netns exec "$NS" "$@"; }
nf() { in_ns "$NFCTL" -b nftables "${L[@]}" "$@"; }

# Our table as compact JSON lines, without handles (they change). The
# kernel lists a map's elements in hash order; each of our maps holds one.
table() {
	in_ns nft -j list table inet switchyard |
		jq -c '.nftables[1:][] | walk(if type == "object" then del(.handle) else . end)'
}
T='"family":"inet","table":"switchyard"'
m() { echo "{\"match\":{\"op\":\"==\",\"left\":$1,\"right\":$2}}"; }
proto() { m '{"meta":{"key":"nfproto"}}' "\"$1\""; }
local_() { m '{"fib":{"result":"type","flags":["daddr"]}}' '"local"'; }
daddr() { m "{\"payload\":{\"protocol\":\"$1\",\"field\":\"daddr\"}}" "\"$2\""; }
dport() { m '{"payload":{"protocol":"tcp","field":"dport"}}' "$1"; }
rule() { # CHAIN COMMENT EXPR...
	local chain=$1 comment=$2 e
	shift 2
	e=$(IFS=,; echo "$*")
	echo "{\"rule\":{$T,\"chain\":\"$chain\",${comment:+\"comment\":\"$comment\",}\"expr\":[$e]}}"
}
dport_() { echo '{"payload":{"protocol":"tcp","field":"dport"}}'; }
# The redirect of one map: ADDR-PROTOCOL (ip, ip6 or "" for a port key) MAP.
redirect_map() {
	local key
	if [ -n "$1" ]; then
		key="{\"concat\":[{\"payload\":{\"protocol\":\"$1\",\"field\":\"daddr\"}},$(dport_)]}"
	else
		key=$(dport_)
	fi
	echo "{\"redirect\":{\"port\":{\"map\":{\"key\":$key,\"data\":\"@$2\"}}}}"
}
map_() { # NAME TYPE ELEMENT
	echo "{\"map\":{\"family\":\"inet\",\"name\":\"$1\",\"table\":\"switchyard\",\"type\":$2,\"map\":\"inet_service\",\"size\":16,\"elem\":[$3]}}"
}
# expect P443 P80 P443v6 P80v6 [guard]
expect() {
	local p
	echo '{"table":{"family":"inet","name":"switchyard"}}'
	map_ exact4 '["ipv4_addr","inet_service"]' "[{\"concat\":[\"198.18.0.1\",80]},$2]"
	map_ any4 '"inet_service"' "[443,$1]"
	map_ exact6 '["ipv6_addr","inet_service"]' "[{\"concat\":[\"fd00::1\",80]},$4]"
	map_ any6 '"inet_service"' "[443,$3]"
	echo "{\"chain\":{$T,\"name\":\"prerouting\",\"type\":\"nat\",\"hook\":\"prerouting\",\"prio\":-101,\"policy\":\"accept\"}}"
	echo "{\"chain\":{$T,\"name\":\"output\",\"type\":\"nat\",\"hook\":\"output\",\"prio\":-101,\"policy\":\"accept\"}}"
	echo "{\"chain\":{$T,\"name\":\"services\"}}"
	[ -n "${5:-}" ] &&
		echo "{\"chain\":{$T,\"name\":\"input\",\"type\":\"filter\",\"hook\":\"input\",\"prio\":0,\"policy\":\"accept\"}}"
	rule prerouting "" '{"jump":{"target":"services"}}'
	rule output "" '{"jump":{"target":"services"}}'
	local tcp
	tcp=$(m '{"meta":{"key":"l4proto"}}' '"tcp"')
	rule services "" "$(proto ipv4)" "$tcp" "$(redirect_map ip exact4)"
	rule services "" "$(proto ipv4)" "$(local_)" "$tcp" "$(redirect_map "" any4)"
	rule services "" "$(proto ipv6)" "$tcp" "$(redirect_map ip6 exact6)"
	rule services "" "$(proto ipv6)" "$(local_)" "$tcp" "$(redirect_map "" any6)"
	if [ -n "${5:-}" ]; then
		local fam
		for p in 4:8443 4:9443 4:8080 4:9080 6:8444 6:9444 6:8081 6:9081; do
			fam=ipv${p%%:*}
			p=${p#*:}
			rule input "" "$(proto $fam)" "$(m '{"meta":{"key":"iifname"}}' '"lo"')" "$(dport $p)" '{"accept":null}'
			rule input "" "$(proto $fam)" "$(dport $p)" \
				'{"match":{"op":"in","left":{"ct":{"key":"status"}},"right":"dnat"}}' '{"accept":null}'
			rule input "" "$(proto $fam)" "$(dport $p)" '{"drop":null}'
		done
	fi
}
same() { # DESCRIPTION EXPECT-ARGS...
	local what=$1
	shift
	diff <(expect "$@") <(table) >"$T_TMP/diff" || { cat "$T_TMP/diff"; fail "$what: table differs"; }
	say "ok: $what: exactly the expected table"
}

# Foreign rules: a table of its own (with a nat chain on our hook) and
# iptables-nft's ip nat, both present before we install.
in_ns nft -f - <<'EOT' || fail "foreign nft table"
table inet other {
	chain pre { type nat hook prerouting priority dstnat; policy accept; tcp dport 53 redirect to :5353; }
	chain in { type filter hook input priority 0; policy accept; tcp dport 22 accept; }
}
EOT
if command -v iptables-nft >/dev/null; then
	in_ns iptables-nft -t nat -A OUTPUT -p tcp -d 192.0.2.9 --dport 25 -j DNAT --to-destination 192.0.2.10 ||
		fail "iptables-nft rule"
fi
foreign() { in_ns nft -j list ruleset | jq -c '.nftables[] | select(.rule) | .rule | select(.table != "switchyard") | del(.handle)' | sort; }
foreign >"$T_TMP/foreign.before"

check "install blue" nf install blue
same "install" 8443 8080 8444 8081
check "install again (no change)" nf install blue
same "install twice" 8443 8080 8444 8081
out=$(nf read)
echo "$out" | grep -q '^live blue$' && echo "$out" | grep -q '^drift none$' || fail "read after install: $out"

# One flip, one transaction: nft monitor sees one new generation in which
# the elements of both families' maps move.
# nft monitor subscribes asynchronously, and prints each transaction's
# events followed by its "new generation" line, in commit order. A probe
# transaction (a table added and deleted) is repeated until the monitor
# has printed one, so it certainly listens before the flip; a marker
# transaction after the flip shows when everything before it is printed.
# The flip's part is what lies between the last probe's generation line
# and the marker.
in_ns nft monitor >"$T_TMP/monitor" 2>&1 &
mon=$!
T_PIDS+=("$mon")
# mark NAME: one transaction that adds and deletes table inet NAME.
mark() { in_ns nft "add table inet $1; delete table inet $1"; }
# marked NAME: the monitor printed a whole transaction touching NAME.
marked() { awk -v n="$1" 'index($0, n) {m = 1} m && /^# new generation/ {ok = 1} END {exit !ok}' "$T_TMP/monitor"; }
probe() { mark sy_probe && marked sy_probe; }
wait_until 30 probe || fail "nft monitor printed no probe: $(cat "$T_TMP/monitor")"
check "flip green" nf flip green
mark sy_marker || fail "marker transaction"
wait_until 30 marked sy_marker || fail "nft monitor did not print the marker: $(cat "$T_TMP/monitor")"
kill "$mon" 2>/dev/null
wait "$mon" 2>/dev/null
cat "$T_TMP/monitor"
awk '/sy_marker/ {exit} /sy_probe/ {seg = ""; skip = 1; next}
	skip && /^# new generation/ {skip = 0; next} !skip {seg = seg $0 "\n"}
	END {printf "%s", seg}' "$T_TMP/monitor" >"$T_TMP/flip.events"
say "the flip's transaction:"
cat "$T_TMP/flip.events"
[ "$(grep -c 'new generation' "$T_TMP/flip.events")" -eq 1 ] || fail "the flip was not one transaction"
for e in 'any4 { 443 : 9443 }' 'exact4 { 198.18.0.1 . 80 : 9080 }' 'any6 { 443 : 9444 }' \
	'exact6 { fd00::1 . 80 : 9081 }'; do
	grep -qF "add element inet switchyard $e" "$T_TMP/flip.events" ||
		fail "the transaction did not carry $e"
done
grep -q 'rule' "$T_TMP/flip.events" && fail "a flip should change no rule"
same "flip" 9443 9080 9444 9081
say "ok: IPv4 and IPv6 flipped in one transaction, elements only"

# A flip's read-back asks for the planned keys and the generation in one
# exchange. A key no map holds (SWITCHYARD_TEST_NFT_READBACK=miss) or a
# commit after ours (=late) must make it read the whole table instead and
# verify the flip against that: one more GETTABLE than a plain flip, which
# strace counts, and the same table. (LeakSanitizer cannot run under
# ptrace, so an ASan build skips its leak check for these runs.)
traced_flip() { # HOW COLOUR: prints the number of table reads the flip sent
	SWITCHYARD_TEST_NFT_READBACK=$1 ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		in_ns strace -f -e trace=sendto,sendmsg -o "$T_TMP/flip.strace" \
		"$NFCTL" -b nftables "${L[@]}" flip "$2" >"$T_TMP/flip.out" 2>&1 ||
		fail "flip $2 with read-back '$1': $(cat "$T_TMP/flip.out")"
	grep -c NFT_MSG_GETTABLE "$T_TMP/flip.strace" || true
}
base=$(traced_flip "" blue) || exit 1
[ "$base" -ge 1 ] || fail "strace shows no table read (does it decode netfilter netlink?)"
same "flip with the one-exchange read-back" 8443 8080 8444 8081
for how in miss late; do
	n=$(traced_flip "$how" green) || exit 1
	[ "$n" -eq $((base + 1)) ] ||
		fail "read-back '$how': $n table reads, want $((base + 1)) (a plain flip sends $base)"
	same "flip after read-back '$how'" 9443 9080 9444 9081
	traced_flip "" blue >/dev/null || exit 1
done
traced_flip "" green >/dev/null || exit 1
say "ok: a missing key and a later commit both fall back to a whole read that verifies the flip"

# Drift: delete one element with nft; read reports it; install repairs.
in_ns nft delete element inet switchyard exact4 '{ 198.18.0.1 . 80 }' || fail "nft delete element"
out=$(nf read)
echo "$out"
echo "$out" | grep -q '^listener 1 missing' || fail "missing element: state"
echo "$out" | grep -q 'listener listener1 (198.18.0.1 port 80): no element in map exact4' ||
	fail "missing element not reported"
check "install repairs" nf install green
same "repair of the element" 9443 9080 9444 9081
# Delete our rule with nft (the one that reads any4).
h=$(in_ns nft -a list chain inet switchyard services | sed -n 's/.*map @any4 # handle \([0-9]*\)$/\1/p')
[ -n "$h" ] || fail "no handle for the any4 rule"
in_ns nft delete rule inet switchyard services handle "$h" || fail "nft delete rule"
out=$(nf read)
echo "$out"
echo "$out" | grep -q 'listener listener0 (0.0.0.0 port 443): rule missing' || fail "deleted rule not reported"
check "install repairs the rule" nf install green
same "repair of the rule" 9443 9080 9444 9081
# An element pointed elsewhere by hand, a map deleted (with its rule), and
# a jump removed.
in_ns nft delete element inet switchyard any4 '{ 443 }' || fail "nft delete element"
in_ns nft add element inet switchyard any4 '{ 443 : 7000 }' || fail "nft add element"
h=$(in_ns nft -a list chain inet switchyard services | sed -n 's/.*map @exact6 # handle \([0-9]*\)$/\1/p')
in_ns nft delete rule inet switchyard services handle "$h" || fail "nft delete rule exact6"
in_ns nft delete map inet switchyard exact6 || fail "nft delete map"
in_ns nft flush chain inet switchyard output || fail "nft flush output"
out=$(nf read)
echo "$out"
echo "$out" | grep -q 'element of map any4 redirects to port 7000, which is neither blue nor green' ||
	fail "changed element not reported"
echo "$out" | grep -q 'map exact6 is missing' || fail "missing map not reported"
echo "$out" | grep -q 'chain output holds 0 rules' || fail "missing jump not reported"
check "flip repairs too" nf flip blue
same "flip after drift" 8443 8080 8444 8081

# The guard.
check "install with the guard" in_ns "$NFCTL" -b nftables -g "${L[@]}" install blue
same "guard" 8443 8080 8444 8081 guard
check "install without the guard" nf install blue
same "guard removed" 8443 8080 8444 8081

# The CLI names the backend.
cat >"$T_TMP/sy.yaml" <<'EOT'
listeners:
  - {name: https, address: 0.0.0.0, port: 443}
  - {name: https6, address: "::", port: 443}
instances:
  blue:  {ports: [8443, 8444]}
  green: {ports: [9443, 9444]}
backend:
  servers: ["127.0.0.1:8080"]
EOT
sy() { in_ns "$SY" -c "$T_TMP/sy.yaml" "$@"; }
check "rules install (auto)" sy rules install green
out=$(sy rules show) || fail "rules show after install"
echo "$out"
echo "$out" | grep -q '^backend: nftables (auto: ' || fail "rules show does not name the backend and why"
[ "$(sy rules show --json | jq -r .backend)" = nftables ] || fail "rules show --json backend"
err=$(in_ns setpriv --bounding-set=-net_admin --inh-caps=-net_admin "$SY" -c "$T_TMP/sy.yaml" \
	-c "$T_TMP/sy.yaml" rules flip blue 2>&1) && fail "flip without CAP_NET_ADMIN succeeded"
echo "$err"
echo "$err" | grep -q 'CAP_NET_ADMIN' || fail "error should name CAP_NET_ADMIN: $err"
check "rules remove" sy rules remove
in_ns nft list table inet switchyard >/dev/null 2>&1 && fail "our table left after remove"

# Foreign rules were never touched.
diff "$T_TMP/foreign.before" <(foreign) || fail "foreign rules changed"
say "ok: $(wc -l <"$T_TMP/foreign.before") foreign rules intact"

# A backend change leaves one redirect: legacy in, then nftables in.
if command -v iptables-legacy >/dev/null; then
	check "install with iptables" in_ns "$NFCTL" -b iptables "${L[@]}" install blue
	in_ns iptables-legacy-save -t nat | grep -q SWITCHYARD || fail "no legacy chain"
	check "install with nftables" nf install blue
	in_ns iptables-legacy-save -t nat | grep -q SWITCHYARD && fail "legacy chain left after the backend change"
	check "back to iptables" in_ns "$NFCTL" -b iptables "${L[@]}" install blue
	in_ns nft list table inet switchyard >/dev/null 2>&1 && fail "our nftables table left after the change back"
	check "remove" in_ns "$NFCTL" -b iptables "${L[@]}" remove
	say "ok: a backend change leaves exactly one redirect"
fi

# A table called switchyard that we did not create is refused, and kept.
in_ns nft add table inet switchyard || fail "nft add table"
in_ns nft add chain inet switchyard mine || fail "nft add chain"
err=$(nf install blue 2>&1) && fail "install into a foreign switchyard table succeeded"
echo "$err"
echo "$err" | grep -q 'Switchyard did not create it' || fail "foreign table error: $err"
err=$(nf remove 2>&1) && fail "remove of a foreign switchyard table succeeded"
in_ns nft list chain inet switchyard mine >/dev/null || fail "the foreign table was touched"
say "ok: a foreign switchyard table is refused and left alone"
exit 0
