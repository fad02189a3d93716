#!/usr/bin/env bash
# packaging/test-install.sh DEB [RPM]: install the otpgate .deb on this
# machine and test what got installed, the way an admin would use it.
#
# Run by `make package-test` (after `make package`) as root, on a machine
# where systemd need not be PID 1 (CI). It CHANGES THE MACHINE: installs
# test tools with apt-get, installs otpgate (creating the otpgate user,
# which stays), runs otpgated on UDP port 1812, and purges otpgate at the
# end. Steps:
#
#   1. dpkg -i; every installed path has the owner, group and mode of the
#      table below, and no file is missing from the table
#   2. systemd-analyze verify and security of the unit
#   3. otpgated -check, then otpgated run as the unit runs it (user
#      otpgate, no capabilities, umask 0077) on the packaged radiusd.toml
#      plus a [[client]] for 127.0.0.1
#   4. otpgate user add (before and while otpgated runs), import of a
#      google-authenticator file; pamtester through the installed
#      /etc/pam.d/otpgate and otpgate-pam; radclient:
#      Accept with password+code, Reject for a wrong code, a reused code
#      and an unenrolled user; otpgate backup
#   5. dpkg -i again (upgrade path) and dpkg -r: data, key and user kept;
#      dpkg -i: the user still logs in with the next code, the old code is
#      still refused
#   6. dpkg -P: /var/lib/otpgate and /etc/otpgate gone, the user kept
#   7. the .rpm (when given): file modes, config files, scripts
set -Eeuo pipefail

DEB=${1:?usage: test-install.sh DEB [RPM]}
RPM=${2:-}

# path owner group mode: every path the package installs, and the state
# postinstall creates.
INSTALLED_TABLE='
/usr/sbin/otpgated                                        root    root    0755
/usr/sbin/otpgate                                         root    root    0755
/usr/sbin/otpgate-pam                                     root    root    0755
/usr/lib/systemd/system/otpgated.service                  root    root    0644
/usr/lib/sysusers.d/otpgate.conf                          root    root    0644
/usr/lib/tmpfiles.d/otpgate.conf                          root    root    0644
/etc/otpgate                                              root    root    0755
/etc/otpgate/radiusd.toml                                 root    otpgate 0640
/etc/otpgate/pam.toml                                     root    root    0600
/etc/pam.d/otpgate                                        root    root    0644
/etc/pam.d/otpgate-radius                                 root    root    0644
/usr/share/doc/otpgate/examples/radiusd.toml              root    root    0644
/usr/share/doc/otpgate/examples/pam_radius_auth.conf      root    root    0644
/usr/share/doc/otpgate/examples/sshd_config.d/otpgate.conf root   root    0644
/usr/share/man/man8/otpgated.8.gz                         root    root    0644
/usr/share/man/man8/otpgate.8.gz                          root    root    0644
/usr/share/man/man8/otpgate-pam.8.gz                      root    root    0644
/var/lib/otpgate                                          otpgate otpgate 0700
'
# The database and key postinstall creates (as otpgate), and what a
# running otpgated adds.
STATE_TABLE='
/var/lib/otpgate/otpgate.db                               otpgate otpgate 0600
/var/lib/otpgate/seed.key                                 otpgate otpgate 0600
'
RUNTIME_TABLE="$STATE_TABLE"'
/run/otpgate                                              otpgate otpgate 0755
/run/otpgate/control.sock                                 otpgate otpgate 0600
'
CONFFILES='/etc/otpgate/radiusd.toml /etc/otpgate/pam.toml /etc/pam.d/otpgate /etc/pam.d/otpgate-radius'

CONFIG=/etc/otpgate/radiusd.toml
SOCKET=/run/otpgate/control.sock
PASSWORD='correct horse battery'
WORK=$(mktemp -d /tmp/otpgate-install-test.XXXXXX)
LOG=$WORK/otpgated.log
DAEMON_PID=""
passed=0
failed=0

say() { printf '== %s\n' "$*"; }
ok() {
	passed=$((passed + 1))
	printf 'ok   %s\n' "$*"
}
bad() {
	failed=$((failed + 1))
	printf 'FAIL %s\n' "$*"
}
# check DESCRIPTION COMMAND...: one test result from a command's status.
check() {
	local what=$1
	shift
	if "$@" >/dev/null; then ok "$what"; else bad "$what"; fi
}
die() {
	bad "$*"
	finish
}

stop_daemon() {
	[ -n "$DAEMON_PID" ] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null || true
	local status=0
	wait "$DAEMON_PID" || status=$?
	DAEMON_PID=""
	return "$status"
}

finish() {
	stop_daemon || true
	rm -f /etc/pam.d/otpgate-install-test
	if dpkg-query -W -f='${Status}' otpgate 2>/dev/null | grep -q 'install\|config-files'; then
		dpkg -P otpgate >/dev/null 2>&1 || true
	fi
	if [ "$failed" -gt 0 ] && [ -s "$LOG" ]; then
		echo "--- otpgated log (last 40 lines)"
		tail -n 40 "$LOG"
	fi
	rm -rf "$WORK"
	echo "package install test: $passed passed, $failed failed"
	[ "$failed" -eq 0 ] && exit 0
	exit 1
}
trap 'bad "unexpected error on line $LINENO"; finish' ERR

# ---------------------------------------------------------------- 0. setup
DEB=$(realpath "$DEB")
[ -z "$RPM" ] || RPM=$(realpath "$RPM")
# The CLI uses /etc/otpgate/radiusd.toml before any ./radiusd.toml; run it
# where there is none anyway, as an admin would.
cd "$WORK"
[ "$(id -u)" = 0 ] || { echo "test-install.sh: run as root (it installs packages)" >&2; exit 2; }
[ -f "$DEB" ] || { echo "test-install.sh: no such file: $DEB" >&2; exit 2; }

need=""
command -v radclient >/dev/null || need="$need freeradius-utils"
command -v oathtool >/dev/null || need="$need oathtool"
command -v google-authenticator >/dev/null || need="$need libpam-google-authenticator"
command -v systemd-analyze >/dev/null || need="$need systemd"
command -v man >/dev/null || need="$need man-db"
command -v setpriv >/dev/null || need="$need util-linux"
command -v pamtester >/dev/null || need="$need pamtester"
if [ -n "$RPM" ] && ! command -v rpm >/dev/null; then need="$need rpm"; fi
if [ -n "$need" ]; then
	say "installing test tools:$need"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if dpkg-query -W -f='${Status}' otpgate 2>/dev/null | grep -q 'install\|config-files'; then
	say "purging an otpgate package left installed"
	dpkg -P otpgate >/dev/null
fi
if [ -e /var/lib/otpgate ] || [ -e /etc/otpgate ]; then
	if [ "${CI:-}" != true ]; then
		echo "test-install.sh: /var/lib/otpgate or /etc/otpgate exists without the package; refusing to touch it (CI=true overrides)" >&2
		exit 2
	fi
	rm -rf /var/lib/otpgate /etc/otpgate
fi
if command -v ss >/dev/null && ss -Hlun 'sport = :1812' | grep -q .; then
	die "UDP port 1812 is in use; the packaged config listens there"
fi

# check_table TABLE: every row's path exists with that owner, group, mode.
check_table() {
	local path owner group mode got
	while read -r path owner group mode; do
		[ -n "$path" ] || continue
		if [ ! -e "$path" ]; then
			bad "$path exists"
			continue
		fi
		got=$(stat -c '%U %G %a' "$path")
		got="${got% *} $(printf '%04o' "0${got##* }")"
		if [ "$got" = "$owner $group $mode" ]; then
			ok "$path $owner:$group $mode"
		else
			bad "$path is $got, want $owner $group $mode"
		fi
	done <<<"$1"
}

start_daemon() {
	# What systemd does for the unit: RuntimeDirectory=otpgate, then
	# User=otpgate, CapabilityBoundingSet=, NoNewPrivileges, UMask=0077.
	install -d -o otpgate -g otpgate -m 0755 /run/otpgate
	(
		umask 0077
		exec setpriv --reuid=otpgate --regid=otpgate --init-groups --no-new-privs \
			--inh-caps=-all --bounding-set=-all -- \
			/usr/sbin/otpgated -config "$CONFIG"
	) >>"$LOG" 2>&1 &
	DAEMON_PID=$!
	local i
	for i in $(seq 1 100); do
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			wait "$DAEMON_PID" || true
			DAEMON_PID=""
			bad "otpgated exited at start"
			return 1
		fi
		if [ -S "$SOCKET" ] && otpgate user list >/dev/null 2>&1; then
			ok "otpgated started as otpgate and answers on $SOCKET"
			return 0
		fi
		sleep 0.1
	done
	bad "otpgated did not answer on $SOCKET within 10 s"
	return 1
}

# radius USER PASSWORD: prints the reply code (Access-Accept, ...) of one
# Access-Request with Message-Authenticator, or "no-reply".
radius() {
	local out
	out=$(printf 'User-Name = "%s"\nUser-Password = "%s"\nMessage-Authenticator = 0x00\n' "$1" "$2" |
		radclient -x -t 8 -r 1 127.0.0.1:1812 auth "$SECRET" 2>&1) || true
	if [[ $out =~ Received\ (Access-[A-Za-z]+) ]]; then
		echo "${BASH_REMATCH[1]}"
	else
		echo no-reply
	fi
}
expect_reply() { # WHAT WANT USER PASSWORD
	local got
	got=$(radius "$3" "$4")
	if [ "$got" = "$2" ]; then ok "$1: $got"; else bad "$1: got $got, want $2"; fi
}

# code_at OFFSET_SECONDS [SEED]: the TOTP code for now + offset (alice's
# seed by default), by oathtool.
code_at() {
	oathtool --totp -b "${2:-$SEED}" --now "$(date -u -d "@$(($(date +%s) + $1))" '+%Y-%m-%d %H:%M:%S UTC')"
}

# new_user NAME: a google-authenticator file for NAME imported with the
# otpgate CLI, then a password; prints the base32 seed.
new_user() {
	google-authenticator -t -d -f -r 3 -R 30 -w 3 -Q NONE -q -C -e 5 -s "$WORK/$1.ga" >/dev/null
	check "otpgate import $1 (google-authenticator file)" \
		otpgate import "$WORK/$1.ga" --format google-authenticator --user "$1"
	check "otpgate user passwd $1 --password-stdin" \
		sh -c "echo '$PASSWORD' | otpgate user passwd $1 --password-stdin"
}

# ------------------------------------------------------------ 1. install
say "dpkg -i $DEB"
dpkg -i "$DEB" >"$WORK/dpkg-install.log" 2>&1 || { cat "$WORK/dpkg-install.log"; die "dpkg -i"; }
ok "dpkg -i $(basename "$DEB")"

pkg_version=$(dpkg-query -W -f='${Version}' otpgate)
check "otpgated -version reports the package version (${pkg_version%-*})" \
	sh -c "/usr/sbin/otpgated -version | grep -qxF 'otpgated ${pkg_version%-*}'"
check "otpgate system user exists" getent passwd otpgate
IFS=: read -r _ _ uid _ _ home shell <<<"$(getent passwd otpgate)"
check "otpgate is a system user (uid $uid < 1000)" test "$uid" -lt 1000
check "otpgate's home is /var/lib/otpgate" test "$home" = /var/lib/otpgate
check "otpgate has no login shell ($shell)" test "${shell##*/}" = nologin -o "${shell##*/}" = false
check "otpgate group exists" getent group otpgate

say "owners and modes"
check_table "$INSTALLED_TABLE"
# Every file the package ships must be in the table.
while read -r path; do
	[ -d "$path" ] && continue
	grep -q "^$path " <<<"$INSTALLED_TABLE" || bad "$path is installed but not in the table of test-install.sh"
done < <(dpkg -L otpgate)
ok "every installed file is in the table"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' otpgate)
for f in $CONFFILES; do
	check "$f is a conffile" grep -q "^ $f " <<<"$conffiles"
done
check_table "$STATE_TABLE"
WANTS=/etc/systemd/system/multi-user.target.wants/otpgated.service
MASK=/etc/systemd/system/otpgated.service
check "otpgated.service is enabled" test -L "$WANTS"
check "otpgated.service is not masked" test ! -e "$MASK" -a ! -L "$MASK"

# ------------------------------------------------------------ 2. the unit
say "systemd unit"
if systemd-analyze verify /usr/lib/systemd/system/otpgated.service >"$WORK/verify.log" 2>&1 &&
	! grep -q 'otpgated' "$WORK/verify.log"; then
	ok "systemd-analyze verify otpgated.service"
else
	cat "$WORK/verify.log"
	bad "systemd-analyze verify otpgated.service"
fi
exposure=$(systemd-analyze security --offline=true /usr/lib/systemd/system/otpgated.service 2>/dev/null |
	sed -n 's/.*Overall exposure level for otpgated.service: \([0-9.]*\).*/\1/p')
if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e < 2.5) }'; then
	ok "systemd-analyze security: exposure $exposure"
else
	bad "systemd-analyze security: exposure '${exposure:-?}', want below 2.5"
fi
check "man otpgated finds the page" man -w otpgated

# ------------------------------------------------------------ 3. daemon
say "otpgated"
check "otpgated -check accepts the packaged config (as otpgate)" \
	setpriv --reuid=otpgate --regid=otpgate --init-groups -- /usr/sbin/otpgated -check -config "$CONFIG"

SECRET=$(head -c 18 /dev/urandom | base64)
cat >>"$CONFIG" <<EOF

[[client]]
name = "install-test"
address = "127.0.0.1"
secret = "$SECRET"
EOF
check "otpgated -check accepts the config with a client" \
	setpriv --reuid=otpgate --regid=otpgate --init-groups -- /usr/sbin/otpgated -check -config "$CONFIG"

# Root uses the CLI before otpgated ever ran: the CLI opens the database
# itself, and otpgated must still be able to open it afterwards.
check "otpgate user add bob --password-stdin (no daemon: direct database access)" \
	sh -c "echo '$PASSWORD' | otpgate user add bob --password-stdin"
check_table "$STATE_TABLE"

start_daemon || die "otpgated does not run"
check_table "$RUNTIME_TABLE"

# ------------------------------------------------------------ 4. users
say "users and logins"
new_user alice
SEED=$(head -n 1 "$WORK/alice.ga")

CODE1=$(code_at 0)
expect_reply "alice, password + code" Access-Accept alice "$PASSWORD$CODE1"
expect_reply "alice, the same code again (replay)" Access-Reject alice "$PASSWORD$CODE1"
wrong=$(printf '%06d' $(((10#$CODE1 + 500000) % 1000000)))
expect_reply "alice, a wrong code" Access-Reject alice "$PASSWORD$wrong"
expect_reply "alice, a wrong password" Access-Reject alice "wrong password$(code_at 30)"
expect_reply "bob, no token (mfa required)" Access-Reject bob "$PASSWORD"
expect_reply "nobody, unknown user" Access-Reject nobody "$PASSWORD$(code_at 0)"

say "PAM: the installed /etc/pam.d/otpgate, pam.toml and otpgate-pam"
new_user carol
CAROL_SEED=$(head -n 1 "$WORK/carol.ga")
sed -i "s|^secret = .*|secret = \"$SECRET\"|" /etc/otpgate/pam.toml
check_table '/etc/otpgate/pam.toml root root 0600'
printf 'auth include otpgate\n' >/etc/pam.d/otpgate-install-test
check "pamtester: carol, password + code" \
	sh -c "echo '$PASSWORD$(code_at 0 "$CAROL_SEED")' | pamtester otpgate-install-test carol authenticate 2>&1"
if echo "wrong password$(code_at 30 "$CAROL_SEED")" | pamtester otpgate-install-test carol authenticate >/dev/null 2>&1; then
	bad "pamtester: carol, wrong password: accepted"
else
	ok "pamtester: carol, wrong password: refused"
fi
rm -f /etc/pam.d/otpgate-install-test

check "otpgate user show alice" sh -c "otpgate user show alice >$WORK/show.txt"
check "user show lists the code failures" grep -q 'code failures' "$WORK/show.txt"
check "otpgate backup" otpgate backup "$WORK/backup.db"
check "the backup is 0600 and not empty" test -s "$WORK/backup.db" -a "$(stat -c %a "$WORK/backup.db")" = 600

stop_daemon && ok "otpgated stops cleanly on SIGTERM" || bad "otpgated exit status on SIGTERM"

# ------------------------------------------------------------ 5. upgrade, remove, reinstall
say "upgrade (same version again)"
key_sum=$(sha256sum /var/lib/otpgate/seed.key)
dpkg -i "$DEB" >"$WORK/dpkg-upgrade.log" 2>&1 || { cat "$WORK/dpkg-upgrade.log"; die "dpkg -i (upgrade)"; }
ok "dpkg -i over the installed package"
check_table "$INSTALLED_TABLE"
check "the client added to radiusd.toml is kept" grep -q 'name = "install-test"' "$CONFIG"

say "dpkg -r"
dpkg -r otpgate >"$WORK/dpkg-remove.log" 2>&1 || { cat "$WORK/dpkg-remove.log"; die "dpkg -r"; }
ok "dpkg -r otpgate"
check "the binaries are gone" test ! -e /usr/sbin/otpgated
check "the database is kept" test -s /var/lib/otpgate/otpgate.db
check "the key file is kept" sh -c "echo '$key_sum' | sha256sum -c --quiet"
check "radiusd.toml (a conffile) is kept" test -f "$CONFIG"
check "the otpgate user is kept" getent passwd otpgate
# deb-systemd-helper masks the unit while its file is gone (so the
# enablement returns on reinstall); without it the unit is disabled.
if [ "$(readlink "$MASK" 2>/dev/null)" = /dev/null ]; then
	ok "otpgated.service is masked while removed"
else
	check "otpgated.service is disabled" test ! -L "$WANTS"
fi

say "dpkg -i after remove"
dpkg -i "$DEB" >"$WORK/dpkg-reinstall.log" 2>&1 || { cat "$WORK/dpkg-reinstall.log"; die "dpkg -i (reinstall)"; }
ok "dpkg -i again"
check_table "$INSTALLED_TABLE"
check "the edited radiusd.toml survived remove and reinstall" grep -q 'name = "install-test"' "$CONFIG"
check "otpgated.service is enabled again" test -L "$WANTS"
check "otpgated.service is not masked" test ! -e "$MASK" -a ! -L "$MASK"
start_daemon || die "otpgated does not run after reinstall"
check_table "$RUNTIME_TABLE"
check "the key file is unchanged" sh -c "echo '$key_sum' | sha256sum -c --quiet"
# The next time step's code: within skew, later than the last accepted
# step, so no waiting.
expect_reply "alice after reinstall, next code" Access-Accept alice "$PASSWORD$(code_at 30)"
expect_reply "alice after reinstall, the first code (used)" Access-Reject alice "$PASSWORD$CODE1"
stop_daemon && ok "otpgated stops cleanly" || bad "otpgated exit status on SIGTERM"

# ------------------------------------------------------------ 6. purge
say "dpkg -P"
dpkg -P otpgate >"$WORK/dpkg-purge.log" 2>&1 || { cat "$WORK/dpkg-purge.log"; die "dpkg -P"; }
ok "dpkg -P otpgate"
check "/var/lib/otpgate is gone" test ! -e /var/lib/otpgate
check "/etc/otpgate is gone" test ! -e /etc/otpgate
check "/etc/pam.d/otpgate is gone" test ! -e /etc/pam.d/otpgate
check "the otpgate user is kept (Debian practice)" getent passwd otpgate
check "no enablement or mask of otpgated.service is left" test ! -L "$WANTS" -a ! -L "$MASK"

# ------------------------------------------------------------ 7. rpm
if [ -n "$RPM" ]; then
	say "rpm $RPM"
	rpm -qlpv "$RPM" >"$WORK/rpm-list.txt" 2>/dev/null
	while read -r path owner group mode; do
		[ -n "$path" ] || continue
		[[ $path == /var/lib/otpgate ]] && continue # made by postinstall
		# The group otpgate is set by postinstall; the archive says root.
		line=$(awk -v p="$path" '$NF == p' "$WORK/rpm-list.txt")
		if [ -z "$line" ]; then
			bad "rpm: $path missing"
			continue
		fi
		perms=$(awk '{print $1}' <<<"$line")
		want=$(printf '%s' "$mode" | sed 's/^0//')
		# rwx string -> octal
		oct=$(awk -v s="${perms:1:9}" 'BEGIN { m = 0; for (i = 1; i <= 9; i++) { m = m * 2 + (substr(s, i, 1) != "-") } printf "%o", m }')
		if [ "$oct" = "$want" ] && [ "$(awk '{print $3}' <<<"$line")" = root ]; then
			ok "rpm: $path root $mode"
		else
			bad "rpm: $path is $perms $(awk '{print $3, $4}' <<<"$line"), want $mode"
		fi
	done <<<"$INSTALLED_TABLE"
	for f in /etc/otpgate/radiusd.toml /etc/otpgate/pam.toml; do
		check "rpm: $f is %config(noreplace)" sh -c "rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' '$RPM' | grep -q '^cn.* $f\$'"
	done
	check "rpm: has the post, preun and postun scripts" sh -c \
		"rpm -qp --scripts '$RPM' | grep -q 'postinstall scriptlet' && rpm -qp --scripts '$RPM' | grep -q 'preuninstall scriptlet' && rpm -qp --scripts '$RPM' | grep -q 'postuninstall scriptlet'"
fi

trap - ERR
finish
