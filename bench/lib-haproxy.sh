# bench/lib-haproxy.sh: HAProxy's side of the certificate benchmarks, kept in
# one place for bench/10-certload.sh and bench/50-certsync.sh. Sourced; the
# caller sets CACHE (a scratch directory) and LOAD (build/bench/certload).
#
# haproxy_check DIR: `haproxy -c` with one `bind ... ssl crt DIR`, which
# loads and checks every certificate of DIR as a start or a reload does, and
# prints its wall time and peak RSS. Nothing listens: -c only checks.
haproxy_check() {
	local dir=$1 cfg
	cfg=$CACHE/haproxy-$(basename "$(dirname "$dir")").cfg
	cat >"$cfg" <<EOF2
global
	maxconn 100
defaults
	mode http
	timeout connect 1s
	timeout client 1s
	timeout server 1s
frontend fe
	bind 127.0.0.1:8443 ssl crt $dir
	default_backend be
backend be
	server s1 127.0.0.1:8080
EOF2
	echo "  haproxy -c -f $cfg ($(haproxy -v | head -n 1 | cut -d' ' -f1-3))"
	"$LOAD" --exec haproxy -q -c -f "$cfg" | sed 's/^/  /'
}
