#!/bin/bash
# The health gate refuses a flip when the standby serves a stale
# certificate: a file changes on disk and `switchyard flip` (no reload) is
# asked to flip to a standby that still serves the old copy. The flip is
# refused with exit code 6, nothing moves; a reload then passes the gate.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

# Sample every name so the changed one is certainly checked.
SV_GATE_SAMPLE=100 sv_setup 20
sv_start
old=$(sv_status .live)
read -r NAME FILE < <(sed -n 7p "$SV_PKI/names.txt")
before=$(sv_served "$NAME") || fail "no certificate served for $NAME"
"$SY_BUILD/tests/tools/gencerts" --out "$SV_PKI" --one "$NAME" --file "$SV_PKI/certs/$FILE" >/dev/null ||
	fail "gencerts --one"

svc flip >"$T_TMP/flip.out" 2>&1
rc=$?
cat "$T_TMP/flip.out"
[ "$rc" -eq 6 ] || fail "flip exit code $rc, want 6 (gate refused)"
grep -q "stale or wrong" "$T_TMP/flip.out" || fail "the refusal does not say why"
[ "$(sv_status .live)" = "$old" ] || fail "live colour changed despite the refusal"
[ "$(sv_served "$NAME")" = "$before" ] || fail "the served certificate changed"
[ "$(sv_status .counters.gate_refusals)" -ge 1 ] || fail "refusal not counted"
[ "$(sv_status .flips[-1].result)" = gate-refused ] || fail "refusal not recorded"
say "ok: stale standby refused, nothing moved"

check "reload loads the new file and passes the gate" svc reload
after=$(sv_served "$NAME") && [ "$after" != "$before" ] || fail "new certificate not served after reload"
say "ok: after reload the gate passes and the new certificate is live"
