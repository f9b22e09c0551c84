package webanktest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
)

// Server is a Fake listening on a random port of 127.0.0.1, for tests.
// Its methods, and those of the embedded Fake, are safe for concurrent use.
type Server struct {
	*Fake

	// URL is the base URL of the server, http://127.0.0.1:port, with no
	// trailing slash.
	URL string

	srv *httptest.Server
}

// NewServer starts a Fake configured by opts on 127.0.0.1 and a random port.
// If opts.OptimalDomain is empty, the faceId APIs answer the server's
// 127.0.0.1:port as optimalDomain.
// The caller must call Close when done. It panics if opts is invalid (see
// New) or no port can be opened.
func NewServer(opts Options) *Server {
	return newServer(New(opts))
}

// newServer starts serving f on 127.0.0.1 and a random port.
func newServer(f *Fake) *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("webanktest: listening on 127.0.0.1: %v", err))
	}
	if f.optimalDomain == "" {
		f.optimalDomain = ln.Addr().String() // before the fake serves, so never read concurrently
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: f}}
	srv.Start()
	return &Server{Fake: f, URL: srv.URL, srv: srv}
}

// Client returns an HTTP client for the server, whose transport Close
// closes.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close ends the requests held by faults (see Fake.Close), stops the server
// and waits for the requests being answered. Close is idempotent.
func (s *Server) Close() {
	s.Fake.Close()
	s.srv.Close()
}
