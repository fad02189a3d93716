# otpgate — the two commands a newcomer needs:
#   make run    the daemon on the sample radiusd.toml, store under ./data
#   make test   installs the Debian test peers when missing, then the whole suite
#               (as root: some end-to-end tests add users and PAM services)

GO      ?= go
export PATH := $(PATH):/usr/local/go/bin

# Real peers the end-to-end tests talk to (nobody here wrote them).
DEB_TEST_DEPS := postgresql freeradius-utils libpam-radius-auth pamtester openssh-server openssh-client \
                 sshpass expect tmux oathtool zbar-tools libpam-google-authenticator man-db \
                 openvpn openvpn-auth-radius iproute2 iputils-ping openssl chromium curl \
                 slapd freeradius

.PHONY: run build test unit deps vet fuzz clean

# The sample holds a shared secret inline, and otpgated refuses a config
# with an inline secret that others can read, as it refuses such a
# secret_file: make it private first (git records no such mode change).
run:
	chmod go-rwx radiusd.toml
	$(GO) run ./cmd/otpgated -config radiusd.toml

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

# deps installs the missing Debian packages (needs root or sudo; apt-get update first).
# A policy-rc.d that refuses every start (exit 101) is in place during the
# install, so packages with a service (openvpn, openssh-server) do not start
# it on this machine; it is removed afterwards unless it was there before.
# The tests run their own openvpn, sshd, slapd and FreeRADIUS: the units these
# packages enable are disabled again when this install brought them.
deps:
	@missing=""; for p in $(DEB_TEST_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    trap '$$SUDO rm -f /usr/sbin/policy-rc.d' EXIT; trap 'exit 130' INT TERM; \
	    printf '#!/bin/sh\n# make deps: no service starts during this install\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null; \
	    $$SUDO chmod 755 /usr/sbin/policy-rc.d; \
	  fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing || exit 1; \
	  for pu in openvpn:openvpn openssh-server:ssh slapd:slapd freeradius:freeradius postgresql:postgresql; do \
	    case " $$missing " in *" $${pu%%:*} "*) $$SUDO systemctl disable --quiet $${pu#*:}.service 2>/dev/null || true;; esac; \
	  done; \
	fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# test runs everything, including the e2e TestHost... tests, which change this
# machine (test Unix users, services in /etc/pam.d, an sshd on loopback) and
# need root; a plain `go test ./...` skips those.
test: deps vet
	OTPGATE_HOST_TESTS=1 $(GO) test -count=1 -timeout 20m ./...

unit: vet
	$(GO) test -count=1 -short ./...

# fuzz runs every fuzz target briefly (FUZZTIME=30s by default).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin dist

-include packaging/package.mk
