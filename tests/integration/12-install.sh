#!/bin/bash
# make install: with DESTDIR and PREFIX=/usr, every binary, document and unit
# lands under DESTDIR/usr, the configuration at DESTDIR/etc/switchyard (never
# over an existing one, passing check-config as installed), the state and
# certificate directories, the user script works (tried with a throwaway
# name), the cron file at DESTDIR/etc/cron.d/switchyard-certsync
# (valid, with a per-host delay); the systemd units and the cron file name the
# installed binaries (no /usr/local left); and systemd-analyze verify accepts
# the units without a warning once their binaries exist.
. "$(dirname "$0")/lib.sh"
ROOT=$T_TMP/root
# BINS= keeps make from rebuilding anything: the binaries under test are
# installed as they are (also under make check, whose flags make cannot see).
make -s -C "$SY_ROOT" install BINS= BUILD="$SY_BUILD" DESTDIR="$ROOT" PREFIX=/usr >"$T_TMP/install.log" 2>&1 ||
	fail "make install failed: $(tail -5 "$T_TMP/install.log")"
for f in bin/switchyard sbin/switchyardd sbin/switchyard-proxy; do
	check "installed $f" test -x "$ROOT/usr/$f"
done
# --version: every program prints the one VERSION the Makefile defines.
want=$(make -s -C "$SY_ROOT" --no-print-directory -f Makefile -f - print-version <<<'print-version: ; @echo $(VERSION)')
[ -n "$want" ] || fail "cannot read VERSION from the Makefile"
for p in bin/switchyard sbin/switchyardd sbin/switchyard-proxy; do
	check "$p --version says $want" \
		test "$("$ROOT/usr/$p" --version)" = "$(basename "$p") $want"
done
check "switchyard certsync --version says $want" \
	test "$("$ROOT/usr/bin/switchyard" certsync --version)" = "switchyard certsync $want"
check "switchyard -c FILE certsync --version says $want" \
	test "$("$ROOT/usr/bin/switchyard" -c /nonexistent certsync --version)" = "switchyard certsync $want"
check "documentation installed" test -f "$ROOT/usr/share/doc/switchyard/operations.md"
check "example config installed" test -f "$ROOT/usr/share/doc/switchyard/switchyard.yaml"
# The configuration, installed where every program looks for it, with the
# instances running as the installed user; it passes check-config as
# installed, with its paths moved into DESTDIR, and every directory it names
# exists there or is made at start (/run/switchyard: the unit's
# RuntimeDirectory= and the tmpfiles.d entry).
CONF=$ROOT/etc/switchyard/switchyard.yaml
check "configuration installed as /etc/switchyard/switchyard.yaml" test -f "$CONF"
check "configuration mode 0644" test "$(stat -c %a "$CONF")" = 644
check "the instances run as switchyard" grep -q '^  user: switchyard ' "$CONF"
check "in group switchyard" grep -qx '  group: switchyard' "$CONF"
check "make install (DESTDIR) creates no user" grep -q "not creating the user switchyard (DESTDIR set" "$T_TMP/install.log"
sed -e "s|/etc/switchyard/|$ROOT/etc/switchyard/|g" -e "s|/var/lib/switchyard|$ROOT/var/lib/switchyard|g" \
	-e "s|/run/switchyard/|$ROOT/run/switchyard/|g" "$CONF" >"$T_TMP/moved.yaml"
mkdir -p "$ROOT/run/switchyard" # what RuntimeDirectory= makes at start
"$ROOT/usr/bin/switchyard" check-config -c "$T_TMP/moved.yaml" >"$T_TMP/cc.log" 2>&1
rc=$?
cat "$T_TMP/cc.log"
check "check-config passes on the installed configuration" test "$rc" -eq 0
check "its certificate directory exists (0750)" test "$(stat -c %a "$ROOT/etc/switchyard/certs")" = 750
check "its state directory exists (0750)" test "$(stat -c %a "$ROOT/var/lib/switchyard")" = 750
sock=$(awk '$1 == "control_socket:" && !/^ *#/ {print $2}' "$CONF" | tail -1)
check "the control socket is in /run/switchyard" test "$(dirname "$sock")" = /run/switchyard
check "tmpfiles.d makes /run/switchyard at boot" grep -qE '^d /run/switchyard ' "$ROOT/usr/lib/tmpfiles.d/switchyard.conf"
check "and so does the unit" grep -qx 'RuntimeDirectory=switchyard' "$ROOT/usr/lib/systemd/system/switchyard.service"
echo "# the operator's" >>"$CONF"
make -s -C "$SY_ROOT" install BINS= BUILD="$SY_BUILD" DESTDIR="$ROOT" PREFIX=/usr >"$T_TMP/install2.log" 2>&1 ||
	fail "second make install failed: $(tail -5 "$T_TMP/install2.log")"
check "a second install keeps the operator's configuration" grep -qx "# the operator's" "$CONF"
# SYSCONFDIR moves the configuration, and every file that names it.
make -s -C "$SY_ROOT" install BINS= BUILD="$SY_BUILD" DESTDIR="$T_TMP/root2" PREFIX=/opt/sy \
	SYSCONFDIR=/opt/sy/etc >"$T_TMP/install3.log" 2>&1 || fail "make install SYSCONFDIR=: $(tail -5 "$T_TMP/install3.log")"
check "SYSCONFDIR: configuration under it" test -f "$T_TMP/root2/opt/sy/etc/switchyard/switchyard.yaml"
check "SYSCONFDIR: the unit reads it there" \
	grep -q '^ExecStart=/opt/sy/sbin/switchyardd .*-c /opt/sy/etc/switchyard/switchyard.yaml' "$T_TMP/root2/opt/sy/lib/systemd/system/switchyard.service"
check "SYSCONFDIR: its certificate directory follows" \
	grep -q '^  directory: /opt/sy/etc/switchyard/certs' "$T_TMP/root2/opt/sy/etc/switchyard/switchyard.yaml"

# The user: scripts/adduser.sh, which make install runs as root without
# DESTDIR, tried with a throwaway name and removed at exit.
if [ "$(id -u)" -eq 0 ] && command -v useradd >/dev/null; then
	U=sytest$$
	trap 'userdel "$U" 2>/dev/null; groupdel "$U" 2>/dev/null; t_cleanup' EXIT
	sh "$SY_ROOT/scripts/adduser.sh" "$U" || fail "scripts/adduser.sh $U"
	IFS=: read -r _ _ uid gid _ home shell < <(getent passwd "$U")
	say "created: $(getent passwd "$U"); group $(getent group "$U")"
	check "a system user (uid below 1000)" test "$uid" -lt 1000
	check "with its own group" test "$(getent group "$gid" | cut -d: -f1)" = "$U"
	check "home /var/lib/switchyard" test "$home" = /var/lib/switchyard
	check "no login shell" test "$shell" = /usr/sbin/nologin
	check "a second run changes nothing" test "$(sh "$SY_ROOT/scripts/adduser.sh" "$U"; getent passwd "$U")" = "$(getent passwd "$U")"
else
	say "not root or no useradd: scripts/adduser.sh not tried"
fi

UNITS=$ROOT/usr/lib/systemd/system
for u in switchyard.service switchyard-certsync.service switchyard-certsync.timer; do
	check "unit $u installed" test -f "$UNITS/$u"
done
check "switchyard.service starts /usr/sbin/switchyardd" \
	grep -q '^ExecStart=/usr/sbin/switchyardd ' "$UNITS/switchyard.service"
check "switchyard-certsync.service runs /usr/bin/switchyard" \
	grep -q '^ExecStart=/usr/bin/switchyard certsync ' "$UNITS/switchyard-certsync.service"
# ProtectHome=yes hides /root/.aws: the credentials the documented aws s3
# sync source needs come from /etc/switchyard, which the sandbox shows.
for v in AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE RCLONE_CONFIG; do
	check "certsync unit: $v under /etc/switchyard" \
		grep -qE "^Environment=$v=/etc/switchyard/" "$UNITS/switchyard-certsync.service"
done
# Comments may mention /usr/local; settings must not.
CRON=$ROOT/etc/cron.d/switchyard-certsync
check "no /usr/local path left in the units' or the cron file's settings" \
	bash -c "! grep -v '^#' '$UNITS'/* '$CRON' | grep /usr/local"

# The cron file: Debian's cron reads /etc/cron.d files whose names are only
# letters, digits, '-' and '_', owned by root, not group/other-writable.
check "cron file installed as /etc/cron.d/switchyard-certsync" test -f "$CRON"
check "no file with a dot in cron.d" test "$(ls "$ROOT/etc/cron.d")" = switchyard-certsync
check "cron file name is one Debian's cron reads" bash -c "[[ \$(basename '$CRON') =~ ^[A-Za-z0-9_-]+\$ ]]"
check "cron file mode 0644" test "$(stat -c %a "$CRON")" = 644
# Valid system crontab syntax: NAME=VALUE lines, or five time fields, a user
# and a command; the time fields within their ranges.
python3 - "$CRON" >"$T_TMP/cron.txt" <<'PY' || fail "cron syntax: $(cat "$T_TMP/cron.txt")"
import re, sys
ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
jobs = 0
text = open(sys.argv[1]).read()
assert text.endswith("\n"), "no newline at the end (cron drops the last line)"
for n, line in enumerate(text.splitlines(), 1):
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", line):
        continue
    f = line.split(None, 6)
    assert len(f) == 7, "line %d: five times, a user and a command expected" % n
    for (lo, hi), field in zip(ranges, f[:5]):
        for part in field.split(","):
            m = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
            assert m, "line %d: bad time field %r" % (n, field)
            for v in (m.group(2), m.group(3)):
                assert v is None or lo <= int(v) <= hi, "line %d: %s out of range" % (n, v)
    assert f[5] == "root", "line %d: user %r" % (n, f[5])
    # An unescaped % ends the command in cron: the rest becomes stdin.
    assert not re.search(r"(?<!\\)%", f[6]), "line %d: unescaped %%" % n
    print(f[6].replace("\\%", "%"))
    jobs += 1
assert jobs == 1, "%d jobs" % jobs
PY
# Run the job's command as cron would, with stand-ins for sleep, systemctl
# and switchyard: the delay is the host's own, within 0..239 s, the same on
# every run, and certsync gets the installed configuration.
mkdir -p "$T_TMP/stub"
for s in sleep switchyard; do
	printf '#!/bin/sh\necho "%s $*" >>%s/calls\n' "$s" "$T_TMP" >"$T_TMP/stub/$s"
done
printf '#!/bin/sh\nexit 3\n' >"$T_TMP/stub/systemctl"
chmod +x "$T_TMP/stub/"*
for i in 1 2; do PATH=$T_TMP/stub:$PATH sh -c "$(cat "$T_TMP/cron.txt")" || fail "cron command failed"; done
cat "$T_TMP/calls"
d=$(awk '$1 == "sleep" { print $2; exit }' "$T_TMP/calls")
check "the delay is a number of seconds below 240" bash -c "[[ '$d' =~ ^[0-9]+\$ ]] && [ '$d' -lt 240 ]"
check "the same delay on every run of a host" test "$(grep -c "^sleep $d\$" "$T_TMP/calls")" -eq 2
check "certsync runs with the installed configuration" \
	grep -qx "switchyard certsync -c /etc/switchyard/switchyard.yaml" "$T_TMP/calls"
# Hosts of a fleet get different delays (host names as a stand-in says them).
: >"$T_TMP/calls"
printf '#!/bin/sh\necho "$HN"\n' >"$T_TMP/stub/hostname"
chmod +x "$T_TMP/stub/hostname"
for h in node1 node2 node3; do
	HN=$h PATH=$T_TMP/stub:$PATH sh -c "$(cat "$T_TMP/cron.txt")" || fail "cron command failed"
done
check "three hosts, three delays" test "$(awk '$1 == "sleep" { print $2 }' "$T_TMP/calls" | sort -u | wc -l)" -eq 3
rm "$T_TMP/stub/hostname"
: >"$T_TMP/calls"
printf '#!/bin/sh\nexit 0\n' >"$T_TMP/stub/systemctl"
PATH=$T_TMP/stub:$PATH sh -c "$(cat "$T_TMP/cron.txt")" || fail "cron command failed"
check "nothing runs while the systemd timer is active" test ! -s "$T_TMP/calls"

if command -v systemd-analyze >/dev/null; then
	# verify resolves ExecStart on this host, so point it into DESTDIR.
	mkdir -p "$T_TMP/units"
	for u in switchyard.service switchyard-certsync.service switchyard-certsync.timer; do
		sed "s|=/usr/|=$ROOT/usr/|" "$UNITS/$u" >"$T_TMP/units/$u"
	done
	(cd "$T_TMP/units" && systemd-analyze verify ./switchyard.service \
		./switchyard-certsync.service ./switchyard-certsync.timer) >"$T_TMP/verify.log" 2>&1
	rc=$?
	cat "$T_TMP/verify.log" >&2
	check "systemd-analyze verify accepts the units" test "$rc" -eq 0
	check "systemd-analyze verify has no warning" test ! -s "$T_TMP/verify.log"
else
	say "systemd-analyze not installed: units not verified (the rest was checked)"
fi
say "PASS"
