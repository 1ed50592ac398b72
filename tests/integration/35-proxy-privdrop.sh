#!/bin/bash
# switchyard-proxy privilege drop: started as root with proxy.user/group set,
# the ready instance runs as that user and group (every uid/gid of
# /proc/PID/status, no supplementary groups but the one), and still serves
# every certificate although the unprivileged user cannot read the key files:
# they were read before the drop. Session tickets work with keys read before
# the drop, and a reload the user cannot read fails without taking the served
# certificates away.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"
# The stock Debian user and group: nothing to create or remove.
PUID=$(id -u nobody 2>/dev/null) || skip "no user 'nobody'"
PGID=$(getent group nogroup | cut -d: -f3)
[ -n "$PGID" ] || skip "no group 'nogroup'"

px_ns
px_certs 20
px_backend
SOCK=$T_TMP/blue.sock
PX_TICKETS=$T_TMP/ticket.keys
px_tickets "$PX_TICKETS"
chmod 600 "$PX_TICKETS"
# mktemp made T_TMP 0700 root: nobody can read neither keys nor tickets.
check "the unprivileged user cannot read the certificates" \
	bash -c "! setpriv --reuid=$PUID --regid=$PGID --clear-groups cat $CERTDIR/site1.pem >/dev/null 2>&1"

PX_TICKETS=$PX_TICKETS PX_PROXY_EXTRA="  user: nobody
  group: nogroup" px_config "$T_TMP/a.yaml"
PX_LOG=$T_TMP/proxy.log px_start blue "$T_TMP/a.yaml"
ids() { awk -v k="$1:" '$1 == k {print $2, $3, $4, $5}' "/proc/$PX_PID/status"; }
say "$(grep -E '^(Uid|Gid|Groups):' "/proc/$PX_PID/status" | tr '\t' ' ' | tr '\n' ';')"
check "Uid: real, effective, saved and fs are nobody" test "$(ids Uid)" = "$PUID $PUID $PUID $PUID"
check "Gid: all nogroup" test "$(ids Gid)" = "$PGID $PGID $PGID $PGID"
check "Groups: only nogroup" test "$(awk '$1 == "Groups:" {$1 = ""; print}' "/proc/$PX_PID/status" | xargs)" = "$PGID"
check "every thread dropped too" \
	bash -c "! grep -h '^Uid:' /proc/$PX_PID/task/*/status | grep -vq \"^Uid:.$PUID.$PUID.$PUID.$PUID\$\""
check "the drop is logged" grep -q "running as nobody" "$T_TMP/proxy.log"

check "all 20 certificates served after the drop (chain + name)" \
	in_ns "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/pki/names.txt"
check "data forwarded after the drop (8 x 500 KB)" \
	in_ns "$PX_TOOLS/tls_check" echo -c 127.0.0.1:8443 -a "$CA" -s site1.example.test -b 500000 -k 8
rm -f "$T_TMP/sess"
px_s_client "$T_TMP/sess" "END SSL SESSION" -tls1_3 -connect 127.0.0.1:8443 \
	-servername site2.example.test -CAfile "$CA" -sess_out "$T_TMP/sess" -no_ign_eof >/dev/null
out=$(px_s_client - "^(New|Reused)," -tls1_3 -connect 127.0.0.1:8443 \
	-servername site2.example.test -CAfile "$CA" -sess_in "$T_TMP/sess" -no_ign_eof)
check "session tickets (keys read before the drop) resume" grep -q "^Reused" <<<"$out"

# The certificates cannot be re-read as nobody: the reload must fail or keep
# what is served, never publish an empty store.
r=$(px_ctl "$SOCK" reload-certs)
say "reload-certs as nobody: ${r:0:200}"
check "still serving every certificate after that reload" \
	in_ns "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/pki/names.txt"
check "status still lists 20 certificates" test "$(px_get "$SOCK" status certs.loaded)" -eq 20
# Worse: the directory is readable, the files are not (0600 root). Each
# file fails as nobody; that must not count as the name being removed.
chmod 711 "$T_TMP"
chmod 755 "$T_TMP/pki" "$CERTDIR"
chmod 600 "$CERTDIR"/*
check "nobody can list the directory" \
	setpriv --reuid="$PUID" --regid="$PGID" --clear-groups ls "$CERTDIR" >/dev/null
r=$(px_ctl "$SOCK" reload-certs)
say "reload-certs with unreadable files: ${r:0:300}"
check "that reload is refused" grep -q '"ok":false.*keeping the current certificates' <<<"$r"
check "generation unchanged" test "$(px_get "$SOCK" status generation)" -eq 1
check "still serving every certificate after a reload of unreadable files" \
	in_ns "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/pki/names.txt"
kill -HUP "$PX_PID"
check "SIGHUP: the same reload is refused" wait_for 10 grep -q "SIGHUP: reload refused" "$T_TMP/proxy.log"
check "still serving every certificate after SIGHUP" \
	in_ns "$PX_TOOLS/tls_check" names -c 127.0.0.1:8443 -a "$CA" -n "$T_TMP/pki/names.txt"
check "still alive" kill -0 "$PX_PID"
check "quit as nobody replies ok" grep -q '"ok":true' <<<"$(px_ctl "$SOCK" quit)"
wait "$PX_PID"
rc=$?
# A sanitizer's report at exit (a leak, under ASan) is in the proxy's log.
[ "$rc" -eq 0 ] || { tail -40 "$T_TMP/proxy.log"; fail "the process did not exit cleanly (status $rc)"; }
say "ok: and the process exits cleanly"
say "PASS"
