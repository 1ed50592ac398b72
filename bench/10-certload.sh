#!/bin/bash
# Certificate store: cold load of 10,000 ECDSA P-256, 10,000 RSA-2048 and
# 50,000 ECDSA combined PEM files (leaf + one intermediate + key), memory,
# a delta reload of 1 changed file out of 10,000, and `haproxy -c` on the
# same directories when haproxy is installed.
#
#   bench/10-certload.sh BUILD_DIR      (normally through `make bench`)
#
# Inputs are generated once into $SY_BENCH_CACHE. RSA sets reuse a pool of
# 64 keys (gencerts --key-pool): RSA key generation costs ~180 ms here, and
# the loader's cost does not depend on keys being distinct.
set -eu
BUILD=$(cd "${1:-build}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SY_BENCH_CACHE:-/var/tmp/switchyard-bench}
GEN=$BUILD/tests/tools/gencerts
LOAD=$BUILD/bench/certload
RUNS=${SY_BENCH_RUNS:-3}
mkdir -p "$CACHE"

gen() { # gen NAME COUNT TYPE [extra gencerts args]
	local d=$CACHE/$1
	[ -e "$d/.complete" ] && return 0
	rm -rf "$d"
	echo "generating $2 $3 certificates in $d (once)"
	"$GEN" --out "$d" --count "$2" --type "$3" "${@:4}" >/dev/null
	touch "$d/.complete"
}
gen ec10k 10000 ec
gen rsa10k 10000 rsa --key-pool 64
gen ec50k 50000 ec

# The best of RUNS cold loads (page cache warm; the figure is CPU-bound
# decoding, not disk). Other work on the machine inflates single runs.
best_load() {
	local dir=$1 line
	for ((i = 0; i < RUNS; i++)); do
		line=$("$LOAD" "$dir" | head -n 1)
		echo "  $line"
	done
}

. "$ROOT/bench/lib-haproxy.sh"

echo "openssl speed, one core: $(openssl speed -seconds 1 ecdsap256 2>/dev/null | awk '/nistp256/ {print $(NF-1) " ECDSA P-256 signs/s"}')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for set in ec10k rsa10k ec50k; do
	echo "cold load $set:"
	best_load "$CACHE/$set/certs"
done

echo "scaling, 10k ECDSA on 1 thread:"
"$LOAD" "$CACHE/ec10k/certs" --threads 1 | head -n 1 | sed 's/^/  /'

echo "delta reload, 1 changed file out of 10,000 (ECDSA):"
"$GEN" --out "$CACHE/ec10k" --one site1.example.test --file "$CACHE/delta-site1.pem" >/dev/null 2>&1
"$LOAD" "$CACHE/ec10k/certs" --delta "$CACHE/delta-site1.pem" site1.pem | sed -n '2,3p' | sed 's/^/  /'

echo "handshakes served from the store vs default-context objects (memory BIO pair, TLS 1.3):"
"$LOAD" "$CACHE/ec10k/certs" --handshakes 2000 | grep -E '^(handshakes|cert_item_use)' | sed 's/^/  /'

# One real handshake per certificate: the memory a proxy reaches once every
# certificate has served, bounded by the leaf cache (CERT_LEAF_CACHE_DEFAULT).
for set in ec10k rsa10k; do
	echo "RSS after every cert served once, $set:"
	"$LOAD" "$CACHE/$set/certs" --serve-all | grep -E '^(load|RSS after)' | sed 's/^/  /'
done

if command -v haproxy >/dev/null; then
	for set in ec10k rsa10k; do
		echo "haproxy $set:"
		haproxy_check "$CACHE/$set/certs"
	done
else
	echo "haproxy not installed: side-by-side skipped"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
