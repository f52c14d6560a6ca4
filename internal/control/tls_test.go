package control

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/testutil"
)

// issue makes a certificate for cn signed by parent (self-signed if nil).
func issue(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) (*x509.Certificate, *ecdsa.PrivateKey, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		IsCA:         ca, BasicConstraintsValid: true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTCPClientCert: over TLS, a client certificate of the client CA is
// read-write access named by its CN; one of another CA is refused by the
// handshake; none and no token is 401.
func TestTCPClientCert(t *testing.T) {
	ca, caKey, _ := issue(t, "virtbgp test CA", nil, nil, true)
	_, _, serverCert := issue(t, "virtbgp", ca, caKey, false)
	_, _, clientCert := issue(t, "automation-host", ca, caKey, false)
	other, otherKey, _ := issue(t, "other CA", nil, nil, true)
	_, _, strangerCert := issue(t, "stranger", other, otherKey, false)
	clients := x509.NewCertPool()
	clients.AddCert(ca)

	h := &fakeHandler{report: testReport()}
	log, logs := testutil.Logger()
	srv := &Server{Handler: h, Log: log, TLS: &tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientCAs: clients, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12,
	}}
	if err := srv.Listen(filepath.Join(t.TempDir(), "c.sock")); err != nil {
		t.Fatal(err)
	}
	if err := srv.ListenTCP("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	url := "https://" + srv.TCPAddr().String() + "/v1/drain"
	status, _, raw := send(t, client(clientCert), "POST", url, "")
	if status != 200 {
		t.Errorf("a client certificate of the CA: %d %s", status, raw)
	}
	if !strings.Contains(logs.String(), `by="cert automation-host"`) {
		t.Errorf("log lacks the certificate's name:\n%s", logs)
	}
	status, eb, raw := send(t, client(), "POST", url, "")
	if status != 401 || !strings.Contains(eb.Error, "authentication required") {
		t.Errorf("no certificate, no token: %d %s", status, raw)
	}
	// A certificate of another CA is not one the server asks for: the
	// client does not send it, and that is no authentication.
	status, _, raw = send(t, client(strangerCert), "POST", url, "")
	if status != 401 {
		t.Errorf("a certificate of another CA: %d %s", status, raw)
	}
	if n := h.count(OpDrain); n != 1 {
		t.Errorf("drain called %d times, want 1\n%s", n, logs)
	}
}
