#!/bin/bash
# Certificate store on a realistic mixed set (gencerts --mix 3000): single
# names, apex + wildcard, wildcard only, multi-SAN certificates of 20 to 100
# names, ECDSA certificates with RSA twins, RSA only, IDN (punycode) names,
# two-intermediate chains, expired and not yet valid certificates.
# `switchyard certs check` loads all of it; `switchyard certs lookup` maps
# every covered name to its own file (the RSA twin for an RSA-only client),
# handles expired and not yet valid files as docs/certificates.md says, and
# answers "none" (or the default) for every name nobody covers, at once.
. "$(dirname "$0")/lib.sh"

SY=$SY_BUILD/switchyard
GEN=$SY_BUILD/tests/tools/gencerts
[ -x "$SY" ] && [ -x "$GEN" ] || fail "build first: $SY and $GEN are needed"
D=$T_TMP/mix
C=$D/certs
N=3000

t0=$SECONDS
"$GEN" --out "$D" --mix "$N" >/dev/null 2>&1 || fail "gencerts --mix"
say "gencerts --mix $N: $((SECONDS - t0)) s"
nfiles=$(find "$C" -name '*.pem' | wc -l)
check "$N files written" test "$nfiles" -eq "$N"
for l in names rsa expired notyet uncovered; do
	check "$l.txt is not empty" test -s "$D/$l.txt"
done
nexp=$(cut -d' ' -f2 "$D/expired.txt" | sort -u | wc -l)
nnew=$(cut -d' ' -f2 "$D/notyet.txt" | sort -u | wc -l)
# Twins share their names, so every name is listed once in names.txt,
# expired.txt or notyet.txt.
nnames=$(cat "$D/names.txt" "$D/expired.txt" "$D/notyet.txt" | wc -l)

# The shapes are really there.
multi=$(ls "$C" | grep -m1 '^multi')
nsan=$(openssl x509 -in "$C/$multi" -noout -ext subjectAltName | grep -o 'DNS:' | wc -l)
check "multi-SAN $multi holds 20 to 100 names ($nsan)" test "$nsan" -ge 20 -a "$nsan" -le 100
sans=$(openssl x509 -in "$C/$multi" -noout -ext subjectAltName)
check "multi-SAN mixes exact and wildcard names" \
	eval 'grep -q "DNS:\*\." <<<"$sans" && grep -q "DNS:[a-z]" <<<"$sans"'
twin=$(grep -m1 -- '-rsa.pem$' "$D/rsa.txt" | cut -d' ' -f2)
check "RSA twin $twin holds an RSA key" grep -q 'BEGIN \(RSA \)\?PRIVATE KEY' "$C/$twin"
check "RSA twin's key is RSA" sh -c "openssl pkey -in '$C/$twin' -noout -text | grep -q 'Private-Key: (2048 bit'"
check "IDN names are in punycode" grep -q '^xn--bcher-kva\.idn' "$D/names.txt"
# Every second file chains leaf -> int2 -> int -> root; the file carries both
# intermediates, so the root alone verifies it.
two=0 one=0
for f in $(cut -d' ' -f2 "$D/names.txt" | sort -u | head -12); do
	nc=$(grep -c 'BEGIN CERTIFICATE' "$C/$f")
	openssl crl2pkcs7 -nocrl -certfile "$C/$f" | openssl pkcs7 -print_certs >"$T_TMP/chain.pem"
	sed -n '1,/END CERTIFICATE/p' "$C/$f" >"$T_TMP/leaf.pem"
	openssl verify -CAfile "$D/ca.pem" -untrusted "$T_TMP/chain.pem" "$T_TMP/leaf.pem" >/dev/null ||
		fail "$f does not verify against ca.pem with its own chain"
	case $nc in 3) two=$((two + 1)) ;; 2) one=$((one + 1)) ;; *) fail "$f has $nc certificates" ;; esac
done
check "both one- and two-intermediate chains verify ($one, $two)" test "$one" -gt 0 -a "$two" -gt 0

# certs check: everything loads; expired and not yet valid are warned about.
out=$("$SY" certs check "$C")
rc=$?
echo "$out" | tail -n 1
check "check exits 0" test "$rc" -eq 0
check "summary counts every file and name" grep -q \
	"^summary: $N files, $nnames names, $N loaded, 0 skipped, $((nexp + nnew)) warned, 0 ignored" <<<"$out"
check "expired files served with a warning" \
	test "$(grep -c '^warn  expired[0-9]*\.pem: expired on .*served anyway' <<<"$out")" -eq "$nexp"
check "not yet valid files served with a warning" \
	test "$(grep -c '^warn  future[0-9]*\.pem: not valid before' <<<"$out")" -eq "$nnew"
check "no duplicate-name warning" eval '! grep -q "also claimed" <<<"$out"'
json=$("$SY" certs check "$C" --json)
check "--json summary agrees" python3 -c "import json,sys; d=json.load(sys.stdin); s=d['summary']; assert d['ok'] and s['loaded'] == $N and s['names'] == $nnames, s" <<<"$json"

# Every covered name (wildcards instantiated) resolves to its own file.
lookup_all() { # lookup_all LIST [lookup options]: diff of expected vs got
	local list=$1; shift
	cut -d' ' -f1 "$list" | "$SY" certs lookup "$C" - "$@" | sort >"$T_TMP/got"
	sort "$list" | diff -u - "$T_TMP/got"
}
check "every name in names.txt resolves to its file ($(wc -l <"$D/names.txt"))" lookup_all "$D/names.txt"
check "an RSA-only client gets the RSA twin (or the RSA-only file)" lookup_all "$D/rsa.txt" --rsa
# Names without an RSA certificate still answer an RSA-only lookup with the
# ECDSA file (the handshake then decides); twins answer with the RSA file.
awk 'NR == FNR { rsa[$1] = 1; next } !($1 in rsa)' "$D/rsa.txt" "$D/names.txt" >"$T_TMP/ecnames"
check "an RSA-only lookup of an ECDSA-only name gives the ECDSA file" \
	lookup_all "$T_TMP/ecnames" --rsa
check "twins: an ECDSA client gets the ECDSA file" \
	test "$("$SY" certs lookup "$C" "${twin%-rsa.pem}.example.test")" = "${twin%-rsa.pem}.pem"

# Expired and not yet valid: served by default (certs.expired: serve), the
# expired ones skipped under certs.expired: skip, the early ones never.
check "expired names resolve to their files" lookup_all "$D/expired.txt"
check "not yet valid names resolve to their files" lookup_all "$D/notyet.txt"
check "not yet valid names are served under --expired skip" lookup_all "$D/notyet.txt" --expired skip
got=$(cut -d' ' -f1 "$D/expired.txt" | "$SY" certs lookup "$C" - --expired skip | grep -vc ' none$')
check "expired names are not served under --expired skip" test "$got" -eq 0
out=$("$SY" certs check "$C" --expired skip | tail -n 1)
check "--expired skip skips exactly the expired files" grep -q "$((N - nexp)) loaded, $nexp skipped" <<<"$out"

# Names nobody covers (beside wildcards, under them by two labels, parents
# of wildcard-only certificates, ...): none, for all of them, at once. Before
# the index was sized from the names it holds, one such lookup on a
# wildcard-heavy set never returned; the timeout turns a hang into a failure.
nunc=$(wc -l <"$D/uncovered.txt")
t0=$(date +%s%N)
timeout 20 "$SY" certs lookup "$C" - <"$D/uncovered.txt" >"$T_TMP/unc.out"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
say "$nunc uncovered names looked up in $ms ms (load included)"
check "uncovered lookups end (exit 1: misses)" test "$rc" -eq 1
check "every uncovered name answers none" test "$(grep -c ' none$' "$T_TMP/unc.out")" -eq "$nunc"
timeout 20 "$SY" certs lookup "$C" - --default site1.pem <"$D/uncovered.txt" >"$T_TMP/unc.out"
check "with a default, every uncovered name gets it" \
	test "$(grep -c ' site1.pem (default)$' "$T_TMP/unc.out")" -eq "$nunc"

# Odd spellings: case, one trailing dot, IDN in upper case; a label over 63
# characters, two trailing dots and an empty name are no names at all.
lookup() { timeout 5 "$SY" certs lookup "$C" "$@"; }
idn=$(grep -m1 '^xn--bcher-kva' "$D/names.txt")
check "IDN name in upper case with a trailing dot" \
	test "$(lookup "$(tr a-z A-Z <<<"${idn% *}").")" = "${idn#* }"
wc=$(grep -m1 '^host\.wc' "$D/names.txt")
wname=${wc%% *}
check "wildcard-only: any one label" test "$(lookup "x-1.${wname#host.}")" = "${wc#* }"
check "label of 64 characters" test "$(lookup "$(printf 'a%.0s' {1..64}).example.test")" = none
check "two trailing dots" test "$(lookup "site1.example.test..")" = none
check "empty name" test "$(lookup "")" = none

# Wildcard-only sets, as in the report that made the index size its tables
# from the names they hold: 1,000 wildcard-only certificates (check and
# lookup used to hang), and 16 wildcard-only ones alone (every lookup miss
# used to loop forever). The timeouts turn a hang into a failure.
W=$T_TMP/wild
"$GEN" --out "$W" --count 0 --wildcards 1000 >/dev/null 2>&1 || fail "gencerts --wildcards 1000"
out=$(timeout 20 "$SY" certs check "$W/certs" | tail -n 1)
check "1,000 wildcard-only certificates load" grep -q "1000 files, 1000 names, 1000 loaded" <<<"$out"
cut -d' ' -f1 "$W/names.txt" | timeout 20 "$SY" certs lookup "$W/certs" - | sort >"$T_TMP/got"
check "every wildcard-only name resolves" eval 'sort "$W/names.txt" | diff -q - "$T_TMP/got"'
check "a miss on 1,000 wildcards ends" test "$(timeout 5 "$SY" certs lookup "$W/certs" x.unknown.example)" = none
W=$T_TMP/w16
"$GEN" --out "$W" --count 1 --wildcards 16 >/dev/null 2>&1 || fail "gencerts --wildcards 16"
rm "$W/certs/site1.pem"
check "a miss on 16 wildcards alone ends" test "$(timeout 5 "$SY" certs lookup "$W/certs" x.unknown.example)" = none
say "PASS"
