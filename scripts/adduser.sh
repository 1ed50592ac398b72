#!/bin/sh
# scripts/adduser.sh [NAME]: creates the system user and group the proxy
# instances run as (proxy.user, proxy.group), NAME defaulting to switchyard,
# the Debian way: a system account with a group of the same name, home
# /var/lib/switchyard (not created here: make install and systemd's
# StateDirectory= make it), no login shell, no password. Does nothing when
# the user exists already. `make install` runs it when installing as root
# into the real system (no DESTDIR); README.md gives the same commands.
set -eu
name=${1:-switchyard}
if getent passwd "$name" >/dev/null; then
	exit 0
fi
if command -v adduser >/dev/null && adduser --help 2>&1 | grep -q -- --system; then
	# Debian's adduser: --group makes the group of the same name.
	adduser --quiet --system --group --home /var/lib/switchyard --no-create-home \
		--shell /usr/sbin/nologin --gecos "Switchyard TLS proxy" "$name"
else
	getent group "$name" >/dev/null || groupadd --system "$name"
	useradd --system --gid "$name" --home-dir /var/lib/switchyard --no-create-home \
		--shell /usr/sbin/nologin --comment "Switchyard TLS proxy" "$name"
fi
echo "created system user and group $name"
