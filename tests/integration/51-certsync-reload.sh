#!/bin/bash
# certsync driving a real switchyardd in a network namespace: an unchanged
# source causes no reload; one changed certificate causes exactly one reload
# and flip, after which the new certificate is served on the service
# address; a broken new version keeps the previous one served.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 100
SRC=$SV_PKI/certs
STATE=$T_TMP/state
# The instances serve what certsync promoted.
sed -i "s|directory: $SV_PKI/certs|directory: $STATE/certsync/current|" "$SV_CONF"
cat >>"$SV_CONF" <<YAML
certsync:
  source: {directory: $SRC}
YAML
sync() { "$SY_BUILD/switchyard" certsync -c "$SV_CONF" "$@"; }
flips() { sv_status '.flips | length'; }

sync --no-reload >"$T_TMP/out" 2>&1 || { cat "$T_TMP/out"; fail "initial certsync"; }
sv_start

say "unchanged source: no reload"
f0=$(flips)
live0=$(sv_status .live)
sync >"$T_TMP/out" 2>&1; rc=$?
cat "$T_TMP/out"
[ $rc -eq 0 ] && grep -q "no changes" "$T_TMP/out" || fail "expected 'no changes' (rc $rc)"
[ "$(flips)" = "$f0" ] && [ "$(sv_status .live)" = "$live0" ] || fail "an unchanged source caused a flip"

say "one changed certificate: exactly one reload, new certificate served"
read -r NAME FILE < <(sed -n 7p "$SV_PKI/names.txt")
before=$(sv_served "$NAME") || fail "no certificate served for $NAME"
sleep 1.1
"$SY_BUILD/tests/tools/gencerts" --out "$SV_PKI" --one "$NAME" --file "$SRC/$FILE" >/dev/null || fail "gencerts --one"
want=$(openssl x509 -in "$SRC/$FILE" -outform DER | sha256sum | cut -d' ' -f1)
sync >"$T_TMP/out" 2>&1; rc=$?
cat "$T_TMP/out"
[ $rc -eq 0 ] || { sv_dump_logs; fail "certsync with one change: exit $rc"; }
[ "$(flips)" = "$((f0 + 1))" ] || fail "expected exactly one flip, flips went $f0 -> $(flips)"
sv_flipped_from "$live0" || fail "live colour did not change"
got=$(sv_served "$NAME")
[ "$got" = "$want" ] || fail "service address serves $got for $NAME, want the new $want (old $before)"
say "ok: $NAME now served with the new certificate on $(sv_status .live)"

say "a broken new version: partial, the previous version still served"
read -r NAME2 FILE2 < <(sed -n 9p "$SV_PKI/names.txt")
before2=$(sv_served "$NAME2") || fail "no certificate served for $NAME2"
sleep 1.1
printf 'not a certificate\n' >"$SRC/$FILE2"
f1=$(flips)
sync >"$T_TMP/out" 2>&1; rc=$?
cat "$T_TMP/out"
[ $rc -eq 2 ] || fail "broken file: expected exit 2 (partial), got $rc"
[ "$(sv_served "$NAME2")" = "$before2" ] || fail "the previous $NAME2 certificate is no longer served"
[ "$(sv_served "$NAME")" = "$want" ] || fail "$NAME lost its new certificate"
[ "$(flips)" = "$f1" ] || fail "a set identical to the current one caused a flip"
say "ok: partial run kept $NAME2 served without a flip"
sync >"$T_TMP/out" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "the next run must still report partial while the source is broken (rc $rc)"
grep -q "1 validated (1 cached)\|0 validated" "$T_TMP/out" || { cat "$T_TMP/out"; fail "the broken file was parsed again instead of using the cached verdict"; }
