#!/bin/sh
# Installs every Debian package that Switchyard's build, tests, demo and
# benchmarks need. It is idempotent and prints nothing when nothing is missing,
# so make targets and .ci/run can call it unconditionally.
set -eu

PKGS="build-essential pkg-config libssl-dev openssl libiptc-dev libip4tc-dev \
libip6tc-dev libnl-3-dev libnl-nf-3-dev libyaml-dev libjansson-dev libcmocka-dev \
iptables conntrack iproute2 curl haproxy nginx-light \
libnetfilter-conntrack-dev clang-format python3 procps psmisc util-linux jq \
clang libclang-rt-14-dev libnftnl-dev libmnl-dev nftables prometheus strace"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing" >&2
	echo "install-deps: run this script as root (or install them yourself)" >&2
	exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# nginx and haproxy are used only as test peers started by the tests
# themselves; keep their packaged services from starting on port 80.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
