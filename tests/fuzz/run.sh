#!/bin/bash
# Runs libFuzzer targets built by `make fuzz` (docs/fuzzing.md).
#
#   tests/fuzz/run.sh BUILD SECONDS TARGET...
#
# Each target runs for SECONDS, starting from its committed seeds in
# tests/fuzz/corpus/TARGET/. libFuzzer writes the inputs it finds into the
# first corpus directory it is given, so that is a scratch directory under
# BUILD (BUILD/fuzz-corpus/TARGET), never the committed corpus. A crash,
# timeout, leak, out-of-memory or sanitizer report leaves its input in
# BUILD/fuzz-artifacts/TARGET/ and makes this script exit 1 after the other
# targets have run.
set -u

if [ $# -lt 3 ]; then
	echo "usage: $0 BUILD SECONDS TARGET..." >&2
	exit 2
fi
build=$1
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)

# Per input: 10 s is far beyond any legitimate input of these targets (they
# run in microseconds), so only a hang or a runaway loop reaches it.
timeout_s=${FUZZ_TIMEOUT:-10}
rss_mb=${FUZZ_RSS_MB:-2048}
# UBSan aborts on its first report (the build also uses
# -fno-sanitize-recover), so that libFuzzer keeps the input as a crash.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

failed=""
for t in "$@"; do
	bin=$build/tests/fuzz/$t
	if [ ! -x "$bin" ]; then
		echo "fuzz: $t: no binary $bin (build it with make fuzz)" >&2
		failed="$failed $t"
		continue
	fi
	scratch=$build/fuzz-corpus/$t
	art=$build/fuzz-artifacts/$t
	log=$build/fuzz-logs/$t.log
	mkdir -p "$scratch" "$art" "$(dirname "$log")"
	args=(-max_total_time="$secs" -timeout="$timeout_s" -rss_limit_mb="$rss_mb"
		-print_final_stats=1 -artifact_prefix="$art/")
	[ -f "$here/$t.dict" ] && args+=(-dict="$here/$t.dict")
	seeds=()
	[ -d "$here/corpus/$t" ] && seeds=("$here/corpus/$t")
	echo "fuzz: $t for ${secs}s (log: $log)"
	"$bin" "${args[@]}" "$scratch" "${seeds[@]}" >"$log" 2>&1
	rc=$?
	# The last status line: coverage, features, corpus size and exec/s.
	grep -E '^#[0-9]+' "$log" | tail -n 1
	grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
	if [ $rc -ne 0 ]; then
		echo "fuzz: $t FAILED (exit $rc); the report:" >&2
		grep -E -A 30 '^==[0-9]+==|runtime error|^ALARM|Test unit written' "$log" | head -n 60 >&2
		failed="$failed $t"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed (inputs in $build/fuzz-artifacts/)" >&2
	exit 1
fi
echo "fuzz: ok ($# targets, ${secs}s each)"
