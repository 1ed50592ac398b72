#!/bin/bash
# The name-loss guard (issue 15, section 1). A reload of a directory where 6
# of 8 files are broken loads a set that lacks 6 of the 8 names served now:
# the reload says how many files it skipped and how many names it would
# lose, and refuses to flip (exit 7); so does a plain `flip` to that set.
# --allow-name-loss overrides it. A failover is the exception: it flips to
# the lossy set, logs an error and counts the names lost, and flips back by
# itself once the crashed instance is respawned with the full set.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

SV_GATE_SAMPLE=100 sv_setup 8
sv_start
live=$(sv_status .live)
other=$([ "$live" = blue ] && echo green || echo blue)
read -r NAME1 FILE1 < <(sed -n 1p "$SV_PKI/names.txt")
read -r NAME8 FILE8 < <(sed -n 8p "$SV_PKI/names.txt")
before=$(sv_served "$NAME8") || fail "no certificate served for $NAME8"

# bad/: the 8 certificates under new file names (a new version of the
# set, so no previous version of a file can stay served), 6 of them
# replaced by garbage.
BAD=$T_TMP/bad
mkdir -p "$BAD"
for f in "$SV_PKI"/certs/*; do cp "$f" "$BAD/v2-$(basename "$f")"; done
n=0
for f in $(sed -n 3,8p "$SV_PKI/names.txt" | awk '{print $2}'); do
	echo "not a certificate" >"$BAD/v2-$f"
	n=$((n + 1))
done
[ "$n" -eq 6 ] || fail "broke $n files, want 6"

svc reload --certs "$BAD" >"$T_TMP/reload.out" 2>&1
rc=$?
cat "$T_TMP/reload.out"
[ "$rc" -eq 7 ] || fail "reload exit code $rc, want 7 (names would be lost)"
grep -q "6 files skipped" "$T_TMP/reload.out" || fail "the reload does not say 6 files were skipped"
grep -q "6 of the 8 names" "$T_TMP/reload.out" || fail "the reload does not count the names lost"
grep -q -- "--allow-name-loss" "$T_TMP/reload.out" || fail "the refusal does not name the override"
[ "$(sv_status .live)" = "$live" ] || fail "live colour changed despite the refusal"
[ "$(sv_served "$NAME8")" = "$before" ] || fail "$NAME8 is no longer served"
[ "$(sv_status .flips[-1].result)" = names-refused ] || fail "refusal not recorded in the history"
[ "$(sv_status .names.served_before)" -eq 8 ] || fail "reference set is not the 8 names served"
grep -q "reload into $other failed: refusing to promote $other" "$T_TMP/switchyardd.log" ||
	{ sv_dump_logs; fail "switchyardd did not log the refused reload"; }
[ "$(grep -c "switchyardd: .*reload: v2-.* was skipped: " "$T_TMP/switchyardd.log")" -eq 6 ] ||
	{ sv_dump_logs; fail "switchyardd did not log the 6 skipped files"; }
[ "$(grep -c "reload: warning: v2-.* was skipped: " "$T_TMP/reload.out")" -eq 6 ] ||
	fail "the reload's output does not name the 6 skipped files"
say "ok: reload of a lossy set refused with counts, and logged"

svc reload --certs "$BAD" --json --no-flip >"$T_TMP/nf.json" 2>/dev/null ||
	fail "reload --no-flip of the lossy set failed"
jq -e '.skipped == 6 and .names.lost == 6 and .names.served == 8' "$T_TMP/nf.json" >/dev/null ||
	fail "reload --no-flip reply lacks the counts: $(cat "$T_TMP/nf.json")"
grep -q "reload into $other: 2 names loaded, 6 of the 8 served now lost: " "$T_TMP/switchyardd.log" ||
	{ sv_dump_logs; fail "switchyardd did not log the names a --no-flip reload would lose"; }
svc flip >"$T_TMP/flip.out" 2>&1
rc=$?
cat "$T_TMP/flip.out"
[ "$rc" -eq 7 ] || fail "flip exit code $rc, want 7"
grep -q "6 of 8 names" "$T_TMP/flip.out" || fail "the flip refusal does not give the counts"
[ "$(sv_status .live)" = "$live" ] || fail "live colour changed despite the flip refusal"
say "ok: flip to the lossy set refused"

# Failover to the lossy standby: it flips, logs an error, counts, restores.
old_pid=$(svc status --json | jq -r ".instances[] | select(.colour == \"$live\") | .pid")
kill -9 "$old_pid"
wait_until 10 sh -c "[ \"\$($SY_BUILD/switchyard -c $SV_CONF status --json | jq -r .live)\" = $other ]" ||
	fail "no failover to $other"
# The failover commits (status shows it) before it reads the new live
# instance's names and logs what is lost.
wait_until 10 grep -q "FAILOVER: $other serves 2 of the 8 names" "$T_TMP/switchyardd.log" ||
	{ sv_dump_logs; fail "the failover did not log the names lost"; }
# The deficit is visible until the restore, which may already have run.
# The restore commits its flip (live changes) before it takes the full set
# as the reference (names lost back to 0) and logs: wait for both.
restored() { sv_status_is --arg c "$live" '.live == $c and .names.lost == 0'; }
wait_until 30 restored || {
	sv_dump_logs
	fail "no automatic restore to $live with 0 names lost (live $(sv_status .live), lost $(sv_status .names.lost))"
}
svc metrics | grep -q '^switchyard_names_lost 0$' || fail "metric switchyard_names_lost is not 0"
[ "$(sv_served "$NAME8")" = "$before" ] || fail "$NAME8 not served after the restore"
wait_until 10 grep -q "restore: $live serves the full set again" "$T_TMP/switchyardd.log" ||
	{ sv_dump_logs; fail "restore not logged"; }
say "ok: failover lost names, counted them, and restored the full set"

check "--allow-name-loss promotes the lossy set" svc reload --certs "$BAD" --allow-name-loss
[ "$(sv_status .live)" = "$other" ] || fail "--allow-name-loss did not flip"
[ "$(sv_served "$NAME1")" != "" ] || fail "$NAME1 not served"
[ "$(sv_status .names.served_before)" -eq 2 ] || fail "the reference set is not the promoted one"
say "ok: override"
