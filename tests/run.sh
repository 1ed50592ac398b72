#!/bin/bash
# Runs every unit test binary and every numbered integration test, then prints
# one closing line: "N passed, N failed, N skipped".
#
#   tests/run.sh BUILD_DIR [FILTER]
#
# Integration tests are tests/integration/NN-name.sh (or .py): exit 0 is a
# pass, 77 a skip (the test prints why), anything else a failure. They get
# SY_BUILD (absolute build dir) and SY_ROOT (source root) in the environment.
set -u
BUILD=${1:?usage: tests/run.sh BUILD_DIR [FILTER]}
FILTER=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export SY_BUILD=$(cd "$BUILD" && pwd)
export SY_ROOT=$ROOT
LOGDIR=$SY_BUILD/test-logs
mkdir -p "$LOGDIR"
TIMEOUT=${SY_TEST_TIMEOUT:-600}

pass=0 fail=0 skip=0 failed=()

run_one() {
	local name=$1; shift
	local log="$LOGDIR/$(echo "$name" | tr '/' '_').log"
	local start=$SECONDS rc
	timeout --kill-after=10 "$TIMEOUT" "$@" >"$log" 2>&1 </dev/null
	rc=$?
	local dur=$((SECONDS - start))
	case $rc in
	0) pass=$((pass + 1)); printf 'PASS  %-48s %3ds\n' "$name" "$dur" ;;
	77) skip=$((skip + 1)); printf 'SKIP  %-48s %s\n' "$name" "$(grep -m1 -i 'skip' "$log" | cut -c1-100)" ;;
	*) fail=$((fail + 1)); failed+=("$name")
	   printf 'FAIL  %-48s %3ds (exit %d)\n' "$name" "$dur" "$rc"
	   tail -n 40 "$log" | sed 's/^/      | /' ;;
	esac
}

for t in "$SY_BUILD"/tests/unit/*/test_*; do
	[ -x "$t" ] || continue
	name=unit/${t#"$SY_BUILD"/tests/unit/}
	[ -n "$FILTER" ] && [[ $name != *$FILTER* ]] && continue
	run_one "$name" "$t"
done

# The netfilter (2x) and flip (4x) tests run once per netfilter backend,
# reported as NAME[backend], with SY_NF_BACKEND set; a test that pins one
# backend (a line "nf_backend_only BACKEND ...") runs only with that one.
# SY_NF_BACKENDS narrows the list ("nftables" runs the nftables half only).
BACKENDS=${SY_NF_BACKENDS:-iptables nftables}
for t in "$ROOT"/tests/integration/[0-9][0-9]-*; do
	[ -x "$t" ] || continue
	base=$(basename "$t")
	case $base in
	2[0-9]-* | 4[0-9]-*)
		pin=$(sed -n 's/^nf_backend_only \([a-z]*\).*/\1/p' "$t" | head -n1)
		for b in $BACKENDS; do
			[ -n "$pin" ] && [ "$pin" != "$b" ] && continue
			name="integration/$base[$b]"
			[ -n "$FILTER" ] && [[ $name != *$FILTER* ]] && continue
			export SY_NF_BACKEND=$b
			run_one "$name" "$t"
			unset SY_NF_BACKEND
		done
		;;
	*)
		name=integration/$base
		[ -n "$FILTER" ] && [[ $name != *$FILTER* ]] && continue
		run_one "$name" "$t"
		;;
	esac
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "failed: ${failed[*]} (logs in $LOGDIR)"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ $((pass + skip)) -gt 0 ]
