#!/bin/bash
# netfilter command line: `switchyard rules show|install|remove|flip` and
# `switchyard flows`, with an inline configuration, in a private netns with a
# private xtables lock. Errors name their cause (lock holder, missing
# CAP_NET_ADMIN, bad colour), and nftables nat chains on our hooks are warned
# about (with a fake nft on PATH).
. "$(dirname "$0")/lib.sh"
nf_backend_only iptables "compares the legacy tables with iptables-legacy-save; 26 covers the CLI on nftables"
require_root
command -v iptables-legacy-save >/dev/null || skip "iptables-legacy not installed"
SY=$SY_BUILD/switchyard
[ -x "$SY" ] || fail "missing $SY (build first)"
PY=/usr/bin/python3
NS=$(netns_new cli)
export XTABLES_LOCKFILE=$T_TMP/xtables.lock
cat >"$T_TMP/sy.yaml" <<'EOT'
listeners:
  - {name: https, address: 0.0.0.0, port: 443}
  - {name: https6, address: "::", port: 443}
  - {name: web, address: 198.18.0.1, port: 80}
instances:
  blue:
    ports: [8443, 8444, 8080]
  green:
    ports: [9443, 9444, 9080]
backend:
  servers: ["127.0.0.1:8080"]
netfilter:
  backend: iptables
EOT
sy() { ip netns exec "$NS" "$SY" -c "$T_TMP/sy.yaml" "$@"; }
json_get() { $PY -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

out=$(sy rules show)
rc=$?
echo "$out"
[ $rc -eq 3 ] || fail "rules show before install should exit 3 (drift), got $rc"
echo "$out" | grep -q '^live: none$' || fail "rules show before install: live none"

out=$(sy rules install) || fail "rules install"
echo "$out" | grep -q 'redirected to blue' || fail "install should default to supervisor.initial_live (blue): $out"
out=$(sy rules show) || fail "rules show after install should exit 0"
echo "$out"
echo "$out" | grep -q '^listener https 0.0.0.0:443 -> 8443 (blue) ok$' || fail "show: https"
echo "$out" | grep -q '^listener https6 \[::\]:443 -> 8444 (blue) ok$' || fail "show: https6"
echo "$out" | grep -q '^drift: none$' || fail "show: drift none"

check "rules flip green" sy rules flip green
js=$(sy rules show --json) || fail "rules show --json"
echo "$js"
[ "$(echo "$js" | json_get '["live"]')" = green ] || fail "json live should be green"
[ "$(echo "$js" | json_get '["listeners"][2]["to_port"]')" = 9080 ] || fail "json web to_port"
[ "$(echo "$js" | json_get '["drift"]')" = False ] || fail "json drift should be false"
ip netns exec "$NS" iptables-legacy-save -t nat | grep -q -- '--dport 443 -j REDIRECT --to-ports 9443' ||
	fail "kernel should redirect 443 to 9443"

# install without a colour keeps what the kernel says is live.
out=$(sy rules install) || fail "second install"
echo "$out" | grep -q 'redirected to green' || fail "install should keep the live colour: $out"

js=$(sy flows --json) || fail "flows --json"
echo "$js"
[ "$(echo "$js" | json_get '["green"]["established"]')" = 0 ] || fail "flows json"
sy flows | grep -q '^blue ' || fail "flows text output"

sy rules flip purple 2>/dev/null
[ $? -eq 2 ] || fail "a bad colour is a usage error (exit 2)"

# Drift shows up with its cause and a non-zero exit.
ip netns exec "$NS" iptables-legacy -w -t nat -D SWITCHYARD 2 || fail "manual delete"
out=$(sy rules show)
[ $? -eq 3 ] || fail "rules show with drift should exit 3"
echo "$out" | grep -q 'listener web (198.18.0.1 port 80): rule missing' || fail "drift text: $out"
check "rules install repairs" sy rules install
sy rules show >/dev/null || fail "no drift after repair"

# The lock holder is named.
lock_hold "$XTABLES_LOCKFILE"
holder=$LOCK_PID
err=$(sy rules flip blue 2>&1) && fail "flip succeeded while the lock was held"
echo "$err"
echo "$err" | grep -q "held by pid $holder (flock)" || fail "lock error should name the holder"
lock_release

# Without CAP_NET_ADMIN.
err=$(ip netns exec "$NS" setpriv --bounding-set=-net_admin,-net_raw --inh-caps=-net_admin,-net_raw \
	"$SY" -c "$T_TMP/sy.yaml" rules show 2>&1) && fail "show without CAP_NET_ADMIN succeeded"
echo "$err" | grep -q 'not root' || fail "error should say not root / CAP_NET_ADMIN: $err"
err=$(ip netns exec "$NS" setpriv --bounding-set=-net_admin --inh-caps=-net_admin \
	"$SY" -c "$T_TMP/sy.yaml" flows 2>&1) && fail "flows without CAP_NET_ADMIN succeeded"
echo "$err" | grep -q 'needs root or CAP_NET_ADMIN' || fail "flows error: $err"
say "ok: permission errors name the cause"

# nftables nat chains on our hooks (as iptables-nft or docker would make
# them): the warning names them; Switchyard reads them over netlink.
echo "$out" | grep -q '^backend: iptables (configured' || fail "rules show does not name the backend: $out"
if command -v nft >/dev/null; then
	ip netns exec "$NS" nft add table ip nat || fail "nft add table"
	ip netns exec "$NS" nft add chain ip nat PREROUTING \
		'{ type nat hook prerouting priority dstnat; }' || fail "nft add chain"
	out=$(sy rules show)
	echo "$out"
	echo "$out" | grep -q '^warning: 1 nftables nat chain of other tables share.*ip nat PREROUTING (prerouting, priority -100)' ||
		fail "nft warning missing"
	ip netns exec "$NS" nft delete table ip nat
fi

check "rules remove" sy rules remove
ip netns exec "$NS" iptables-legacy-save -t nat | grep -q SWITCHYARD && fail "IPv4 chain left after remove"
ip netns exec "$NS" ip6tables-legacy-save -t nat | grep -q SWITCHYARD && fail "IPv6 chain left after remove"
say "ok: nothing of ours left"
exit 0
