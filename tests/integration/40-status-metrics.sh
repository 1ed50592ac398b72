#!/bin/bash
# The basics around a running supervisor: systemd readiness (READY=1 on
# $NOTIFY_SOCKET once the live instance serves), `switchyard status` in
# text and JSON, `switchyard metrics` and the localhost HTTP listener, and
# the ticket key file shared by both instances.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

SV_EXTRA_SUPERVISOR='metrics_listen: "127.0.0.1:9109"' sv_setup 20

# A stand-in for systemd's notify socket.
/usr/bin/python3 - "$T_TMP/notify.sock" "$T_TMP/notify.txt" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
msg = s.recv(4096)
open(sys.argv[2], "wb").write(msg)
PY
NOTIFY=$!
T_PIDS+=("$NOTIFY")
wait_until 5 test -S "$T_TMP/notify.sock" || fail "notify stand-in did not start"
NOTIFY_SOCKET=$T_TMP/notify.sock sv_start
wait "$NOTIFY"
grep -q "READY=1" "$T_TMP/notify.txt" || fail "no READY=1: $(cat "$T_TMP/notify.txt")"
say "ok: sd_notify READY=1"

svc status >"$T_TMP/status.txt" || fail "status"
cat "$T_TMP/status.txt"
grep -q "^live: blue" "$T_TMP/status.txt" || fail "status text lacks the live colour"
grep -Eq "^green +ready" "$T_TMP/status.txt" || fail "status text lacks green ready"
[ "$(sv_status '.instances[0].certs')" -eq 20 ] || fail "certs count"
check "flip" svc flip
svc status | grep -q "blue -> green" || fail "status lacks the flip"

svc metrics >"$T_TMP/metrics.txt" || fail "metrics"
for m in 'switchyard_live{colour="green"} 1' 'switchyard_flips_total{result="ok"} 1' \
	'switchyard_flip_latency_seconds_count 1' 'switchyard_instance_certificates{colour="blue"} 20' \
	'switchyard_proxy_accepted_total{colour="blue"}'; do
	grep -qF "$m" "$T_TMP/metrics.txt" || fail "metrics lack: $m"
done
wait_until 15 sh -c "$SY_BUILD/switchyard -c $SV_CONF metrics | grep -q switchyard_cert_soonest_expiry_seconds" ||
	fail "no soonest expiry metric"
sv_ns curl -sf http://127.0.0.1:9109/metrics | grep -qF 'switchyard_live{colour="green"} 1' ||
	fail "HTTP metrics listener"
say "ok: metrics over the CLI and HTTP on localhost"

[ "$(wc -l <"$T_TMP/state/ticket.keys")" -eq 3 ] || fail "ticket key file"
[ "$(stat -c %a "$T_TMP/state/ticket.keys")" = 600 ] || fail "ticket key file mode"
say "ok: ticket keys created (3 keys, mode 600)"
