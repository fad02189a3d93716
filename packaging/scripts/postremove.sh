#!/bin/sh
# otpgate postremove (deb postrm, rpm %postun).
#   remove: keep /var/lib/otpgate (users, seeds, key) and the otpgate user;
#           deb-systemd-helper masks the unit while its file is gone.
#   purge (deb only): delete /var/lib/otpgate, /var/log/otpgate and
#           /run/otpgate and forget the unit's enablement; keep the otpgate
#           user (Debian practice: its uid may still own files elsewhere,
#           e.g. backups).
# RPM has no purge: an erase keeps the data like a deb remove.
set -e

case $1 in
remove)
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper mask otpgated.service >/dev/null 2>&1 || true
	fi
	;;
purge)
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper purge otpgated.service >/dev/null 2>&1 || true
		deb-systemd-helper unmask otpgated.service >/dev/null 2>&1 || true
	fi
	rm -rf /var/lib/otpgate /var/log/otpgate /run/otpgate
	# dpkg removed the conffiles; admin-made files (secret files) stay.
	rmdir /etc/otpgate 2>/dev/null || true
	;;
esac

case $1 in
remove | purge | 0)
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		systemctl daemon-reload || true
	fi
	;;
esac
exit 0
