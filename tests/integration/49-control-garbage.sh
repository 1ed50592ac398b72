#!/bin/bash
# Garbage, over-long lines and unknown commands on the supervisor's control
# socket get an error reply and never crash or block it; the not-running
# case of the CLI has its own message and exit code.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 10
sv_start
SOCK=$T_TMP/state/switchyardd.sock
send() {
	/usr/bin/python3 - "$SOCK" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(eval(sys.argv[2]))
buf = b""
while buf.count(b"\n") < 1:
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(buf.decode(errors="replace").strip())
PY
}
expect_error() {
	local what=$1 req=$2 out
	out=$(send "$req") || fail "$what: no reply"
	echo "$out" | jq -e '.ok == false and (.error | length > 0)' >/dev/null || fail "$what: reply $out"
	say "ok: $what -> $(echo "$out" | jq -r .error | cut -c1-80)"
}
expect_error "unknown command" 'b"launch-missiles\n"'
expect_error "binary garbage" 'bytes(range(1, 9)) + b"\xff\xfe\n"'
expect_error "over-long line" 'b"A" * 100000 + b"\n"'
expect_error "empty line" 'b"\n"'
expect_error "too many arguments" 'b"status a b c d e f g h i j\n"'
expect_error "bad reload option" 'b"reload --certs relative/dir\n"'
expect_error "flip with junk" 'b"flip --sideways\n"'

# A client that connects and says nothing must not block anyone.
# It stays connected until killed, and the check waits until it is.
/usr/bin/python3 -c "import socket,time; s=socket.socket(socket.AF_UNIX); s.connect('$SOCK'); open('$T_TMP/idle.up', 'w').close(); time.sleep(600)" &
idle=$!
T_PIDS+=("$idle")
check "the silent client is connected" wait_until 30 test -e "$T_TMP/idle.up"
check "status still answers" svc status
kill "$idle"
kill -0 "$SV_PID" || fail "switchyardd died"

# Several requests on one connection, replies in order.
out=$(/usr/bin/python3 - "$SOCK" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
s.sendall(b"status\nnope\nstatus\n")
buf = b""
while buf.count(b"\n") < 3:
    buf += s.recv(65536)
print(" ".join(l.split(b",")[0].decode() for l in buf.splitlines()))
PY
)
[ "$out" = '{"ok":true {"ok":false {"ok":true' ] || fail "pipelined replies: $out"
say "ok: pipelined requests answered in order"

svc shutdown >/dev/null || fail "shutdown"
svc status >/dev/null 2>"$T_TMP/err"
rc=$?
[ "$rc" -eq 3 ] || fail "status without switchyardd: exit $rc, want 3"
grep -q "switchyardd is not running" "$T_TMP/err" || fail "message: $(cat "$T_TMP/err")"
say "ok: $(cat "$T_TMP/err")"
