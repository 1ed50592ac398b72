#!/bin/bash
# certsync with proxy.user set: the instances load each new set long after
# their drop, so certsync gives the proxy's group search permission on the
# way down (state dir, certsync/, sets/: 0710) and read permission on each
# set and on the blobs (0750, files 0640, group nogroup), also for blobs
# written before proxy.user was set. Before, every run failed with
# "Permission denied" from the instance. A reload the instance cannot read
# fails with its cause in switchyardd's log.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"
PUID=$(id -u nobody 2>/dev/null) || skip "no user 'nobody'"
getent group nogroup >/dev/null || skip "no group 'nogroup'"

sv_setup 20
SRC=$SV_PKI/certs
STATE=$T_TMP/state
sed -i 's/^proxy:$/proxy:\n  user: nobody\n  group: nogroup/' "$SV_CONF"
sed -i "s|directory: $SV_PKI/certs|directory: $STATE/certsync/current|" "$SV_CONF"
cat >>"$SV_CONF" <<YAML
certsync:
  source: {directory: $SRC}
YAML
# As on a real host: /tmp-like parents searchable, the state directory
# 0750 root as systemd's StateDirectoryMode makes it.
chmod 711 "$T_TMP"
chmod 750 "$STATE"
sync() { "$SY_BUILD/switchyard" certsync -c "$SV_CONF" "$@"; }

# The first set is built before proxy.user is set (an existing host that
# turns it on): its blobs are root's. The next run, with nothing to do,
# still opens them to the instances' group, or they could not load them.
grep -v '^  user: nobody$\|^  group: nogroup$' "$SV_CONF" >"$T_TMP/root.yaml"
"$SY_BUILD/switchyard" certsync -c "$T_TMP/root.yaml" --no-reload >"$T_TMP/out" 2>&1 ||
	{ cat "$T_TMP/out"; fail "initial certsync"; }
check "blobs built without proxy.user are root's" \
	test "$(stat -c %G "$STATE/certsync/blobs/$(ls "$STATE/certsync/blobs" | head -1)")" = root
sync --no-reload >"$T_TMP/out" 2>&1 || { cat "$T_TMP/out"; fail "certsync with proxy.user"; }
sv_start
pid=$(sv_status '.instances[] | select(.colour == "blue") | .pid')
check "the instances run as nobody" test "$(awk '$1 == "Uid:" {print $2}' "/proc/$pid/status")" = "$PUID"

read -r NAME FILE < <(sed -n 3p "$SV_PKI/names.txt")
sleep 1.1 # a new mtime for certsync's fast path
"$SY_BUILD/tests/tools/gencerts" --out "$SV_PKI" --one "$NAME" --file "$SRC/$FILE" >/dev/null || fail "gencerts --one"
want=$(openssl x509 -in "$SRC/$FILE" -outform DER | sha256sum | cut -d' ' -f1)
live0=$(sv_status .live)
sync >"$T_TMP/out" 2>&1
rc=$?
cat "$T_TMP/out"
[ "$rc" -eq 0 ] || { sv_dump_logs; fail "certsync with proxy.user nobody: exit $rc"; }
check "it flipped" sv_flipped_from "$live0"
check "the new certificate is served" test "$(sv_served "$NAME")" = "$want"
SET=$(readlink -f "$STATE/certsync/current")
say "modes: $(stat -c '%n %a %U:%G' "$STATE" "$STATE/certsync" "$STATE/certsync/sets" "$SET" "$SET/$FILE" | tr '\n' ';')"
for d in "$STATE" "$STATE/certsync" "$STATE/certsync/sets"; do
	check "$d: group nogroup may search it" test "$(stat -c '%G' "$d")" = nogroup -a $(( 0$(stat -c '%a' "$d") & 010 )) -ne 0
done
check "the set is 0750 root:nogroup" test "$(stat -c '%a %U %G' "$SET")" = "750 root nogroup"
check "every file of the set is 0640 root:nogroup" \
	test -z "$(find "$SET" -mindepth 1 \( ! -group nogroup -o ! -perm 0640 \) -print)"
check "the staging copy stays closed" test "$(stat -c '%G' "$STATE/certsync/staging")" = root
check "no other user may read a key" test -z "$(find "$SET" -mindepth 1 -perm /o=r -print)"
BLOBS=$STATE/certsync/blobs
check "the blob directory is 0750 root:nogroup" test "$(stat -c '%a %U %G' "$BLOBS")" = "750 root nogroup"
check "every blob is 0640 root:nogroup" \
	test -z "$(find "$BLOBS" -mindepth 1 \( ! -group nogroup -o ! -perm 0640 \) -print)"

# A reload the instance cannot read is refused, and switchyardd says so.
mkdir -m 700 "$T_TMP/closed"
cp "$SRC"/* "$T_TMP/closed/"
svc reload --certs "$T_TMP/closed" >"$T_TMP/out" 2>&1
rc=$?
cat "$T_TMP/out"
check "a reload of a directory the instance cannot read fails" test "$rc" -ne 0
check "switchyardd logs the failed reload with its cause" \
	grep -Eq "reload into (blue|green) failed: .*Permission denied" "$T_TMP/switchyardd.log"
say "PASS"
