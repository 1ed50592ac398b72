#!/bin/bash
# make install: with DESTDIR and PREFIX=/usr, every binary, document and unit
# lands under DESTDIR/usr; the systemd units and the cron example name the
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
check "documentation installed" test -f "$ROOT/usr/share/doc/switchyard/operations.md"
check "example config installed" test -f "$ROOT/usr/share/doc/switchyard/switchyard.yaml"
UNITS=$ROOT/usr/lib/systemd/system
for u in switchyard.service switchyard-certsync.service switchyard-certsync.timer; do
	check "unit $u installed" test -f "$UNITS/$u"
done
check "switchyard.service starts /usr/sbin/switchyardd" \
	grep -q '^ExecStart=/usr/sbin/switchyardd ' "$UNITS/switchyard.service"
check "switchyard-certsync.service runs /usr/bin/switchyard" \
	grep -q '^ExecStart=/usr/bin/switchyard certsync ' "$UNITS/switchyard-certsync.service"
# Comments may mention /usr/local; settings must not.
check "no /usr/local path left in the units' or cron example's settings" \
	bash -c "! grep -v '^#' '$UNITS'/* '$ROOT/usr/share/doc/switchyard/switchyard-certsync.cron' | grep /usr/local"
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
