#!/bin/bash
# A standby that cannot bind because another process holds its port
# (issue 15, section 2): `switchyard reload` used to wait silently for 10
# minutes and then say "did not become ready", the cause only in the log.
# Now the reply comes within seconds and names the port; the live instance
# keeps serving throughout.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 4
sv_start
live=$(sv_status .live)
standby=$([ "$live" = blue ] && echo green || echo blue)
port=$([ "$standby" = blue ] && echo 8443 || echo 9443)
read -r NAME _ < <(sed -n 1p "$SV_PKI/names.txt")
before=$(sv_served "$NAME") || fail "no certificate served for $NAME"

# Take the standby's port: a process that retries bind() every 10 ms is
# started first, and switchyardd is stopped (SIGSTOP) from the kill until
# the port is taken, so it cannot respawn the standby onto its port first
# however slowly the taker runs on a loaded machine.
pid=$(sv_status ".instances[] | select(.colour == \"$standby\") | .pid")
sv_ns python3 -c "
import socket, time
print('trying', flush=True)
while True:
    s = socket.socket()
    # Connections the gate made leave TIME_WAIT entries on the port.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(('0.0.0.0', $port))
        break
    except OSError:
        s.close()
        time.sleep(0.01)
s.listen()
print('bound', flush=True)
time.sleep(600)
" >"$T_TMP/taker.out" 2>&1 &
T_PIDS+=($!)
wait_until 20 grep -q trying "$T_TMP/taker.out" || fail "the port taker did not start"
kill -STOP "$SV_PID"
kill -9 "$pid"
wait_until 30 grep -q bound "$T_TMP/taker.out" || { kill -CONT "$SV_PID"; fail "could not take port $port"; }
kill -CONT "$SV_PID"
sv_ns ss -Hltnp "sport = :$port"

start=$SECONDS
svc reload >"$T_TMP/reload.out" 2>&1
rc=$?
took=$((SECONDS - start))
cat "$T_TMP/reload.out"
[ "$rc" -eq 1 ] || { sv_dump_logs; fail "reload exited $rc, want 1"; }
[ "$took" -le 20 ] || fail "reload took $took s to report the failure"
grep -q "port $port on 0.0.0.0 is in use by another process" "$T_TMP/reload.out" ||
	fail "the reply does not name the port in use"
[ "$(sv_status .live)" = "$live" ] || fail "live colour changed"
[ "$(sv_served "$NAME")" = "$before" ] || fail "$NAME no longer served"
say "ok: reload failed in $took s with the cause (port $port in use)"
