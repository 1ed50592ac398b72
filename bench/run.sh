#!/bin/bash
# make bench: runs every bench/NN-*.sh in order with the build dir as $1 and
# prints their figures. Generated inputs are cached in $SY_BENCH_CACHE
# (default /var/tmp/switchyard-bench), outside the tree.
set -eu
BUILD=$(cd "${1:-build}" && pwd)
export SY_BUILD=$BUILD SY_ROOT=$(cd "$(dirname "$0")/.." && pwd)
export SY_BENCH_CACHE=${SY_BENCH_CACHE:-/var/tmp/switchyard-bench}
mkdir -p "$SY_BENCH_CACHE"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(openssl version | cut -d' ' -f1-2), $(date -u +%F)"
for b in "$SY_ROOT"/bench/[0-9][0-9]-*.sh; do
	[ -n "${2:-}" ] && [[ $b != *$2* ]] && continue
	echo "== $(basename "$b")"
	bash "$b" "$BUILD"
done
