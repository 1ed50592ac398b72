#!/bin/bash
# `switchyard shutdown` reports "stopped" only when switchyardd's socket is
# gone, which switchyardd removes last. A server that accepts the shutdown
# but keeps its socket (here a stand-in on a private socket path, so no real
# supervisor is involved) gets a clear message and exit 5 after the 30 s
# wait, not "stopped" and 0; once the socket goes, the same command says
# "stopped" and exits 0; a refused shutdown says why and exits 1.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 is not installed"
SY=$SY_BUILD/switchyard
[ -x "$SY" ] || fail "missing $SY (build first)"
SOCK=$T_TMP/sy.sock

# serve HOW: answers each request line with {"ok":true}; with HOW 1 it
# removes its socket right after the first answer; with HOW refuse it
# answers {"ok":false} with a reason.
serve() {
	python3 - "$SOCK" "$1" <<'PY' &
import os, socket, sys
path, how = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(4)
while True:
    c, _ = s.accept()
    c.makefile().readline()
    if how == "refuse":
        c.sendall(b'{"ok":false,"error":"a flip is running"}\n')
    else:
        c.sendall(b'{"ok":true}\n')
    c.close()
    if how == "1":
        os.unlink(path)
        break
PY
	T_PIDS+=($!)
	wait_until 10 test -S "$SOCK" || fail "the stand-in server did not start"
}

serve 0
start=$SECONDS
SWITCHYARD_SOCKET=$SOCK "$SY" shutdown >"$T_TMP/out" 2>"$T_TMP/err"
rc=$?
cat "$T_TMP/out" "$T_TMP/err"
[ "$rc" -eq 5 ] || fail "shutdown with the socket still there exited $rc, want 5"
grep -q "stopped" "$T_TMP/out" && fail "shutdown said stopped while the socket is still there"
grep -q "still there after 30 s" "$T_TMP/err" || fail "shutdown did not say that the socket is still there"
[ $((SECONDS - start)) -ge 29 ] || fail "shutdown gave up before its 30 s wait"
say "ok: a socket that stays gets exit 5 and a message, not \"stopped\""
kill "${T_PIDS[@]}" 2>/dev/null
rm -f "$SOCK"

serve 1
SWITCHYARD_SOCKET=$SOCK "$SY" shutdown >"$T_TMP/out" 2>"$T_TMP/err" ||
	fail "shutdown with the socket removed exited $?: $(cat "$T_TMP/err")"
grep -q "stopped" "$T_TMP/out" || fail "shutdown did not say stopped: $(cat "$T_TMP/out")"
say "ok: a socket that goes gets \"stopped\" and exit 0"
kill "${T_PIDS[@]}" 2>/dev/null
rm -f "$SOCK"

# A refused shutdown says why, and exits 1.
serve refuse
SWITCHYARD_SOCKET=$SOCK "$SY" shutdown >"$T_TMP/out" 2>"$T_TMP/err"
rc=$?
[ "$rc" -eq 1 ] || fail "a refused shutdown exited $rc, want 1"
grep -q "a flip is running" "$T_TMP/err" || fail "a refused shutdown did not say why: $(cat "$T_TMP/err")"
say "ok: a refused shutdown says why and exits 1"
