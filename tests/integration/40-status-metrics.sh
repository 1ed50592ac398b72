#!/bin/bash
# The basics around a running supervisor: systemd readiness (READY=1 on
# $NOTIFY_SOCKET once the live instance serves), `switchyard status` in
# text and JSON, `switchyard metrics` and the localhost HTTP listener, and
# the ticket key file shared by both instances; then the --json output of
# status, flip and reload (one line, jq parses it, no key twice) and the
# human flip, status and reload lines.
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
grep -q "^netfilter: $SY_NF_BACKEND (configured" "$T_TMP/status.txt" || fail "status text lacks the backend"
[ "$(sv_status .netfilter_backend)" = "$SY_NF_BACKEND" ] || fail "status JSON backend"
grep -Eq "^green +ready" "$T_TMP/status.txt" || fail "status text lacks green ready"
[ "$(sv_status '.instances[0].certs')" -eq 20 ] || fail "certs count"
svc flip >"$T_TMP/flip.txt" || fail "flip"
cat "$T_TMP/flip.txt"
grep -Eq '^flip: blue -> green \(generation [0-9]+, set [^)]+\); gate passed in [0-9]+ ms \([0-9]+ names\), commit [0-9.]+ ms, command to commit [0-9.]+ ms; blue is draining$' \
	"$T_TMP/flip.txt" || fail "flip text changed shape"
svc status | grep -q "blue -> green" || fail "status lacks the flip"
grep -Eq '^ +STATE +PID +GEN SET +CERTS +ACTIVE +PINNED RESTARTS$' "$T_TMP/status.txt" ||
	fail "status text header changed shape"


svc metrics >"$T_TMP/metrics.txt" || fail "metrics"
for m in 'switchyard_live{colour="green"} 1' 'switchyard_flips_total{result="ok"} 1' \
	'switchyard_flip_latency_seconds_count 1' 'switchyard_instance_certificates{colour="blue"} 20' \
	'switchyard_proxy_accepted_total{colour="blue"}' \
	"switchyard_netfilter_backend{backend=\"$SY_NF_BACKEND\",configured=\"$SY_NF_BACKEND\"} 1"; do
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

# The rest flips more than once: it runs after the counts above.
# --json output: one line that jq parses, each key once. jq keeps the last
# of two equal keys without a word, so the raw text is counted as well.
json_once() { # FILE: one line, valid JSON, no key twice in the top object
	[ "$(wc -l <"$1")" -eq 1 ] || fail "$1: not one line"
	jq -e 'type == "object"' "$1" >/dev/null || fail "$1: jq cannot parse it: $(cat "$1")"
	[ "$(grep -o '"generation":' "$1" | wc -l)" -eq 1 ] ||
		fail "$1: \"generation\" more or less than once: $(cat "$1")"
}
svc status --json >"$T_TMP/status.json" || fail "status --json"
jq -e '.ok == true and (.instances | length == 2)' "$T_TMP/status.json" >/dev/null ||
	fail "status --json: $(cat "$T_TMP/status.json")"
[ "$(wc -l <"$T_TMP/status.json")" -eq 1 ] || fail "status --json is not one line"
svc reload --json --quiet >"$T_TMP/reload.json" || fail "reload --json: $(cat "$T_TMP/reload.json")"
json_once "$T_TMP/reload.json"
inst=$(jq -r .instance "$T_TMP/reload.json")
gen=$(jq -r .generation "$T_TMP/reload.json")
jq -e '.ok and .flipped and .to == .instance' "$T_TMP/reload.json" >/dev/null ||
	fail "reload --json: $(cat "$T_TMP/reload.json")"
[ "$(sv_status ".instances[] | select(.colour == \"$inst\") | .generation")" = "$gen" ] ||
	fail "reload --json generation $gen is not $inst's"
svc flip --json >"$T_TMP/flip.json" || fail "flip --json"
json_once "$T_TMP/flip.json"
say "ok: status, reload and flip --json parse with jq, generation once"

# The human reload line, --restart included (a boolean field).
svc reload --restart --quiet >"$T_TMP/reload.txt" || fail "reload --restart: $(cat "$T_TMP/reload.txt")"
cat "$T_TMP/reload.txt"
grep -Eq "^reload: (blue|green) loaded $SV_PKI/certs: generation [0-9]+, 20 certificates, [0-9]+ changed, [0-9]+ ms \(restarted\)$" \
	"$T_TMP/reload.txt" || fail "reload text changed shape or lacks (restarted)"
grep -Eq '^flip: (blue|green) -> (blue|green) \(generation [0-9]+, set [^)]+\); gate passed' "$T_TMP/reload.txt" ||
	fail "reload text lacks the flip line"
say "ok: human flip, status and reload lines"

# The daemon's own log (stderr, not the journal): an RFC 3339 time on every
# line, and durations in ms only (no "us" beside "ms" in one line).
LOG=$T_TMP/switchyardd.log
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z switchyardd: info: ' "$LOG" ||
	fail "no RFC 3339 time on the daemon's lines: $(head -3 "$LOG")"
grep -Ev '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z (switchyardd|proxy\[(blue|green)\]): ' "$LOG" >"$T_TMP/untimed.txt"
[ ! -s "$T_TMP/untimed.txt" ] || fail "log lines without a time: $(head -3 "$T_TMP/untimed.txt")"
grep -Eq 'flip [a-z]+ -> [a-z]+ \([a-z]+\): committed in [0-9]+\.[0-9]{2} ms, command to commit [0-9]+\.[0-9]{2} ms, gate [0-9]+ ms$' "$LOG" ||
	fail "flip log line changed shape: $(grep -m1 'flip .* committed' "$LOG")"
! grep -Eq '[0-9] us\b' "$LOG" || fail "a duration in us: $(grep -Em1 '[0-9] us\b' "$LOG")"
say "ok: log lines carry RFC 3339 times and durations in ms"
