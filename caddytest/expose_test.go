package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// signBlock is a webank_sign handler fetching its tickets from baseURL.
func signBlock(baseURL string) string {
	return fmt.Sprintf(`webank_sign {
			app_id %s
			secret {env.%s}
			base_url %s
		}`, appID, secretEnv, baseURL)
}

// exposingSite is a site on the usual port whose block is body, with %[1]s
// standing for the webank_sign handler and %[2]s for the fake's URL.
func exposingSite(body string) func(fakeURL string) string {
	return func(fakeURL string) string {
		return fmt.Sprintf("http://:%d {\n\tbind 127.0.0.1\n\tlog\n", sitePort) +
			fmt.Sprintf(body, signBlock(fakeURL), fakeURL) + "\n}\n"
	}
}

// tryLoad adapts site under the test's global options, with Caddy's debug
// log going to the test's log file, and posts it to /load. It returns the
// status and the error message of the load.
func (e *env) tryLoad(site string) (int, string) {
	e.t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(e.caddyfile(site)), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		e.t.Fatalf("adapting: %v", err)
	}
	// A load replaces the admin server: a kept-alive connection to the
	// previous one would be reset.
	admin := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := admin.Post("http://"+adminAddr+"/load", "application/json", bytes.NewReader(cfg))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// getAfterRefusal is e.do(GET) right after a refused load. The refused
// config's server may still be accepting, on the listener it shares with
// the running config, as /load answers: it closes what it accepts, so a
// request that meets that end is sent again, on a new connection.
func (e *env) getAfterRefusal(pathAndQuery string) (int, []byte, http.Header) {
	e.t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for attempt := 1; ; attempt++ {
		resp, err := client.Get(siteURL + pathAndQuery)
		if err != nil {
			if attempt < 3 {
				e.t.Logf("GET %s, attempt %d: %v", pathAndQuery, attempt, err)
				continue
			}
			e.t.Fatalf("GET %s: %v", pathAndQuery, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			e.t.Fatalf("GET %s: reading body: %v", pathAndQuery, err)
		}
		return resp.StatusCode, body, resp.Header
	}
}

// wantNothingSignedIn fails the test if a header of a response holds a
// query parameter the module adds.
func wantNothingSignedIn(t *testing.T, hdr http.Header) {
	t.Helper()
	for k, vs := range hdr {
		for _, v := range vs {
			if strings.Contains(v, "sign=") || strings.Contains(v, "nonce=") {
				t.Errorf("response header %s holds the signed query: %q", k, v)
			}
		}
	}
}

// TestExposingConfigsRefused loads configs in which an ordinary Caddy
// feature after webank_sign would put the signed query, sign and nonce
// included, into a log, a header or a response: each load is refused with
// an error that names webank_sign's place and the directive, and the
// config already running goes on signing. Had one been loaded, the request
// after it would leak: the log check at cleanup, or the header check here,
// would say so.
func TestExposingConfigsRefused(t *testing.T) {
	cases := []struct {
		name string
		body string // the site's block: %[1]s is webank_sign, %[2]s the fake's URL
		want string // what the error must name
	}{
		{
			// reverse_proxy then logs the upstream request's URI, signed.
			name: "reverse_proxy rewrite",
			body: `	route ` + ocrPath + ` {
		%[1]s
		reverse_proxy %[2]s {
			rewrite ` + ocrPath + `
		}
	}`,
			want: "reverse_proxy's rewrite",
		},
		{
			name: "uri after webank_sign",
			body: `	route ` + ocrPath + ` {
		%[1]s
		uri strip_prefix /v1
		reverse_proxy %[2]s
	}`,
			want: "rewrite or uri directive",
		},
		{
			name: "rewrite after webank_sign",
			body: `	route ` + ocrPath + ` {
		%[1]s
		rewrite * {path}?{query}
		reverse_proxy %[2]s
	}`,
			want: "rewrite or uri directive",
		},
		{
			// webank_sign calls next, so its route's subroute goes on
			// into the routes that follow it.
			name: "rewrite in a later route",
			body: `	route ` + ocrPath + ` {
		%[1]s
	}
	route {
		uri strip_prefix /v1
		reverse_proxy %[2]s
	}`,
			want: "rewrite or uri directive",
		},
		{
			name: "header_up with the query",
			body: `	route ` + ocrPath + ` {
		%[1]s
		reverse_proxy %[2]s {
			header_up X-Query {query}
		}
	}`,
			want: "reverse_proxy's header_up uses {http.request.uri.query}",
		},
		{
			name: "header_down with the uri",
			body: `	route ` + ocrPath + ` {
		%[1]s
		reverse_proxy %[2]s {
			header_down X-URI {uri}
		}
	}`,
			want: "reverse_proxy's header_down uses {http.request.uri}",
		},
		{
			name: "header with a query parameter",
			body: `	route ` + ocrPath + ` {
		%[1]s
		header X-Sign {http.request.uri.query.sign}
		reverse_proxy %[2]s
	}`,
			want: "header directive after it uses {http.request.uri.query.sign}",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, webanktest.Options{}, signSite(""))
			site := exposingSite(c.body)(e.fake.URL)
			status, msg := e.tryLoad(site)
			if status != http.StatusBadRequest || !strings.Contains(msg, "webank_sign (Caddyfile:") || !strings.Contains(msg, c.want) {
				t.Errorf("loading\n%s\n= %d %s, want 400 naming webank_sign's place and %q", site, status, msg, c.want)
			}
			t.Logf("refused: %s", msg)
			status, body, hdr := e.getAfterRefusal(ocrPath + "?order_no=EXP1")
			if status != http.StatusOK {
				t.Errorf("the running config after the load: %d %s", status, body)
			}
			wantNothingSignedIn(t, hdr)
			e.wantCleanSignatures()
		})
	}
}

// TestHarmlessNeighboursLoad loads configs close to the refused ones that
// expose nothing: a rewrite before webank_sign, the client's URI through
// {http.request.orig_uri}, the path, and a later handle block that a
// request signed in an earlier one never reaches, since reverse_proxy ends
// the chain. Each loads, signs, and leaks nothing.
func TestHarmlessNeighboursLoad(t *testing.T) {
	cases := []struct {
		name, body, path string
	}{
		{
			name: "rewrite before webank_sign",
			body: `	route /v1/* {
		uri strip_prefix /v1
		%[1]s
		reverse_proxy %[2]s
	}`,
			path: "/v1" + ocrPath,
		},
		{
			name: "orig_uri and path in headers",
			body: `	route ` + ocrPath + ` {
		%[1]s
		header X-Path {http.request.uri.path}
		reverse_proxy %[2]s {
			header_up X-Client-URI {http.request.orig_uri}
			header_down X-Client-Query {http.request.orig_uri.query}
		}
	}`,
			path: ocrPath,
		},
		{
			name: "rewrite in a later handle block",
			body: `	handle ` + ocrPath + ` {
		%[1]s
		reverse_proxy %[2]s
	}
	handle {
		uri strip_prefix /v1
		header X-URI {uri}
		respond 404
	}`,
			path: ocrPath,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, webanktest.Options{}, exposingSite(c.body))
			status, body, hdr := e.do(http.MethodGet, c.path+"?order_no=OK1")
			if status != http.StatusOK {
				t.Errorf("GET %s = %d %s, want 200", c.path, status, body)
			}
			wantNothingSignedIn(t, hdr)
			e.wantCounts(1, 1)
			e.wantCleanSignatures()
			// checkLogs, at cleanup, fails the test if the log holds sign or nonce.
		})
	}
}

// TestRefusedConfigServesNothing loads a refused config again and again
// while clients keep opening connections. Caddy starts a config's apps in
// no set order, so the refused config's server may be accepting
// connections, on the listener it shares with the running config, before
// webank_sign refuses it: none of those may be served by it. Its
// header_down would hand the signed URI to the client, and its log lines
// would hold sign and nonce.
func TestRefusedConfigServesNothing(t *testing.T) {
	const loads = 100 // without the hold, 1 to 21 in 150 to 300 loads served a request, so this may miss one
	e := setup(t, webanktest.Options{}, signSite(""))
	site := exposingSite(`	route ` + ocrPath + ` {
		%[1]s
		reverse_proxy %[2]s {
			header_down X-URI {uri}
		}
	}`)(e.fake.URL)
	stop := make(chan struct{})
	var served, leaked atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A new connection for each request, so that a starting server can take it.
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(siteURL + ocrPath + "?order_no=HOLD1")
				if err != nil {
					continue // a connection the refused config closed
				}
				resp.Body.Close()
				served.Add(1)
				if resp.Header.Get("X-URI") != "" {
					leaked.Add(1)
				}
			}
		}()
	}
	for i := range loads {
		if status, msg := e.tryLoad(site); status != http.StatusBadRequest {
			t.Errorf("load %d = %d %s, want 400", i, status, msg)
			break
		}
	}
	close(stop)
	wg.Wait()
	if served.Load() == 0 {
		t.Fatal("no request was served: the test proves nothing")
	}
	if n := leaked.Load(); n > 0 {
		t.Errorf("%d of %d responses came from a refused config", n, served.Load())
	}
	// checkLogs, at cleanup, fails the test if a refused config logged sign or nonce.
}

// TestExposureRefusedWithGlobalOption is the refusal with webank_sign's
// global option, which makes its app one of the config's own: Caddy may
// then provision it before the http app, and the check and the hold must
// find the http app all the same.
func TestExposureRefusedWithGlobalOption(t *testing.T) {
	e := setupGlobals(t, webanktest.Options{}, "webank_sign {\n\t\tcache_size 64\n\t}", signSite(""))
	site := exposingSite(`	route ` + ocrPath + ` {
		%[1]s
		header X-Query {query}
		reverse_proxy %[2]s
	}`)(e.fake.URL)
	for i := range 10 { // Caddy provisions its apps in map order: try both orders
		status, msg := e.tryLoad(site)
		if status != http.StatusBadRequest || !strings.Contains(msg, "header directive after it uses {http.request.uri.query}") {
			t.Fatalf("load %d = %d %s, want 400 naming the header directive", i, status, msg)
		}
	}
	status, body, hdr := e.getAfterRefusal(ocrPath + "?order_no=GLOB1")
	if status != http.StatusOK {
		t.Errorf("the running config after the refused loads: %d %s", status, body)
	}
	wantNothingSignedIn(t, hdr)
}
