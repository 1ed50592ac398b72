#!/bin/bash
# Session ticket keys reach instances that dropped privileges (proxy.user).
# The state directory is 0750 root, as switchyardd creates it; the instances
# re-read the key file after each rotation, long after their drop, and got
# "Permission denied": rotation silently stopped. Now the supervisor lets the
# proxy's group search the state directory (0710) and writes the file 0640
# with that group. Proof: after two rotations the live instance issues
# tickets under the key the file names as the encrypting one (a ticket's
# first 16 bytes are its key's name), and the ticket resumes on the other
# instance after a flip. A failed re-read is loud: an error in the log, a
# count and the cause in status, a metric.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-sv.sh"
id -u nobody >/dev/null 2>&1 || skip "no user 'nobody'"
getent group nogroup >/dev/null || skip "no group 'nogroup'"

sv_setup 4
sed -i 's/^proxy:$/proxy:\n  user: nobody\n  group: nogroup/' "$SV_CONF"
chmod 711 "$T_TMP"
chmod 755 "$SV_PKI" "$SV_PKI/certs"
chmod 644 "$SV_PKI"/certs/*
# As switchyardd creates it on a real host.
chmod 750 "$T_TMP/state"
KEYS=$T_TMP/state/ticket.keys
sv_start
read -r NAME _ < <(sed -n 1p "$SV_PKI/names.txt")
check "the key file exists" wait_until 10 test -s "$KEYS"
say "state dir: $(stat -c '%A %U:%G' "$T_TMP/state"); key file: $(stat -c '%A %U:%G' "$KEYS")"

# rotate N: makes the key file look an interval old; the supervisor rotates
# it within a second and then tells both instances.
rotated() { [ "$(sv_status .tickets.rotations)" = "$1" ]; }
rotate() {
	touch -d '2 hours ago' "$KEYS"
	wait_until 20 rotated "$1"
}
check "rotation 1" rotate 1
check "rotation 2" rotate 2
say "after two rotations: $(svc status --json | jq -c .tickets)"
check "no ticket failure reported" test "$(sv_status .tickets.failures)" = 0
check "the key file is root's, group nogroup, 0640" test "$(stat -c '%a %U %G' "$KEYS")" = "640 root nogroup"

# The encrypting key is the second of three lines.
want=$(sed -n 2p "$KEYS" | base64 -d | head -c 16 | od -An -tx1 -v | tr -d ' \n')
sv_ns openssl s_client -tls1_2 -connect "$SV_ADDR:443" -servername "$NAME" \
	-CAfile "$SV_PKI/ca.pem" -sess_out "$T_TMP/sess" </dev/null >/dev/null 2>&1
got=$(openssl sess_id -in "$T_TMP/sess" -text -noout |
	awk '/TLS session ticket:/ {getline; print}' | sed 's/^ *0000 - //; s/   .*//; s/[- ]//g')
say "ticket key name: $got; the file's encrypting key: $want"
check "the live instance encrypts with the rotated key" test -n "$got" -a "$got" = "$want"
live=$(sv_status .live)
check "flip" svc flip
sv_flipped_from "$live" || fail "no flip"
out=$(sv_ns openssl s_client -tls1_2 -connect "$SV_ADDR:443" -servername "$NAME" \
	-CAfile "$SV_PKI/ca.pem" -sess_in "$T_TMP/sess" </dev/null 2>&1)
check "the ticket resumes on the other instance" grep -q "^Reused" <<<"$out"

# A re-read that fails is loud.
chmod 700 "$T_TMP/state"
check "rotation 3 (state directory closed to the proxy)" rotate 3
say "status: $(svc status --json | jq -c .tickets)"
check "status counts the failures" test "$(sv_status .tickets.failures)" -ge 1
check "status names the cause" grep -q 'did not take the new keys: .*Permission denied' <<<"$(sv_status .tickets.error)"
check "the log has an error" grep -q "error: ticket keys: .* did not take the new keys" "$T_TMP/switchyardd.log"
check "the metric counts them" grep -Eq '^switchyard_ticket_failures_total [1-9]' <<<"$(svc metrics)"
chmod 710 "$T_TMP/state"
check "rotation 4 (open again)" rotate 4
check "the error clears once both instances took the keys" test "$(sv_status .tickets.error)" = null
say "PASS"
