# Helpers shared by the supervisor tests (4x-*.sh) and the demo test.
# Sourced after lib.sh; not a test itself (not executable, no NN- prefix).
#
# sv_setup NCERTS [KEY=VALUE...]: a namespace with a service address
#   (SV_ADDR:443 on a veth inside it), NCERTS test certificates, an nginx
#   backend on 127.0.0.1:8080 and a switchyard config in $SV_CONF.
#   With SV_MIX=1 the certificates are a mixed set (gencerts --mix NCERTS).
# sv_start: starts switchyardd -f in the namespace and waits until both
#   instances serve and the rules are in.
# svc ARGS...: runs the switchyard command in the namespace.
# sv_status JQ: one field of `switchyard status --json`.

SV_ADDR=198.18.0.1

sv_ns() { ip netns exec "$SV_NS" "$@"; }
# The CLI talks over a path-bound unix socket, which network namespaces do
# not partition, so it needs no `ip netns exec`.
svc() { "$SY_BUILD/switchyard" -c "$SV_CONF" "$@"; }
sv_status() { svc status --json | jq -r "$1"; }
# sv_status_is [JQ-OPTIONS] FILTER: switchyardd answered `status --json`
# and FILTER is true on the reply. The reply is checked for being there
# first: jq 1.6 (Debian 11, Ubuntu 22.04) exits 0 under -e when its input
# is empty, as it is while switchyardd is not listening yet, so a bare
# `svc status --json | jq -e ...` passes before the state it waits for.
sv_status_is() {
	local s
	s=$(svc status --json 2>/dev/null) && [ -n "$s" ] || return 1
	jq -e "$@" <<<"$s" >/dev/null
}

# sv_flipped_from COLOUR: switchyardd answered `status --json` and the live
# colour is the other one. (A bare `[ "$(sv_status .live)" != "$old" ]`
# passes when status prints nothing.)
sv_flipped_from() {
	case $1 in
	blue) sv_status_is '.live == "green"' ;;
	green) sv_status_is '.live == "blue"' ;;
	*) return 1 ;;
	esac
}

sv_require() {
	require_root
	local b
	for b in switchyardd switchyard switchyard-proxy tests/tools/gencerts tests/tools/tlsloop; do
		[ -x "$SY_BUILD/$b" ] || skip "$SY_BUILD/$b is not built"
	done
	command -v jq >/dev/null || skip "jq is not installed"
	command -v nginx >/dev/null || skip "nginx (nginx-light) is not installed"
	nf_backend_require
	modprobe ip_tables 2>/dev/null; modprobe iptable_nat 2>/dev/null
}

sv_setup() {
	local n=$1; shift
	sv_require
	SV_NS=$(netns_new sv)
	# netns_new runs in a command substitution, so its T_NETNS+= is lost;
	# register the namespace here so t_cleanup kills the instances in it
	# (they survive the supervisor by design) and deletes it.
	T_NETNS+=("$SV_NS")
	export XTABLES_LOCKFILE=$T_TMP/xtables.lock
	# The service address lives on a veth pair inside the namespace (the
	# dummy driver is not always built); clients in the namespace reach it
	# through the OUTPUT chain.
	sv_ns ip link add syv0 type veth peer name syv1 || fail "veth pair"
	sv_ns ip addr add "$SV_ADDR/24" dev syv0
	sv_ns ip link set syv0 up
	sv_ns ip link set syv1 up
	SV_PKI=$T_TMP/pki
	if [ -n "${SV_PKI_FROM:-}" ]; then
		# Benchmarks reuse a cached set; a copy, because they change files.
		cp -a "$SV_PKI_FROM" "$SV_PKI" || fail "copy $SV_PKI_FROM"
	elif [ -n "${SV_MIX:-}" ]; then
		"$SY_BUILD/tests/tools/gencerts" --out "$SV_PKI" --mix "$n" >/dev/null ||
			fail "gencerts --mix $n"
	else
		gen_certs "$SV_PKI" "$n"
	fi
	mkdir -p "$T_TMP/nginx" "$T_TMP/state"
	cat >"$T_TMP/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $T_TMP/nginx/nginx.pid;
error_log $T_TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_timeout 300s;
	keepalive_requests 1000000;
	client_body_temp_path $T_TMP/nginx;
	proxy_temp_path $T_TMP/nginx;
	fastcgi_temp_path $T_TMP/nginx;
	uwsgi_temp_path $T_TMP/nginx;
	scgi_temp_path $T_TMP/nginx;
	server {
		listen 127.0.0.1:8080 backlog=4096;
		location / { return 200 "hello from the backend\n"; }
	}
}
NGINX
	bg ip netns exec "$SV_NS" nginx -c "$T_TMP/nginx/nginx.conf" -p "$T_TMP/nginx"
	wait_port "$SV_NS" 8080 10 || fail "nginx did not start"
	SV_CONF=$T_TMP/switchyard.yaml
	cat >"$SV_CONF" <<YAML
listeners:
  - {name: https, address: $SV_ADDR, port: 443}
instances:
  blue:  {ports: [8443]}
  green: {ports: [9443]}
proxy:
  threads: 2
certificates:
  directory: $SV_PKI/certs
backend:
  servers: ["127.0.0.1:8080"]
supervisor:
  control_socket: $T_TMP/state/switchyardd.sock
  state_dir: $T_TMP/state
  drain_timeout: ${SV_DRAIN_TIMEOUT:-30s}
  health_gate: {sample: ${SV_GATE_SAMPLE:-20}}
${SV_EXTRA_SUPERVISOR:+  $SV_EXTRA_SUPERVISOR}
netfilter:
  backend: $SY_NF_BACKEND
YAML
}

# sv_rules: the redirect rules as the backend's own tool shows them.
sv_rules() {
	case $SY_NF_BACKEND in
	iptables) sv_ns iptables-legacy -t nat -S SWITCHYARD ;;
	nftables) sv_ns nft -a list table inet switchyard ;;
	esac
}
# sv_redirects_to PORT: the listener's redirect goes to PORT (nftables: its
# element in map exact4).
sv_redirects_to() {
	case $SY_NF_BACKEND in
	iptables) sv_rules | grep -qE -- "--to-ports $1( |\$)" ;;
	nftables) sv_ns nft list map inet switchyard exact4 | grep -qF "$SV_ADDR . 443 : $1 }" ;;
	esac
}
# sv_rules_flush: deletes our redirect rules by hand (drift).
sv_rules_flush() {
	case $SY_NF_BACKEND in
	iptables) sv_ns iptables-legacy -t nat -F SWITCHYARD ;;
	nftables) sv_ns nft flush chain inet switchyard services ;;
	esac
}
# sv_rules_point PORT: points the listener's redirect at PORT by hand
# (drift; nftables: its element, deleted and added back in one nft run).
sv_rules_point() {
	case $SY_NF_BACKEND in
	iptables)
		sv_ns iptables-legacy -t nat -R SWITCHYARD 1 -p tcp -d "$SV_ADDR" --dport 443 \
			-j REDIRECT --to-ports "$1" ;;
	nftables)
		printf 'delete element inet switchyard exact4 { %s . 443 }\nadd element inet switchyard exact4 { %s . 443 : %s }\n' \
			"$SV_ADDR" "$SV_ADDR" "$1" | sv_ns nft -f - ;;
	esac
}

sv_start() {
	ip netns exec "$SV_NS" "$SY_BUILD/switchyardd" -c "$SV_CONF" -f >>"$T_TMP/switchyardd.log" 2>&1 &
	SV_PID=$!
	T_PIDS+=("$SV_PID")
	sv_wait_ready 60 || { tail -30 "$T_TMP/switchyardd.log"; fail "switchyardd did not become ready"; }
}

# Both instances serve and the rules are in.
sv_ready() {
	sv_status_is '(.rules | startswith("ok")) and ([.instances[] | select(.state == "live" or .state == "ready" or .state == "standby")] | length == 2)'
}
sv_wait_ready() { wait_until "${1:-60}" sv_ready; }

# tlsloop against the service address, in the namespace.
sv_load() {
	ip netns exec "$SV_NS" "$SY_BUILD/tests/tools/tlsloop" --addr "$SV_ADDR" --port 443 \
		--ca "$SV_PKI/ca.pem" --names "$SV_PKI/names.txt" "$@"
}

# sv_load_bg OUT ERR ARGS...: the same in the background; sets LOAD to the
# pid of tlsloop itself (not of a subshell), so `kill -TERM $LOAD` makes it
# stop and print its summary.
sv_load_bg() {
	local out=$1 err=$2
	shift 2
	ip netns exec "$SV_NS" "$SY_BUILD/tests/tools/tlsloop" --addr "$SV_ADDR" --port 443 \
		--ca "$SV_PKI/ca.pem" --names "$SV_PKI/names.txt" "$@" >"$out" 2>"$err" &
	LOAD=$!
	T_PIDS+=("$LOAD")
}

# sv_accepted COLOUR: connections that instance has accepted so far, as
# the supervisor's metrics report them (the C client starts fast on a
# loaded machine, where a Python one can take seconds), or, while the
# supervisor is down, as the instance's own control socket does.
sv_accepted() {
	svc metrics 2>/dev/null | awk -v m="switchyard_proxy_accepted_total{colour=\"$1\"}" \
		'$1 == m {print $2; found = 1} END {exit !found}' && return 0
	/usr/bin/python3 - "$T_TMP/state/$1.sock" <<'EOP'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"stats\n")
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(json.loads(buf)["accepted"])
EOP
}

# sv_wait_traffic COLOUR N [SECONDS]: waits (30 s unless told, by the clock:
# a poll can take a second on a loaded machine) until COLOUR has accepted N
# more connections than when called: a load started in the background is
# running (or still running), however long it took to start.
sv_wait_traffic() {
	local base n end=$((SECONDS + ${3:-30}))
	base=$(sv_accepted "$1") || return 1
	while [ "$SECONDS" -le "$end" ]; do
		n=$(sv_accepted "$1") && [ "$n" -ge $((base + $2)) ] && return 0
		sleep 0.1
	done
	return 1
}

# sv_served NAME: SHA-256 of the certificate served for NAME on the service
# address; nothing (and status 1) when no certificate came back. (Hashing
# the empty output of a failed handshake gave a hash too, so "is served"
# and "serves another one" checks passed without a server.)
sv_served() {
	local der=$T_TMP/served.$BASHPID.der
	echo | sv_ns openssl s_client -connect "$SV_ADDR:443" -servername "$1" 2>/dev/null |
		openssl x509 -outform DER 2>/dev/null >"$der"
	[ -s "$der" ] || { rm -f "$der"; return 1; }
	sha256sum <"$der" | cut -d' ' -f1
	rm -f "$der"
}

sv_dump_logs() {
	echo "---- switchyardd log"; tail -n 60 "$T_TMP/switchyardd.log" 2>/dev/null
}
