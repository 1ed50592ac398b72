#!/bin/bash
# The supervisor's Prometheus metrics as a scraper sees them: the HTTP text
# passes `promtool check metrics` (HELP and TYPE on every family, valid
# names, histograms); /metrics only, 404 elsewhere, 405 for another method;
# build info; per-listener counters and the handshake-latency histogram after
# real handshakes; cert-cache hits and misses; certificates by time left
# (one expired, one within 7 days, one within 30); certsync's last run;
# backend servers up, then down once the backend stops; with JOURNAL_STREAM
# naming its stderr, the daemon and the instances write <N> priorities.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"

command -v promtool >/dev/null || skip "promtool (Debian package prometheus) is not installed"
SV_EXTRA_SUPERVISOR='metrics_listen: "127.0.0.1:9110"' sv_setup 20

# Certificates that expire soon: self-signed is enough, the scan reads only
# notAfter. gencerts makes the expired one (openssl req cannot backdate).
for d in 5 20; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$d" \
		-subj "/CN=in$d.example.test" -addext "subjectAltName=DNS:in$d.example.test" \
		-keyout "$T_TMP/in$d.key" -out "$T_TMP/in$d.crt" 2>/dev/null || fail "openssl req -days $d"
	cat "$T_TMP/in$d.crt" "$T_TMP/in$d.key" >"$SV_PKI/certs/in$d.pem"
done
"$SY_BUILD/tests/tools/gencerts" --out "$T_TMP/old" --count 0 --expired 1 >/dev/null ||
	fail "gencerts --expired"
cp "$T_TMP/old/certs/expired1.pem" "$SV_PKI/certs/"
# certsync's last run: a real run from the test's own certificates (without
# a reload), whose record the metrics must report.
printf 'certsync:\n  source: {directory: %s}\n' "$SV_PKI/certs" >>"$SV_CONF"
# The daemon's stderr stands in for the journal: JOURNAL_STREAM names the
# log file's device and inode, as systemd names its socket's, so every line
# must carry a <N> priority instead of a time.
touch "$T_TMP/switchyardd.log"
export JOURNAL_STREAM=$(stat -c '%d:%i' "$T_TMP/switchyardd.log")
sv_start
unset JOURNAL_STREAM
svc certsync --no-reload >"$T_TMP/certsync.txt" 2>&1
cs_rc=$?
cat "$T_TMP/certsync.txt"
[ -f "$T_TMP/state/certsync/last-run" ] || fail "certsync left no last-run record"

scrape() { sv_ns curl -sf "http://127.0.0.1:9110/metrics" >"$T_TMP/m.txt"; }
metric() { # NAME{LABELS}: the value, or empty
	awk -v m="$1" '$1 == m { print $2 }' "$T_TMP/m.txt"
}
live=$(sv_status .live)

# Real handshakes on the live instance: 2 s of load.
sv_load --threads 2 --duration 2 >"$T_TMP/load.txt" 2>&1 || fail "tlsloop: $(tail -3 "$T_TMP/load.txt")"
wait_until 20 sh -c "$SY_BUILD/switchyard -c $SV_CONF metrics | grep -q '^switchyard_certificates_expiring'" ||
	fail "the expiry scan did not finish"
scrape || fail "scrape"

promtool check metrics <"$T_TMP/m.txt" >"$T_TMP/promtool.txt" 2>&1
rc=$?
cat "$T_TMP/promtool.txt" >&2
[ "$rc" -eq 0 ] || fail "promtool check metrics exited $rc"
[ ! -s "$T_TMP/promtool.txt" ] || fail "promtool check metrics has complaints"
fams=$(grep -c '^# TYPE ' "$T_TMP/m.txt")
[ "$(grep -c '^# HELP ' "$T_TMP/m.txt")" -eq "$fams" ] || fail "a family lacks HELP"
say "ok: promtool check metrics passes ($fams families, each with HELP and TYPE)"

code() { sv_ns curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code http://127.0.0.1:9110/)" = 404 ] || fail "/ is not 404"
[ "$(code http://127.0.0.1:9110/metricsx)" = 404 ] || fail "/metricsx is not 404"
[ "$(code http://127.0.0.1:9110/metrics?x=1)" = 200 ] || fail "/metrics?x=1 is not 200"
[ "$(code -X POST http://127.0.0.1:9110/metrics)" = 405 ] || fail "POST is not 405"
[ "$(code -I http://127.0.0.1:9110/metrics)" = 200 ] || fail "HEAD is not 200"
say "ok: 200 for /metrics only, 404 elsewhere, 405 for POST"

want=$(make -s -C "$SY_ROOT" --no-print-directory -f Makefile -f - print-version <<<'print-version: ; @echo $(VERSION)')
grep -q "^switchyard_build_info{version=\"$want\",openssl=\"[0-9.]*\"} 1$" "$T_TMP/m.txt" ||
	fail "build info: $(grep build_info "$T_TMP/m.txt")"
say "ok: switchyard_build_info version=$want"

acc=$(metric "switchyard_proxy_listener_accepted_total{colour=\"$live\",listener=\"https\"}")
ok=$(metric "switchyard_proxy_listener_handshakes_ok_total{colour=\"$live\",listener=\"https\"}")
cnt=$(metric "switchyard_proxy_handshake_duration_seconds_count{colour=\"$live\"}")
inf=$(metric "switchyard_proxy_handshake_duration_seconds_bucket{colour=\"$live\",le=\"+Inf\"}")
[ -n "$acc" ] && [ "$acc" -gt 0 ] || fail "no per-listener accepted count ($acc)"
[ -n "$ok" ] && [ "$ok" -gt 0 ] && [ "$ok" -le "$acc" ] || fail "per-listener handshakes $ok of $acc"
[ "$cnt" = "$ok" ] && [ "$inf" = "$ok" ] || fail "histogram count $cnt, +Inf $inf, handshakes $ok"
say "ok: listener https: $acc accepted, $ok handshakes, histogram count $cnt"

hits=$(metric "switchyard_proxy_cert_cache_hits_total{colour=\"$live\"}")
miss=$(metric "switchyard_proxy_cert_cache_misses_total{colour=\"$live\"}")
[ -n "$hits" ] && [ -n "$miss" ] && [ $((hits + miss)) -gt 0 ] ||
	fail "cert cache hits '$hits' misses '$miss'"
say "ok: cert cache $hits hits, $miss misses"

for w in expired:1 7d:2 14d:2 30d:3; do
	v=$(metric "switchyard_certificates_expiring{within=\"${w%%:*}\"}")
	[ "$v" = "${w#*:}" ] || fail "certificates expiring within ${w%%:*}: $v, want ${w#*:}"
done
say "ok: certificates by time left: expired 1, 7d 2, 14d 2, 30d 3"

lr=$T_TMP/state/certsync/last-run
[ "$(metric switchyard_certsync_last_run_exit_code)" = "$cs_rc" ] ||
	fail "certsync exit code: metric $(metric switchyard_certsync_last_run_exit_code), run $cs_rc"
[ "$(metric switchyard_certsync_last_run_timestamp_seconds)" = "$(jq .time "$lr")" ] ||
	fail "certsync time: $(grep certsync_last_run_timestamp "$T_TMP/m.txt")"
[ "$(metric switchyard_certsync_last_run_names)" = "$(jq .names_after "$lr")" ] ||
	fail "certsync names: $(grep certsync_last_run_names "$T_TMP/m.txt")"
[ "$(metric switchyard_certsync_last_run_names_gone)" = 0 ] || fail "certsync names gone"
res=$(jq -r '.status | sub(" "; "_")' "$lr")
[ "$(metric "switchyard_certsync_last_run_result{result=\"$res\"}")" = 1 ] ||
	fail "certsync result $res: $(grep certsync_last_run_result "$T_TMP/m.txt")"
[ "$(grep -c '^switchyard_certsync_last_run_result{.*} 1$' "$T_TMP/m.txt")" -eq 1 ] ||
	fail "more than one certsync result is 1"
say "ok: certsync's last run: $res, exit $cs_rc, $(jq .names_after "$lr") names"

up='switchyard_backend_server_up{colour="'$live'",server="server0",address="127.0.0.1:8080"}'
[ "$(metric "$up")" = 1 ] || fail "backend server not up: $(grep backend_server_up "$T_TMP/m.txt")"
kill "$(cat "$T_TMP/nginx/nginx.pid")" || fail "stop nginx"
wait_until 15 sh -c "$SY_BUILD/switchyard -c $SV_CONF metrics | grep -qF '$up 0'" ||
	fail "backend server still up after the backend stopped"
say "ok: backend server up, then down once the backend stopped"

LOG=$T_TMP/switchyardd.log
grep -qE '^<6>switchyardd: info: ' "$LOG" || fail "no <6> info line from switchyardd: $(head -3 "$LOG")"
wait_until 10 grep -qE '^<4>proxy\[(blue|green)\]: warning: server server0 ' "$LOG" ||
	fail "no <4> warning from an instance about the stopped backend"
grep -vE '^<[3467]>(switchyardd|proxy\[(blue|green)\]): (error|warning|info|debug): ' "$LOG" >"$T_TMP/odd.txt"
[ ! -s "$T_TMP/odd.txt" ] || fail "lines without a journal priority: $(head -3 "$T_TMP/odd.txt")"
for p in 3:error 4:warning 6:info; do
	! grep -E "^<${p%%:*}>" "$LOG" | grep -vqE ": ${p#*:}: " || fail "priority <${p%%:*}> on a line that is not ${p#*:}"
done
say "ok: under a journal stream every line carries its sd-daemon priority, no time"
