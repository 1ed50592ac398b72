#!/bin/bash
# `switchyard reload` on a terminal draws a progress bar from the
# supervisor's status (op.loaded / op.total). The figures must describe the
# load in progress: a standby whose last load held more files than its first
# one, reloaded with a smaller directory, once reported loaded > total, and
# the bar then wrote past its buffer (a segfault). The CLI runs under
# script(1) so that stderr is a terminal, and the standby is held stopped
# (SIGSTOP) so that the CLI polls while the load is in progress, without
# relying on timing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"
command -v script >/dev/null || skip "script(1) (bsdutils) is not installed"

sv_setup 2
sv_start
BIG=$T_TMP/big
SMALL=$T_TMP/small
gen_certs "$BIG" 40
mkdir -p "$SMALL"
cp "$SV_PKI"/certs/* "$SMALL"/

# Both instances load the 40-file directory once: each now last loaded more
# files than the 2 it started with.
check "reload 1 (40 files)" svc reload --certs "$BIG/certs"
check "reload 2 (40 files)" svc reload --certs "$BIG/certs"
standby=$(sv_status '.instances[] | select(.state != "live") | .colour')
pid=$(sv_status ".instances[] | select(.colour == \"$standby\") | .pid")
[ -n "$pid" ] && [ "$pid" -gt 0 ] || fail "no standby pid"
say "standby $standby (pid $pid) last loaded $(sv_status ".instances[] | select(.colour == \"$standby\") | .loaded") files"

# Hold the standby so that its reload-certs stays in progress, then reload
# the 2-file directory on a terminal (it drops 38 of the 40 names served, on
# purpose: --allow-name-loss).
kill -STOP "$pid"
SWITCHYARD_CONF=$SV_CONF script -qec "$SY_BUILD/switchyard -c $SV_CONF reload --allow-name-loss --certs $SMALL" \
	/dev/null </dev/null >"$T_TMP/tty.out" 2>&1 &
CLI=$!
T_PIDS+=("$CLI")
# The CLI polls status every 100 ms; it has drawn the bar during the load
# once "loading" appears on its terminal, or it has died trying.
polled() { grep -q "loading" "$T_TMP/tty.out" || ! kill -0 "$CLI" 2>/dev/null; }
wait_until 30 polled
phase=$(sv_status .op.phase)
kill -CONT "$pid"
wait "$CLI"
rc=$?
say "phase while held: $phase; CLI exit $rc; its terminal:"
tr '\r' '\n' <"$T_TMP/tty.out" | sed '/^$/d' | tail -n 6
check "the supervisor was loading while the CLI polled" test "$phase" = loading
check "the CLI exited 0 (no crash)" test "$rc" -eq 0
check "the terminal shows no crash" bash -c "! grep -qi 'segmentation\|core dumped\|stack smashing' $T_TMP/tty.out"
# Each bar is 30 characters between brackets: never more.
check "every progress bar is 30 characters" \
	bash -c "tr '\r' '\n' <$T_TMP/tty.out | grep '^\[' | awk '{ if (length(\$1) != 32) bad = 1 } END { exit bad }'"
check "a bar was drawn while loading" bash -c "tr '\r' '\n' <$T_TMP/tty.out | grep -q '^\[.*\] .* loading'"
check "the reload finished" grep -q "reload: $standby loaded $SMALL" "$T_TMP/tty.out"
loaded=$(sv_status ".instances[] | select(.colour == \"$standby\") | .loaded")
total=$(sv_status ".instances[] | select(.colour == \"$standby\") | .total")
say "$standby after the reload: loaded $loaded of $total"
check "status reports the last load's own figures (2 of 2)" test "$loaded/$total" = 2/2
say "PASS"
