# otpgate — the two commands a newcomer needs:
#   make run    the daemon on the sample radiusd.toml, store under ./data
#   make test   installs the Debian test peers when missing, then the whole suite
#               (as root: some end-to-end tests add users and PAM services)

GO      ?= go
export PATH := $(PATH):/usr/local/go/bin

# Real peers the end-to-end tests talk to (nobody here wrote them).
DEB_TEST_DEPS := freeradius-utils libpam-radius-auth pamtester openssh-server openssh-client \
                 sshpass expect tmux oathtool zbar-tools libpam-google-authenticator man-db

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
deps:
	@missing=""; for p in $(DEB_TEST_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# The store's direct I/O tests need a directory on a disk file system (TMPDIR
# may be a tmpfs); they skip without one, and fail without one when CI=true.
OTPGATE_TEST_DISK_DIR ?= /var/tmp

# test runs everything, including the e2e TestHost... tests, which change this
# machine (test Unix users, services in /etc/pam.d, an sshd on loopback) and
# need root; a plain `go test ./...` skips those.
test: deps vet
	OTPGATE_TEST_DISK_DIR=$(OTPGATE_TEST_DISK_DIR) OTPGATE_HOST_TESTS=1 $(GO) test -count=1 -timeout 20m ./...

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
