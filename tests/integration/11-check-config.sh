#!/bin/bash
# `switchyard check-config`: the shipped example is valid; broken files exit
# non-zero and name FILE:LINE:COLUMN and the key at fault; the certificate
# directory is validated too. Needs no root and no namespaces.
. "$(dirname "$0")/lib.sh"

SY=$SY_BUILD/switchyard
[ -x "$SY" ] || fail "$SY not built"
EXAMPLE=$SY_ROOT/etc/switchyard.yaml

# run_cc FILE [ARGS...]: runs check-config, leaving the exit status in RC and
# the output in $T_TMP/out and $T_TMP/err.
run_cc() {
	local f=$1; shift
	"$SY" check-config -c "$f" "$@" >"$T_TMP/out" 2>"$T_TMP/err"
	RC=$?
}
# expect_err FILE LINE: check-config must fail and print LINE on stderr.
expect_err() {
	run_cc "$1" --no-certs
	[ "$RC" -ne 0 ] || fail "$1: check-config exited 0"
	if ! grep -qxF -- "$2" "$T_TMP/err"; then
		cat "$T_TMP/err" >&2
		fail "$1: missing error line: $2"
	fi
	say "ok: $(basename "$1") -> $2"
}

# 1. The documented example is valid (its certificate directory is a
#    production path, so only the configuration itself is checked here).
run_cc "$EXAMPLE" --no-certs
[ "$RC" -eq 0 ] || { cat "$T_TMP/err" >&2; fail "example config rejected"; }
grep -q "configuration ok" "$T_TMP/out" || fail "no 'configuration ok' line"
say "ok: etc/switchyard.yaml is valid"
# -c also works before the command.
"$SY" -c "$EXAMPLE" check-config --no-certs >/dev/null 2>&1 || fail "-c before the command"

# 2. The same file, pointed at a certificate directory we control.
mkdir -p "$T_TMP/certs"
sed "s|^  directory: /etc/switchyard/certs|  directory: $T_TMP/certs|" "$EXAMPLE" >"$T_TMP/ok.yaml"
grep -q "directory: $T_TMP/certs" "$T_TMP/ok.yaml" || fail "could not rewrite the cert directory"
if [ -x "$SY_BUILD/tests/tools/gencerts" ]; then
	gen_certs "$T_TMP/gen" 3
	cp "$T_TMP/gen/certs/"* "$T_TMP/certs/"
fi
run_cc "$T_TMP/ok.yaml"
[ "$RC" -eq 0 ] || { cat "$T_TMP/err" >&2; fail "valid cert directory rejected"; }
say "ok: certificate directory with $(ls "$T_TMP/certs" | wc -l) files accepted"

# 3. A bad certificate file makes check-config fail and names the file.
head -c 300 /dev/urandom >"$T_TMP/certs/garbage.pem"
run_cc "$T_TMP/ok.yaml"
[ "$RC" -ne 0 ] || fail "garbage.pem was not reported"
grep -q "garbage.pem" "$T_TMP/err" || { cat "$T_TMP/err" >&2; fail "garbage.pem not named"; }
say "ok: a bad certificate file fails the check"
rm -f "$T_TMP/certs/garbage.pem"

# A default certificate that is not in the directory fails the check.
sed 's|^  default: ""|  default: "absent.pem"|' "$T_TMP/ok.yaml" >"$T_TMP/nodefault.yaml"
run_cc "$T_TMP/nodefault.yaml"
[ "$RC" -ne 0 ] || fail "a missing default certificate was not reported"
grep -q "key 'certificates.default': 'absent.pem' was not loaded" "$T_TMP/err" ||
	{ cat "$T_TMP/err" >&2; fail "missing default not named"; }
say "ok: a missing default certificate fails the check"

# 4. An unreadable certificate directory fails the check.
sed "s|^  directory: /etc/switchyard/certs|  directory: $T_TMP/nonexistent|" "$EXAMPLE" \
	>"$T_TMP/nodir.yaml"
run_cc "$T_TMP/nodir.yaml"
[ "$RC" -ne 0 ] || fail "a missing certificate directory was not reported"
grep -q "certificates.directory" "$T_TMP/err" || { cat "$T_TMP/err" >&2; fail "no key named"; }
say "ok: a missing certificate directory fails the check"

# 5. Broken configurations: each error names FILE:LINE:COLUMN and the key.
BASE='listeners:
  - port: 443
instances:
  blue: {ports: [8443]}
  green: {ports: [9443]}
backend:
  servers: ["127.0.0.1:8080"]'

printf '%s\nproxy:\n  thread: 4\n' "$BASE" >"$T_TMP/unknown.yaml"
expect_err "$T_TMP/unknown.yaml" "$T_TMP/unknown.yaml:9:3: key 'proxy.thread': unknown key"

printf '%s\nproxy:\n  threads: many\n' "$BASE" >"$T_TMP/type.yaml"
expect_err "$T_TMP/type.yaml" \
	"$T_TMP/type.yaml:9:12: key 'proxy.threads': expected an integer, got 'many'"

printf 'listeners:\n  - port: 443\n bad: [\n' >"$T_TMP/syntax.yaml"
run_cc "$T_TMP/syntax.yaml" --no-certs
[ "$RC" -ne 0 ] && grep -q "^$T_TMP/syntax.yaml:3:2: YAML syntax error: " "$T_TMP/err" ||
	{ cat "$T_TMP/err" >&2; fail "syntax error not reported at 3:2"; }
say "ok: syntax.yaml -> $(cat "$T_TMP/err")"

sed 's/green: {ports: \[9443\]}/green: {ports: [8443]}/' <<<"$BASE" >"$T_TMP/collide.yaml"
expect_err "$T_TMP/collide.yaml" \
	"$T_TMP/collide.yaml:5:19: key 'instances.green.ports[0]': port 8443 collides with 'instances.blue.ports[0]'"

printf '%s\nsupervisor: {drain_timeout: 5x, drain_timeout: 1s}\ncertsync: {mass_delete_percent: 150}\n' \
	"$BASE" >"$T_TMP/many.yaml"
run_cc "$T_TMP/many.yaml" --no-certs
[ "$RC" -ne 0 ] || fail "many.yaml accepted"
[ "$(grep -c "^$T_TMP/many.yaml:" "$T_TMP/err")" -eq 3 ] ||
	{ cat "$T_TMP/err" >&2; fail "many.yaml: expected 3 errors in one run"; }
say "ok: many.yaml reports all 3 errors"

: >"$T_TMP/empty.yaml"
expect_err "$T_TMP/empty.yaml" "$T_TMP/empty.yaml:1:1: the configuration is empty"
expect_err "$T_TMP/absent.yaml" "$T_TMP/absent.yaml: cannot open: No such file or directory"

# The metrics beyond loopback only with supervisor.metrics_public: check-config
# refuses what the daemon would refuse (both use cfg_load).
printf '%s\nsupervisor:\n  metrics_listen: "0.0.0.0:9100"\n' "$BASE" >"$T_TMP/mpub.yaml"
expect_err "$T_TMP/mpub.yaml" \
	"$T_TMP/mpub.yaml:9:19: key 'supervisor.metrics_listen': '0.0.0.0:9100' is not a loopback address; serving metrics beyond this host needs supervisor.metrics_public: true"
# switchyardd refuses the same file when it loads it, before it starts
# anything (it once exited only after starting both instances).
mkdir -p "$T_TMP/dstate"
printf '%s\nsupervisor:\n  state_dir: %s\n  control_socket: %s\n  metrics_listen: "0.0.0.0:9100"\n' \
	"$BASE" "$T_TMP/dstate" "$T_TMP/dstate/sv.sock" >"$T_TMP/mpubd.yaml"
timeout 20 "$SY_BUILD/switchyardd" -c "$T_TMP/mpubd.yaml" -f >"$T_TMP/d.out" 2>&1
drc=$?
[ "$drc" -ne 0 ] && [ "$drc" -ne 124 ] || { cat "$T_TMP/d.out" >&2; fail "switchyardd accepted metrics_listen 0.0.0.0 (exit $drc)"; }
grep -qF "is not a loopback address" "$T_TMP/d.out" || { cat "$T_TMP/d.out" >&2; fail "switchyardd did not say why"; }
[ -z "$(ls "$T_TMP/dstate")" ] || fail "switchyardd left state behind: $(ls "$T_TMP/dstate")"
for ok in '"127.0.0.1:9100"' '"[::1]:9100"' '"0.0.0.0:9100"\n  metrics_public: true'; do
	printf '%s\nsupervisor:\n  metrics_listen: %b\n' "$BASE" "$ok" >"$T_TMP/mok.yaml"
	run_cc "$T_TMP/mok.yaml" --no-certs
	[ "$RC" -eq 0 ] || { cat "$T_TMP/err" >&2; fail "metrics_listen $ok refused"; }
done
say "ok: metrics_listen beyond loopback needs metrics_public"

# 6. Usage errors exit 2.
"$SY" check-config --bogus >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unknown option must exit 2"
say "ok: usage error exits 2"
exit 0
