#!/bin/bash
# make demo: the whole Switchyard mission in a couple of minutes, inside a
# private network namespace (nothing on the host's firewall is touched).
#
#   scripts/demo.sh [BUILD_DIR]
#
# 1. generates 1,000 test certificates and a CA that verifies them;
# 2. starts a real backend (nginx) and switchyardd with a config written here:
#    service address 198.18.0.1:443 -> blue :8443 / green :9443;
# 3. runs verified TLS traffic to the service address;
# 4. changes one certificate and runs `switchyard reload`, which loads it
#    into the standby, health-gates it and flips, while traffic keeps going;
# 5. shows `switchyard status` and stops everything.
set -u
BUILD=$(cd "${1:-build}" && pwd) || exit 1
NCERTS=${SY_DEMO_CERTS:-1000}
ADDR=198.18.0.1
NS=sy-demo-$$
TMP=$(mktemp -d /tmp/switchyard-demo.XXXXXX)
PKI=$TMP/pki
CONF=$TMP/switchyard.yaml
export XTABLES_LOCKFILE=$TMP/xtables.lock
NGINX_PID= SV_PID= LOAD_PID= ECHO=

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }
sy() { "$BUILD/switchyard" -c "$CONF" "$@"; }
in_ns() { ip netns exec "$NS" "$@"; }

cleanup() {
	[ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
	if [ -n "$SV_PID" ] && kill -0 "$SV_PID" 2>/dev/null; then
		sy shutdown >/dev/null 2>&1
		sleep 0.5
		kill "$SV_PID" 2>/dev/null
	fi
	[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
	ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	[ -n "${SY_DEMO_KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and netfilter)"
for b in switchyardd switchyard switchyard-proxy tests/tools/gencerts tests/tools/tlsloop; do
	[ -x "$BUILD/$b" ] || die "$BUILD/$b is missing: run make first"
done

step "1. A private network namespace with the service address $ADDR"
ip netns add "$NS" || die "cannot create a network namespace"
in_ns ip link set lo up
in_ns ip link add syv0 type veth peer name syv1
in_ns ip addr add "$ADDR/24" dev syv0
in_ns ip link set syv0 up
in_ns ip link set syv1 up
echo "namespace $NS, scratch dir $TMP"

step "2. $NCERTS certificates (one per customer domain) and the CA that signed them"
"$BUILD/tests/tools/gencerts" --out "$PKI" --count "$NCERTS" || die "gencerts failed"

step "3. A real backend: nginx on 127.0.0.1:8080 inside the namespace"
mkdir -p "$TMP/nginx" "$TMP/state"
cat >"$TMP/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $TMP/nginx;
	proxy_temp_path $TMP/nginx;
	fastcgi_temp_path $TMP/nginx;
	uwsgi_temp_path $TMP/nginx;
	scgi_temp_path $TMP/nginx;
	server {
		listen 127.0.0.1:8080;
		location / { return 200 "hello from the backend, via \$http_host\n"; }
	}
}
NGINX
if command -v nginx >/dev/null; then
	ip netns exec "$NS" nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" &
	NGINX_PID=$!
else
	echo "(nginx is not installed: using the project's echo backend instead)"
	ip netns exec "$NS" "$BUILD/tests/tools/echo_backend" -l 127.0.0.1:8080 &
	NGINX_PID=$!
	ECHO=--echo
fi
for _ in $(seq 50); do in_ns ss -Hltn 'sport = :8080' | grep -q . && break; sleep 0.1; done

step "4. switchyardd with this configuration"
cat >"$CONF" <<YAML
listeners:
  - {name: https, address: $ADDR, port: 443}
instances:
  blue:  {ports: [8443]}
  green: {ports: [9443]}
certificates:
  directory: $PKI/certs
backend:
  servers: ["127.0.0.1:8080"]
supervisor:
  control_socket: $TMP/state/switchyardd.sock
  state_dir: $TMP/state
  drain_timeout: 20s
YAML
sed 's/^/    /' "$CONF"
ip netns exec "$NS" "$BUILD/switchyardd" -c "$CONF" -f >"$TMP/switchyardd.log" 2>&1 &
SV_PID=$!
echo "waiting for both instances to load $NCERTS certificates..."
for _ in $(seq 600); do
	st=$(sy status --json 2>/dev/null) &&
		echo "$st" | grep -q '"rules":"ok' &&
		[ "$(echo "$st" | grep -o '"state":"\(live\|ready\)"' | wc -l)" -eq 2 ] && break
	kill -0 "$SV_PID" 2>/dev/null || { cat "$TMP/switchyardd.log"; die "switchyardd exited"; }
	sleep 0.1
done
sy status || die "switchyardd is not answering"

read -r NAME FILE < <(sed -n 42p "$PKI/names.txt")
served() {
	echo | in_ns openssl s_client -connect "$ADDR:443" -servername "$NAME" -CAfile "$PKI/ca.pem" \
		-verify_return_error 2>/dev/null | openssl x509 -noout -serial -fingerprint -sha256 2>/dev/null |
		tr '\n' ' '
}

step "5. Verified TLS traffic to https://$NAME ($ADDR:443)"
[ -n "$ECHO" ] || in_ns curl -sS --resolve "$NAME:443:$ADDR" --cacert "$PKI/ca.pem" "https://$NAME/" ||
	die "curl failed"
echo "certificate served: $(served)"
echo "starting 16 clients that keep opening verified connections to random domains..."
ip netns exec "$NS" "$BUILD/tests/tools/tlsloop" --addr "$ADDR" --port 443 --ca "$PKI/ca.pem" \
	--names "$PKI/names.txt" --threads 16 --duration 120 $ECHO >"$TMP/load.out" 2>&1 &
LOAD_PID=$!
# Wait until the clients are really connecting, so the reload below happens
# under traffic whatever the machine's speed.
for _ in $(seq 200); do
	in_ns ss -Htn state established "dport = :443" | grep -q . && break
	sleep 0.05
done
in_ns ss -Htn state established "dport = :443" | grep -q . || die "the clients did not start"

step "6. The certificate of $NAME changes on disk"
"$BUILD/tests/tools/gencerts" --out "$PKI" --one "$NAME" --file "$PKI/certs/$FILE" >/dev/null ||
	die "gencerts --one failed"
echo "new file: $PKI/certs/$FILE"

step "7. switchyard reload: delta-load into the standby, health gate, one atomic flip"
sy reload || die "reload failed"
echo "certificate served now: $(served)"
[ -n "$ECHO" ] || in_ns curl -sS --resolve "$NAME:443:$ADDR" --cacert "$PKI/ca.pem" "https://$NAME/" ||
	die "curl failed"

step "8. The clients kept running through the flip"
sleep 2 # pacing for whoever watches; tlsloop's own count is the check
kill -TERM "$LOAD_PID"
wait "$LOAD_PID"
LOAD_RC=$?
LOAD_PID=
cat "$TMP/load.out" | tail -1
[ "$LOAD_RC" -eq 0 ] || die "some connections failed during the demo"

step "9. switchyard status"
sy status

step "10. Rollback is one more flip"
sy rollback || die "rollback failed"
echo "certificate served after rollback: $(served)"

step "11. Stopping everything"
sy shutdown || die "shutdown failed"
wait "$SV_PID" 2>/dev/null
SV_PID=
echo
echo "demo: done. Every connection succeeded across the reload and the rollback."
