#!/bin/bash
# Applying a changed configuration to a running switchyardd (issue 15,
# section 3): `switchyard reload-config` and SIGHUP re-read the file.
#  1. An invalid file is refused with FILE:LINE:COLUMN (reply and log); the
#     daemon keeps serving on the old configuration.
#  2. A change to a restart-only key (supervisor.filter_guard) is refused,
#     naming the key; the running configuration stays.
#  3. A live key (certsync.mass_delete_percent, the name-loss guard's share)
#     applies at once: a reload the guard refused passes after it.
#  4. certificates.directory (a flip key): a reload before reload-config is
#     refused (the standby would read the new file, the supervisor the old
#     one); after reload-config, `reload --no-flip` and `flip` serve the new
#     directory's certificates, while a connection opened before keeps
#     exchanging data with the old instance.
#  5. SIGHUP does what reload-config does: an invalid file is logged and
#     refused, a valid change is applied.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"
. "$SY_ROOT/tests/tools/px_lib.sh" # px_get: one field of an instance's reply

SV_GATE_SAMPLE=100 sv_setup 10
BASE=$T_TMP/base.yaml
cp "$SV_CONF" "$BASE"
sv_start
# The socket by name: `status` reads the file to find it, and the file is
# broken on purpose in places (reload-config itself reads it leniently).
reloads() { SWITCHYARD_SOCKET=$T_TMP/state/switchyardd.sock sv_status .config.reloads; }
[ "$(reloads)" = 0 ] || fail "config.reloads is $(reloads) at start"
check "status names the file" test "$(sv_status .config.file)" = "$(realpath "$SV_CONF")"

# rc_of CMD...: runs the command, output in $T_TMP/out, exit status in RC.
rc_of() {
	"$@" >"$T_TMP/out" 2>&1
	RC=$?
	cat "$T_TMP/out"
}

# 1. Invalid file.
sed 's/^  threads: 2$/  threads: many/' "$BASE" >"$SV_CONF"
line=$(grep -n 'threads: many' "$SV_CONF" | cut -d: -f1)
[ -n "$line" ] || fail "could not break proxy.threads"
want="$SV_CONF:$line:12: key 'proxy.threads': expected an integer, got 'many'"
rc_of svc reload-config
check "reload-config of an invalid file exits 1" test "$RC" -eq 1
check "the reply names file:line:column" grep -qF -- "$want" "$T_TMP/out"
check "the reply says the old configuration stays" grep -q "still running on the previous configuration" "$T_TMP/out"
check "the log has the error" grep -qF -- "reload-config: $want" "$T_TMP/switchyardd.log"
check "nothing was applied" test "$(reloads)" = 0
check "every name is still served" sv_load --threads 2 --duration 1

# 2. A restart-only key.
sed 's|^supervisor:$|supervisor:\n  filter_guard: true|' "$BASE" >"$SV_CONF"
rc_of svc reload-config
check "a restart-only change exits 1" test "$RC" -eq 1
check "the refusal names the key" grep -q "refused: .* changes supervisor.filter_guard, which only a restart of switchyardd applies" "$T_TMP/out"
check "nothing was applied" test "$(reloads)" = 0
check "the log has the refusal" grep -q "reload-config: refused: .*supervisor.filter_guard" "$T_TMP/switchyardd.log"

# 3. A live key. Three of the ten files go: 30% of the names, more than
# the default share of 10%, so the guard refuses the reload.
mkdir -p "$T_TMP/gone"
for f in $(sed -n 8,10p "$SV_PKI/names.txt" | awk '{print $2}'); do
	mv "$SV_PKI/certs/$f" "$T_TMP/gone/"
done
# The names still served from here on.
awk 'NR < 8' "$SV_PKI/names.txt" >"$T_TMP/names7.txt"
cp "$BASE" "$SV_CONF"
rc_of svc reload
check "the guard refuses to lose 3 of 10 names (exit 7)" test "$RC" -eq 7
printf 'certsync:\n  mass_delete_percent: 50\n' | cat "$BASE" - >"$SV_CONF"
rc_of svc reload-config
check "reload-config applies the share" test "$RC" -eq 0
check "it lists the key as live" grep -qx "changed certsync.mass_delete_percent (live)" "$T_TMP/out"
check "status counts the reload" test "$(reloads)" = 1
rc_of svc reload
check "the same reload now passes (30% < 50%)" test "$RC" -eq 0
cp "$SV_CONF" "$BASE"

# 4. certificates.directory: the seven names left, reissued into certs2.
NEW=$T_TMP/certs2
mkdir -p "$NEW"
while read -r name file; do
	[ -f "$SV_PKI/certs/$file" ] || continue
	"$SY_BUILD/tests/tools/gencerts" --out "$SV_PKI" --one "$name" --file "$NEW/$file" >/dev/null ||
		fail "gencerts --one $name"
done <"$SV_PKI/names.txt"
read -r NAME FILE < <(sed -n 1p "$SV_PKI/names.txt")
want_hash=$(openssl x509 -in "$NEW/$FILE" -outform DER | sha256sum | cut -d' ' -f1)
cur=$(sv_served "$NAME") && [ "$cur" != "$want_hash" ] || fail "$NAME is not served, or already serves the new certificate"
old=$(sv_status .live)
say "one keep-alive connection to $old, a request every 100 ms until stopped"
sv_load_bg "$T_TMP/long.json" "$T_TMP/long.err" --threads 1 --long 100 --duration 300 --json \
	--names "$T_TMP/names7.txt"
wait_until 30 sh -c "[ \$($SY_BUILD/switchyard -c $SV_CONF status --json | jq '[.instances[].active] | add') -ge 1 ]" ||
	fail "the long-lived connection did not show up"
sed "s|^  directory: .*|  directory: $NEW|" "$BASE" >"$SV_CONF"
# Before reload-config, a reload would restart the standby on the new file
# while the supervisor runs on the old one: refused, with what to do.
rc_of svc reload --no-flip
check "reload before reload-config is refused" test "$RC" -eq 1
check "it says to run reload-config first" grep -q "changed since switchyardd read it (certificates.directory): run \`switchyard reload-config\` first" "$T_TMP/out"
rc_of svc reload-config
check "reload-config accepts the new directory" test "$RC" -eq 0
check "it lists the key as flip" grep -qx "changed certificates.directory (flip)" "$T_TMP/out"
check "it says a reload is needed" grep -q "next \`switchyard reload\`" "$T_TMP/out"
cur=$(sv_served "$NAME")
check "the live instance still serves the old certificate" test -n "$cur" -a "$cur" != "$want_hash"
rc_of svc reload --no-flip
check "reload --no-flip loads the new directory" test "$RC" -eq 0
rc_of svc flip
check "the flip passes the gate and the guard" test "$RC" -eq 0
check "$NAME serves the certificate from the new directory" test "$(sv_served "$NAME")" = "$want_hash"
new=$(sv_status .live)
check "the live instance changed" test "$new" != "$old"
check "status shows the new directory" test "$(sv_status ".instances[] | select(.colour == \"$new\") | .directory")" = "$NEW"
bytes_in() { px_get "$T_TMP/state/$old.sock" stats bytes_in; }
bytes_above() { [ "$(bytes_in)" -gt "$1" ]; }
b=$(bytes_in)
check "the connection opened before still exchanges data with $old" wait_until 20 bytes_above "$b"
kill -TERM "$LOAD"
wait "$LOAD" || { cat "$T_TMP/long.err"; fail "the long-lived connection failed: $(cat "$T_TMP/long.json")"; }
check "the long-lived connection saw no failure" jq -e '.failed == 0' "$T_TMP/long.json"
cp "$SV_CONF" "$BASE"

# 5. SIGHUP.
n=$(reloads)
sed 's/^  threads: 2$/  threads: many/' "$BASE" >"$SV_CONF"
kill -HUP "$SV_PID"
check "SIGHUP with an invalid file logs file:line:column" \
	wait_until 30 grep -qF -- "reload-config: $SV_CONF:$line:12: key 'proxy.threads'" "$T_TMP/switchyardd.log"
check "switchyardd survives it" kill -0 "$SV_PID"
check "nothing was applied" test "$(reloads)" = "$n"
sed 's|^supervisor:$|supervisor:\n  health_gate: {sample: 5}|' "$BASE" | sed '/^  health_gate: {sample: 100}$/d' >"$SV_CONF"
grep -q "sample: 5" "$SV_CONF" || fail "could not set health_gate.sample"
kill -HUP "$SV_PID"
reloads_is() { [ "$(reloads)" = "$1" ]; }
check "SIGHUP applies a valid change" wait_until 30 reloads_is $((n + 1))
# After SIGHUP the count moves (status) before the change is logged.
check "the log names the key" \
	wait_until 10 grep -q "reload-config: applied now: supervisor.health_gate.sample" "$T_TMP/switchyardd.log"
check "still serving" sv_load --threads 2 --duration 1 --names "$T_TMP/names7.txt"
say "PASS"
