#!/bin/bash
# The access log escapes the SNI name: it is the client's bytes, and a name
# holding a newline once wrote a second, forged access line. A ClientHello is
# built by hand (tests/tools/hostile.py), since TLS libraries refuse to send
# such names, with a newline, a carriage return, NUL, ESC, spaces, quotes and
# a backslash in server_name; the connection must leave exactly one access
# line, with every such byte as \xHH (backslash and quote as \\ and \").
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"

px_ns
px_certs 2
px_backend
px_config "$T_TMP/a.yaml"
LOG=$T_TMP/proxy.log
PX_LOG=$LOG px_start blue "$T_TMP/a.yaml"

SNI='evil.example
proxy[blue]: info: access client=6.6.6.6:1 sni=forged listener=https backend=- in=0 out=0 ms=0 end=done'$'\r\x1b''[31m "q"\'
# NUL cannot live in a shell string: appended as hex.
HEX=$(printf '%s' "$SNI" | od -An -tx1 -v | tr -d ' \n')00
# The expected form, computed independently of the proxy's code.
WANT=$($PYTHON -c '
import sys
out = []
for b in bytes.fromhex(sys.argv[1]):
    if b in (0x5c, 0x22):
        out.append("\\" + chr(b))
    elif 0x20 < b < 0x7f:
        out.append(chr(b))
    else:
        out.append("\\x%02x" % b)
print("".join(out))' "$HEX")
say "escaped SNI: $WANT"

# The only connection of this test: exactly one access line must follow.
r=$(in_ns $PYTHON "$SY_ROOT/tests/tools/hostile.py" hello 127.0.0.1 8443 --sni-hex "$HEX")
say "server answered: $r"
acc() { grep -F "access client=127.0.0.1:" "$LOG"; }
check "the connection's access line is written" wait_for 10 acc
say "log lines mentioning a client:"
grep -F "client=" "$LOG"
check "exactly one line mentions a client" test "$(grep -cF "client=" "$LOG")" -eq 1
check "no forged access line" bash -c "! grep -Eq '^([0-9TZ:.-]+ )?proxy\[blue\]: info: access client=6.6.6.6' $LOG"
check "no raw control byte in the log" bash -c "! grep -qP '[\x00-\x08\x0b-\x1f\x7f]' $LOG"
check "the SNI field is the escaped name" grep -qF " sni=$WANT listener=https " <(acc)
check "counted as an unknown name" test "$(px_get "$T_TMP/blue.sock" stats unknown_sni)" -ge 1
say "PASS"
