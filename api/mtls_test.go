package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// certFor issues a client certificate for cn with organizational units ous, signed by ca.
func certFor(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, ous ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ous},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	parent, signer := ca, caKey
	if ca == nil {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A client certificate the server verified against its client CA stands for its subject: the CN
// is the actor, an OU the role. One of another CA, or naming no role, is no identity.
func TestClientCertificates(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cheops test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := httptest.NewUnstartedServer(newAPI(t))
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	defer srv.Close()
	get := func(cert *tls.Certificate, method, path string) int {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	viewer := certFor(t, ca, caKey, "ci-bot", "viewer")
	admin := certFor(t, ca, caKey, "ops", "staff", "admin")
	noRole := certFor(t, ca, caKey, "nobody", "staff")
	selfSigned := certFor(t, nil, nil, "mallory", "admin")
	for _, c := range []struct {
		name   string
		cert   *tls.Certificate
		method string
		want   int
	}{
		{"no certificate, no token", nil, http.MethodGet, http.StatusUnauthorized},
		{"viewer reads", &viewer, http.MethodGet, http.StatusOK},
		{"viewer may not delete", &viewer, http.MethodDelete, http.StatusForbidden},
		{"admin deletes (the site is gone: 404)", &admin, http.MethodDelete, http.StatusNotFound},
		{"a certificate naming no role", &noRole, http.MethodGet, http.StatusUnauthorized},
		// Not sent (the client only offers certificates of the CAs the server names), or refused.
		{"a certificate of another CA", &selfSigned, http.MethodGet, http.StatusUnauthorized},
	} {
		path := "/v1/sites"
		if c.method == http.MethodDelete {
			path = "/v1/sites/no-such-site"
		}
		if got := get(c.cert, c.method, path); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// The status page opens to a certificate without a login (a login would be a 303 to its form).
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{viewer}
	noRedirect := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(srv.URL + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "cert:ci-bot (viewer)") {
		t.Errorf("GET /ui with a viewer's certificate: %d %.300s", resp.StatusCode, body)
	}
}
