#!/usr/bin/env bash
# bench/compare.sh: otpgated against FreeRADIUS 3.2 (Debian's package, with
# rlm_totp) on the same machine, in one run, with the same users and the
# same load generator (otpgate bench / loadgen), and prints a side-by-side
# table with ratios. Everything runs on 127.0.0.1 and stops by itself.
#
# Usage (as root, from anywhere; needs Go and apt for freeradius):
#   bench/compare.sh                       # all phases
#   PHASES="otp bcrypt" bench/compare.sh   # some phases
#
# Phases:
#   otp      otp-only, $USERS users (default 50000): throughput and p99
#   bcrypt   password+code (append), one bcrypt hash of cost $BCRYPT_COST
#            (default 10) for every user, on both servers
#   ldap     password+code (append) with the password checked by one slapd
#            both servers use ($LDAP_USERS users, default 50000, StartTLS with
#            a CA made here): otpgated ([password] source = "ldap") against
#            FreeRADIUS with rlm_ldap + rlm_totp, both up, taking turns
#            $REPEAT times; medians
#   argon2   password+code with argon2id (password.DefaultParams), otpgated
#            only (FreeRADIUS 3.2 cannot verify argon2id), against the hash
#            bound: cores / one-hash time (go test ./internal/password -bench), and
#            against all cores hashing at once without a server
#   big      $BIG users (default 1000000): import time, start-up time, RSS,
#            otp-only throughput against a 10000-user database
#   overload $OVERLOAD_X (default 3) times the measured capacity for
#            $OVERLOAD_DUR (default 30s) against the big database, open loop:
#            survives?, RSS bounded?, goodput against the capacity measured
#            before and again after it
#   cluster  otp-only, $CLUSTER_USERS users (default 60000), $CLUSTER_C
#            requests in flight in total (default 192): one otpgated on
#            bbolt, one on PostgreSQL (Debian's, started here), three on that
#            one PostgreSQL (one generator per node, each with a third of the
#            users), taking turns $REPEAT times; CPU per login split into
#            otpgated and PostgreSQL, and the statements PostgreSQL spent
#            its time on (pg_stat_statements)
#
# Settings (environment): USERS C_LIST C_PW DUR BCRYPT_COST BIG OVERLOAD_X OVERLOAD_DUR
#   PW_USERS LDAP_USERS OTPG_PORT FR_PORT SLAPD_PORT OTP_WORKERS KEEP=1 (keep the work dir)
#   CLUSTER_USERS CLUSTER_C PG_PORT NODE_PORT (nodes on NODE_PORT+1..3)
#   CLUSTER_SETUPS (default "bbolt1 pg1 pg3") PG_POOL (the nodes' pool_max_conns)
#   GEN_CPU=1 (generator on CPU 1 only) OVERLOAD_PIN=0 (overload unpinned)
#   REPEAT (runs per short figure, median shown; default 3)
#   BIN_DIR (use otpgated and otpgate from there; default: build)
#
# Notes printed with the results:
# - Debian 12's FreeRADIUS 3.2.1 rlm_totp has no replay protection (added in
#   3.2.4) and writes nothing per login; otpgated records the used time step
#   before every Accept: in its login log (page cache; synced every second)
#   under a durable time fence (docs/durability.md).
# - FreeRADIUS 3.2.1 sends no Message-Authenticator in responses; both get
#   requests with one, and require it.
set -euo pipefail

USERS=${USERS:-50000}
# Concurrency (closed loop: requests in flight) for the otp-only phases; each
# value is one run per server. The password phases use C_PW.
C_LIST=${C_LIST:-"32 256"}
C_PW=${C_PW:-16}
C=${C_LIST##* }
DUR=${DUR:-10s}
BCRYPT_COST=${BCRYPT_COST:-10}
PW_USERS=${PW_USERS:-5000}
LDAP_USERS=${LDAP_USERS:-50000}
BIG=${BIG:-1000000}
OVERLOAD_X=${OVERLOAD_X:-3}
OVERLOAD_DUR=${OVERLOAD_DUR:-30s}
OTPG_PORT=${OTPG_PORT:-18812}
FR_PORT=${FR_PORT:-18813}
SLAPD_PORT=${SLAPD_PORT:-18389}
# otpgated's [radius] workers (password hashes at once) for the otp-only
# phases; empty = the default (the number of cores). Code checks hash
# nothing, so they are bounded by the request handlers (workers + queue).
OTP_WORKERS=${OTP_WORKERS:-}
# The cluster phase: users, requests in flight in total, ports.
CLUSTER_USERS=${CLUSTER_USERS:-60000}
CLUSTER_C=${CLUSTER_C:-192}
PG_PORT=${PG_PORT:-18432}
NODE_PORT=${NODE_PORT:-18820}
# The cluster set-ups to run (default all three), and the nodes' pool size
# (pool_max_conns in their DSN; empty = otpgated's default).
CLUSTER_SETUPS=${CLUSTER_SETUPS:-"bbolt1 pg1 pg3"}
PG_POOL=${PG_POOL:-}
PHASES=${PHASES:-"otp bcrypt ldap argon2 big overload cluster"}
# Runs per figure for the short phases (otp_c*, big10k, big1M_10k), which
# last 1-2 s each; the table shows the median.
REPEAT=${REPEAT:-3}
SECRET=bench-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/otpgate-bench.XXXXXX)
RESULTS=$WORK/results.txt
OTPG_PID=
FR_PID=
SLAPD_PID=
PG_PID=
PG_RUNUSER=
POLICY_RC_MADE=0 # 1 while apt_install's /usr/sbin/policy-rc.d is in place
declare -a NODE_PIDS=()

log() { printf '== %s\n' "$*" >&2; }

# remove_policy_rc removes the policy-rc.d apt_install made, if any.
remove_policy_rc() {
	if [ "$POLICY_RC_MADE" = 1 ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_MADE=0; fi
}

cleanup() {
	remove_policy_rc
	[ -n "$OTPG_PID" ] && kill "$OTPG_PID" 2>/dev/null && wait "$OTPG_PID" 2>/dev/null || true
	[ -n "$FR_PID" ] && kill "$FR_PID" 2>/dev/null && wait "$FR_PID" 2>/dev/null || true
	[ -n "$SLAPD_PID" ] && kill "$SLAPD_PID" 2>/dev/null && wait "$SLAPD_PID" 2>/dev/null || true
	for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -n "$PG_PID" ] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_RUNUSER" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that cleanup runs on Ctrl-C and kill too

mkdir -p "$WORK/bin"
printf '%s\n' "$SECRET" >"$WORK/secret"
chmod 600 "$WORK/secret"
: >"$RESULTS"

if [ -n "${BIN_DIR:-}" ]; then
	log "using prebuilt binaries from $BIN_DIR"
	cp "$BIN_DIR/otpgated" "$BIN_DIR/otpgate" "$WORK/bin/"
else
	log "building otpgated, otpgate"
	(cd "$ROOT" && go build -o "$WORK/bin/" ./cmd/otpgated ./cmd/otpgate)
fi
BENCH="$WORK/bin/otpgate bench"
# GEN_CPU=N runs the generator on CPU N only (taskset) in every phase, for
# both servers; the servers may use every CPU. Unset: nothing is pinned
# (the overload phase pins on its own, see there).
GEN_PIN=
[ -n "${GEN_CPU:-}" ] && GEN_PIN="taskset -c $GEN_CPU"
GEN_PIN_ALL=$GEN_PIN

# --- FreeRADIUS -------------------------------------------------------------

# apt_install PACKAGE...: Debian packages, their services kept from
# starting, as make deps does. A policy-rc.d that refuses every start is in
# place during the install; the one made here is removed whatever happens
# (cleanup removes it too when the script is stopped meanwhile), since left
# behind it would keep every service on this machine from starting. The
# units of packages this install brought are disabled: the script runs its
# own servers.
apt_install() {
	log "installing $* (Debian packages); their services are kept from starting"
	local p rc=0 missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		POLICY_RC_MADE=1
		printf '#!/bin/sh\n# bench/compare.sh: no service starts during this install\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
	fi
	# Called from `a || apt_install` errexit is off in here: check by hand.
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >&2 || rc=$?
	remove_policy_rc
	for p in "${missing[@]}"; do
		case $p in
		freeradius | slapd | postgresql) systemctl disable --quiet "$p.service" 2>/dev/null || true ;;
		esac
	done
	if [ "$rc" != 0 ]; then
		log "apt-get failed (exit $rc) installing $*"
		exit "$rc"
	fi
}

ensure_freeradius() {
	command -v freeradius >/dev/null || apt_install freeradius
	# rlm_ldap is a package of its own
	if [[ " $PHASES " == *" ldap "* ]]; then
		[ -e /usr/lib/freeradius/rlm_ldap.so ] || apt_install freeradius-ldap
		command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || apt_install slapd ldap-utils
	fi
	if command -v systemctl >/dev/null && systemctl is-active --quiet freeradius 2>/dev/null; then
		log "stopping the packaged freeradius service"
		systemctl stop freeradius
	fi
	FR_VERSION=$(freeradius -v 2>/dev/null | sed -n 's/.*Version \([0-9.]*\).*/\1/p' | head -1)
	if [ -e /etc/freeradius/3.0/mods-available/totp ]; then
		FR_TOTP=1
	else
		FR_TOTP=0
		log "rlm_totp is missing in FreeRADIUS $FR_VERSION: FreeRADIUS runs plain PAP as the baseline (labelled)"
	fi
}

# fr_config DIR [ldap]: a private copy of /etc/freeradius/3.0 with a single
# virtual server on 127.0.0.1:$FR_PORT. BENCH_MODE (environment) selects the
# rule: append splits the 6-digit code off User-Password, otp-only sends it
# whole. With ldap (and BENCH_MODE=append), rlm_ldap checks the password
# against the bench slapd instead of pap against the users file.
fr_config() {
	local d=$1 pw_check=pap ldap_call=
	rm -rf "$d"
	mkdir -p "$d"
	cp -a /etc/freeradius/3.0 "$d/raddb"
	rm -f "$d"/raddb/sites-enabled/* "$d"/raddb/mods-enabled/*
	local m
	for m in pap files always expr; do ln -s ../mods-available/$m "$d/raddb/mods-enabled/$m"; done
	[ "$FR_TOTP" = 1 ] && ln -s ../mods-available/totp "$d/raddb/mods-enabled/totp"
	# run as the invoking user (root), not freerad, so it can read the temp dir
	sed -i -e 's/^\(\s*\)user = /\1#user = /' -e 's/^\(\s*\)group = /\1#group = /' "$d/raddb/radiusd.conf"
	# max_requests (default 16384) counts finished requests too, kept for
	# cleanup_delay (5 s) to catch duplicates: past ~3,300 requests/s the
	# default drops requests ("Dropping request (16385 is too many)").
	sed -i 's/^max_requests = .*/max_requests = 262144/' "$d/raddb/radiusd.conf"
	cat >"$d/raddb/clients.conf" <<-EOF
		client bench {
			ipaddr = 127.0.0.1
			secret = $SECRET
			require_message_authenticator = yes
		}
	EOF
	local totp_call="totp" totp_set="&TOTP-Password := \"%{2}\""
	if [ "$FR_TOTP" = 0 ]; then totp_call="ok"; fi
	if [ "${2:-}" = ldap ]; then
		pw_check=ldap ldap_call=ldap # authorize: find the user's DN
		fr_ldap_module >"$d/raddb/mods-enabled/ldap"
	fi
	cat >"$d/raddb/sites-enabled/bench" <<-EOF
		server bench {
			listen {
				type = auth
				ipaddr = 127.0.0.1
				port = $FR_PORT
				# the same socket buffer otpgated asks for (1 MiB)
				recv_buff = 1048576
			}
			authorize {
				files
				if ("\$ENV{BENCH_MODE}" == "append") {
					if (&User-Password =~ /^(.*)([0-9]{6})\$/) {
						update request {
							$totp_set
							&User-Password := "%{1}"
						}
					}
					else {
						reject
					}
					$ldap_call
					update control {
						&Auth-Type := pap_totp
					}
				}
				else {
					update request {
						&TOTP-Password := &User-Password
					}
					update control {
						&Auth-Type := totp_only
					}
				}
			}
			authenticate {
				Auth-Type pap_totp {
					$pw_check
					$totp_call
				}
				Auth-Type totp_only {
					$totp_call
				}
			}
		}
	EOF
}

# fr_users CSV PWFILE OUT: the users file (Cleartext-Password for plaintext,
# Crypt-Password for a bcrypt hash; TOTP-Secret).
fr_users() {
	awk -F, -v q='"' 'NR > 1 {
		pw = $2; attrs = ""
		if (pw ~ /^\$2[aby]\$/) attrs = "Crypt-Password := " q pw q ", "
		else if (pw != "") attrs = "Cleartext-Password := " q pw q ", "
		print $1 " " attrs "TOTP-Secret := " q $3 q
	}' "$1" >"$2"
}

# fr_ldap_module: rlm_ldap against the bench slapd, as otpgated is set up:
# search as the service account, then bind as the user (the service account
# cannot read userPassword), StartTLS verified against the bench CA. The pool
# is the module's default (the thread pool's size).
fr_ldap_module() {
	cat <<-EOF
		ldap {
			server = "ldap://127.0.0.1:$SLAPD_PORT"
			identity = "cn=otpgate,ou=services,dc=example,dc=com"
			password = "servicepw"
			base_dn = "dc=example,dc=com"
			user {
				base_dn = "\${..base_dn}"
				filter = "(&(objectClass=inetOrgPerson)(uid=%{%{Stripped-User-Name}:-%{User-Name}}))"
				scope = "sub"
			}
			options {
				chase_referrals = no
				rebind = no
				timeout = 10
				timelimit = 3
				net_timeout = 1
			}
			tls {
				start_tls = yes
				ca_file = "$WORK/ldap/ca.pem"
				require_cert = "demand"
			}
			pool {
				start = \${thread[pool].start_servers}
				min = \${thread[pool].min_spare_servers}
				max = \${thread[pool].max_servers}
				spare = \${thread[pool].max_spare_servers}
				uses = 0
				retry_delay = 30
				lifetime = 0
				idle_timeout = 60
			}
		}
	EOF
}

# --- slapd (the directory both servers ask in the ldap phase) ---------------

# slapd_start CSV: Debian's slapd on 127.0.0.1:$SLAPD_PORT with StartTLS (a
# CA and a certificate for 127.0.0.1 made here), the service account
# cn=otpgate,ou=services,dc=example,dc=com and every user of CSV under
# ou=people with its password (the same tree as internal/testtool.StartSlapd).
slapd_start() {
	local d=$WORK/ldap
	rm -rf "$d"
	mkdir -p "$d/db"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=otpgate-bench-ca \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
		-keyout "$d/key.pem" -out "$d/cert.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/san.ext"
	openssl x509 -req -in "$d/cert.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
		-extfile "$d/san.ext" -out "$d/cert.pem" 2>/dev/null
	cat >"$d/slapd.conf" <<-EOF
		include /etc/ldap/schema/core.schema
		include /etc/ldap/schema/cosine.schema
		include /etc/ldap/schema/inetorgperson.schema
		pidfile $d/slapd.pid
		argsfile $d/slapd.args
		modulepath /usr/lib/ldap
		moduleload back_mdb
		TLSCACertificateFile $d/ca.pem
		TLSCertificateFile $d/cert.pem
		TLSCertificateKeyFile $d/key.pem
		database mdb
		maxsize 1073741824
		suffix "dc=example,dc=com"
		rootdn "cn=admin,dc=example,dc=com"
		rootpw adminpw
		directory $d/db
		index objectClass,uid eq
		access to attrs=userPassword by anonymous auth by * none
		access to * by users read by * none
	EOF
	{
		printf 'dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n'
		printf 'dn: ou=services,dc=example,dc=com\nobjectClass: organizationalUnit\nou: services\n\n'
		printf 'dn: cn=otpgate,ou=services,dc=example,dc=com\nobjectClass: person\ncn: otpgate\nsn: service\nuserPassword: servicepw\n\n'
		printf 'dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n'
		awk -F, 'NR > 1 { printf "dn: uid=%s,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: bench\nuserPassword: %s\n\n", $1, $1, $1, $2 }' "$1"
	} >"$d/tree.ldif"
	local slapd=slapd slapadd=slapadd
	command -v slapd >/dev/null || { slapd=/usr/sbin/slapd; slapadd=/usr/sbin/slapadd; }
	"$slapadd" -q -f "$d/slapd.conf" -l "$d/tree.ldif" >&2
	"$slapd" -d 0 -h "ldap://127.0.0.1:$SLAPD_PORT/" -f "$d/slapd.conf" 2>"$d/slapd.log" &
	SLAPD_PID=$!
	local i
	for i in $(seq 1 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$SLAPD_PORT") 2>/dev/null; then return 0; fi
		kill -0 "$SLAPD_PID" 2>/dev/null || break
		sleep 0.05
	done
	log "slapd did not start: $(cat "$d/slapd.log")"
	return 1
}

slapd_stop() {
	if [ -n "$SLAPD_PID" ]; then kill "$SLAPD_PID" 2>/dev/null || true; wait "$SLAPD_PID" 2>/dev/null || true; SLAPD_PID=; fi
}

# probe SERVER: 0 when the server answers (a Reject for an unknown user,
# which both servers send after their reject delay, 1 s by default).
# otpgate bench exits 0 on a timeout too: read its counts.
probe() {
	local out
	out=$($BENCH -server "$1" -secret-file "$WORK/secret" -users "$WORK/probe.csv" -n 1 -c 1 -timeout 3s -format kv 2>/dev/null) || return 1
	[[ " $out" =~ \ (accept|reject|challenge)=[1-9] ]]
}

# wait_ready START SERVER PID NAME: waits until PID has bound SERVER's UDP
# port (both servers load everything first), then until it answers a probe;
# prints the seconds from START to the bind. Fails when PID dies or is not
# ready within 60 s.
wait_ready() {
	local start=$1 server=$2 pid=$3 name=$4 i bound=
	for i in $(seq 1 1200); do
		if ! kill -0 "$pid" 2>/dev/null; then log "$name died during start"; return 1; fi
		if [ -n "$(ss -Hlun "( sport = :${server##*:} )")" ]; then
			bound=$(date +%s%N)
			break
		fi
		sleep 0.05
	done
	if [ -z "$bound" ]; then log "$name did not bind $server within 60 s"; return 1; fi
	if ! probe "$server"; then log "$name bound $server but did not answer a probe within 3 s"; return 1; fi
	echo "$(( bound - start ))" | awk '{ printf "%.2f", $1 / 1e9 }'
}

fr_start() { # MODE CSV; MODE ldap is append with rlm_ldap
	fr_stop
	local mode=$1
	fr_config "$WORK/fr" "$mode"
	[ "$mode" = ldap ] && mode=append
	fr_users "$2" "$WORK/fr/raddb/mods-config/files/authorize"
	local start
	start=$(date +%s%N)
	BENCH_MODE=$mode freeradius -f -d "$WORK/fr/raddb" -l "$WORK/fr/radius.log" &
	FR_PID=$!
	FR_START_S=$(wait_ready "$start" "127.0.0.1:$FR_PORT" "$FR_PID" freeradius)
}

fr_stop() {
	if [ -n "$FR_PID" ]; then kill "$FR_PID" 2>/dev/null || true; wait "$FR_PID" 2>/dev/null || true; FR_PID=; fi
}

# --- otpgated ---------------------------------------------------------------

otpg_start() { # MODE CSV WORKERS(empty = default) [EXTRA_TOML]
	otpg_stop
	local d=$WORK/otpg
	rm -rf "$d"
	mkdir -p "$d"
	cp "$WORK/secret" "$d/secret"
	local workers=""
	[ -n "$3" ] && workers="workers = $3"
	otpg_toml "127.0.0.1:$OTPG_PORT" "$1" "$workers" "${4:-}" >"$d/radiusd.toml"
	local t0 t1
	t0=$(date +%s%N)
	"$WORK/bin/otpgate" -config "$d/radiusd.toml" import --format csv "$2" >&2
	t1=$(date +%s%N)
	OTPG_IMPORT_S=$(echo "$(( t1 - t0 ))" | awk '{ printf "%.2f", $1 / 1e9 }')
	otpg_launch "$d" "127.0.0.1:$OTPG_PORT" otpgated
	OTPG_PID=$LAUNCHED_PID OTPG_START_S=$LAUNCHED_S
}

# otpg_toml LISTEN MODE RADIUS_LINES MORE_TOML: the radiusd.toml of every
# otpgated here: quiet logs, no audit log, one client on 127.0.0.1 with
# the secret in "secret", MODE for it and [auth]; RADIUS_LINES go into
# [radius], MORE_TOML (whole tables) at the end.
otpg_toml() {
	cat <<-EOF
		version = 1
		data_dir = "data"
		[log]
		level = "warn"
		audit = "off"
		[radius]
		listen = ["$1"]
		$3
		[[client]]
		name = "bench"
		address = "127.0.0.1/32"
		secret_file = "secret"
		mode = "$2"
		[auth]
		mode = "$2"
		mfa = "required"
		$4
	EOF
}

# otpg_launch DIR ADDR NAME: otpgated on DIR/radiusd.toml in the background,
# its log in DIR/daemon.log, until it answers on ADDR. Sets LAUNCHED_PID and
# LAUNCHED_S (seconds to its bind, see wait_ready). When it does not get ready, it
# prints the log, stops it and ends the script.
otpg_launch() {
	local d=$1 start
	start=$(date +%s%N)
	"$WORK/bin/otpgated" -config "$d/radiusd.toml" 2>"$d/daemon.log" &
	LAUNCHED_PID=$!
	LAUNCHED_S=$(wait_ready "$start" "$2" "$LAUNCHED_PID" "$3") || {
		cat "$d/daemon.log" >&2
		kill "$LAUNCHED_PID" 2>/dev/null || true
		exit 1
	}
}

otpg_stop() {
	if [ -n "$OTPG_PID" ]; then kill "$OTPG_PID" 2>/dev/null || true; wait "$OTPG_PID" 2>/dev/null || true; OTPG_PID=; fi
}

# --- PostgreSQL and several otpgated nodes (the cluster phase) --------------

# pg_start: a PostgreSQL of Debian's package in $WORK/pg on 127.0.0.1:$PG_PORT,
# run as the postgres user, fsync and synchronous_commit on (as the nodes
# want them), pg_stat_statements loaded; database "otpgate".
pg_start() {
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	if [ -z "$PG_BIN" ]; then
		apt_install postgresql
		PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
	fi
	local d=$WORK/pg
	mkdir -p "$d/data" "$d/sock"
	chmod 711 "$WORK"
	chown -R postgres: "$d"
	runuser -u postgres -- "$PG_BIN/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
	runuser -u postgres -- "$PG_BIN/postgres" -D "$d/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
		-c unix_socket_directories="$d/sock" -c max_connections=300 -c shared_buffers=256MB \
		-c fsync=on -c synchronous_commit=on -c shared_preload_libraries=pg_stat_statements 2>"$d/log" &
	PG_RUNUSER=$!
	local i
	for i in $(seq 1 600); do
		"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
		sleep 0.05
	done
	PG_PID=$(head -1 "$d/data/postmaster.pid")
	pg_sql postgres "CREATE DATABASE otpgate"
	pg_sql otpgate "CREATE EXTENSION pg_stat_statements"
	PG_DSN="postgres://postgres@127.0.0.1:$PG_PORT/otpgate?sslmode=disable${PG_POOL:+&pool_max_conns=$PG_POOL}"
	PG_VERSION=$("$PG_BIN/postgres" -V | awk '{ print $3 }')
}

pg_sql() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -c "$2"; }

pg_stop() {
	if [ -n "$PG_PID" ]; then kill -INT "$PG_PID" 2>/dev/null || true; wait "$PG_RUNUSER" 2>/dev/null || true; PG_PID=; fi
}

# pg_ticks: CPU clock ticks of the postmaster and its live children (the
# nodes' pooled connections live through a run).
pg_ticks() {
	local p t=0
	for p in "$PG_PID" $(pgrep -P "$PG_PID"); do t=$((t + $(cpu_ticks "$p"))); done
	echo "$t"
}

# node_start I: otpgated node I (1-3) on PostgreSQL, 127.0.0.1:$((NODE_PORT + I)),
# otp-only; node 1 imports $WORK/cluster.csv and makes the key the others copy.
node_start() {
	local i=$1 d=$WORK/node$1
	rm -rf "$d"
	mkdir -p "$d/data"
	cp "$WORK/secret" "$d/secret"
	printf '%s\n' "$PG_DSN" >"$d/pg.dsn"
	chmod 600 "$d/pg.dsn"
	otpg_toml "127.0.0.1:$((NODE_PORT + i))" otp-only 'acct_listen = ["127.0.0.1:0"]' \
		"$(printf '[store]\nbackend = "postgres"\ndsn_file = "pg.dsn"')" >"$d/radiusd.toml"
	if [ "$i" = 1 ]; then
		"$WORK/bin/otpgate" -config "$d/radiusd.toml" import --format csv "$WORK/cluster.csv" >&2
	else
		cp "$WORK/node1/data/seed.key" "$d/data/seed.key"
	fi
	otpg_launch "$d" "127.0.0.1:$((NODE_PORT + i))" "otpgated node $i"
	NODE_PIDS[i]=$LAUNCHED_PID
}

nodes_stop() {
	local p
	for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	NODE_PIDS=()
}

# cluster_run NAME PIDS ADDR...: one generator per address, run at once
# from the start of a time step, each with its own share of the users
# (so no code is sent to two nodes) and CLUSTER_C / (number of addresses)
# requests in flight: the same load in total whatever the node count. The
# result line sums rates and counts and takes the worst generator's
# latencies; CPU per login is split into otpgated (PIDS) and PostgreSQL.
cluster_run() {
	local name=$1 pids=$2
	shift 2
	local n=$# i=0 a c srv0 pg0 idle0 t0 t1 srv1 pg1 p gens=()
	c=$((CLUSTER_C / n))
	log "cluster: $name: $n x $BENCH -server ADDR -mode otp-only -c $c -n $((CLUSTER_USERS / n)) -duration 28s"
	next_step
	srv0=0
	for p in $pids; do srv0=$((srv0 + $(cpu_ticks "$p"))); done
	pg0=0
	[ -n "$PG_PID" ] && pg0=$(pg_ticks)
	idle0=$(idle_ticks)
	t0=$(date +%s%N)
	for a in "$@"; do
		$GEN_PIN $BENCH -server "$a" -secret-file "$WORK/secret" -users "$WORK/cluster.$n.$i.csv" -mode otp-only \
			-format kv -c "$c" -n "$((CLUSTER_USERS / n))" -duration 28s >"$WORK/cluster.out.$i" &
		gens+=($!)
		i=$((i + 1))
	done
	wait "${gens[@]}" || true
	t1=$(date +%s%N)
	srv1=0
	for p in $pids; do srv1=$((srv1 + $(cpu_ticks "$p"))); done
	pg1=0
	[ -n "$PG_PID" ] && pg1=$(pg_ticks)
	line=$(cat "$WORK"/cluster.out.* | awk -v s="$((srv1 - srv0))" -v g="$((pg1 - pg0))" -v i="$(($(idle_ticks) - idle0))" \
		-v hz="$(getconf CLK_TCK)" -v np="$NPROC" -v wall="$((t1 - t0))" '{
		for (k = 1; k <= NF; k++) { split($k, f, "="); v[f[1]] = f[2]
			if (f[1] ~ /^(active_rate|goodput|accept|reject|timeout|requests)$/) sum[f[1]] += f[2]
			if (f[1] ~ /_ms$/ && f[2] + 0 > worst[f[1]]) worst[f[1]] = f[2] + 0 }
	} END {
		for (k in sum) printf "%s=%.1f ", k, sum[k]
		for (k in worst) printf "%s=%.2f ", k, worst[k]
		if (sum["requests"] > 0) printf "srv_cpu_us=%.1f pg_cpu_us=%.1f idle_pct=%.0f", s / hz * 1e6 / sum["requests"], g / hz * 1e6 / sum["requests"], 100 * i / hz / (wall / 1e9 * np)
	}')
	rm -f "$WORK"/cluster.out.*
	echo "phase=cluster server=$name $line" | tee -a "$RESULTS" >&2
}

# want_setup NAME: NAME is one of $CLUSTER_SETUPS.
want_setup() { [[ " $CLUSTER_SETUPS " == *" $1 "* ]]; }

# cluster_split N: $WORK/cluster.csv in N parts, header kept, round robin.
cluster_split() {
	local n=$1 i
	for i in $(seq 0 $((n - 1))); do
		awk -v n="$n" -v i="$i" 'NR == 1 || (NR - 2) % n == i' "$WORK/cluster.csv" >"$WORK/cluster.$n.$i.csv"
	done
}

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# rss PID: total, anonymous (heap, stacks) and file-backed (the mmapped
# database) resident memory.
rss() { awk '/^VmRSS/ { t = $2 } /^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { printf "%d KiB (anon %d, file %d)", t, a, f }' "/proc/$1/status"; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

# --- runs and the table -----------------------------------------------------

# bench PHASE SERVERNAME ADDR MODE CSV ARGS...: one run, result line saved.
bench() {
	local phase=$1 name=$2 addr=$3 mode=$4 csv=$5
	shift 5
	log "$phase: $name: $BENCH -server $addr -mode $mode -users $(basename "$csv") $*"
	local line pid=$OTPG_PID cpu0 idle0 t0 t1 args=()
	[ "$name" = freeradius ] && pid=$FR_PID
	# -align is done here, so that the CPU figures below cover the run only.
	for a in "$@"; do
		if [ "$a" = -align ]; then next_step; else args+=("$a"); fi
	done
	cpu0=$(cpu_ticks "$pid")
	idle0=$(idle_ticks)
	t0=$(date +%s%N)
	line=$($GEN_PIN $BENCH -server "$addr" -secret-file "$WORK/secret" -users "$csv" -mode "$mode" -format kv "${args[@]}") || true
	t1=$(date +%s%N)
	[ -n "$line" ] || line="failed=1"
	# CPU the server used per request, and the share of all CPUs idle while
	# the generator ran, including its start-up (reading the users file,
	# which dominates the 10,000-login runs on 1M users). A closed loop that
	# leaves CPUs idle is waiting on something else: here, the fdatasync.
	line="$line $(awk -v c="$(($(cpu_ticks "$pid") - cpu0))" -v i="$(($(idle_ticks) - idle0))" \
		-v hz="$(getconf CLK_TCK)" -v n="$NPROC" -v wall="$((t1 - t0))" -v line="$line" 'BEGIN {
		split(line, f, " "); for (k in f) { split(f[k], a, "="); v[a[1]] = a[2] }
		if (v["requests"] > 0 && wall > 0)
			printf "srv_cpu_us=%.1f idle_pct=%.0f", c / hz * 1e6 / v["requests"], 100 * i / hz / (wall / 1e9 * n)
	}')"
	echo "phase=$phase server=$name $line" | tee -a "$RESULTS" >&2
}

# cpu_ticks PID: user+system CPU of PID in clock ticks (0 without PID).
cpu_ticks() { if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi; }
idle_ticks() { awk '/^cpu / { print $5 + $6; exit }' /proc/stat; }
# next_step sleeps until 0.1 s into the next 30-second time step (what
# the generator's -align does), so no code of an earlier run is sent again.
next_step() { sleep "$(awk -v now="$(date +%s.%N)" 'BEGIN { printf "%.3f", 30 - (now % 30) + 0.1 }')"; }


# kv prints KEY of the runs of PHASE on SERVER: the median when the phase
# was repeated (REPEAT), the lower middle one for an even count.
kv() { # PHASE SERVER KEY
	awk -v p="$1" -v s="$2" -v k="$3" '{
		ok = 0; v = ""
		for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == "phase" && a[2] == p) ok++; if (a[1] == "server" && a[2] == s) ok++; if (a[1] == k) v = a[2] }
		if (ok == 2 && v != "") print v
	}' "$RESULTS" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }

# Warm-up for both servers: 500 unknown users (Rejects), so thread pools and
# caches are up before the measured run.
warm() { $GEN_PIN $BENCH -server "$1" -secret-file "$WORK/secret" -users "$WORK/warm.csv" -n 500 -c "$C" -format kv >/dev/null 2>&1 || true; }

gen() { # N FILE PASSWORDS
	$BENCH -gen-users "$1" -out "$2" -gen-passwords "$3" >&2
}

ensure_freeradius
# Probe and warm-up users are unknown to both servers (other names), so
# their failures never lock out or touch a measured user.
gen 1 "$WORK/probe.csv" none && sed -i 's/^bench/probe/' "$WORK/probe.csv"
gen 500 "$WORK/warm.csv" none && sed -i 's/^bench/warmup/' "$WORK/warm.csv"
NPROC=$(nproc)
declare -a NOTES=()

for phase in $PHASES; do
	case $phase in
	otp)
		gen "$USERS" "$WORK/otp.csv" none
		otpg_start otp-only "$WORK/otp.csv" "$OTP_WORKERS"
		NOTES+=("otp: otpgated import of $USERS users ${OTPG_IMPORT_S}s; [radius] workers = ${OTP_WORKERS:-default}; each figure the median of $REPEAT runs, the servers taking turns")
		warm "127.0.0.1:$OTPG_PORT"
		BENCH_MODE=otp-only fr_start otp-only "$WORK/otp.csv"
		warm "127.0.0.1:$FR_PORT"
		# Both servers are up (the idle one costs nothing) and take turns,
		# so drift in the machine's speed hits both alike. Each run waits
		# for a new time step, so every code is fresh on both.
		for rep in $(seq "$REPEAT"); do
			for c in $C_LIST; do
				bench "otp_c$c" otpgated "127.0.0.1:$OTPG_PORT" otp-only "$WORK/otp.csv" -align -n "$USERS" -duration 28s -c "$c"
				bench "otp_c$c" freeradius "127.0.0.1:$FR_PORT" otp-only "$WORK/otp.csv" -align -n "$USERS" -duration 28s -c "$c"
			done
		done
		otpg_stop
		fr_stop
		;;
	bcrypt)
		gen "$PW_USERS" "$WORK/bcrypt.csv" "bcrypt:$BCRYPT_COST"
		# No warm-up here: after the warm-up's Access-Requests for unknown
		# users, FreeRADIUS 3.2.1 rejected every correct bcrypt password (seen
		# in testing; not root-caused). Both servers are CPU-bound here anyway.
		otpg_start append "$WORK/bcrypt.csv" ""
		bench bcrypt otpgated "127.0.0.1:$OTPG_PORT" append "$WORK/bcrypt.csv" -align -duration "$DUR" -c "$C_PW" -timeout 10s
		otpg_stop
		fr_start append "$WORK/bcrypt.csv"
		bench bcrypt freeradius "127.0.0.1:$FR_PORT" append "$WORK/bcrypt.csv" -align -duration "$DUR" -c "$C_PW" -timeout 10s
		fr_stop
		;;
	ldap)
		gen "$LDAP_USERS" "$WORK/ldap.csv" plain
		slapd_start "$WORK/ldap.csv"
		# The servers get the users and TOTP secrets without passwords: the
		# directory has those. otpgated's [ldap] is the default but for
		# the service account and the CA; it reads memberOf (there is none).
		awk -F, -v OFS=, 'NR > 1 { $2 = "" } { print }' "$WORK/ldap.csv" >"$WORK/ldap-nopw.csv"
		printf 'servicepw\n' >"$WORK/ldap.secret"
		chmod 600 "$WORK/ldap.secret"
		otpg_start append "$WORK/ldap-nopw.csv" "" "$(cat <<-EOF
			[password]
			source = "ldap"
			[ldap]
			urls = ["ldap://127.0.0.1:$SLAPD_PORT"]
			start_tls = true
			ca_file = "$WORK/ldap/ca.pem"
			bind_dn = "cn=otpgate,ou=services,dc=example,dc=com"
			bind_password_file = "$WORK/ldap.secret"
			base_dn = "dc=example,dc=com"
			user_filter = "(&(objectClass=inetOrgPerson)(uid={user}))"
		EOF
		)"
		warm "127.0.0.1:$OTPG_PORT"
		fr_start ldap "$WORK/ldap-nopw.csv"
		warm "127.0.0.1:$FR_PORT"
		NOTES+=("ldap: $LDAP_USERS users in one slapd ($(slapd -VV 2>&1 | sed -n 's/.*slapd \([0-9.]*\).*/\1/p' | head -1), back_mdb, plaintext userPassword, StartTLS); each login: search as the service account, bind as the user, on both; otpgated [ldap] pool_size default, FreeRADIUS rlm_ldap pool = its thread pool; c=$C_PW; each figure the median of $REPEAT runs, the servers taking turns")
		for rep in $(seq "$REPEAT"); do
			bench ldap otpgated "127.0.0.1:$OTPG_PORT" append "$WORK/ldap.csv" -align -duration "$DUR" -c "$C_PW" -timeout 10s
			bench ldap freeradius "127.0.0.1:$FR_PORT" append "$WORK/ldap.csv" -align -duration "$DUR" -c "$C_PW" -timeout 10s
		done
		NOTES+=("ldap: slapd used $(cpu_s "$SLAPD_PID") CPU s in the whole phase (both servers' logins and warm-ups)")
		otpg_stop
		fr_stop
		slapd_stop
		;;
	argon2)
		log "argon2: one-hash time: go test ./internal/password -run '^\$' -bench Argon2idDefault -benchtime 20x"
		ns=$(cd "$ROOT" && go test ./internal/password -run '^$' -bench Argon2idDefault -benchtime 20x | awk '/^BenchmarkArgon2idDefault/ { print $3 }')
		bound=$(awk -v n="$NPROC" -v ns="$ns" 'BEGIN { printf "%.1f", n * 1e9 / ns }')
		NOTES+=("argon2: one argon2id hash (DefaultParams) $(awk -v ns="$ns" 'BEGIN { printf "%.1f", ns / 1e6 }') ms; bound = $NPROC cores / that = $bound logins/s")
		echo "phase=argon2 server=bound rate=$bound active_rate=$bound" >>"$RESULTS"
		# What the cores reach hashing at once, without a server: below
		# the bound where they share caches and memory bandwidth.
		log "argon2: all cores hashing: go test ./internal/password -run '^\$' -bench Argon2idAllCores -benchtime 60x"
		allcores=$(cd "$ROOT" && go test ./internal/password -run '^$' -bench Argon2idAllCores -benchtime 60x | awk '/^BenchmarkArgon2idAllCores/ { for (i = 1; i < NF; i++) if ($(i + 1) == "hashes/s") print $i }')
		NOTES+=("argon2: $NPROC goroutines hashing at once (no server): $allcores hashes/s")
		echo "phase=argon2 server=allcores rate=$allcores active_rate=$allcores" >>"$RESULTS"
		gen "$PW_USERS" "$WORK/argon2.csv" argon2id
		otpg_start append "$WORK/argon2.csv" ""
		bench argon2 otpgated "127.0.0.1:$OTPG_PORT" append "$WORK/argon2.csv" -align -duration "$DUR" -c "$C_PW" -timeout 10s
		otpg_stop
		;;
	big)
		gen 10000 "$WORK/u10k.csv" none
		otpg_start otp-only "$WORK/u10k.csv" "$OTP_WORKERS"
		warm "127.0.0.1:$OTPG_PORT"
		for rep in $(seq "$REPEAT"); do
			bench big10k otpgated "127.0.0.1:$OTPG_PORT" otp-only "$WORK/u10k.csv" -align -n 10000 -duration 28s -c "$C"
		done
		NOTES+=("big: 10k users: start ${OTPG_START_S}s, RSS $(rss "$OTPG_PID") after the run")
		otpg_stop
		t0=$(date +%s%N)
		gen "$BIG" "$WORK/big.csv" none
		NOTES+=("big: generating $BIG users took $(echo "$(( $(date +%s%N) - t0 ))" | awk '{ printf "%.1f", $1 / 1e9 }')s")
		otpg_start otp-only "$WORK/big.csv" "$OTP_WORKERS"
		NOTES+=("big: otpgate import of $BIG OTP-only users (no daemon running) ${OTPG_IMPORT_S}s; db $(du -m "$WORK/otpg/data/otpgate.db" | cut -f1) MiB")
		NOTES+=("big: otpgated start-up with $BIG users ${OTPG_START_S}s (exec to its RADIUS port bound, after the database is open; it answered a probe then); RSS after start $(rss "$OTPG_PID")")
		warm "127.0.0.1:$OTPG_PORT"
		for rep in $(seq "$REPEAT"); do
			bench big1M_10k otpgated "127.0.0.1:$OTPG_PORT" otp-only "$WORK/big.csv" -align -n 10000 -duration 28s -c "$C"
		done
		bench big1M otpgated "127.0.0.1:$OTPG_PORT" otp-only "$WORK/big.csv" -align -duration "$DUR" -c "$C"
		NOTES+=("big: RSS after the 1M run $(rss "$OTPG_PID"), peak VmHWM $(hwm_kib "$OTPG_PID") KiB")
		if [[ " $PHASES " != *" overload "* ]]; then otpg_stop; fi
		;;
	overload)
		if [ -z "$OTPG_PID" ]; then
			[ -f "$WORK/big.csv" ] || gen "$BIG" "$WORK/big.csv" none
			otpg_start otp-only "$WORK/big.csv" "$OTP_WORKERS"
			warm "127.0.0.1:$OTPG_PORT"
			bench big1M otpgated "127.0.0.1:$OTPG_PORT" otp-only "$WORK/big.csv" -align -duration "$DUR" -c "$C"
		fi
		# Unpinned, the generator offering 3x capacity took most of both
		# cores and the goodput figure was the generator's. With
		# OVERLOAD_PIN=1 (default on 2+ cores) the generator runs on CPU 1
		# only, capacity is measured that way too (closed loop, c=256), and
		# goodput is compared with it. (otpgated is not pinned to CPU 0:
		# it then idles, latency bound on fsync completions handled on the
		# other CPU.)
		cap=$(kv big1M otpgated active_rate)
		pin_note="unpinned"
		if [ "${OVERLOAD_PIN:-1}" = 1 ] && [ "$NPROC" -ge 2 ] && command -v taskset >/dev/null; then
			GEN_PIN="taskset -c 1"
			bench cap_pinned otpgated "127.0.0.1:$OTPG_PORT" otp-only "$WORK/big.csv" -align -duration "$DUR" -c 256
			cap=$(kv cap_pinned otpgated active_rate)
			pin_note="generator on CPU 1 only, capacity $cap/s measured so (closed loop, c=256)"
		fi
		offered=$(awk -v c="$cap" -v x="$OVERLOAD_X" 'BEGIN { printf "%d", c * x }')
		rss0=$(rss "$OTPG_PID")
		cpu0=$(cpu_s "$OTPG_PID")
		(
			max=0
			while kill -0 "$OTPG_PID" 2>/dev/null; do
				r=$(rss_kib "$OTPG_PID" 2>/dev/null || echo 0)
				[ "${r:-0}" -gt "$max" ] && max=$r && rss "$OTPG_PID" >"$WORK/rss.max"
				sleep 0.5
			done
		) &
		sampler=$!
		bench overload otpgated "127.0.0.1:$OTPG_PORT" otp-only "$WORK/big.csv" -align -rate "$offered" -c 256 -timeout 1s -duration "$OVERLOAD_DUR"
		kill "$sampler" 2>/dev/null || true
		wait "$sampler" 2>/dev/null || true
		cpu1=$(cpu_s "$OTPG_PID" 2>/dev/null || echo "$cpu0")
		alive=no
		kill -0 "$OTPG_PID" 2>/dev/null && probe "127.0.0.1:$OTPG_PORT" && alive=yes
		# A machine's speed can drift within minutes, so the capacity is
		# measured again after the overload, the same way:
		# the goodput is reported against both.
		[ "$alive" = yes ] && [ "$pin_note" != unpinned ] &&
			bench cap_after otpgated "127.0.0.1:$OTPG_PORT" otp-only "$WORK/big.csv" -align -duration "$DUR" -c 256
		GEN_PIN=$GEN_PIN_ALL
		NOTES+=("overload: $pin_note; offered $offered logins/s (${OVERLOAD_X}x the measured $cap/s) for $OVERLOAD_DUR, open loop; alive and answering afterwards: $alive; RSS before ${rss0}, max during $(cat "$WORK/rss.max" 2>/dev/null || echo '?'), after $(rss "$OTPG_PID" 2>/dev/null || echo '?'); otpgated used $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.1f", b - a }') CPU s of the run")
		otpg_stop
		;;
	cluster)
		gen "$CLUSTER_USERS" "$WORK/cluster.csv" none
		cluster_split 1
		cluster_split 3
		pg_start
		node_start 1
		node_start 2
		node_start 3
		otpg_start otp-only "$WORK/cluster.csv" "$OTP_WORKERS"
		for a in "127.0.0.1:$OTPG_PORT" "127.0.0.1:$((NODE_PORT + 1))" "127.0.0.1:$((NODE_PORT + 2))" "127.0.0.1:$((NODE_PORT + 3))"; do warm "$a"; done
		# All four servers are up and take turns (an idle node costs
		# nothing but its heartbeat), so drift hits all alike.
		for rep in $(seq "$REPEAT"); do
			want_setup bbolt1 && cluster_run bbolt1 "$OTPG_PID" "127.0.0.1:$OTPG_PORT"
			want_setup pg1 && cluster_run pg1 "${NODE_PIDS[1]}" "127.0.0.1:$((NODE_PORT + 1))"
			[ "$rep" = "$REPEAT" ] && pg_sql otpgate "SELECT pg_stat_statements_reset()" >/dev/null
			want_setup pg3 && cluster_run pg3 "${NODE_PIDS[*]}" "127.0.0.1:$((NODE_PORT + 1))" "127.0.0.1:$((NODE_PORT + 2))" "127.0.0.1:$((NODE_PORT + 3))"
		done
		top=$(pg_sql otpgate "SELECT round(total_exec_time::numeric / 1000, 2) || ' s in ' || calls || ' calls (' || round(mean_exec_time::numeric, 3) || ' ms each): ' || regexp_replace(left(query, 70), '\s+', ' ', 'g') FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT 4" | paste -sd ';' -)
		NOTES+=("cluster: PostgreSQL $PG_VERSION on this machine (fsync on, synchronous_commit on, shared_buffers 256MB), $CLUSTER_USERS users, $CLUSTER_C requests in flight in total (pg3: $((CLUSTER_C / 3)) per node, one generator each, latencies the worst of the three); srv_cpu_us = otpgated CPU per login (all nodes), pg_cpu_us = PostgreSQL's; each figure the median of $REPEAT runs, the three set-ups taking turns")
		hot=$(pg_sql otpgate "SELECT n_tup_upd || ' row updates, ' || n_tup_hot_upd || ' of them HOT (no index write)' FROM pg_stat_user_tables WHERE relname = 'users'")
		NOTES+=("cluster: users table over all runs: $hot")
		NOTES+=("cluster: PostgreSQL statement time in the last pg3 run (pg_stat_statements; COMMIT includes the WAL flush): $top")
		otpg_stop
		nodes_stop
		pg_stop
		;;
	*)
		log "unknown phase $phase"
		exit 2
		;;
	esac
done

# --- report -----------------------------------------------------------------

echo
echo "otpgate vs FreeRADIUS $FR_VERSION ($( [ "$FR_TOTP" = 1 ] && echo rlm_totp || echo 'PLAIN PAP baseline: rlm_totp missing' )), $NPROC cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "otp_cN: otp-only with N requests in flight; bcrypt/argon2: append, c=$C_PW; big*: otp-only c=$C (big10k, big1M_10k: 10000 logins; big1M: $DUR); rate = logins/s while not waiting for a new time step; goodput = Accepts/s; latency per login"
printf '%-9s %-10s %9s %9s %8s %8s %8s %8s %7s %7s %7s %6s %5s\n' phase server rate goodput p50_ms p95_ms p99_ms max_ms accept reject timeout cpu_us idle%
for p in $(for c in $C_LIST; do echo "otp_c$c"; done) bcrypt ldap argon2 big10k big1M_10k big1M cap_pinned overload cap_after cluster; do
	for s in otpgated freeradius bound allcores bbolt1 pg1 pg3; do
		r=$(kv "$p" "$s" active_rate)
		[ -n "$r" ] || continue
		printf '%-9s %-10s %9s %9s %8s %8s %8s %8s %7s %7s %7s %6s %5s\n' "$p" "$s" "$r" "$(kv "$p" "$s" goodput)" "$(kv "$p" "$s" p50_ms)" "$(kv "$p" "$s" p95_ms)" \
			"$(kv "$p" "$s" p99_ms)" "$(kv "$p" "$s" max_ms)" "$(kv "$p" "$s" accept)" "$(kv "$p" "$s" reject)" "$(kv "$p" "$s" timeout)" \
			"$(kv "$p" "$s" srv_cpu_us)" "$(kv "$p" "$s" idle_pct)"
	done
done
echo
echo "ratios (otpgated / other):"
for p in $(for c in $C_LIST; do echo "otp_c$c"; done); do
	a=$(kv "$p" otpgated active_rate) b=$(kv "$p" freeradius active_rate)
	[ -n "$a" ] && [ -n "$b" ] && echo "  $p: throughput $(ratio "$a" "$b"), p99 latency $(ratio "$(kv "$p" otpgated p99_ms)" "$(kv "$p" freeradius p99_ms)")"
done
a=$(kv bcrypt otpgated goodput) b=$(kv bcrypt freeradius goodput)
[ -n "$a" ] && [ -n "$b" ] && echo "  bcrypt (cost $BCRYPT_COST): goodput $(ratio "$a" "$b"), p99 latency $(ratio "$(kv bcrypt otpgated p99_ms)" "$(kv bcrypt freeradius p99_ms)")"
# rate, not goodput: a run that used every user in a time step waits for
# the next one (waited_s), and goodput counts that wait.
a=$(kv ldap otpgated active_rate) b=$(kv ldap freeradius active_rate)
[ -n "$a" ] && [ -n "$b" ] && echo "  ldap (rlm_ldap): throughput $(ratio "$a" "$b"), p99 latency $(ratio "$(kv ldap otpgated p99_ms)" "$(kv ldap freeradius p99_ms)")"
a=$(kv argon2 otpgated goodput) b=$(kv argon2 bound active_rate)
[ -n "$a" ] && echo "  argon2: goodput / hash bound $(ratio "$a" "$b"); / all cores hashing at once $(ratio "$a" "$(kv argon2 allcores active_rate)")"
a=$(kv big1M_10k otpgated active_rate) b=$(kv big10k otpgated active_rate)
[ -n "$a" ] && [ -n "$b" ] && echo "  big: 10000 logins on a 1M-user database / on a 10k-user database $(ratio "$a" "$b") (c=$C; big1M is a 10 s run over 1M users)"
a=$(kv cluster pg3 active_rate) b=$(kv cluster pg1 active_rate)
[ -n "$a" ] && [ -n "$b" ] && echo "  cluster: three nodes / one node on PostgreSQL: throughput $(ratio "$a" "$b"), p99 $(ratio "$(kv cluster pg3 p99_ms)" "$(kv cluster pg1 p99_ms)"); one node on PostgreSQL / on bbolt: throughput $(ratio "$b" "$(kv cluster bbolt1 active_rate)"), p99 $(ratio "$(kv cluster pg1 p99_ms)" "$(kv cluster bbolt1 p99_ms)"); PostgreSQL CPU per login (pg3) $(kv cluster pg3 pg_cpu_us) us, otpgated $(kv cluster pg3 srv_cpu_us) us"
a=$(kv overload otpgated goodput)
capacity=$(kv cap_pinned otpgated active_rate)
[ -n "$capacity" ] || capacity=$(kv big1M otpgated active_rate)
# The generator uses each user once per 30 s step, so at 3x capacity it
# may run out of users and wait for the next step (waited_s): goodput per
# second of offered load is accepts / (elapsed - waited).
active=$(awk -v a="$(kv overload otpgated accept)" -v e="$(kv overload otpgated elapsed_s)" -v w="$(kv overload otpgated waited_s)" 'BEGIN { if (e - w > 0) printf "%.1f", a / (e - w) }')
[ -n "$a" ] && [ -n "$active" ] && echo "  overload: goodput while load was offered ($(kv overload otpgated elapsed_s) s run, $(kv overload otpgated waited_s) s waiting for users): $active accepts/s = $(ratio "$active" "$capacity") of capacity"
after=$(kv cap_after otpgated active_rate)
[ -n "$active" ] && [ -n "$after" ] && echo "  overload: capacity measured again after it $after/s; goodput while load was offered = $(ratio "$active" "$after") of that"
[ -n "$a" ] && echo "  overload: goodput over the whole run $a accepts/s = $(ratio "$a" "$capacity") of capacity ($capacity/s); sent $(kv overload otpgated requests) requests, timeouts $(kv overload otpgated timeout), not sent (generator limit) $(kv overload otpgated errors)"
echo
for n in "${NOTES[@]}"; do echo "note: $n"; done
echo "note: FreeRADIUS $FR_VERSION rlm_totp keeps no used-code state (replay protection came in 3.2.4) and writes nothing per login; otpgated records the used time step before each Accept (login log in the page cache, synced every second, under a durable time fence: docs/durability.md)."
echo "note: FreeRADIUS $FR_VERSION sends no Message-Authenticator in replies (counted as no_ma); both servers require it in requests."
echo "raw results: one line per run above ($RESULTS)"
cat "$RESULTS"
