package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// webank is the fake WeBank of the benchmark: one webanktest.Fake, which
// checks every signature as WeBank does, served on 127.0.0.1 three times:
//
//   - main, over HTTPS: the signed calls, and the sidecar's tokens, SIGN
//     and NONCE tickets, through the relay;
//   - idle, over HTTPS, closing a connection idle for serverIdle: the same
//     calls, to show what a WeBank that closes idle connections first does;
//   - oauth, over plain HTTP: the access token and SIGN ticket of the
//     client that signs by itself, fetched once and never measured.
type webank struct {
	fake  *webanktest.Fake
	main  *tlsServer
	idle  *tlsServer
	oauth *httptest.Server

	roots  *x509.CertPool // trusts main's and idle's certificate
	caFile string         // the same certificate, PEM, for Caddy's tls_trust_pool
}

// The two apps the fake knows: one for the sidecar, one for the client that
// signs by itself. Two, because an app's new access token supersedes its
// previous one, and with it every ticket the other party holds.
const (
	sidecarAppID  = "IDABENCHSIDECAR"
	sidecarSecret = "bench-sidecar-secret-not-a-real-one-0123456789abcdefghijklmnop"
	clientAppID   = "IDABENCHCLIENT"
	clientSecret  = "bench-client-secret-not-a-real-one-0123456789abcdefghijklmnopq"
)

// startWeBank starts the fake WeBank's servers, and writes the TLS
// certificate into dir. The caller must call close.
func startWeBank(dir string, serverIdle time.Duration) (*webank, error) {
	fake := webanktest.New(webanktest.Options{Apps: map[string]string{
		sidecarAppID: sidecarSecret,
		clientAppID:  clientSecret,
	}})
	w := &webank{fake: fake, main: startTLS(fake, 0), idle: startTLS(fake, serverIdle)}
	w.oauth = httptest.NewServer(fake) // 127.0.0.1
	cert := w.main.srv.Certificate()   // httptest's, the same for every TLS server
	w.roots = x509.NewCertPool()
	w.roots.AddCert(cert)
	w.caFile = filepath.Join(dir, "fake-webank.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := os.WriteFile(w.caFile, pemBytes, 0o600); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// close stops every server of w and the fake.
func (w *webank) close() {
	w.fake.Close()
	w.oauth.Close()
	w.main.srv.Close()
	w.idle.srv.Close()
}

// tlsServer is an HTTPS server on 127.0.0.1 that counts the TLS handshakes
// it completes: no client here resumes a session, so each is a new
// connection to WeBank, paid for with round trips.
type tlsServer struct {
	srv        *httptest.Server
	handshakes atomic.Int64
}

// startTLS serves h over HTTPS (HTTP/1.1 only, as httptest does by default)
// on 127.0.0.1, closing connections idle for idle if it is not 0.
func startTLS(h http.Handler, idle time.Duration) *tlsServer {
	s := &tlsServer{srv: httptest.NewUnstartedServer(h)}
	s.srv.Config.IdleTimeout = idle
	// A connection closed before its handshake ends is no error here: Go's
	// transport gives up dials, and a reloaded Caddy closes its transports.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.TLS = &tls.Config{VerifyConnection: func(tls.ConnectionState) error {
		s.handshakes.Add(1)
		return nil
	}}
	s.srv.StartTLS()
	return s
}

// addr returns the host:port s listens on.
func (s *tlsServer) addr() string { return s.srv.Listener.Addr().String() }
