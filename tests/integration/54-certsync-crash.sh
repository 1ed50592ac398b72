#!/bin/bash
# kill -9 at each step of certsync's publishing path (issue 14): the run is
# stopped on purpose at a named step (SWITCHYARD_TEST_CERTSYNC_KILL, see
# docs/certsync.md "Crash safety"), not by timing. After each kill, current
# is a complete set that loads every name it served before; the next run
# recovers: it applies the change, and every blob a set names exists while no
# blob is left that no set names. keep_versions is 2, so that every run also
# removes a set and its blobs, and the prune steps are killed too.
. "$(dirname "$0")/lib.sh"

SY=$SY_BUILD/switchyard
STATE=$T_TMP/state
SRC=$T_TMP/src
CERTS=$T_TMP/gen
mkdir -p "$STATE" "$SRC"
CFG=$T_TMP/sy.yaml
certsync_cfg "$CFG" "$STATE" "  source: { directory: $SRC }
  keep_versions: 2"
run() { "$SY" certsync -c "$CFG" --no-reload "$@"; }
CUR=$STATE/certsync/current

gen_certs "$CERTS" 50
cp "$CERTS"/certs/* "$SRC"/
run >"$T_TMP/out" 2>&1 || { cat "$T_TMP/out"; fail "first run"; }
# Two more sets, so that the next runs have one to remove.
for i in 1 2; do
	"$SY_BUILD/tests/tools/gencerts" --out "$CERTS" --one "site$i.example.test" \
		--file "$SRC/site$i.pem" >/dev/null || fail "gencerts --one"
	touch -d "@$((1700000000 + i))" "$SRC/site$i.pem"
	run >"$T_TMP/out" 2>&1 || { cat "$T_TMP/out"; fail "run $i"; }
done
check "blobs consistent before the crashes" set_blobs_ok "$STATE"

# names SET: the names a set serves, as the store loads them.
names() { "$SY" certs check "$1" | sed -n 's/^summary: [0-9]* files, \([0-9]*\) names.*/\1/p'; }
want=$(names "$CUR")
[ "$want" -ge 50 ] || fail "the set serves $want names"

n=10
for step in copied validated placed indexed finished current manifest prune-aside prune-blobs; do
	n=$((n + 1))
	before=$(readlink "$CUR")
	"$SY_BUILD/tests/tools/gencerts" --out "$CERTS" --one "site$n.example.test" \
		--file "$SRC/site$n.pem" >/dev/null || fail "gencerts --one"
	# A distinct mtime for each change, as a real sync writes.
	touch -d "@$((1700000100 + n))" "$SRC/site$n.pem"
	SWITCHYARD_TEST_CERTSYNC_KILL=$step "$SY" certsync -c "$CFG" --no-reload \
		>"$T_TMP/out" 2>&1
	rc=$?
	[ "$rc" -eq 137 ] || { cat "$T_TMP/out"; fail "$step: the run was not killed (exit $rc)"; }
	cur=$(readlink "$CUR")
	[ -f "$CUR/.switchyard-set" ] && [ -f "$CUR/.certsync-index" ] ||
		fail "$step: current ($cur) is not a complete set"
	got=$(names "$CUR")
	[ "$got" = "$want" ] || fail "$step: current ($cur) serves $got names, $want before the kill"
	"$SY" certs check "$CUR" >"$T_TMP/check" || { tail -5 "$T_TMP/check"; fail "$step: current does not load"; }
	say "killed at $step: current $before -> $cur, $got names served"

	run >"$T_TMP/out" 2>&1 || { cat "$T_TMP/out"; fail "$step: the run after the kill failed"; }
	cmp -s "$SRC/site$n.pem" "$(set_file "$CUR" "site$n.pem")" ||
		fail "$step: the run after the kill did not apply the change"
	[ "$(names "$CUR")" = "$want" ] || fail "$step: names after the recovery: $(names "$CUR")"
	ls "$STATE/certsync/sets" | grep -q '\.tmp$' && fail "$step: a .tmp set survived the recovery"
	set_blobs_ok "$STATE" || fail "$step: blobs after the recovery"
	[ "$(ls "$STATE/certsync/sets" | wc -l)" -le 2 ] || fail "$step: more sets than keep_versions"
done
say "ok: every crash point left a complete current set, and the next run recovered"
