#!/bin/bash
# The xtables lock on a read-only /run, as switchyard.service sees it
# (ProtectSystem=strict; ReadWritePaths=-/run/xtables.lock only when the file
# existed at start). A missing lock file that cannot be created is no error:
# the commit goes on unlocked with one warning that names the file. An
# existing lock file on a read-only mount is still locked (flock through a
# read-only descriptor): a holder makes the commit wait and then fail naming
# it. The script runs itself again in private mount and network namespaces,
# so the read-only mount and the rules are its own.
if [ -z "${SY_29_INNER:-}" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for mount and network namespaces"; exit 77; }
	exec unshare --mount --net --propagation private env SY_29_INNER=1 bash "$0" "$@" ||
		{ echo "SKIP: unshare --mount --net failed"; exit 77; }
fi
. "$(dirname "$0")/lib.sh"
nf_backend_only iptables "the xtables lock is the legacy backend's; nftables takes none"
command -v iptables-legacy-save >/dev/null || skip "iptables-legacy not installed"
SY=$SY_BUILD/switchyard
[ -x "$SY" ] || fail "missing $SY (build first)"
ip link set lo up
RO=$T_TMP/run
mkdir -p "$RO"
trap 'umount "$RO" 2>/dev/null; t_cleanup' EXIT
mount -t tmpfs -o ro,mode=0755 tmpfs "$RO" || skip "cannot mount a tmpfs here"
export XTABLES_LOCKFILE=$RO/xtables.lock
cat >"$T_TMP/sy.yaml" <<'EOT'
listeners:
  - {name: https, address: 0.0.0.0, port: 443}
instances:
  blue: {ports: [8443]}
  green: {ports: [9443]}
backend:
  servers: ["127.0.0.1:8080"]
netfilter:
  backend: iptables
EOT
sy() { "$SY" -c "$T_TMP/sy.yaml" "$@"; }

check "the lock file cannot be created" bash -c "! touch '$XTABLES_LOCKFILE' 2>/dev/null"
sy rules install >"$T_TMP/out" 2>"$T_TMP/err"
rc=$?
cat "$T_TMP/out" "$T_TMP/err"
check "rules install succeeds without a lock file" test "$rc" -eq 0
check "the warning names the file and the cause" \
	grep -q "xtables lock: $XTABLES_LOCKFILE does not exist and cannot be created (read-only file system)" "$T_TMP/err"
check "the rule is in" grep -q -- '--to-ports 8443' <(iptables-legacy-save -t nat)
check "flip without a lock file" sy rules flip green

# The file exists (made while the mount was writable), the mount is read-only.
mount -o remount,rw "$RO" && touch "$XTABLES_LOCKFILE" && mount -o remount,ro "$RO" ||
	fail "cannot prepare the lock file"
check "the lock file cannot be opened for writing" bash -c "! : 2>/dev/null >>'$XTABLES_LOCKFILE'"
sy rules flip blue 2>"$T_TMP/err" || fail "flip with a read-only lock file: $(cat "$T_TMP/err")"
check "no warning once the file exists" test ! -s "$T_TMP/err"
lock_hold "$XTABLES_LOCKFILE"
out=$(sy rules flip green 2>&1)
rc=$?
lock_release
say "with the lock held: rc $rc: $out"
check "a held read-only lock file still stops the commit" test "$rc" -ne 0
check "and the error names the holder" grep -q "held by pid $LOCK_PID (flock)" <<<"$out"
check "the flip goes through once it is released" sy rules flip green
check "the rule points at green" grep -q -- '--to-ports 9443' <(iptables-legacy-save -t nat)
say "PASS"
