#!/bin/bash
# Certificate store end to end: 2,000 generated certificates plus wildcards,
# expired ones, .crt/.key pairs and a few broken files. `switchyard certs
# check` must report every broken file and load the rest, and `switchyard
# certs lookup` must resolve every name in names.txt to the file that holds it.
. "$(dirname "$0")/lib.sh"

SY=$SY_BUILD/switchyard
GEN=$SY_BUILD/tests/tools/gencerts
[ -x "$SY" ] && [ -x "$GEN" ] || fail "build first: $SY and $GEN are needed"
D=$T_TMP/set
C=$D/certs

"$GEN" --out "$D" --count 2000 --wildcards 20 --expired 5 --split 50 >/dev/null 2>&1 ||
	fail "gencerts"
check "2000 + 20 wildcard names listed" test "$(wc -l <"$D/names.txt")" -eq 2020

# Broken files, each of which must be reported and skipped.
: >"$C/empty.pem"
head -c 700 /dev/urandom >"$C/garbage.pem"
head -c 600 "$C/site100.pem" >"$C/truncated.pem"
{ sed -n '/BEGIN CERT/,/END CERT/p' "$C/site100.pem"
  sed -n '/BEGIN.*PRIVATE KEY/,/END.*PRIVATE KEY/p' "$C/site101.pem"; } >"$C/mismatch.pem"
mkdir "$C/subdir"
echo "not a certificate" >"$C/README.txt"

out=$("$SY" certs check "$C")
rc=$?
echo "$out" | tail -n 1
check "check exits non-zero with bad files" test "$rc" -ne 0
check "2025 loaded" grep -q "2029 files, 2025 names, 2025 loaded, 4 skipped, 5 warned, 2 ignored" <<<"$out"
for f in empty garbage truncated mismatch; do
	check "$f.pem reported" grep -q "^skip  $f.pem: " <<<"$out"
done
check "empty file message" grep -q "empty.pem: empty file" <<<"$out"
check "garbage message" grep -Eq "garbage.pem: (binary data|no PEM block)" <<<"$out"
check "truncated message" grep -Eq "truncated.pem: (truncated PEM block|PEM block .* is not closed)" <<<"$out"
check "mismatch message" grep -q "mismatch.pem: the private key does not match" <<<"$out"
check "subdirectory reported" grep -q "subdir: is a directory" <<<"$out"
check "other files reported" grep -q "README.txt: ignored" <<<"$out"
check "expired reported" grep -q "expired1.pem: expired on" <<<"$out"

json=$("$SY" certs check "$C" --json)
check "--json is one valid document" python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["summary"]["loaded"] == 2025 and not d["ok"]' <<<"$json"

# Every name resolves to the file that holds it (one load for all names).
cut -d' ' -f1 "$D/names.txt" | "$SY" certs lookup "$C" - | sort >"$T_TMP/got"
sort "$D/names.txt" >"$T_TMP/want"
check "every name in names.txt resolves to its file" diff -u "$T_TMP/want" "$T_TMP/got"

lookup() { "$SY" certs lookup "$C" "$@"; }
check "case and trailing dot" test "$(lookup SITE77.Example.Test.)" = site77.pem
check "pair served from .crt" test "$(lookup site2.example.test)" = site2.crt
check "wildcard covers one label" test "$(lookup anything.wild7.example.test)" = wild7.pem
check "wildcard does not cover two labels" test "$(lookup a.b.wild7.example.test)" = none
check "wildcard does not cover its parent" test "$(lookup wild7.example.test)" = none
if lookup nothere.example.test; then fail "unknown name without default must fail"; fi
check "unknown name with default" test "$(lookup nothere.example.test --default site99.pem)" = "site99.pem (default)"

# Expired certificates can be skipped by policy.
out=$("$SY" certs check "$C" --expired skip | tail -n 1)
check "expired skipped by policy" grep -q "2020 loaded, 9 skipped" <<<"$out"

# Re-issue one certificate in place; the store serves the new file.
"$GEN" --out "$D" --one site500.example.test --file "$C/site500.pem" --serial 4242 >/dev/null 2>&1 ||
	fail "gencerts --one"
check "re-issued certificate is served" test "$(lookup site500.example.test)" = site500.pem
check "re-issued certificate has the new serial" test "$(openssl x509 -in "$C/site500.pem" -noout -serial)" = serial=1092
check "re-issued certificate verifies" openssl verify -CAfile "$D/ca.pem" -untrusted "$D/int.pem" "$C/site500.pem"
say "all certificate store checks passed"
