#!/bin/bash
# A one-file change costs one file: certsync publishes a set as an index
# (names and content-addressed blobs), and an instance that holds the
# previous set reloads the new one by reading the index and opening only the
# blob that changed. strace follows the instance through the reload and
# records every certificate file it opens or stats: of the 2,000, only the
# changed one's blob may appear; certsync itself, also traced, opens only
# the changed file and links none (it validates the new set directory, which
# holds only that file). The same set copied into a plain directory
# (no index) is then loaded the old way, file by file, and must still be
# right.
. "$(dirname "$0")/lib.sh"
. "$SY_ROOT/tests/tools/px_lib.sh"
require_root
[ -x "$PX_BIN" ] || skip "switchyard-proxy not built"
command -v strace >/dev/null || skip "strace is not installed"
SY=$SY_BUILD/switchyard

px_ns
px_certs 2000
px_backend
SRC=$CERTDIR
CERTDIR=$T_TMP/certsync/current
px_config "$T_TMP/px.yaml"
printf 'certsync:\n  source: {directory: %s}\n' "$SRC" >>"$T_TMP/px.yaml"
"$SY" certsync -c "$T_TMP/px.yaml" --no-reload >/dev/null || fail "first certsync"
px_start blue "$T_TMP/px.yaml"
STATE_BLOBS=$T_TMP/certsync/blobs

# renew NAME FILE: a new certificate for NAME in the source, and a set.
renew() {
	rm -f "$SRC/$2"
	"$PX_TOOLS/gencerts" --out "$T_TMP/pki" --one "$1" --file "$SRC/$2" >/dev/null ||
		fail "gencerts --one $1"
	# certsync itself, traced: it may stat every source file, but open
	# and link only the changed one. (LeakSanitizer cannot run under
	# ptrace, so an ASan build skips its leak check for this one run.)
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -e trace=open,openat,link,linkat,symlink,symlinkat -o "$T_TMP/cs.strace" \
		"$SY" certsync -c "$T_TMP/px.yaml" --no-reload >"$T_TMP/cs.out" || {
		cat "$T_TMP/cs.out"
		fail "certsync after renewing $2"
	}
	SET=$(readlink -f "$CERTDIR")
	WANT=$(openssl x509 -in "$SRC/$2" -outform DER | sha256sum | cut -d' ' -f1)
}

# traced_reload: reload-certs of $SET with strace attached to the
# instance; leaves the certificate file names it touched in $T_TMP/touched.
traced_reload() {
	rm -f "$T_TMP/strace.out" "$T_TMP/strace.err"
	strace -f -p "$PX_PID" -e trace=open,openat,stat,lstat,newfstatat,statx \
		-o "$T_TMP/strace.out" 2>"$T_TMP/strace.err" &
	local st=$!
	# strace says "Process N attached with M threads" once it traces every
	# thread of the instance.
	attached() { grep -q attached "$T_TMP/strace.err"; }
	wait_for 20 attached || fail "strace did not attach to the instance"
	R=$(px_ctl "$T_TMP/blue.sock" "reload-certs $SET")
	kill "$st"
	wait "$st" 2>/dev/null
	grep -oE '"[^"/]*\.(pem|crt|key)"' "$T_TMP/strace.out" | sort -u >"$T_TMP/touched"
}

read -r name file < <(sed -n 7p "$T_TMP/pki/names.txt")
renew "$name" "$file"
check "the new set's index names a blob for $file" set_file "$SET" "$file"
check "the set directory holds no certificate file" test -z "$(ls "$SET")"
BLOB=$(basename "$(set_file "$SET" "$file")")
grep -oE '"[^"]*\.(pem|crt|key)"' "$T_TMP/cs.strace" | sed 's|.*/||; s|"||g' | sort -u >"$T_TMP/cs.files"
say "certificate files certsync opened: $(tr '\n' ' ' <"$T_TMP/cs.files")"
check "certsync opened only $file (source, new set, validation)" test "$(cat "$T_TMP/cs.files")" = "$file"
# (The one symlink is `current`, pointed at the new set.)
grep -E '^[0-9]+ +(link|linkat)\(' "$T_TMP/cs.strace" >"$T_TMP/cs.links" || true
check "certsync linked no file (it validated $file in the new set)" \
	test ! -s "$T_TMP/cs.links"
check "the trace saw the symlink of current (so a link would show)" grep -qE "^[0-9]+ +symlink(at)?\\(" "$T_TMP/cs.strace"
traced_reload
check "reload-certs ok" grep -q '"ok":true' <<<"$R"
check "the renewed certificate of $name is served" \
	test "$(px_get "$T_TMP/blue.sock" "cert $name" sha256)" = "$WANT"
say "files touched by the reload: $(wc -l <"$T_TMP/touched"): $(head -5 "$T_TMP/touched" | tr '\n' ' ')"
check "the reload touched only $file's blob" test "$(cat "$T_TMP/touched")" = "\"$BLOB\""

# The same kind of set as a plain directory (a copy made by hand, no index):
# every file is looked at again, and the result is the same.
read -r name file < <(sed -n 8p "$T_TMP/pki/names.txt")
renew "$name" "$file"
PLAIN=$T_TMP/plain
mkdir "$PLAIN"
tail -n +2 "$SET/.switchyard-set" | while read -r f b; do
	cp "$STATE_BLOBS/$b" "$PLAIN/$f"
done
SET=$PLAIN
traced_reload
check "reload-certs of a plain directory ok" grep -q '"ok":true' <<<"$R"
check "from a plain directory, the renewed certificate of $name is served" \
	test "$(px_get "$T_TMP/blue.sock" "cert $name" sha256)" = "$WANT"
check "from a plain directory, every file is looked at" \
	test "$(wc -l <"$T_TMP/touched")" -ge 2000
say "all index-set checks passed"
