#!/bin/bash
# A renewed certificate the proxy user cannot read (written 0600 by root
# while the instances run as proxy.user) must not take its names offline:
# the delta load keeps the previous version, the reload says which file and
# why, and the gate accepts the kept version (it checks what the instance
# reports it kept, not the file on disk). Once the file is readable, the
# next reload picks the renewal up. Before, the file was skipped, its names
# dropped, and the flip went ahead with exit 0.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"
id -u nobody >/dev/null 2>&1 || skip "no user 'nobody'"
getent group nogroup >/dev/null || skip "no group 'nogroup'"

# Every name is checked by the gate, the kept one included.
SV_GATE_SAMPLE=1000 sv_setup 20
sed -i 's/^proxy:$/proxy:\n  user: nobody\n  group: nogroup/' "$SV_CONF"
grep -q "user: nobody" "$SV_CONF" || fail "proxy.user not set"
# The instances re-read the directory as nobody: it and the files are
# readable, as in a normal deployment.
chmod 711 "$T_TMP"
chmod 755 "$SV_PKI" "$SV_PKI/certs"
chmod 644 "$SV_PKI"/certs/*
sv_start
read -r NAME FILE < <(awk '$2 == "site2.pem"' "$SV_PKI/names.txt")
[ "$FILE" = site2.pem ] || fail "site2.pem is not in names.txt"
before=$(sv_served "$NAME")
[ -n "$before" ] || fail "no certificate served for $NAME"

# The renewal, written by root with mode 0600.
"$SY_BUILD/tests/tools/gencerts" --out "$SV_PKI" --one "$NAME" --file "$SV_PKI/certs/$FILE" >/dev/null ||
	fail "gencerts --one"
chmod 600 "$SV_PKI/certs/$FILE"
check "nobody cannot read the renewal" \
	bash -c "! setpriv --reuid=nobody --regid=nogroup --clear-groups cat $SV_PKI/certs/$FILE >/dev/null 2>&1"
live0=$(sv_status .live)
svc reload >"$T_TMP/reload.out" 2>&1
rc=$?
say "reload exit $rc:"
cat "$T_TMP/reload.out"
check "the reload flipped" sv_flipped_from "$live0"
check "the reload exits 0 (every name still served)" test "$rc" -eq 0
check "$NAME is still served, with its previous certificate" test "$(sv_served "$NAME")" = "$before"
check "the reload names the file and the cause" \
	grep -q "site2.pem was not loaded: cannot open site2.pem: Permission denied; the previous version stays served" "$T_TMP/reload.out"
check "every name is served" sv_load --threads 2 --duration 1
check "the supervisor logged it" grep -q "reload: site2.pem was not loaded: .*Permission denied" "$T_TMP/switchyardd.log"
svc reload --json --no-flip >"$T_TMP/reload.json" 2>/dev/null
check "reload --json lists the kept file" \
	test "$(jq -r '.kept[0].file' "$T_TMP/reload.json")" = site2.pem

# Readable again: the next reload serves the renewal.
chmod 644 "$SV_PKI/certs/$FILE"
check "reload after the fix" svc reload
after=$(sv_served "$NAME")
check "$NAME now serves the renewal" test -n "$after" -a "$after" != "$before"
check "no warning any more" bash -c "! svc reload 2>&1 | grep -q 'was not loaded'"
say "PASS"
