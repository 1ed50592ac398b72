#!/bin/bash
# supervisor.control_group: the supervisor's control socket belongs to that
# group, so a non-root member runs `switchyard status` (and any command the
# socket allows); a non-member gets "permission denied" and exit 1. The
# group is a throwaway one, removed at exit; the user is the stock 'nobody',
# given the group by setpriv alone. A group that does not exist stops
# switchyardd at start with a message naming the key.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"
command -v groupadd >/dev/null || skip "groupadd (passwd) not installed"
command -v setpriv >/dev/null || skip "setpriv (util-linux) not installed"
PUID=$(id -u nobody 2>/dev/null) || skip "no user 'nobody'"
PGID=$(getent group nogroup | cut -d: -f3)
[ -n "$PGID" ] || skip "no group 'nogroup'"
OPS=syops$$
sv_setup 5
groupadd -r "$OPS" || fail "groupadd $OPS"
trap 'groupdel "$OPS" 2>/dev/null; t_cleanup' EXIT
OGID=$(getent group "$OPS" | cut -d: -f3)
mkdir -m 755 "$T_TMP/run"
sed -i "s|control_socket: .*|control_socket: $T_TMP/run/switchyardd.sock\n  control_group: $OPS|" "$SV_CONF"
# The operator reads the configuration (to find the socket) and reaches it.
chmod 711 "$T_TMP"
chmod 644 "$SV_CONF"
sv_start
SOCK=$T_TMP/run/switchyardd.sock
say "socket: $(stat -c '%a %U:%G' "$SOCK")"
check "the socket belongs to group $OPS, mode 0660" test "$(stat -c '%a %U %G' "$SOCK")" = "660 root $OPS"
as() { setpriv --reuid="$PUID" --regid="$PGID" "$@"; }
out=$(as --groups="$OGID" "$SY_BUILD/switchyard" -c "$SV_CONF" status 2>&1)
rc=$?
echo "$out"
check "a member of $OPS (not root) runs switchyard status" test "$rc" -eq 0
check "and sees the live colour" grep -q "live" <<<"$out"
# Into a variable first: jq 1.6 -e passes on empty input.
out=$(as --groups="$OGID" "$SY_BUILD/switchyard" -c "$SV_CONF" status --json 2>&1)
check "a member gets --json too" jq -e '.live | type == "string"' <<<"${out:-empty}"
out=$(as --clear-groups "$SY_BUILD/switchyard" -c "$SV_CONF" status 2>&1)
rc=$?
say "non-member: rc $rc: $out"
check "a non-member is refused with exit 1" test "$rc" -eq 1
check "and told why" grep -q "permission denied on $SOCK" <<<"$out"

# A group that does not exist: switchyardd refuses to start, naming the key.
svc shutdown >/dev/null 2>&1
wait_until 20 bash -c "! kill -0 $SV_PID 2>/dev/null" || fail "switchyardd did not stop"
sed -i "s|control_group: $OPS|control_group: no-such-group-$$|" "$SV_CONF"
# Into a file: were instances started, they would hold a pipe open.
timeout 60 ip netns exec "$SV_NS" "$SY_BUILD/switchyardd" -c "$SV_CONF" -f >"$T_TMP/bad.log" 2>&1
rc=$?
out=$(cat "$T_TMP/bad.log")
say "unknown group: rc $rc: $(tail -1 <<<"$out")"
check "an unknown control_group stops switchyardd" test "$rc" -ne 0
check "naming the key and the group" grep -q "supervisor.control_group: no group 'no-such-group-$$'" <<<"$out"
check "and leaves no socket behind" test ! -e "$SOCK"
check "nor any instance" test -z "$(ip netns pids "$SV_NS" | xargs -r ps -o comm= -p | grep switchyard)"
say "PASS"
