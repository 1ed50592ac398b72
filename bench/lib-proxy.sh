# bench/lib-proxy.sh: the switchyard-proxy and HAProxy configurations that
# bench/30-proxy.sh and bench/31-proxy-interleaved.sh run side by side, kept
# in one place so that both scripts compare the same two setups. Sourced;
# the caller sets PKI (the certificate set) and TMP (a private directory).
#
# Both servers: TLS 1.2 minimum, one echo backend on 127.0.0.1:9000, 300 s
# client and server timeouts, 9,900 connections at most.
#
# TICKETS=on|off (default on) applies to both servers alike, because a
# TLS 1.3 session ticket costs the server a session encoding, an encryption
# and one more record per handshake:
#   on:  switchyard-proxy reads the key file that the supervisor would write
#        and issues one ticket per handshake; HAProxy keeps its defaults
#        (two stateless tickets per TLS 1.3 handshake).
#   off: switchyard-proxy has ticket_key_file "" and sends no ticket.
#        HAProxy 2.6 has no setting for the number of TLS 1.3 tickets: with
#        no-tls-tickets it still sends two, stateful (a session ID each, no
#        encryption), and tune.ssl.cachesize 0 spares it the cache inserts.
#        This is as close to "no tickets" as HAProxy 2.6 goes (checked with
#        openssl s_client -msg), so "off" flatters switchyard-proxy a little.
TICKETS=${TICKETS:-on}
case $TICKETS in on | off) ;; *)
	echo "TICKETS must be on or off, not '$TICKETS'" >&2
	exit 2
	;;
esac
if [ "$TICKETS" = on ]; then
	# Three keys in the format of docs/control.md.
	for _ in 1 2 3; do head -c 80 /dev/urandom | base64 -w0; echo; done >"$TMP/ticket.keys"
	SY_TICKET_FILE=$TMP/ticket.keys
	HA_TICKETS=
	HA_GLOBAL=
else
	SY_TICKET_FILE=
	HA_TICKETS=" no-tls-tickets"
	HA_GLOBAL="tune.ssl.cachesize 0"
fi

# sy_config FILE NAME PORT THREADS [EXTRA]: a switchyard-proxy configuration
# whose blue instance listens on 127.0.0.1:PORT (green, never started, gets
# PORT + 10000); its sockets and pid files are named after NAME. EXTRA is one
# more line under proxy:.
sy_config() {
	cat >"$1" <<EOC
listeners:
  - name: https
    port: 443
instances:
  blue:
    bind: ["127.0.0.1"]
    ports: [$3]
    control_socket: $TMP/$2-blue.sock
    pid_file: $TMP/$2-blue.pid
  green:
    bind: ["127.0.0.1"]
    ports: [$(($3 + 10000))]
    control_socket: $TMP/$2-green.sock
    pid_file: $TMP/$2-green.pid
proxy:
  threads: $4
  maxconn: 9900
  backlog: 4096
  timeouts:
    client: 300s
    server: 300s
  log_level: warning
  ${5:-}
certificates:
  directory: $PKI/certs
tls:
  ticket_key_file: "$SY_TICKET_FILE"
backend:
  servers: ["127.0.0.1:9000"]
  health:
    check_interval: 0
supervisor:
  state_dir: $TMP
EOC
}

# ha_config FILE PORT THREADS: the same service in HAProxy 2.6.
ha_config() {
	cat >"$1" <<EOC
global
	nbthread $3
	maxconn 9900
	ssl-default-bind-options ssl-min-ver TLSv1.2
	$HA_GLOBAL
defaults
	mode tcp
	timeout connect 5s
	timeout client 300s
	timeout server 300s
frontend fe
	bind 127.0.0.1:$2 ssl crt $PKI/certs$HA_TICKETS
	default_backend be
backend be
	server s1 127.0.0.1:9000
EOC
}
