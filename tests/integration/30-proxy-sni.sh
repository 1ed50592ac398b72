#!/bin/bash
# switchyard-proxy serves the right certificate for each SNI: 1,000 generated
# names plus wildcards (each verified against the test CA, chain and host
# name), the default certificate for unknown names, an unrecognized_name alert
# without a default, and a control socket that survives garbage.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"

px_ns
px_certs 1000 20
px_backend
px_config "$T_TMP/a.yaml"
px_start blue "$T_TMP/a.yaml"

check "status reports every certificate" \
	test "$(px_get "$T_TMP/blue.sock" status certs.loaded)" -eq 1020
check "1,000 names and 20 wildcards verified with their own certificate" \
	in_ns "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/pki/names.txt"
head -50 "$T_TMP/pki/names.txt" >"$T_TMP/v6names.txt"
check "IPv6 listener serves the same names" \
	in_ns "$PX_TOOLS/tls_check" names -c ::1:8443 -a "$CA" -n "$T_TMP/v6names.txt"

# A real client, the way an operator would check.
out=$(in_ns openssl s_client -connect 127.0.0.1:8443 -servername site7.example.test \
	-CAfile "$CA" -verify_hostname site7.example.test -verify_return_error </dev/null 2>&1)
check "openssl s_client verifies site7" grep -q "Verify return code: 0" <<<"$out"
wname=$(grep -m1 '^host\.wild' "$T_TMP/pki/names.txt" | cut -d' ' -f1)
other=${wname/host./other.}
out=$(in_ns openssl s_client -connect 127.0.0.1:8443 -servername "$other" -CAfile "$CA" \
	-verify_hostname "$other" -verify_return_error </dev/null 2>&1)
check "wildcard covers any one label ($other)" grep -q "Verify return code: 0" <<<"$out"

# No default certificate: unknown names get an unrecognized_name alert.
out=$(in_ns openssl s_client -connect 127.0.0.1:8443 -servername nope.invalid </dev/null 2>&1)
check "unknown SNI without default: unrecognized_name alert" \
	grep -qi "unrecognized name\|alert number 112" <<<"$out"
check "no_cert counted" test "$(px_get "$T_TMP/blue.sock" stats handshake_fail.no_cert)" -ge 1
check "unknown_sni counted" test "$(px_get "$T_TMP/blue.sock" stats unknown_sni)" -ge 1

check "cert NAME names the serving file" \
	test "$(px_get "$T_TMP/blue.sock" "cert site7.example.test" file)" = site7.pem
check "cert for an unknown name fails without default" \
	test "$(px_get "$T_TMP/blue.sock" "cert nope.invalid" ok)" = false

# Control socket garbage: error replies, still alive.
for line in "garbage" "stats extra args ok?" "$(head -c 6000 /dev/zero | tr '\0' x)" \
	"$(printf '\001\002\377')" "sample abc" "cert" ""; do
	r=$(px_ctl "$T_TMP/blue.sock" "$line")
	case $r in *'"ok":false'* | *'"ok":true'*) ;; *) fail "no JSON reply to garbage: $r" ;; esac
done
check "sample 5 returns 5 names" test "$(px_ctl "$T_TMP/blue.sock" "sample 5" |
	$PYTHON -c 'import json,sys; print(len(json.load(sys.stdin)["names"]))')" -eq 5
# Distinct names, never one twice: 50, and the most a sample gives (1,000;
# the store has a few more).
distinct() { px_ctl "$T_TMP/blue.sock" "sample $1" |
	$PYTHON -c 'import json,sys; n=json.load(sys.stdin)["names"]; print(len(n), len(set(n)))'; }
check "sample 50 returns 50 distinct names" test "$(distinct 50)" = "50 50"
check "the store has more than 1,000 names" test "$(px_get "$T_TMP/blue.sock" status certs.names)" -gt 1000
check "sample 1000 returns 1000 distinct names" test "$(distinct 1000)" = "1000 1000"
check "still serving after garbage" \
	in_ns "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/pki/names.txt" -m 5
kill "$PX_PID"; wait "$PX_PID" 2>/dev/null

# With a default certificate, unknown names get it.
PX_CERTS_EXTRA="  default: site1.pem" px_config "$T_TMP/b.yaml"
px_start blue "$T_TMP/b.yaml"
out=$(in_ns openssl s_client -connect 127.0.0.1:8443 -servername nope.invalid -CAfile "$CA" \
	</dev/null 2>&1)
check "unknown SNI gets the default certificate" grep -q "CN *= *site1.example.test" <<<"$out"
out=$(in_ns openssl s_client -connect 127.0.0.1:8443 -noservername -CAfile "$CA" </dev/null 2>&1)
check "no SNI gets the default certificate" grep -q "CN *= *site1.example.test" <<<"$out"
check "default_cert counted" test "$(px_get "$T_TMP/blue.sock" stats default_cert)" -ge 2
say "PASS"
