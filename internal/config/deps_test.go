package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

const module = "github.com/otpgate/otpgate/"

// domainInternalDeps is the layering rule, for every package outside
// internal/, cmd/, bench/, e2e/ and docs/ (the domain: what a request passes
// through, enrollment, and the PAM helper): the internal/ packages it may
// depend on.
//
// The domain never depends on the plumbing. Only internal/config knows the
// TOML schema and its defaults; the daemon (and the CLI) turn the config
// into each package's Options, so no domain package reads the config, and
// none reaches admin, control, daemon or the CLI. Two exceptions, both
// leaves that import nothing of otpgate's: internal/password, because the
// password is auth's first factor, so auth, and radius through auth,
// depend on the hashing; and internal/safefile, the one way otpgate
// creates files without following a planted symlink, which the store (its
// key file and write-ahead log) and enroll (the QR code PNG) need as much
// as the CLI does.
//
// A new domain package fails TestDomainIgnoresPlumbing until it has a line
// here: its dependencies are a decision, not an accident.
var domainInternalDeps = map[string][]string{
	"auth":            {"internal/password", "internal/safefile"}, // safefile through store
	"radius":          {"internal/password", "internal/safefile"}, // through auth
	"store":           {"internal/safefile"},
	"store/loginlog":  {"internal/safefile"},
	"store/postgres":  {"internal/safefile"}, // the PostgreSQL backend (several nodes); safefile through store
	"store/storetest": {"internal/safefile"}, // the conformance suite every store backend passes; safefile through store
	"enroll":          {"internal/safefile"},
	"enroll/recovery": nil,
	"pamhelper":       nil,
	"totp":            nil, // the TOTP leaf
}

// mayBeAbsent are rule entries for packages that do not exist yet; every
// other entry must name a real package, so a rename cannot empty the check.
var mayBeAbsent []string

func TestDomainIgnoresPlumbing(t *testing.T) {
	var domain []string
	for _, pkg := range strings.Fields(testtool.Run(t, "go", "list", "-f", "{{.ImportPath}}", module+"...")) {
		rel := strings.TrimPrefix(pkg, module)
		switch top, _, _ := strings.Cut(rel, "/"); top {
		case "internal", "cmd", "bench", "e2e", "docs":
			continue
		}
		if _, ok := domainInternalDeps[rel]; !ok {
			t.Errorf("%s: a domain package without a rule; add it to domainInternalDeps with the internal/ packages it may use", rel)
			continue
		}
		domain = append(domain, rel)
	}
	for rel := range domainInternalDeps {
		if !slices.Contains(domain, rel) && !slices.Contains(mayBeAbsent, rel) {
			t.Errorf("%s: no such package; the rule for it checks nothing (renamed?)", rel)
		}
	}
	for _, rel := range domain {
		allowed := domainInternalDeps[rel]
		may := "nothing"
		if len(allowed) > 0 {
			may = strings.Join(allowed, ", ")
		}
		for _, dep := range testtool.Deps(t, module+rel) {
			dep, ok := strings.CutPrefix(dep, module)
			if ok && strings.HasPrefix(dep, "internal/") && !slices.Contains(allowed, dep) {
				t.Errorf("%s depends on %s; it gets its Options from the daemon and may use %s from internal/", rel, dep, may)
			}
		}
	}
}

// TestConfigKnowsNoPackage: config owns the schema and the defaults and
// nothing else; the conversion into each package's Options lives in the
// daemon, so config depends on no other otpgate package but the password
// params it defaults to and the TOTP leaf, whose MaxSkew is the one bound
// of [auth] skew (a leaf on the standard library only, configured by
// nothing).
func TestConfigKnowsNoPackage(t *testing.T) {
	allowed := []string{"internal/config", "internal/password", "totp"}
	for _, dep := range testtool.Deps(t, module+"internal/config") {
		if dep, ok := strings.CutPrefix(dep, module); ok && !slices.Contains(allowed, dep) {
			t.Errorf("internal/config depends on %s; it may use only %q", dep, allowed[1:])
		}
	}
}

// TestDomainLeavesImportNothing: the internal/ packages the domain may use
// import no other otpgate package, or plumbing could reach the domain
// through them.
func TestDomainLeavesImportNothing(t *testing.T) {
	leaves := map[string]bool{}
	for _, allowed := range domainInternalDeps {
		for _, dep := range allowed {
			leaves[dep] = true
		}
	}
	for leaf := range leaves {
		for _, dep := range testtool.Deps(t, module+leaf) {
			if dep, ok := strings.CutPrefix(dep, module); ok && dep != leaf {
				t.Errorf("%s, which domain packages may use, depends on %s; it must stay a leaf", leaf, dep)
			}
		}
	}
}
