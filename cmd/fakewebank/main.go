// Command fakewebank runs the fake WeBank of package webanktest as a
// process, so that the webank_sign module can be developed and tried
// without a WeBank account. It serves everything the webanktest package
// doc lists: the oauth2 endpoints with SIGN and NONCE tickets, the signed
// result queries getOcrResult, getBankCardOcrResult, sync, queryfacerecord
// and queryphotoinfo, the bank-card upload bankcardocrapp, the launch APIs
// getAdvFaceId, getfaceid, getPlusFaceId, getWillFaceId and geth5faceid,
// the H5 login page /api/web/login and the SDK login stand-in
// /api/sdk/login. It logs one line per request to stderr, never a secret,
// access_token, ticket, sign, nonce, result field or personal data, and
// stops gracefully on SIGINT or SIGTERM.
//
// Usage:
//
//	fakewebank [-listen 127.0.0.1:8090] [-app ID:SECRET]... [-token-ttl 2h]
//	           [-ticket-ttl 1h] [-nonce-ttl 2m] [-grace 1m] [-photo-bytes 524288]
//	           [-optimal-domain HOST:PORT]
//
// Without -app it knows one demo app, whose credentials it prints at start.
// The launch APIs answer -optimal-domain as optimalDomain, the host of the
// H5 login page; by default the address the fake listens on (with an
// unspecified listen address such as 0.0.0.0, the local address of each
// request's connection). Order numbers starting with NOTFOUND have no
// result. Counters are served at /__fake/stats, and faults are injected per
// endpoint (token, ticket, nonce, ocr, bankcard, sync, facerecord,
// photoinfo, bankcardocr, advfaceid, faceid, plusfaceid, willfaceid,
// h5faceid, login or sdklogin) through the control API under /__fake/, for
// example:
//
//	curl -X POST 'http://127.0.0.1:8090/__fake/fault?endpoint=ocr&status=502'
//	curl -X POST 'http://127.0.0.1:8090/__fake/fault?endpoint=facerecord&hang=1'
//	curl -X POST 'http://127.0.0.1:8090/__fake/clear'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// The demo app, used when no -app is given. It is fake, so its secret is
// no secret.
const (
	demoAppID  = "IDADEMO1"
	demoSecret = "fakewebankDEMOsecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"
)

const shutdownTimeout = 5 * time.Second

func main() {
	log.SetPrefix("fakewebank: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // after the first signal, a second kills the process
	if err := run(ctx, os.Args[1:], nil); err != nil {
		log.Fatal(err)
	}
}

// run serves the fake configured by args until ctx ends, then shuts it
// down. If listening is not nil, it is sent the address listened on once
// the fake serves.
func run(ctx context.Context, args []string, listening chan<- net.Addr) error {
	fs := flag.NewFlagSet("fakewebank", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "address to listen on")
	var appFlags appFlag
	fs.Var(&appFlags, "app", "an app as `ID:SECRET`; repeatable (default: one demo app)")
	tokenTTL := fs.Duration("token-ttl", 7200*time.Second, "lifetime of access tokens")
	ticketTTL := fs.Duration("ticket-ttl", 3600*time.Second, "lifetime of SIGN tickets")
	nonceTTL := fs.Duration("nonce-ttl", 120*time.Second, "lifetime of NONCE tickets")
	grace := fs.Duration("grace", 60*time.Second, "validity of a superseded access token; negative for none")
	photoBytes := fs.Int("photo-bytes", 512<<10, "size of each raw photo or video for get_file (getFile)")
	domain := fs.String("optimal-domain", "", "`host:port` the launch APIs answer as optimalDomain (default: the listen address)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	apps, err := appFlags.apps()
	if err != nil {
		return err
	}
	if len(apps) == 0 {
		apps[demoAppID] = demoSecret
		log.Printf("demo credentials: app_id=%s secret=%s", demoAppID, demoSecret)
	} else {
		log.Printf("apps: %s", strings.Join(slices.Sorted(maps.Keys(apps)), ", "))
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fake := webanktest.New(webanktest.Options{
		Apps:          apps,
		TokenTTL:      *tokenTTL,
		TicketTTL:     *ticketTTL,
		NonceTTL:      *nonceTTL,
		Grace:         *grace,
		PhotoBytes:    *photoBytes,
		OptimalDomain: optimalDomain(*domain, ln.Addr()),
		Logf:          log.Printf,
	})
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("listening on http://%s", ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if listening != nil {
		listening <- ln.Addr()
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	log.Print("shutting down")
	fake.Close() // release requests held by Hang and Delay faults
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// optimalDomain returns what the launch APIs answer as optimalDomain: flag
// if set, else addr, the listen address, unless its IP is unspecified
// (0.0.0.0 or ::): then "", which makes the fake answer the local address
// of each request's connection.
func optimalDomain(flag string, addr net.Addr) string {
	if flag != "" {
		return flag
	}
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return ""
	}
	return addr.String()
}

// appFlag collects the -app flags. Their values are checked by apps, not
// by Set, because the flag package would quote a rejected value, secret
// included, in its error.
type appFlag []string

func (a *appFlag) String() string { return fmt.Sprintf("%d apps", len(*a)) } // never the secrets

func (a *appFlag) Set(s string) error {
	*a = append(*a, s)
	return nil
}

// apps returns the collected apps as app_id -> secret.
func (a appFlag) apps() (map[string]string, error) {
	apps := make(map[string]string, len(a))
	for i, s := range a {
		id, secret, ok := strings.Cut(s, ":")
		if !ok || id == "" || secret == "" {
			return nil, fmt.Errorf("-app #%d: want ID:SECRET", i+1)
		}
		if _, dup := apps[id]; dup {
			return nil, fmt.Errorf("-app %s given twice", id)
		}
		apps[id] = secret
	}
	return apps, nil
}
