#!/bin/bash
# Rollback: a reload brings a changed certificate live; `switchyard
# rollback` flips back to the instance that still holds the previous
# generation, and the previous certificate is served again. An instance that
# has drained into standby gives its decoded certificates back (cache-trim).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"
. "$SY_ROOT/tests/tools/px_lib.sh" # px_get: one field of an instance's reply

sv_setup 20
sv_start
read -r NAME FILE < <(sed -n 5p "$SV_PKI/names.txt")
before=$(sv_served "$NAME")
[ -n "$before" ] || fail "no certificate served for $NAME"
old=$(sv_status .live)
old_gen=$(sv_status ".instances[] | select(.colour == \"$old\") | .generation")

"$SY_BUILD/tests/tools/gencerts" --out "$SV_PKI" --one "$NAME" --file "$SV_PKI/certs/$FILE" >/dev/null ||
	fail "gencerts --one"
check "reload" svc reload
after=$(sv_served "$NAME") && [ "$after" != "$before" ] || fail "the reload did not bring the new certificate live"
sv_flipped_from "$old" || fail "the reload did not flip"
say "ok: new certificate live on $(sv_status .live)"

[ "$(sv_status .rollback.possible)" = true ] || fail "status says rollback is not possible"
check "rollback" svc rollback
[ "$(sv_status .live)" = "$old" ] || fail "rollback did not flip back to $old"
[ "$(sv_served "$NAME")" = "$before" ] || fail "the previous certificate is not served after rollback"
[ "$(sv_status .flips[-1].reason)" = rollback ] || fail "last flip not recorded as rollback"
gen=$(sv_status ".instances[] | select(.colour == \"$old\") | .generation")
[ "$gen" = "$old_gen" ] || fail "generation $gen, want $old_gen"
say "ok: rollback serves the previous generation ($old_gen) certificate"

# A second rollback goes forward again (the other instance kept its set).
check "rollback again" svc rollback
[ "$(sv_served "$NAME")" = "$after" ] || fail "rolling forward did not serve the new certificate"
sv_load --threads 4 --duration 2 >/dev/null || fail "traffic failed after rollbacks"
say "ok: traffic clean after rollbacks"

# $old served while live; after the last rollback it drained into standby.
inst_cache() { px_get "$T_TMP/state/$1.sock" status "cert_cache.$2"; }
standby() { [ "$(sv_status ".instances[] | select(.colour == \"$old\") | .state")" = standby ]; }
check "$old drained into standby" wait_until 40 standby
check "the standby's cache was emptied" wait_until 10 test "$(inst_cache "$old" cached)" -eq 0
check "it had entries to give back" test "$(inst_cache "$old" evictions)" -gt 0
live=$(sv_status .live)
check "the live instance keeps its cache" test "$(inst_cache "$live" cached)" -gt 0
