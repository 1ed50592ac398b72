#!/bin/bash
# Opt-in, not part of `make test` (`make nspawn-test`): the installed units
# under a real systemd as PID 1, in a systemd-nspawn container whose root
# debootstrap makes once (Debian 12 minbase with systemd and the runtime
# libraries; NSPAWN_ROOT, default /var/tmp/sy-nspawn/root, kept for reruns).
# It installs the built binaries with `make install` as on a fresh machine,
# creates the user with scripts/adduser.sh, boots the container with its own
# network, and checks what an operator would: switchyard.service becomes
# active (Type=notify), the instances run as the switchyard user,
# switchyardd holds only the unit's capabilities, a member of
# supervisor.control_group runs `switchyard status` without root, TLS is
# served on port 443, a missing /run/xtables.lock does not stop the unit
# (iptables backend), and switchyard-certsync.service promotes a set the
# instances load. Needs root, systemd-nspawn (systemd-container) and
# debootstrap; exits 77 when they are missing.
set -u
SY_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$SY_ROOT" && realpath "${1:-build}")
ROOT=${NSPAWN_ROOT:-/var/tmp/sy-nspawn/root}
M=synspawn$$
LOG=$(mktemp -d /tmp/sy-nspawn.XXXXXX)
say() { echo "[nspawn] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
pass=0
check() {
	local what=$1; shift
	if "$@"; then say "ok: $what"; pass=$((pass + 1)); else fail "$what"; fi
}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in systemd-nspawn debootstrap nsenter; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed (apt-get install systemd-container debootstrap)"; exit 77; }
done
[ -x "$BUILD/switchyardd" ] || fail "build first: $BUILD/switchyardd missing"

if [ ! -x "$ROOT/usr/lib/systemd/systemd" ]; then
	say "debootstrap into $ROOT (once; a few minutes)"
	mkdir -p "$ROOT"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libssl3,libyaml-0-2,libip4tc2,libip6tc2,libnftnl11,libmnl0,libnl-3-200,libnl-nf-3-200,libjansson4,iproute2,openssl,adduser,iptables \
		bookworm "$ROOT" http://deb.debian.org/debian >"$LOG/debootstrap.log" 2>&1 ||
		fail "debootstrap: $(tail -3 "$LOG/debootstrap.log")"
fi
in_root() { chroot "$ROOT" "$@"; }

say "make install into the container's root"
rm -f "$ROOT/etc/switchyard/switchyard.yaml"
make -s -C "$SY_ROOT" install BINS= BUILD="$BUILD" DESTDIR="$ROOT" >"$LOG/install.log" 2>&1 ||
	fail "make install: $(tail -5 "$LOG/install.log")"
cp "$SY_ROOT/scripts/adduser.sh" "$ROOT/tmp/adduser.sh"
in_root sh /tmp/adduser.sh switchyard || fail "adduser.sh in the container"
in_root chgrp switchyard /etc/switchyard/certs /var/lib/switchyard
getent_in() { in_root getent "$@"; }
getent_in group sy-ops >/dev/null || in_root groupadd --system sy-ops
getent_in passwd alice >/dev/null || in_root useradd --no-create-home --shell /bin/sh --groups sy-ops alice

# Certificates: the served directory for the first start, and a certsync
# source holding the same set.
rm -rf "$ROOT/etc/switchyard/certs/"* "$ROOT/srv/certs-export"
"$BUILD/tests/tools/gencerts" --out "$LOG/pki" --count 20 >/dev/null || fail "gencerts"
cp "$LOG/pki/certs/"* "$ROOT/etc/switchyard/certs/"
mkdir -p "$ROOT/srv/certs-export"
cp "$LOG/pki/certs/"* "$ROOT/srv/certs-export/"
in_root sh -c 'chgrp switchyard /etc/switchyard/certs/* && chmod 0640 /etc/switchyard/certs/*'
read -r NAME _ <"$LOG/pki/names.txt"
CONF=$ROOT/etc/switchyard/switchyard.yaml
# The operator's two edits of the installed file: the control group, and the
# legacy backend, so that the missing /run/xtables.lock case is exercised.
sed -i -e 's|^  control_mode: "0660".*|&\n  control_group: sy-ops|' \
	-e 's|^  backend: auto .*|  backend: iptables|' "$CONF"
grep -q '^  control_group: sy-ops' "$CONF" && grep -q '^  backend: iptables' "$CONF" || fail "config edit"
in_root /usr/local/bin/switchyard check-config -c /etc/switchyard/switchyard.yaml >"$LOG/cc.log" 2>&1 ||
	fail "check-config in the container: $(cat "$LOG/cc.log")"
in_root systemctl enable switchyard.service >/dev/null 2>&1 || fail "systemctl enable"
rm -f "$ROOT/run/xtables.lock"

say "booting the container (logs in $LOG/boot.log)"
systemd-nspawn -q -D "$ROOT" -b --register=no --keep-unit --private-network -M "$M" \
	>"$LOG/boot.log" 2>&1 </dev/null &
NSPID=$!
cleanup() {
	[ -n "${LEADER:-}" ] && nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1
	for _ in $(seq 100); do kill -0 "$NSPID" 2>/dev/null || break; sleep 0.2; done
	kill "$NSPID" 2>/dev/null
	wait "$NSPID" 2>/dev/null
}
trap cleanup EXIT
LEADER=
# The container's PID 1 is systemd-nspawn's child.
for _ in $(seq 300); do
	LEADER=$(pgrep -P "$NSPID" -x systemd)
	[ -n "$LEADER" ] && break
	sleep 0.2
done
[ -n "$LEADER" ] || fail "the container's systemd did not start: $(tail -5 "$LOG/boot.log")"
c() { nsenter -t "$LEADER" -a env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
state=
for _ in $(seq 600); do
	state=$(c systemctl is-system-running 2>/dev/null)
	case $state in running | degraded) break ;; esac
	sleep 0.2
done
say "system: $state"
for _ in $(seq 600); do
	c systemctl is-active -q switchyard.service && break
	c systemctl is-failed -q switchyard.service && break
	sleep 0.2
done
c systemctl status --no-pager switchyard.service >"$LOG/status.txt" 2>&1
c journalctl -b --no-pager -u switchyard.service >"$LOG/journal.txt" 2>&1
cat "$LOG/status.txt"
check "switchyard.service is active (Type=notify: READY=1 arrived)" c systemctl is-active -q switchyard.service
say "/run/xtables.lock in the container: $(c stat -c '%y %U %a' /run/xtables.lock 2>&1)"
say "/run as switchyardd sees it: $(c nsenter -t "$(c systemctl show -P MainPID switchyard.service)" -m findmnt -no OPTIONS /run 2>&1)"
# Recorded, not asserted: whether the unit's /run is writable decides
# whether switchyardd created the file or warned (29-nf-lock-readonly
# covers the read-only case).
say "lock warning in the journal: $(grep -c 'xtables lock: /run/xtables.lock does not exist' "$LOG/journal.txt")"

SUID=$(getent_in passwd switchyard | cut -d: -f3)
MAIN=$(c systemctl show -P MainPID switchyard.service)
for col in blue green; do
	pid=$(c cat "/var/lib/switchyard/$col.pid")
	uid=$(c awk '$1 == "Uid:" {print $2, $3, $4, $5}' "/proc/$pid/status")
	check "instance $col runs as switchyard ($SUID)" test "$uid" = "$SUID $SUID $SUID $SUID"
done
capeff=$(c awk '$1 == "CapEff:" {print $2}' "/proc/$MAIN/status")
capbnd=$(c awk '$1 == "CapBnd:" {print $2}' "/proc/$MAIN/status")
say "switchyardd (pid $MAIN in the container): CapEff $capeff CapBnd $capbnd ($(command -v capsh >/dev/null && capsh --decode="$capbnd" | cut -d= -f2))"
check "switchyardd's capabilities are within the unit's bounding set" test "$((0x$capeff & ~0x$capbnd))" -eq 0
check "alice (group sy-ops, not root) runs switchyard status" \
	c runuser -u alice -- switchyard status
c runuser -u alice -- switchyard status >"$LOG/alice.txt" 2>&1
cat "$LOG/alice.txt"
check "TLS on port 443 serves $NAME" bash -c "echo | nsenter -t $LEADER -a openssl s_client -connect 127.0.0.1:443 -servername $NAME 2>/dev/null | grep -q 'subject=.*CN *= *$NAME'"

say "certsync under its unit"
gen0=$(c switchyard status --json | grep -o '"live":"[a-z]*"')
c sh -c "sed -i 's|^  directory: /etc/switchyard/certs|  directory: /var/lib/switchyard/certsync/current|' /etc/switchyard/switchyard.yaml"
c systemctl start switchyard-certsync.service
rc=$?
c journalctl -b --no-pager -u switchyard-certsync.service >"$LOG/certsync.txt" 2>&1
tail -5 "$LOG/certsync.txt"
check "switchyard-certsync.service succeeded" test "$rc" -eq 0
check "the certsync set is group switchyard" \
	test "$(c stat -c %G "$(c readlink -f /var/lib/switchyard/certsync/current)")" = switchyard
c switchyard status >"$LOG/status2.txt" 2>&1
cat "$LOG/status2.txt"
check "the live instance serves the certsync set" grep -Eq '^(blue|green) +live .* [0-9]+-[0-9]+ ' "$LOG/status2.txt"
say "was $gen0; PASS ($pass checks; logs in $LOG)"
