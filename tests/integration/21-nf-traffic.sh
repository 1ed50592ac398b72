#!/bin/bash
# netfilter traffic: over IPv4 and IPv6, through PREROUTING (a client in a
# second namespace over a veth pair) and through OUTPUT (this namespace's own
# clients), an established connection stays on the old instance port after a
# flip and keeps exchanging data, while new connections land on the new port.
# The OUTPUT jump never captures connections to other hosts on the same port.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-nf.sh"
nf_two_hosts -l "0.0.0.0,443,8443,9443" -l "198.18.0.1,80,8080,9080" -l "::,443,8444,9444" -l "fd00::1,80,8081,9081"

check "install blue" nf install blue

# Before the flip: every path lands on blue.
declare -A OLD
open_expect remote 198.18.0.1 443 8443
OLD[r4a]=$ID
open_expect remote 198.18.0.1 80 8080
OLD[r4s]=$ID
open_expect remote fd00::1 443 8444
OLD[r6a]=$ID
open_expect remote fd00::1 80 8081
OLD[r6s]=$ID
open_expect local 127.0.0.1 443 8443
OLD[l4a]=$ID
open_expect local 198.18.0.1 443 8443
OLD[l4b]=$ID
open_expect local 198.18.0.1 80 8080
OLD[l4s]=$ID
open_expect local ::1 443 8444
OLD[l6a]=$ID
open_expect local fd00::1 80 8081
OLD[l6s]=$ID

# The OUTPUT jumps must not capture this host's connections to other hosts
# on the service ports: they reach the remote servers, which answer with the
# service port itself.
open_expect local 198.18.0.2 443 443
open_expect local 198.18.0.2 80 80
open_expect local fd00::2 443 443
open_expect local fd00::2 80 80

check "flip green" nf flip green

# Established connections stay where they were and keep exchanging data.
talk_expect remote "${OLD[r4a]}" 8443
talk_expect remote "${OLD[r4s]}" 8080
talk_expect remote "${OLD[r6a]}" 8444
talk_expect remote "${OLD[r6s]}" 8081
talk_expect local "${OLD[l4a]}" 8443
talk_expect local "${OLD[l4b]}" 8443
talk_expect local "${OLD[l4s]}" 8080
talk_expect local "${OLD[l6a]}" 8444
talk_expect local "${OLD[l6s]}" 8081

# New connections land on green.
declare -A NEW
open_expect remote 198.18.0.1 443 9443
NEW[r4a]=$ID
open_expect remote fd00::1 80 9081
NEW[r6s]=$ID
open_expect local 127.0.0.1 443 9443
NEW[l4a]=$ID
open_expect local ::1 443 9444
NEW[l6a]=$ID
open_expect remote 198.18.0.1 80 9080
open_expect remote fd00::1 443 9444
open_expect local fd00::1 80 9081
open_expect local 198.18.0.2 443 443

# Rollback is one more flip: blue again for new connections, while both
# generations of established connections keep their instance.
check "flip back to blue" nf flip blue
open_expect remote 198.18.0.1 443 8443
open_expect remote fd00::1 443 8444
open_expect local ::1 443 8444
talk_expect remote "${NEW[r4a]}" 9443
talk_expect remote "${NEW[r6s]}" 9081
talk_expect local "${NEW[l4a]}" 9443
talk_expect local "${NEW[l6a]}" 9444
talk_expect remote "${OLD[r4a]}" 8443
talk_expect local "${OLD[l6a]}" 8444
exit 0
