#!/bin/bash
# bench/31-proxy-interleaved.sh BUILD cpu|bulk [REPS]: the servers of
# bench/30-proxy.sh started side by side in one namespace (switchyard on 8443,
# HAProxy on 8444, optionally a second switchyard binary on 8446), then one
# loadgen run against each in turn, REPS times. Alternating runs is how to
# compare them on a shared, noisy machine: load changes hit all of them.
# Take medians. Server CPU comes from /proc/PID/task/*/schedstat (ns).
#   cpu:  warm-up (one handshake per name), then per rep CONNS (2000) new
#         TLS 1.3 handshakes + 64-byte echo at -k 64: "us_per_conn".
#   bulk: BULK (100 MB) echoed through one connection: MB/s and server CPU s.
# The configurations are bench/lib-proxy.sh's.
# Env: THREADS (2), SERVERS ("sy ha"; "sb" adds $SB_PROXY on 8446),
#      TICKETS (on|off, default on: session tickets on every server or on none),
#      SY_EXTRA (one more line under proxy: in the switchyard configs, sy's
#      and sb's), SB_EXTRA (one more line under proxy: in sb's config only; it
#      must not repeat a key of SY_EXTRA, a duplicate key is a config error).
#      SB_THREADS (sb's worker count, default THREADS).
#      SB_TICKETS=off: sb issues no session tickets (the cost of one ticket,
#        same binary: SERVERS="sy sb" SB_PROXY=build/switchyard-proxy).
#      CONC (64): connections in flight per loadgen run (cpu mode).
#      PIN=1: every server on CPU 1, the client and the echo backend on CPU 0,
#        THREADS default 1. The client then never preempts a server, which
#        removes part of the noise; it does not saturate the server (the
#        client needs more CPU per connection than the server does).
#      Each cpu line also gives sleeps_per_conn: voluntary context switches
#      of the server's threads per connection, i.e. how often it ran out of
#      work and slept in epoll_wait. Each wake-up costs CPU (cold caches), so
#      compare servers at similar sleep counts.
#      Both accept strategies of one binary side by side:
#        SERVERS="sy sb" SB_PROXY=build/switchyard-proxy SB_EXTRA="accept: shared"
#      2 workers and 1 worker in the same run (the scaling figure):
#        SERVERS="sy sb" SB_PROXY=build/switchyard-proxy SB_THREADS=1
set -u
if [ $# -lt 2 ]; then
	# make bench (bench/run.sh) passes only BUILD: both comparisons.
	bash "$0" "${1:-build}" cpu && exec bash "$0" "${1:-build}" bulk
fi
BUILD=$1; MODE=$2; REPS=${3:-5}; PIN=${PIN:-0}
if [ "$PIN" = 1 ]; then T=${THREADS:-1}; ON_SRV="taskset -c 1"; ON_CLI="taskset -c 0"; else T=${THREADS:-2}; ON_SRV=; ON_CLI=; fi
cd "$(dirname "$0")/.."
PKI=${SY_BENCH_CACHE:-/var/tmp/switchyard-bench}/ec10k
[ -f "$PKI/names.txt" ] || { echo "run bench/30-proxy.sh first (it generates $PKI)"; exit 1; }
LG=$BUILD/bench/loadgen; ECHO=$BUILD/tests/tools/echo_backend; PROXY=$BUILD/switchyard-proxy
TMP=$(mktemp -d /tmp/sy-bench-pxi.XXXXXX); NS=sy-bench-pxi-$$
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.3; ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null; ip netns del "$NS" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
ip netns add "$NS" && ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
in_ns $ON_CLI "$ECHO" -l 127.0.0.1:9000 & PIDS+=($!)
. bench/lib-proxy.sh
# Each server's port (and, once started, its pid in PID): every loop reads these.
declare -A PORT=([sy]=8443 [ha]=8444 [sb]=8446)
sy_config "$TMP/sy.yaml" sy "${PORT[sy]}" "$T" "${SY_EXTRA:-}"
ha_config "$TMP/ha.cfg" "${PORT[ha]}" "$T"
ip netns exec "$NS" $ON_SRV "$PROXY" -c "$TMP/sy.yaml" -i blue 2>"$TMP/sy.log" & SY=$!; PIDS+=($SY)
SB=0
if [[ "${SERVERS:-sy ha}" == *sb* ]]; then
  # sy_config reads SY_TICKET_FILE; the prefix assignment changes it for
  # sb's config only.
  sb_tickets=$SY_TICKET_FILE; [ "${SB_TICKETS:-$TICKETS}" = off ] && sb_tickets=
  SY_TICKET_FILE=$sb_tickets sy_config "$TMP/sb.yaml" sb "${PORT[sb]}" "${SB_THREADS:-$T}" "${SY_EXTRA:-}${SB_EXTRA:+
  $SB_EXTRA}"
  ip netns exec "$NS" $ON_SRV "${SB_PROXY:?set SB_PROXY for sb}" -c "$TMP/sb.yaml" -i blue 2>"$TMP/sb.log" & SB=$!; PIDS+=($SB)
fi
HA=0; if [[ "${SERVERS:-sy ha}" == *ha* ]]; then ip netns exec "$NS" $ON_SRV haproxy -db -f "$TMP/ha.cfg" 2>"$TMP/ha.log" & HA=$!; PIDS+=($HA); fi
declare -A PID=([sy]=$SY [ha]=$HA [sb]=$SB)
for s in ${SERVERS:-sy ha}; do port=${PORT[$s]}
  for ((i=0;i<3000;i++)); do in_ns ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.1; done
done
sleep 1
echo "sy pid $SY ha pid $HA threads $T session tickets $TICKETS${SB_TICKETS:+ (sb: $SB_TICKETS)} pinned $PIN"
cpu_ticks() { cat /proc/$1/task/*/schedstat | awk '{s+=$1} END{printf "%.0f", s/1e3}'; }
sleeps() { cat /proc/$1/task/*/status | awk '/^voluntary_ctxt_switches/{s+=$2} END{print s+0}'; }
NNAMES=$(wc -l <"$PKI/names.txt")
if [ "$MODE" = cpu ]; then
  for s in ${SERVERS:-sy ha}; do port=${PORT[$s]}; in_ns $ON_CLI "$LG" -c 127.0.0.1:$port -a "$PKI/ca.pem" -n "$PKI/names.txt" -k 32 -N "$NNAMES" --seq --tls13 >/dev/null; done
fi
for ((r=1;r<=REPS;r++)); do
  for s in ${SERVERS:-sy ha}; do
    port=${PORT[$s]}; pid=${PID[$s]}
    if [ "$MODE" = bulk ]; then
      t0=$(cpu_ticks $pid)
      mb=$(in_ns $ON_CLI "$LG" -c 127.0.0.1:$port -a "$PKI/ca.pem" -n "$PKI/names.txt" --bulk ${BULK:-100000000} | awk '/bulk_MBps/{print $2}')
      t1=$(cpu_ticks $pid)
      echo "rep $r $s bulk_MBps $mb server_cpu_s $(awk -v d=$((t1-t0)) -v hz=1000000 'BEGIN{printf "%.2f", d/hz}') load $(cut -d' ' -f1 /proc/loadavg)"
    else
      t0=$(cpu_ticks $pid); v0=$(sleeps $pid)
      out=$(in_ns $ON_CLI "$LG" -c 127.0.0.1:$port -a "$PKI/ca.pem" -n "$PKI/names.txt" -k ${CONC:-64} -N ${CONNS:-2000} --tls13)
      t1=$(cpu_ticks $pid); v1=$(sleeps $pid)
      n=$(awk '/^connections/{print $2}' <<<"$out"); rate=$(awk '/^rate/{print $2}' <<<"$out"); errs=$(awk '/^err_/{s+=$2} END{print s+0}' <<<"$out")
      awk -v d=$((t1-t0)) -v hz=1000000 -v n=$n -v r=$rate -v e=$errs -v s=$s -v rep=$r -v l=$(cut -d' ' -f1 /proc/loadavg) -v v=$((v1-v0)) 'BEGIN{printf "rep %d %s us_per_conn %.0f rate %.0f errs %d sleeps_per_conn %.2f load %s\n", rep, s, d*1e6/hz/n, r, e, v/n, l}'
    fi
  done
done
