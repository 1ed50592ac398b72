# Two-host setup shared by the netfilter traffic tests (21, 23, 25). Sourced
# after lib.sh; not a test itself (not executable, no NN- prefix).
#
# nf_two_hosts NFCTL-LISTENER-ARGS...: a server namespace $SRV (the "proxy
# host", 198.18.0.1 / fd00::1) and a client namespace $CLI (198.18.0.2 /
# fd00::2) joined by a veth pair; nfecho servers on every instance port in
# $SRV and on the service ports in $CLI (the "other hosts"); two interactive
# clients driven through FIFOs on fds 3-6. The arguments are nfctl's listener
# options, e.g. -l "0.0.0.0,443,8443,9443"; nf() runs nfctl with them.

nf_two_hosts() {
	require_root
	nf_backend_require
	NFCTL=$SY_BUILD/tests/tools/nfctl
	ECHO=$SY_BUILD/tests/tools/nfecho
	[ -x "$NFCTL" ] && [ -x "$ECHO" ] || fail "missing test tools (build first)"
	export XTABLES_LOCKFILE=$T_TMP/xtables.lock

	SRV=$(netns_new srv)
	CLI=$(netns_new cli)
	ip link add sy-v0-$$ netns "$SRV" type veth peer name sy-v1-$$ netns "$CLI" || fail "veth"
	ip -n "$SRV" link set sy-v0-$$ up
	ip -n "$CLI" link set sy-v1-$$ up
	ip -n "$SRV" addr add 198.18.0.1/24 dev sy-v0-$$
	ip -n "$CLI" addr add 198.18.0.2/24 dev sy-v1-$$
	ip -n "$SRV" addr add fd00::1/64 dev sy-v0-$$ nodad
	ip -n "$CLI" addr add fd00::2/64 dev sy-v1-$$ nodad

	L=("$@")
	nf() { ip netns exec "$SRV" "$NFCTL" "${L[@]}" "$@"; }

	# The instances: one server answering on every instance port. The client
	# namespace runs the "other hosts" on the service ports themselves.
	bg ip netns exec "$SRV" "$ECHO" serve 8443 9443 8080 9080 8444 9444 8081 9081
	bg ip netns exec "$CLI" "$ECHO" serve 443 80
	wait_port "$SRV" 9081 || fail "instance server did not start"
	wait_port "$CLI" 80 || fail "remote server did not start"

	# Two interactive clients, one per namespace, driven through FIFOs: fds 3/4
	# talk to the remote client (PREROUTING), 5/6 to the local one (OUTPUT).
	# Opening a FIFO read-write never blocks, so open our ends first.
	mkfifo "$T_TMP/ci" "$T_TMP/co" "$T_TMP/li" "$T_TMP/lo"
	exec 3<>"$T_TMP/ci" 4<>"$T_TMP/co" 5<>"$T_TMP/li" 6<>"$T_TMP/lo"
	# Not through bg(): bash gives a background command /dev/null as stdin unless
	# the command itself carries the redirection.
	ip netns exec "$CLI" "$ECHO" client <"$T_TMP/ci" >"$T_TMP/co" &
	T_PIDS+=($!)
	ip netns exec "$SRV" "$ECHO" client <"$T_TMP/li" >"$T_TMP/lo" &
	T_PIDS+=($!)
}

# ask remote|local COMMAND: the client's one-line answer goes to $REPLY_LINE.
ask() {
	REPLY_LINE=
	if [ "$1" = remote ]; then
		echo "$2" >&3
		read -r -t 10 REPLY_LINE <&4
	else
		echo "$2" >&5
		read -r -t 10 REPLY_LINE <&6
	fi
}
# open_expect WHO ADDR PORT INSTANCE_PORT: opens a connection that must land
# on INSTANCE_PORT; its id is left in $ID. (Not a command substitution: fail()
# must end the test, not a subshell.)
open_expect() {
	local out got
	ask "$1" "open $2 $3"
	out=$REPLY_LINE
	read -r _ ID got <<<"$out"
	[ "${out%% *}" = ok ] && [ "$got" = "$4" ] ||
		fail "$1 connection to [$2]:$3 should land on $4, got: $out"
	say "ok: $1 [$2]:$3 -> $4"
}
# talk_expect WHO ID INSTANCE_PORT: one round trip that must be answered by
# INSTANCE_PORT.
talk_expect() {
	local out
	ask "$1" "send $2 ping$2"
	out=$REPLY_LINE
	[ "$out" = "ok $3 ping$2" ] || fail "$1 connection $2 should still talk to $3, got: $out"
	say "ok: $1 connection $2 still on $3"
}
