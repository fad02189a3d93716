#!/bin/sh
# otpgate preremove (deb prerm, rpm %preun). On removal (not upgrade) stop
# otpgated; on an rpm erase also disable it (a deb's enablement is handled
# by deb-systemd-helper in postremove, so a reinstall restores it). Must not
# fail where systemd is not PID 1.
set -e

case $1 in
remove | 0) ;;
*) exit 0 ;; # upgrade, deconfigure, failed-upgrade; rpm 1 = upgrade
esac

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl stop otpgated.service || true
fi
if [ "$1" = 0 ] || ! command -v deb-systemd-helper >/dev/null 2>&1; then
	if command -v systemctl >/dev/null 2>&1; then
		systemctl --no-reload disable otpgated.service >/dev/null 2>&1 || true
	fi
fi
exit 0
