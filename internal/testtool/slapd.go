package testtool

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestCA is a CA and a server certificate for 127.0.0.1 and localhost it
// signed, as PEM files in a temp dir.
type TestCA struct {
	CAFile, CertFile, KeyFile string
}

// NewTestCA makes a TestCA in dir.
func NewTestCA(t testing.TB, dir string) TestCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "otpgate test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ca := TestCA{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(ca.CAFile, "CERTIFICATE", caDER)
	write(ca.CertFile, "CERTIFICATE", der)
	write(ca.KeyFile, "PRIVATE KEY", keyDER)
	return ca
}

// Slapd is an OpenLDAP server a test started on a loopback port.
type Slapd struct {
	URL    string // ldap://127.0.0.1:PORT (StartTLS with the TestCA)
	Suffix string // dc=example,dc=com
	srv    *server
}

// SlapdSchema adds what the test tree needs beyond inetOrgPerson: Active
// Directory's userAccountControl and a memberOf attribute held in the entry
// (the memberof overlay computes it in production; stored here, it serves
// the same search).
const SlapdSchema = `
attributetype ( 1.3.6.1.4.1.99999.9.1.1 NAME 'userAccountControl'
	EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.9.1.2 NAME 'memberOf'
	EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
objectclass ( 1.3.6.1.4.1.99999.9.2.1 NAME 'otpgateTestUser' AUXILIARY
	MAY ( userAccountControl $ memberOf ) )
`

// StartSlapd runs slapd on 127.0.0.1 with the suffix dc=example,dc=com,
// the service account cn=otpgate,ou=services,dc=example,dc=com (password
// "servicepw"), the entries in ldif (loaded with slapadd before the start)
// and StartTLS with ca's certificate. It is stopped when the test ends.
func StartSlapd(t testing.TB, ca TestCA, ldif string) *Slapd {
	t.Helper()
	slapd := Require(t, "slapd")
	slapadd := Require(t, "slapadd")
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	schema := filepath.Join(dir, "test.schema")
	conf := filepath.Join(dir, "slapd.conf")
	files := map[string]string{
		schema: SlapdSchema,
		conf: fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include %[1]s
pidfile %[2]s/slapd.pid
argsfile %[2]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile %[3]s
TLSCertificateFile %[4]s
TLSCertificateKeyFile %[5]s
database mdb
maxsize 10485760
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw adminpw
directory %[6]s
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
`, schema, dir, ca.CAFile, ca.CertFile, ca.KeyFile, db),
		filepath.Join(dir, "tree.ldif"): slapdBase + ldif,
	}
	for p, s := range files {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(slapadd, "-f", conf, "-l", filepath.Join(dir, "tree.ldif")).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t, "tcp")))
	s := &Slapd{URL: "ldap://" + addr, Suffix: "dc=example,dc=com"}
	log := &Buffer{}
	s.srv = startServer(t, "slapd", exec.Command(slapd, "-d", "0", "-h", s.URL+"/", "-f", conf), log)
	t.Cleanup(s.Stop)
	showLogOnFailure(t, "slapd", log)
	s.srv.awaitReady(t, 10*time.Second, "slapd listening on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

// Stop kills slapd (a server going down without notice) and waits for it.
func (s *Slapd) Stop() { s.srv.stop(os.Kill) }

const slapdBase = `dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=services,dc=example,dc=com
objectClass: organizationalUnit
ou: services

dn: cn=otpgate,ou=services,dc=example,dc=com
objectClass: person
cn: otpgate
sn: service
userPassword: servicepw

`
