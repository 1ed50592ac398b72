# Helpers for the proxy's integration tests (tests/integration/3*-*.sh).
# Source after lib.sh. Everything runs inside one private namespace, $NS.

PX_BIN=$SY_BUILD/switchyard-proxy
PX_TOOLS=$SY_BUILD/tests/tools
PYTHON=/usr/bin/python3

# px_ns: creates the test namespace.
px_ns() {
	NS=$(netns_new px)
}

# in_ns CMD...: runs CMD inside the test namespace.
in_ns() {
	ip netns exec "$NS" "$@"
}

# px_certs COUNT [WILDCARDS]: generates test certificates into $T_TMP/pki.
px_certs() {
	"$PX_TOOLS/gencerts" --out "$T_TMP/pki" --count "$1" --wildcards "${2:-0}" >/dev/null ||
		fail "gencerts"
	CA=$T_TMP/pki/ca.pem
	CERTDIR=$T_TMP/pki/certs
}

# px_tickets FILE: writes a ticket key file of 3 random keys.
px_tickets() {
	local i
	: >"$1"
	for i in 1 2 3; do
		openssl rand -base64 80 | tr -d '\n' >>"$1"
		echo >>"$1"
	done
}

# px_config FILE [extra YAML appended at top level]: the base config used by
# every proxy test; instance blue on 8443, green on 8444, backend on 9000.
# Variables: PX_BACKEND_EXTRA, PX_PROXY_EXTRA, PX_TLS_EXTRA, PX_CERTS_EXTRA,
# PX_SERVERS (YAML list items), PX_LISTENER_EXTRA (more listeners; give
# them ports with PX_BLUE_PORTS / PX_GREEN_PORTS, e.g. "8443, 8445").
px_config() {
	cat >"$1" <<EOC
listeners:
  - name: https
    port: 443
${PX_LISTENER_EXTRA:-}
instances:
  blue:
    bind: ["127.0.0.1", "::1"]
    ports: [${PX_BLUE_PORTS:-8443}]
    control_socket: $T_TMP/blue.sock
    pid_file: $T_TMP/blue.pid
  green:
    bind: ["127.0.0.1"]
    ports: [${PX_GREEN_PORTS:-8444}]
    control_socket: $T_TMP/green.sock
    pid_file: $T_TMP/green.pid
proxy:
  threads: 2
  access_log: true
  timeouts:
    handshake: ${PX_HS_TIMEOUT:-10s}
${PX_PROXY_EXTRA:-}
certificates:
  directory: $CERTDIR
${PX_CERTS_EXTRA:-}
tls:
  ticket_key_file: "${PX_TICKETS:-}"
  alpn: ["h2", "http/1.1"]
${PX_TLS_EXTRA:-}
backend:
  servers:
${PX_SERVERS:-    - address: 127.0.0.1
      port: 9000}
${PX_BACKEND_EXTRA:-}
supervisor:
  state_dir: $T_TMP
EOC
}

# px_start COLOUR CONFIG: starts an instance and waits until it is ready.
# With PX_LOG set, the proxy's stderr (its log) goes to that file.
px_start() {
	local colour=$1 cfg=$2 i
	if [ -n "${PX_LOG:-}" ]; then
		bg ip netns exec "$NS" "$PX_BIN" -c "$cfg" -i "$colour" 2>>"$PX_LOG"
	else
		bg ip netns exec "$NS" "$PX_BIN" -c "$cfg" -i "$colour"
	fi
	PX_PID=$LAST_PID
	# 600 polls (a minute or more): the bound only guards against a hang,
	# and 2,000 files under ASan on a loaded machine can take half of it.
	for ((i = 0; i < 600; i++)); do
		if [ "$(px_get "$T_TMP/$colour.sock" status state 2>/dev/null)" = ready ]; then
			return 0
		fi
		kill -0 "$PX_PID" 2>/dev/null || fail "proxy $colour exited during start-up"
		sleep 0.1
	done
	fail "proxy $colour not ready"
}

# px_ctl SOCK LINE: prints the one-line reply.
px_ctl() {
	$PYTHON - "$1" "$2" <<'EOP'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode("utf-8", "surrogateescape") + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(buf.decode("utf-8", "replace").strip())
EOP
}

# px_get SOCK COMMAND PATH: one field of a reply ("a.b" for nested keys).
px_get() {
	px_ctl "$1" "$2" | $PYTHON -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(str(v).lower() if isinstance(v, bool) else v)' "$3"
}

# px_backend [ARGS]: starts the echo backend on 127.0.0.1:9000 in $NS.
px_backend() {
	bg ip netns exec "$NS" "$PX_TOOLS/echo_backend" -l 127.0.0.1:9000 "$@"
	wait_port "$NS" 9000 || fail "echo backend did not start"
}

# px_backend_on PORT [ARGS]: another echo backend on 127.0.0.1:PORT in $NS;
# sets BE_PID. With "-H BYTES -o FILE" it holds every connection after
# BYTES echoed bytes until px_release (see px_wait_held).
px_backend_on() {
	local port=$1; shift
	bg ip netns exec "$NS" "$PX_TOOLS/echo_backend" -l "127.0.0.1:$port" "$@"
	BE_PID=$LAST_PID
	wait_port "$NS" "$port" || fail "echo backend on $port did not start"
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds; fails
# (returns 1) after SECONDS. Tests wait for a state, never for a fixed time.
wait_for() {
	local secs=$1 i; shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# px_wait_held FILE COUNT: waits (up to 30 s) until a backend started with
# -H has written COUNT "HELD" lines to FILE, i.e. COUNT transfers are
# stopped mid-way and stay in flight until px_release.
px_wait_held() {
	wait_for 30 px_held_at_least "$1" "$2"
}
px_held_at_least() {
	[ "$(grep -c '^HELD$' "$1" 2>/dev/null)" -ge "$2" ]
}

# px_release PID: lets the held connections of echo backend PID go on.
px_release() {
	kill -USR1 "$1"
}

# px_hold PORT SNI: a TLS client that holds one proxied connection open in
# the background until it is killed; sets HOLD_PID.
px_hold() {
	[ -p "$T_TMP/hold.fifo" ] || mkfifo "$T_TMP/hold.fifo"
	# Not through in_ns: $! must be openssl itself (ip netns exec execs
	# it), so that killing HOLD_PID really closes the connection. Its stdin
	# is the FIFO opened read-write: that never blocks, and since openssl
	# itself is a writer, it never sees end-of-file.
	ip netns exec "$NS" openssl s_client -connect "127.0.0.1:$1" -servername "$2" \
		-CAfile "$CA" -quiet -no_ign_eof <>"$T_TMP/hold.fifo" >/dev/null 2>&1 &
	HOLD_PID=$!
}

# px_s_client FILE REGEX ARGS...: runs `openssl s_client ARGS` in $NS and
# prints its output. Its stdin stays open until FILE (- for its own output)
# matches REGEX, at most 10 s: s_client quits at end-of-file on stdin, and a
# fixed delay instead would cut a slow handshake, or a TLS 1.3 session
# ticket that arrives after the handshake, short on a busy machine.
px_s_client() {
	local file=$1 re=$2 out=$T_TMP/s_client.out
	shift 2
	[ "$file" = - ] && file=$out
	: >"$out"
	wait_for 10 grep -Eq "$re" "$file" | in_ns openssl s_client "$@" >"$out" 2>&1
	cat "$out"
}
