#!/bin/bash
# `make demo` runs in CI: scripts/demo.sh must finish successfully, with
# every TLS connection verified and none failed across the reload.
. "$(dirname "$0")/lib.sh"
require_root
command -v iptables-legacy >/dev/null || skip "iptables-legacy is not installed"
[ -x "$SY_BUILD/switchyardd" ] || skip "switchyardd is not built"
"$SY_ROOT/scripts/demo.sh" "$SY_BUILD" >"$T_TMP/demo.out" 2>&1
rc=$?
cat "$T_TMP/demo.out"
[ "$rc" -eq 0 ] || fail "scripts/demo.sh exited $rc"
grep -q "demo: done" "$T_TMP/demo.out" || fail "the demo did not finish"
grep -q " 0 failed" "$T_TMP/demo.out" || fail "the demo's clients saw failures"
grep -q "flip: .* -> " "$T_TMP/demo.out" || fail "the reload did not flip"
say "ok: make demo works"
