#!/bin/bash
# The nftables backend under concurrent writers: 1,000 flips while an nft
# loop adds and deletes rules in a table of its own (with a nat chain on our
# prerouting hook) and an iptables-nft loop does the same in ip nat. Every
# writer commit moves the ruleset generation, so many of our batches are
# refused (ERESTART) and retried from a fresh read. Afterwards no side has
# lost a rule and every flip succeeded. The loops and the flipper hold each
# other open on purpose: the flipper runs until both writers have done 50
# rounds, the writers until the flipper has done its 1,000.
. "$(dirname "$0")/lib.sh"
nf_backend_only nftables "the writers are nft and iptables-nft; 22 is the legacy counterpart"
require_root
command -v nft >/dev/null || skip "nft (package nftables) not installed"
command -v iptables-nft >/dev/null || skip "iptables-nft not installed"
command -v jq >/dev/null || skip "jq not installed"
NFCTL=$SY_BUILD/tests/tools/nfctl
[ -x "$NFCTL" ] || fail "missing $NFCTL (build first)"
NS=$(netns_new nftc)
L=(-l "0.0.0.0,443,8443,9443" -l "198.18.0.1,80,8080,9080" -l "::,443,8444,9444" -l "fd00::1,80,8081,9081")
in_ns() { ip netns exec "$NS" "$@"; }
nf() { in_ns "$NFCTL" -b nftables "${L[@]}" "$@"; }

check "install blue" nf install blue
in_ns nft -f - <<'EOT' || fail "the nft writer's table"
table inet writer {
	chain pre { type nat hook prerouting priority dstnat; policy accept; }
	chain own { }
}
EOT
in_ns iptables-nft -t nat -N FOREIGN || fail "iptables-nft -N FOREIGN"

STOP=$T_TMP/stop      # tells the flipper to stop
WSTOP=$T_TMP/wstop    # tells the writers to stop
nf flips 1000 1000 "$STOP" >"$T_TMP/flips.out" 2>"$T_TMP/flips.err" &
flipper=$!
T_PIDS+=("$flipper")

# The nft writer: adds a rule per round (to pre or own), deletes the oldest
# on every other round, by handle; bounded to 3,000 rounds.
nft_writer() {
	local r=0 port out h
	: >"$T_TMP/nft.expected"
	: >"$T_TMP/nft.handles"
	while [ ! -e "$WSTOP" ] && [ $r -lt 3000 ]; do
		port=$((30000 + r))
		chain=$([ $((r % 2)) -eq 0 ] && echo pre || echo own)
		out=$(in_ns nft -e -a add rule inet writer $chain tcp dport $port redirect to :$((port + 1))) ||
			echo "nft add failed: $out" >>"$T_TMP/nft.err"
		h=$(echo "$out" | sed -n 's/.*# handle \([0-9]*\)$/\1/p')
		echo "$chain $port" >>"$T_TMP/nft.expected"
		echo "$chain $h" >>"$T_TMP/nft.handles"
		if [ $((r % 2)) -eq 1 ]; then
			read -r c h <"$T_TMP/nft.handles"
			in_ns nft delete rule inet writer "$c" handle "$h" || echo "nft delete failed" >>"$T_TMP/nft.err"
			sed -i 1d "$T_TMP/nft.handles" "$T_TMP/nft.expected"
		fi
		r=$((r + 1))
		echo $r >"$T_TMP/nft.rounds"
	done
}
# The iptables-nft writer: the same in ip nat (PREROUTING, OUTPUT, FOREIGN).
ipt_writer() {
	local r=0 port chain rule old
	: >"$T_TMP/ipt.expected"
	while [ ! -e "$WSTOP" ] && [ $r -lt 3000 ]; do
		port=$((20000 + r))
		case $((r % 3)) in
		0) chain=PREROUTING ;;
		1) chain=OUTPUT ;;
		2) chain=FOREIGN ;;
		esac
		rule="-A $chain -p tcp -m tcp --dport $port -j REDIRECT --to-ports $((port + 1))"
		in_ns iptables-nft -t nat $rule || echo "iptables-nft add failed" >>"$T_TMP/ipt.err"
		echo "$rule" >>"$T_TMP/ipt.expected"
		if [ $((r % 2)) -eq 1 ]; then
			old=$(sed -n 1p "$T_TMP/ipt.expected")
			in_ns iptables-nft -t nat ${old/-A/-D} || echo "iptables-nft delete failed" >>"$T_TMP/ipt.err"
			sed -i 1d "$T_TMP/ipt.expected"
		fi
		r=$((r + 1))
		echo $r >"$T_TMP/ipt.rounds"
	done
}
nft_writer &
w1=$!
ipt_writer &
w2=$!
T_PIDS+=("$w1" "$w2")
rounds() { local r; r=$(cat "$T_TMP/$1.rounds" 2>/dev/null); echo "${r:-0}"; }
enough() {
	grep -q '^reached' "$T_TMP/flips.out" && [ "$(rounds nft)" -ge 50 ] && [ "$(rounds ipt)" -ge 50 ]
}
waited=0
while ! enough && [ $waited -lt 6000 ]; do sleep 0.1; waited=$((waited + 1)); done
enough || { touch "$STOP" "$WSTOP"; fail "flips or writers did not get far: $(cat "$T_TMP/flips.out") nft $(rounds nft) ipt $(rounds ipt)"; }
touch "$WSTOP"
wait "$w1" "$w2"
touch "$STOP"
wait "$flipper"
rc=$?
cat "$T_TMP/flips.out"
head -5 "$T_TMP/flips.err"
[ $rc -eq 0 ] || fail "some flips failed"
grep -q '^flips [0-9]* failed 0$' "$T_TMP/flips.out" || fail "some flips failed"
[ ! -s "$T_TMP/nft.err" ] || fail "nft writer: $(head -3 "$T_TMP/nft.err")"
[ ! -s "$T_TMP/ipt.err" ] || fail "iptables-nft writer: $(head -3 "$T_TMP/ipt.err")"
say "ok: $(sed -n 's/^flips \([0-9]*\).*/\1/p' "$T_TMP/flips.out") flips, $(rounds nft) nft and $(rounds ipt) iptables-nft rounds alongside, no error"

# No rule of the writers lost.
got=$(in_ns nft -j list table inet writer |
	jq -r '.nftables[] | select(.rule) | .rule | "\(.chain) \(.expr[0].match.right)"' | sort)
diff <(echo "$got") <(sort "$T_TMP/nft.expected") || fail "the nft writer's rules differ"
diff <(in_ns iptables-nft-save -t nat | grep '^-A' | sort) <(sort "$T_TMP/ipt.expected") ||
	fail "the iptables-nft writer's rules differ"
say "ok: $(wc -l <"$T_TMP/nft.expected") nft and $(wc -l <"$T_TMP/ipt.expected") iptables-nft rules all present"

# None of ours lost either.
out=$(nf read)
echo "$out"
[ "$(echo "$out" | sed -n 1p)" = "live blue" ] || fail "live should be blue after the flips"
echo "$out" | grep -q '^drift none$' || fail "drift after the concurrent run"
say "ok: our table intact"
exit 0
