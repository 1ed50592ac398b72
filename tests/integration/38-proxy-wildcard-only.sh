#!/bin/bash
# Regression: one certificate plus 16 wildcard-only ones (gencerts --count 1
# --wildcards 16) and a single worker. The wildcard table used to be sized
# from a quarter of all names, so these 16 wildcards filled it: the first
# ClientHello with an SNI nobody covers then probed it forever, pinning the
# worker at 100% CPU, every later handshake on it stalled, and status still
# said "ready". Now the unknown name is refused with unrecognized_name at
# once, the worker serves every name afterwards, and status and stats say
# what happened.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"

px_ns
px_certs 1 16
px_backend
PX_LOG=$T_TMP/proxy.log
px_config "$T_TMP/a.yaml"
# One worker, so the ClientHello below reaches the worker that must go on
# serving (with two, the later handshakes could all land on the other one).
sed -i 's/^  threads: 2$/  threads: 1/' "$T_TMP/a.yaml"
grep -q '^  threads: 1$' "$T_TMP/a.yaml" || fail "could not set proxy.threads to 1"
px_start blue "$T_TMP/a.yaml"
SOCK=$T_TMP/blue.sock
check "17 certificates loaded" test "$(px_get "$SOCK" status certs.loaded)" -eq 17

# One ClientHello with an unknown SNI. Before the fix this never got an
# answer; the timeout turns the hang into a failure.
t0=$(date +%s%N)
out=$(timeout 10 ip netns exec "$NS" openssl s_client -connect 127.0.0.1:8443 \
	-servername x.unknown.example </dev/null 2>&1)
ms=$((($(date +%s%N) - t0) / 1000000))
say "unknown SNI answered in $ms ms"
check "unknown SNI refused with unrecognized_name" grep -qi "unrecognized name\|alert number 112" <<<"$out"

# The same worker then serves every name, each handshake in under 5 s.
check "the worker still serves all 17 names" timeout 60 ip netns exec "$NS" \
	"$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -d "$CERTDIR" -t 5000 \
	-n "$T_TMP/pki/names.txt"
check "status: ready" test "$(px_get "$SOCK" status state)" = ready
no_active() { test "$(px_get "$SOCK" status active)" -eq 0; }
check "status: no connection stuck" wait_for 10 no_active
check "stats: one unknown SNI" test "$(px_get "$SOCK" stats unknown_sni)" -eq 1
check "stats: one handshake without a certificate" \
	test "$(px_get "$SOCK" stats handshake_fail.no_cert)" -eq 1
check "stats: 17 handshakes ok" test "$(px_get "$SOCK" stats handshakes_ok)" -eq 17
say "PASS"
