#!/bin/bash
# `switchyard status` keeps its columns aligned while an instance shows
# "loading N/M" (issue 15, section 2): the state column used to be 9
# characters wide and "loading 3/1200" pushed the rest of the row right.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 1200
# Both instances hold their first load after 3 files while the file exists.
touch "$T_TMP/hold"
SWITCHYARD_TEST_LOAD_HOLD=3:$T_TMP/hold \
	ip netns exec "$SV_NS" "$SY_BUILD/switchyardd" -c "$SV_CONF" -f >>"$T_TMP/switchyardd.log" 2>&1 &
SV_PID=$!
T_PIDS+=("$SV_PID")
holding() { [ "$(svc status --json | jq '[.instances[] | select(.state == "loading" and .loaded >= 3)] | length')" = 2 ]; }
wait_until 30 holding || { sv_dump_logs; fail "the instances did not hold their load"; }
svc status >"$T_TMP/status.txt" || fail "status"
cat "$T_TMP/status.txt"
# The right edge of each right-aligned header (PID ... RESTARTS) must be
# the right edge of the value below it in both instance rows.
python3 - "$T_TMP/status.txt" <<'EOP' || fail "the columns are not aligned"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
hdr = next(l for l in lines if "STATE" in l and "PID" in l)
rows = [l for l in lines if re.match(r"^(blue|green) ", l)]
assert len(rows) == 2, rows
for col in ("PID", "GEN", "CERTS", "ACTIVE", "PINNED", "RESTARTS"):
    end = hdr.index(col) + len(col)
    for r in rows:
        assert len(r) >= end and r[end - 1] != " " and (len(r) == end or r[end] == " "), (col, r)
for r in rows:
    assert re.search(r"loading [0-9]+/1200 ", r), r
EOP
rm -f "$T_TMP/hold"
say "ok: columns aligned while loading"
