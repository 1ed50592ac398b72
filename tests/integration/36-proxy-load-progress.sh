#!/bin/bash
# switchyard-proxy start-up progress: while the initial certificate load runs,
# `status` answers "loading" with `loaded` (files processed so far, from the
# store's progress counter) rising towards `total`; once ready, loaded equals
# total and every file is accounted for. Then the decoded-certificate cache:
# certs.cache_size bounds it, and status counts its hits, misses and
# evictions.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"

N=3000
px_ns
px_certs $N
px_backend
SOCK=$T_TMP/blue.sock
PX_CERTS_EXTRA="  cache_size: 2" px_config "$T_TMP/a.yaml"
# The load holds after 1,000 files while the hold file exists (the proxy's
# test hook), so a load in progress is seen on purpose, however fast the
# machine; the sampler removes the file once it has seen the hold.
HOLD=$T_TMP/hold
touch "$HOLD"
bg env SWITCHYARD_TEST_LOAD_HOLD="1000:$HOLD" ip netns exec "$NS" "$PX_BIN" -c "$T_TMP/a.yaml" -i blue
PX_PID=$LAST_PID
# Poll status on one control connection until ready; print one
# "state loaded total" line per reply. The time limit only guards against a
# hang: 3,000 files under ASan on a loaded machine can take a minute.
$PYTHON - "$SOCK" "$HOLD" >"$T_TMP/samples" <<'EOP'
import json, os, socket, sys, time
end = time.time() + 300
while not os.path.exists(sys.argv[1]) and time.time() < end:
    time.sleep(0.005)
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
while time.time() < end:
    f.write(b"status\n"); f.flush()
    r = json.loads(f.readline())
    print(r["state"], r["loaded"], r["total"], flush=True)
    if r["state"] != "loading":
        break
    if r["loaded"] >= 1000 and os.path.exists(sys.argv[2]):
        os.unlink(sys.argv[2])
    time.sleep(0.01)
EOP
say "$(grep -c loading "$T_TMP/samples") samples while loading; first: $(head -1 "$T_TMP/samples"); last: $(tail -1 "$T_TMP/samples")"
check "the instance became ready" grep -q "^ready $N $N\$" "$T_TMP/samples"
check "status reported loading first" grep -q "^loading " "$T_TMP/samples"
check "total is the file count once the load is under way" \
	bash -c "awk '\$1 == \"loading\" && \$2 > 0 && \$3 != $N {bad = 1} END {exit bad}' $T_TMP/samples"
check "loaded moved during the load (seen at the hold, not only at the end)" \
	bash -c "awk '\$1 == \"loading\" && \$2 >= 1000 && \$2 < $N {ok = 1} END {exit !ok}' $T_TMP/samples"
check "loaded never goes down and never passes total" \
	bash -c "awk '\$2 < prev || \$2 > \$3 {bad = 1} {prev = \$2} END {exit bad}' $T_TMP/samples"
check "serves after the load" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site3000.example.test -b 1000 -k 1

# The cache: three names through a cache of two, then the last one again.
for n in 1 2 3 3; do
	check "serves site$n" in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" \
		-s site$n.example.test -b 100 -k 1
done
cache() { px_get "$SOCK" status "cert_cache.$1"; }
say "cert_cache: limit $(cache limit) cached $(cache cached) hits $(cache hits)" \
	"misses $(cache misses) evictions $(cache evictions)"
check "the cache limit is certs.cache_size" test "$(cache limit)" = 2
check "the cache holds no more than its limit" test "$(cache cached)" = 2
check "four distinct certificates were decoded (site3000, 1, 2, 3)" test "$(cache misses)" = 4
check "the repeated name was a hit" test "$(cache hits)" = 1
check "two entries were evicted to stay within the limit" test "$(cache evictions)" = 2
say "PASS"
