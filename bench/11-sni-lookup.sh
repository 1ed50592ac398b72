#!/bin/bash
# SNI lookup cost by certificate mix: ns of CPU per cert_store_lookup, for
# names that are found and names nobody covers, on (a) 10,000 certificates of
# one exact name each, (b) 10,000 wildcard-only certificates, (c) the mixed
# set of gencerts --mix (apex + wildcard, wildcard only, multi-SAN of 20 to
# 100 names, RSA twins, IDN, expired, not yet valid; about 40% of the names
# are wildcards) with the same number of names (3,333 files), and (d) the
# mixed set with the same number of files (about 30,000 names). A lookup is
# two hash probes at most, so the mix should make no difference beyond the
# cache effects of a larger index.
#
#   bench/11-sni-lookup.sh BUILD_DIR      (normally through `make bench`)
#
# Sets are generated once into $SY_BENCH_CACHE with a pool of 64 keys.
set -eu
BUILD=$(cd "${1:-build}" && pwd)
CACHE=${SY_BENCH_CACHE:-/var/tmp/switchyard-bench}
GEN=$BUILD/tests/tools/gencerts
LOAD=$BUILD/bench/certload
N=${SY_BENCH_SNI_FILES:-10000}
mkdir -p "$CACHE"

gen() { # gen NAME [gencerts args]: the set, and its misses in DIR/misses.txt
	local d=$CACHE/sni-$1-$N
	[ -e "$d/.complete" ] && return 0
	rm -rf "$d"
	echo "generating $1 ($N files) in $d (once)"
	"$GEN" --out "$d" --key-pool 64 "${@:2}" >/dev/null 2>&1
	if [ -s "$d/uncovered.txt" ]; then
		cp "$d/uncovered.txt" "$d/misses.txt"
	else
		# One label more than each name (under an exact name or two
		# labels under a wildcard), and a name in no certificate.
		awk '{ print "x." $1; print "nobody" NR ".example.test" }' "$d/names.txt" >"$d/misses.txt"
	fi
	touch "$d/.complete"
}
gen exact --count "$N"
gen wild --count 0 --wildcards "$N"
gen mixed --mix "$N"
gen mixed-names --mix "$((N / 3))"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for set in exact wild mixed-names mixed; do
	d=$CACHE/sni-$set-$N
	echo "$set:"
	"$LOAD" "$d/certs" --lookups "$d/names.txt" "$d/misses.txt" | grep -E '^(load|lookup)' |
		sed 's/^/  /'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
