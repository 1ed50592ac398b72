#!/bin/bash
# `switchyard flip` sent while a reload runs (issue 15, section 2) used to
# wait silently and then flip to the set the reload loaded with --no-flip.
# It now says what it waits for and what it will promote, and its result
# names the set it promoted.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 4
sv_start
live=$(sv_status .live)
standby=$([ "$live" = blue ] && echo green || echo blue)
NEW=$T_TMP/new
gen_certs "$NEW" 4

# Hold the standby so that its reload-certs stays in progress.
pid=$(sv_status ".instances[] | select(.colour == \"$standby\") | .pid")
kill -STOP "$pid"
svc reload --no-flip --quiet --certs "$NEW/certs" >"$T_TMP/reload.out" 2>&1 &
RELOAD=$!
T_PIDS+=("$RELOAD")
in_reload() { [ "$(sv_status .op.name)" = reload ]; }
wait_until 10 in_reload || { kill -CONT "$pid"; fail "the reload did not start"; }

svc flip >"$T_TMP/flip.out" 2>&1 &
FLIP=$!
T_PIDS+=("$FLIP")
said() { grep -q "waiting for the reload in progress" "$T_TMP/flip.out"; }
wait_until 10 said || { kill -CONT "$pid"; cat "$T_TMP/flip.out"; fail "flip did not say what it waits for"; }
kill -CONT "$pid"
cat "$T_TMP/flip.out"
grep -q -- "--no-flip); this flip will then promote $standby with that set" "$T_TMP/flip.out" ||
	fail "flip does not say it will promote $standby with the set being loaded"
wait "$RELOAD" || { cat "$T_TMP/reload.out"; fail "the reload failed"; }
wait "$FLIP" || { cat "$T_TMP/flip.out"; fail "the flip failed"; }
cat "$T_TMP/flip.out"
grep -q "^flip: $live -> $standby (generation [0-9]*, set certs)" "$T_TMP/flip.out" ||
	fail "the flip's result does not name the set it promoted"
say "ok: a flip queued behind a reload says what it waits for and what it promotes"
