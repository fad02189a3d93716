#!/bin/sh
# otpgate postinstall (deb postinst "configure", rpm %post 1|2).
# Creates the otpgate system user and /var/lib/otpgate, tightens the modes of
# the configuration files, and registers the unit with systemd when it runs.
# Must not fail where systemd is not PID 1 (containers, CI).
set -e

# Debian: "configure" [old-version]; other deb actions (abort-*) do nothing.
# RPM: 1 = first install, 2+ = upgrade.
action=$1
old=${2:-}
case $action in
configure)
	if [ -n "$old" ]; then upgrade=1; else upgrade=0; fi ;;
[0-9]*)
	if [ "$action" -ge 2 ]; then upgrade=1; else upgrade=0; fi ;;
*)
	exit 0 ;;
esac

# 1. The system user (kept on remove and purge, as Debian does).
if ! getent passwd otpgate >/dev/null 2>&1; then
	if command -v systemd-sysusers >/dev/null 2>&1 && [ -f /usr/lib/sysusers.d/otpgate.conf ]; then
		systemd-sysusers /usr/lib/sysusers.d/otpgate.conf
	elif [ -f /etc/debian_version ] && command -v adduser >/dev/null 2>&1; then
		adduser --system --group --home /var/lib/otpgate --no-create-home --quiet otpgate
	else
		useradd --system --user-group --home-dir /var/lib/otpgate --no-create-home \
			--shell /usr/sbin/nologin --comment "otpgate RADIUS server" otpgate
	fi
fi

# 2. State: the database and the seed key live here; only otpgated reads it.
# Not recursive: files inside are the daemon's and already its own.
mkdir -p /var/lib/otpgate
chown otpgate:otpgate /var/lib/otpgate
chmod 0700 /var/lib/otpgate

# 3. Configuration. radiusd.toml holds client secrets: root writes it, the
# daemon's group reads it. pam.toml holds otpgate-pam's shared secret and is
# read by root only (otpgate-pam runs as root under pam_exec).
if [ -d /etc/otpgate ]; then
	chown root:root /etc/otpgate
	chmod 0755 /etc/otpgate
fi
if [ -f /etc/otpgate/radiusd.toml ]; then
	chown root:otpgate /etc/otpgate/radiusd.toml
	chmod 0640 /etc/otpgate/radiusd.toml
fi
if [ -f /etc/otpgate/pam.toml ]; then
	chown root:root /etc/otpgate/pam.toml
	chmod 0600 /etc/otpgate/pam.toml
fi

# 4. Create the database and the seed key now, as otpgate. Otherwise the
# first `otpgate` command run by root while otpgated is stopped would create
# them owned by root, and otpgated (user otpgate) could not open them.
if [ ! -e /var/lib/otpgate/otpgate.db ] && command -v setpriv >/dev/null 2>&1; then
	(cd / && setpriv --reuid=otpgate --regid=otpgate --init-groups -- \
		/usr/sbin/otpgate -config /etc/otpgate/radiusd.toml user list >/dev/null 2>&1) ||
		echo "otpgate: could not create /var/lib/otpgate/otpgate.db; start otpgated before using otpgate" >&2
fi

# 5. systemd. Enabling only writes symlinks, so it also works where systemd
# is not running (a container image starts otpgated once it boots with
# systemd). Everything that talks to the manager needs systemd as PID 1.
# Debian: deb-systemd-helper, as dh_installsystemd does: enable on the first
# install and on a reinstall after `dpkg -r`, but keep an admin's
# `systemctl disable` across upgrades.
if command -v deb-systemd-helper >/dev/null 2>&1; then
	deb-systemd-helper unmask otpgated.service >/dev/null 2>&1 || true
	if deb-systemd-helper --quiet was-enabled otpgated.service; then
		deb-systemd-helper enable otpgated.service >/dev/null 2>&1 || true
	else
		deb-systemd-helper update-state otpgated.service >/dev/null 2>&1 || true
	fi
elif [ "$upgrade" = 0 ] && command -v systemctl >/dev/null 2>&1; then
	systemctl enable otpgated.service >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
	if systemctl --quiet is-enabled otpgated.service; then
		# First install: start (it answers nobody until a [[client]] is
		# added). Upgrade, or reinstall after `dpkg -r`: restart.
		if [ "$upgrade" = 1 ]; then action=restart; else action=start; fi
		systemctl "$action" otpgated.service ||
			echo "otpgate: otpgated did not $action; see: journalctl -u otpgated" >&2
	else
		# Disabled by the admin: only restart it if it runs anyway.
		systemctl try-restart otpgated.service || true
	fi
fi

if [ "$upgrade" = 0 ]; then
	cat <<'MSG'
otpgate installed. Next steps:
  1. add a [[client]] (your VPN or portal) to /etc/otpgate/radiusd.toml
  2. systemctl reload otpgated
  3. otpgate user add NAME   and   otpgate enroll NAME
See otpgated(8) and otpgate(8).
MSG
fi
exit 0
