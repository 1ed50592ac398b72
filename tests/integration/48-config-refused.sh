#!/bin/bash
# switchyardd refuses what check-config refuses, and fails before it starts
# any instance: a supervisor that exited after starting both proxies left
# them running with no rules pointing at either.
#  1. supervisor.metrics_listen beyond loopback without metrics_public:
#     check-config names FILE:LINE:COLUMN, switchyardd exits non-zero with the
#     same line, and no proxy runs.
#  2. A metrics port that another process holds (only the daemon can find
#     that out): switchyardd exits before it starts an instance.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

sv_setup 3
GOOD=$T_TMP/good.yaml
cp "$SV_CONF" "$GOOD"

# proxies: switchyard-proxy processes started for this test's configuration.
proxies() { pgrep -f -- "switchyard-proxy -c $SV_CONF" || true; }

# run_daemon: runs switchyardd in the foreground until it exits (60 s at most).
run_daemon() {
	timeout 60 ip netns exec "$SV_NS" "$SY_BUILD/switchyardd" -c "$SV_CONF" -f \
		>"$T_TMP/d.log" 2>&1
	RC=$?
	cat "$T_TMP/d.log"
}

# 1. A value check-config refuses.
sed 's|^supervisor:$|supervisor:\n  metrics_listen: 0.0.0.0:9100|' "$GOOD" >"$SV_CONF"
line=$(grep -n 'metrics_listen: 0.0.0.0:9100' "$SV_CONF" | cut -d: -f1)
[ -n "$line" ] || fail "metrics_listen not written"
want="$SV_CONF:$line:19: key 'supervisor.metrics_listen': '0.0.0.0:9100' is not a loopback address"
svc check-config --no-certs >"$T_TMP/cc.out" 2>&1
rc=$?
cat "$T_TMP/cc.out"
check "check-config refuses it" test "$rc" -ne 0
check "check-config names file:line:column" grep -qF -- "$want" "$T_TMP/cc.out"
run_daemon
check "switchyardd refuses it" test "$RC" -ne 0 -a "$RC" -ne 124
check "switchyardd names file:line:column" grep -qF -- "$want" "$T_TMP/d.log"
check "no proxy was started" test -z "$(proxies)"

# A relative path: both refuse it (switchyardd daemonizes into /, so it
# would not mean what check-config saw).
sed "s|^  state_dir: .*|  state_dir: state|" "$GOOD" >"$SV_CONF"
svc check-config --no-certs >"$T_TMP/cc.out" 2>&1 && fail "check-config accepts a relative state_dir"
check "check-config names the relative path" grep -q "key 'supervisor.state_dir': 'state' must be an absolute path" "$T_TMP/cc.out"
run_daemon
check "switchyardd refuses it" test "$RC" -ne 0 -a "$RC" -ne 124
check "switchyardd names it" grep -q "key 'supervisor.state_dir': 'state' must be an absolute path" "$T_TMP/d.log"
check "no proxy was started" test -z "$(proxies)"

# 2. A valid value whose port is taken at start-up.
sed 's|^supervisor:$|supervisor:\n  metrics_listen: 127.0.0.1:9100|' "$GOOD" >"$SV_CONF"
svc check-config --no-certs >/dev/null 2>&1 || fail "check-config refuses 127.0.0.1:9100"
ip netns exec "$SV_NS" python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 9100)); s.listen(1); time.sleep(600)' &
T_PIDS+=($!)
wait_port "$SV_NS" 9100 10 || fail "the port holder did not start"
run_daemon
check "switchyardd exits when the metrics port is taken" test "$RC" -ne 0 -a "$RC" -ne 124
check "it says why" grep -q "metrics: metrics_listen 127.0.0.1:9100: Address already in use" "$T_TMP/d.log"
check "no proxy was started" test -z "$(proxies)"
no_rules() { ! sv_rules 2>/dev/null | grep -q -- 8443; }
check "no rules were installed" no_rules
say "PASS"
