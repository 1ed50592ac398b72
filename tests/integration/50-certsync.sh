#!/bin/bash
# certsync without the supervisor (--no-reload) plus the "supervisor down"
# case: fast path, partial sets keeping the previous version, the
# mass-deletion guard, source command failures and timeouts, overlapping
# runs, and kill -9 at arbitrary points. Needs no root: it touches only files.
. "$(dirname "$0")/lib.sh"

SY=$SY_BUILD/switchyard
STATE=$T_TMP/state
SRC=$T_TMP/src
CERTS=$T_TMP/gen
mkdir -p "$STATE" "$SRC"

write_cfg() { certsync_cfg "$1" "$STATE" "$2"; }
CFG=$T_TMP/sy.yaml
write_cfg "$CFG" "  source: { directory: $SRC }"

run() { "$SY" certsync -c "$CFG" "$@"; }
current() { readlink "$STATE/certsync/current"; }
# The record of the last run, for switchyardd's metrics.
LAST=$STATE/certsync/last-run
last() { jq -r "$1" "$LAST"; }

gen_certs "$CERTS" 40
cp "$CERTS"/certs/* "$SRC"/

say "first run builds the first set"
run --no-reload >"$T_TMP/out" 2>&1; rc=$?
cat "$T_TMP/out"
[ $rc -eq 0 ] || fail "first run exit $rc"
first=$(current)
[ -n "$first" ] || fail "current not created"
[ -f "$STATE/certsync/$first/.certsync-index" ] || fail "set has no index"
n=$(set_count "$STATE/certsync/current")
[ "$n" -eq 40 ] || fail "expected 40 files in the set, got $n"
check "every blob the set names exists" set_blobs_ok "$STATE"
[ "$(last '"\(.status) \(.exit) \(.names_after) \(.names_gone)"')" = "applied 0 40 0" ] ||
	fail "last-run after the first run: $(cat "$LAST")"
[ "$(stat -c %a "$LAST")" = 644 ] || fail "last-run mode $(stat -c %a "$LAST")"

say "unchanged source: no changes, no new set"
run --no-reload >"$T_TMP/out" 2>&1; rc=$?
grep -q "no changes" "$T_TMP/out" || { cat "$T_TMP/out"; fail "expected 'no changes'"; }
[ $rc -eq 0 ] && [ "$(current)" = "$first" ] || fail "unchanged run changed current (rc $rc)"
[ "$(last .status)" = "no changes" ] || fail "last-run after no changes: $(cat "$LAST")"

say "one changed file: a new set that shares the unchanged blobs"
sleep 1.1
"$SY_BUILD/tests/tools/gencerts" --out "$CERTS" --one site3.example.test --file "$SRC/site3.pem" >/dev/null ||
	fail "gencerts --one"
run --no-reload --json >"$T_TMP/out" 2>&1; rc=$?
[ $rc -eq 0 ] || { cat "$T_TMP/out"; fail "changed run exit $rc"; }
grep -q '"changed":1' "$T_TMP/out" || { cat "$T_TMP/out"; fail "expected exactly one changed unit"; }
grep -q '"validated":1' "$T_TMP/out" || { cat "$T_TMP/out"; fail "expected one validation"; }
second=$(current)
[ "$second" != "$first" ] || fail "current not switched"
cmp -s "$SRC/site3.pem" "$(set_file "$STATE/certsync/current" site3.pem)" || fail "new file not in the set"
[ "$(set_file "$STATE/certsync/$first" site1.pem)" -ef "$(set_file "$STATE/certsync/$second" site1.pem)" ] ||
	fail "unchanged file was copied, not shared"
[ -z "$(ls "$STATE/certsync/$second")" ] || fail "the set directory holds files besides its indexes"
check "one new blob, nothing orphaned" set_blobs_ok "$STATE"

say "a broken new version is skipped and the previous version stays: partial"
sleep 1.1
cp "$(set_file "$STATE/certsync/current" site5.pem)" "$T_TMP/site5.good"
head -c 300 "$T_TMP/site5.good" >"$SRC/site5.pem"
run --no-reload >"$T_TMP/out" 2>&1; rc=$?
cat "$T_TMP/out"
[ $rc -eq 2 ] || fail "expected exit 2 (partial), got $rc"
grep -q "site5.pem" "$T_TMP/out" || fail "report does not name site5.pem"
cmp -s "$T_TMP/site5.good" "$(set_file "$STATE/certsync/current" site5.pem)" || fail "previous site5 not kept"

# A run whose changed units are judged partly from the verdict cache
# validates the others in a scratch directory (a run with none cached reads
# the new set itself): the broken site5 again (cached) and a new site7.
say "a cached verdict beside a new file: only the new one is validated"
sleep 1.1
head -c 300 "$T_TMP/site5.good" >"$SRC/site5.pem"
"$SY_BUILD/tests/tools/gencerts" --out "$CERTS" --one site7.example.test --file "$SRC/site7.pem" >/dev/null ||
	fail "gencerts --one"
run --no-reload >"$T_TMP/out" 2>&1; rc=$?
cat "$T_TMP/out"
[ $rc -eq 2 ] || fail "expected exit 2 (partial), got $rc"
grep -q "2 changed, 1 validated (1 cached)" "$T_TMP/out" || fail "expected one cached verdict and one validation"
cmp -s "$SRC/site7.pem" "$(set_file "$STATE/certsync/current" site7.pem)" || fail "new site7 not in the set"
cmp -s "$T_TMP/site5.good" "$(set_file "$STATE/certsync/current" site5.pem)" || fail "previous site5 not kept"
[ ! -e "$STATE/certsync/validate.tmp" ] || fail "the scratch directory was left behind"
cp "$T_TMP/site5.good" "$SRC/site5.pem"

say "source emptied: the guard refuses and nothing changes"
before=$(current)
mkdir -p "$T_TMP/empty"
write_cfg "$T_TMP/empty.yaml" "  source: { directory: $T_TMP/empty }"
"$SY" certsync -c "$T_TMP/empty.yaml" --no-reload >"$T_TMP/out" 2>&1; rc=$?
cat "$T_TMP/out"
[ $rc -eq 3 ] || fail "emptied source: expected exit 3, got $rc"
grep -q "would disappear" "$T_TMP/out" || fail "guard did not explain itself"
[ "$(current)" = "$before" ] || fail "current changed after a refusal"

say "half the files gone: refused; --allow-mass-delete overrides"
mkdir -p "$T_TMP/half"
ls "$SRC" | head -n 20 | while read -r f; do cp -p "$SRC/$f" "$T_TMP/half/"; done
write_cfg "$T_TMP/half.yaml" "  source: { directory: $T_TMP/half }"
"$SY" certsync -c "$T_TMP/half.yaml" --no-reload >"$T_TMP/out" 2>&1; rc=$?
[ $rc -eq 3 ] || { cat "$T_TMP/out"; fail "50% gone: expected exit 3, got $rc"; }
[ "$(current)" = "$before" ] || fail "current changed after a refusal"
[ "$(last '"\(.status) \(.exit) \(.names_gone)"')" = "refused 3 20" ] ||
	fail "last-run after a refusal: $(cat "$LAST")"
cp "$LAST" "$T_TMP/last.before"
"$SY" certsync -c "$T_TMP/half.yaml" --no-reload --allow-mass-delete --dry-run >"$T_TMP/out" 2>&1; rc=$?
[ $rc -eq 0 ] || { cat "$T_TMP/out"; fail "--allow-mass-delete --dry-run: exit $rc"; }
[ "$(current)" = "$before" ] || fail "a dry run changed current"
cmp -s "$LAST" "$T_TMP/last.before" || fail "a dry run rewrote last-run"

say "a failing or hanging source command changes nothing"
write_cfg "$T_TMP/cmd-fail.yaml" "  source: { command: \"cp $SRC/site1.pem {dir}/ && echo 'bucket gone' >&2 && exit 7\" }"
"$SY" certsync -c "$T_TMP/cmd-fail.yaml" --no-reload >"$T_TMP/out" 2>&1; rc=$?
cat "$T_TMP/out"
[ $rc -eq 1 ] || fail "failing command: expected exit 1, got $rc"
grep -q "status 7" "$T_TMP/out" && grep -q "bucket gone" "$T_TMP/out" ||
	fail "exit status and stderr of the command not reported"
[ "$(current)" = "$before" ] || fail "current changed after a failed source"
write_cfg "$T_TMP/cmd-hang.yaml" "  source: { command: \"sleep 30\" }
  command_timeout: 1s"
"$SY" certsync -c "$T_TMP/cmd-hang.yaml" --no-reload >"$T_TMP/out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "timed out" "$T_TMP/out" || { cat "$T_TMP/out"; fail "timeout not reported (rc $rc)"; }
[ "$(current)" = "$before" ] || fail "current changed after a timeout"

say "two runs at once: the second exits at once with the 'running' code"
# The first run's source command says it has started, then waits for the
# test's go (bounded, 30 s): the second run starts while the first is
# certainly running, however slow the machine.
write_cfg "$T_TMP/slow.yaml" "  source: { command: \"touch $T_TMP/slow.up; for i in \$(seq 300); do [ -e $T_TMP/slow.go ] && break; sleep 0.1; done; cp $SRC/*.pem {dir}/\" }"
"$SY" certsync -c "$T_TMP/slow.yaml" --no-reload >"$T_TMP/out1" 2>&1 &
slow=$!
for ((i = 0; i < 300; i++)); do [ -e "$T_TMP/slow.up" ] && break; sleep 0.1; done
[ -e "$T_TMP/slow.up" ] || fail "the first run's source command did not start"
"$SY" certsync -c "$CFG" --no-reload >"$T_TMP/out2" 2>&1; rc=$?
touch "$T_TMP/slow.go"
cat "$T_TMP/out2"
[ $rc -eq 4 ] || fail "overlapping run: expected exit 4, got $rc"
[ "$(last .exit)" != 4 ] || fail "a run that found the lock taken rewrote last-run"
grep -q "another run" "$T_TMP/out2" || fail "overlapping run did not say so"
wait $slow || { cat "$T_TMP/out1"; fail "the first run failed"; }

say "kill -9 at arbitrary points: current is always a complete set"
# Each round replaces 300 certificates, so a run lasts long enough for the
# kill to land in the middle of hashing, validating or promoting.
for delay in 0.02 0.05 0.1 0.2 0.3 0.5 0.8; do
	sleep 1.1
	rm -rf "$T_TMP/big"
	cp -r "$CERTS" "$T_TMP/big"   # same CA, so the names stay verifiable
	"$SY_BUILD/tests/tools/gencerts" --out "$T_TMP/big" --count 300 >/dev/null || fail "gencerts"
	cp "$T_TMP/big"/certs/*.pem "$SRC"/
	"$SY" certsync -c "$CFG" --no-reload >/dev/null 2>&1 &
	p=$!
	sleep $delay
	kill -9 $p 2>/dev/null
	wait $p 2>/dev/null
	c=$(current)
	[ -f "$STATE/certsync/$c/.certsync-index" ] || fail "after kill -9 at ${delay}s current=$c is incomplete"
	run --no-reload >"$T_TMP/out" 2>&1; rc=$?
	[ $rc -eq 0 ] || { cat "$T_TMP/out"; fail "run after kill -9 at ${delay}s: exit $rc"; }
	cmp -s "$SRC/site277.pem" "$(set_file "$STATE/certsync/current" site277.pem)" ||
		fail "recovery run did not apply the change"
	set_blobs_ok "$STATE" || fail "blobs after the recovery from kill -9 at ${delay}s"
	n=$(set_count "$STATE/certsync/current")
	[ "$n" -eq 300 ] || fail "after recovery the set has $n files, expected 300"
done
ls "$STATE/certsync/sets" | grep -q '\.tmp$' && fail "a .tmp set survived a later run"
nsets=$(ls "$STATE/certsync/sets" | wc -l)
[ "$nsets" -le 5 ] || fail "pruning kept $nsets sets (keep_versions 5)"

say "supervisor down: a clear error and current unchanged"
sleep 1.1
"$SY_BUILD/tests/tools/gencerts" --out "$CERTS" --one site9.example.test --file "$SRC/site9.pem" >/dev/null
before=$(current)
nsets=$(ls "$STATE/certsync/sets" | wc -l)
run >"$T_TMP/out" 2>&1; rc=$?
cat "$T_TMP/out"
[ $rc -eq 1 ] || fail "supervisor down: expected exit 1, got $rc"
grep -q "switchyardd is not reachable" "$T_TMP/out" || fail "no clear supervisor-down message"
[ "$(current)" = "$before" ] || fail "current changed although the supervisor was down"
[ "$(ls "$STATE/certsync/sets" | wc -l)" -eq "$nsets" ] || fail "an unpromoted set was left behind"

say "all certsync checks passed"
