#!/bin/bash
# Control sockets cannot be locked out. 1,000 idle connections to
# switchyardd and 100 to the standby instance's socket are held open on
# purpose while the operator runs status, flip and reload: all succeed (the
# supervisor's own requests to the standby, the health gate's included, get
# through), 50 concurrent status requests during a flip all get correct
# replies, and idle connections are closed by the server after the request
# timeout (CTL_REQUEST_MS, 3 s).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 10
sv_start
SOCK=$T_TMP/state/switchyardd.sock
ulimit -n 8192

# hold PATH N OUT: opens N connections to PATH and keeps them without a
# word. It prints "held N" once every one is connected, then waits for a
# line on its stdin (the fifo $OUT.in) and reports how many of them the
# server has closed within 30 s (the timeout is 3 s; the rest is room for a
# loaded machine, used only when something is wrong).
cat >"$T_TMP/hold.py" <<'PY'
import select, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    socks.append(s)
print("held", n, flush=True)
sys.stdin.readline()
t0 = time.monotonic()
p = select.poll()
by_fd = {s.fileno(): s for s in socks}
for s in socks:
    p.register(s, select.POLLIN)
closed = 0
while by_fd and time.monotonic() - t0 < 30:
    for fd, ev in p.poll(200):
        try:
            d = by_fd[fd].recv(4096)
        except ConnectionResetError:
            d = b""
        if d:
            print("unexpected data:", d[:200], flush=True)
        p.unregister(fd)
        del by_fd[fd]
        closed += 1
print("closed", closed, "of", n, "in %.1f s" % (time.monotonic() - t0), flush=True)
PY
hold() {
	local path=$1 n=$2 out=$3
	mkfifo "$out.in"
	/usr/bin/python3 "$T_TMP/hold.py" "$path" "$n" <"$out.in" >"$out" 2>&1 &
	T_PIDS+=($!)
	# The fifo's writer: opening it blocks until python opened its end.
	eval "exec {HOLD_FD}>\"$out.in\""
	wait_until 60 grep -q "^held $n" "$out" || fail "$path: could not hold $n connections: $(cat "$out")"
}

live=$(sv_status .live)
standby=$([ "$live" = blue ] && echo green || echo blue)
hold "$SOCK" 1000 "$T_TMP/hold-sv"
SV_HOLD=$HOLD_FD
hold "$T_TMP/state/$standby.sock" 100 "$T_TMP/hold-px"
PX_HOLD=$HOLD_FD
say "ok: holding 1000 idle connections to switchyardd, 100 to the $standby instance"

check "status with switchyardd flooded" svc status
svc flip >"$T_TMP/flip.out" 2>&1 || fail "flip with both sockets flooded: $(cat "$T_TMP/flip.out")"
[ "$(sv_status .live)" = "$standby" ] || fail "flip did not move to $standby"
say "ok: flip to $standby with both sockets flooded"

# The same again while it is the other instance's turn to be standby.
hold "$SOCK" 1000 "$T_TMP/hold-sv2"
SV2_HOLD=$HOLD_FD
hold "$T_TMP/state/$live.sock" 100 "$T_TMP/hold-px2"
PX2_HOLD=$HOLD_FD
svc reload >"$T_TMP/reload.out" 2>&1 || fail "reload with both sockets flooded: $(cat "$T_TMP/reload.out")"
[ "$(sv_status .live)" = "$live" ] || fail "reload did not flip back to $live"
say "ok: reload (delta load, gate, flip) with both sockets flooded"

# 50 status requests in parallel with a flip: every one gets a correct
# reply (the operations run off the server's poll thread).
svc flip >"$T_TMP/flip2.out" 2>&1 &
flip_pid=$!
st_pids=()
for i in $(seq 50); do
	(svc status --json >"$T_TMP/st.$i" 2>&1; echo $? >"$T_TMP/st.$i.rc") &
	st_pids+=($!)
done
wait "$flip_pid" || fail "flip during 50 status requests: $(cat "$T_TMP/flip2.out")"
# Not a bare `wait`: the holders are background jobs too.
wait "${st_pids[@]}"
for i in $(seq 50); do
	[ "$(cat "$T_TMP/st.$i.rc")" = 0 ] || fail "status $i: exit $(cat "$T_TMP/st.$i.rc"): $(cat "$T_TMP/st.$i")"
	jq -e '.ok == true and (.live == "blue" or .live == "green") and (.instances | length == 2)' \
		"$T_TMP/st.$i" >/dev/null || fail "status $i: $(cat "$T_TMP/st.$i")"
done
[ "$(sv_status .live)" = "$standby" ] || fail "the flip during the status requests did not happen"
say "ok: 50 concurrent status requests during a flip, all correct"

# Every held connection is closed by the servers: pushed out by newer
# clients or past the request timeout. None got a byte.
for h in SV_HOLD PX_HOLD SV2_HOLD PX2_HOLD; do echo check >&"${!h}"; done
for f in hold-sv hold-px hold-sv2 hold-px2; do
	wait_until 60 grep -q '^closed' "$T_TMP/$f" || fail "$f: no report: $(cat "$T_TMP/$f")"
	grep -q unexpected "$T_TMP/$f" && fail "$f: $(cat "$T_TMP/$f")"
	n=$(sed -n 1p "$T_TMP/$f" | cut -d' ' -f2)
	grep -q "^closed $n of $n" "$T_TMP/$f" || fail "$f: $(grep closed "$T_TMP/$f")"
	say "ok: $f: $(grep closed "$T_TMP/$f")"
done

# A fresh idle client is closed after the request timeout, not before.
hold "$SOCK" 5 "$T_TMP/hold-idle"
echo check >&"$HOLD_FD"
wait_until 60 grep -q '^closed' "$T_TMP/hold-idle" || fail "idle: no report"
grep -q '^closed 5 of 5' "$T_TMP/hold-idle" || fail "idle clients not closed: $(cat "$T_TMP/hold-idle")"
say "ok: idle clients closed: $(grep closed "$T_TMP/hold-idle")"
kill -0 "$SV_PID" || fail "switchyardd died"
