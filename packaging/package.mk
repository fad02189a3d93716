# packaging/package.mk, included by the top-level Makefile.
#
#   make package        dist/otpgate_<version>_<arch>.deb and dist/otpgate-<version>-1.<arch>.rpm
#   make package-test   builds both, installs the .deb on this machine and
#                       tests the installed files, daemon, CLI and PAM stack,
#                       remove, reinstall and purge, then the .rpm's metadata
#                       (root; see packaging/test-install.sh). Changes the machine.
#
# nfpm is pinned in packaging/tools/go.mod (kept out of the main go.mod) and
# built from the Go module proxy into dist/tools.

# Each is computed once, on first use (not on every make run, and not again
# halfway through a build); set one on the command line to override it.
PKG_VERSION = $(eval PKG_VERSION := $$(shell packaging/version.sh))$(PKG_VERSION)
PKG_GOARCH  = $(eval PKG_GOARCH := $$(shell $(GO) env GOARCH))$(PKG_GOARCH)
# Reproducible archives: file times from the last commit.
PKG_EPOCH   = $(eval PKG_EPOCH := $$(shell git log -1 --format=%ct 2>/dev/null || echo 0))$(PKG_EPOCH)
PKG_BINARIES := otpgated otpgate otpgate-pam
PKG_MANPAGES := otpgated otpgate otpgate-pam
NFPM         := dist/tools/nfpm

.PHONY: package package-bins package-man package-test

$(NFPM): packaging/tools/go.mod packaging/tools/go.sum
	cd packaging/tools && CGO_ENABLED=0 $(GO) build -trimpath -o ../../$(NFPM) github.com/goreleaser/nfpm/v2/cmd/nfpm

package-bins:
	@mkdir -p dist/bin
	@for b in $(PKG_BINARIES); do \
	  echo "build dist/bin/$$b ($(PKG_VERSION))"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$(PKG_GOARCH) $(GO) build -trimpath \
	    -ldflags "-s -w -X main.version=$(PKG_VERSION)" -o dist/bin/$$b ./cmd/$$b || exit 1; \
	done

package-man:
	@mkdir -p dist/man
	@for m in $(PKG_MANPAGES); do gzip -9n -c packaging/man/$$m.8 > dist/man/$$m.8.gz || exit 1; done

package: package-bins package-man $(NFPM)
	rm -f dist/*.deb dist/*.rpm
	PKG_VERSION=$(PKG_VERSION) GOARCH=$(PKG_GOARCH) SOURCE_DATE_EPOCH=$(PKG_EPOCH) \
	  $(NFPM) package --config packaging/nfpm.yaml --packager deb --target dist/
	PKG_VERSION=$(PKG_VERSION) GOARCH=$(PKG_GOARCH) SOURCE_DATE_EPOCH=$(PKG_EPOCH) \
	  $(NFPM) package --config packaging/nfpm.yaml --packager rpm --target dist/
	@ls -l dist/*.deb dist/*.rpm

package-test: package
	bash packaging/test-install.sh dist/otpgate_$(PKG_VERSION)-1_$(PKG_GOARCH).deb "$$(ls dist/otpgate-*.rpm)"
