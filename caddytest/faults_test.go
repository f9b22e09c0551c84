package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// rewriteToken serves the fake, but answers the token endpoint with body(token)
// instead, where token is the one the fake issued.
func rewriteToken(fake *webanktest.Server, body func(token string) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/access_token") {
			fake.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, r)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &tok)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body(tok.AccessToken))
	})
}

// startFront starts a server on 127.0.0.1 in front of the fake, stopped
// when the test ends, and returns its URL.
func startFront(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// setupFront is setup with base_url pointing at front(fake) instead of the fake.
func setupFront(t *testing.T, opts webanktest.Options, extra string, front func(*webanktest.Server) string) *env {
	t.Helper()
	e := setup(t, opts, func(fakeURL string) string { return "" })
	e.load(siteFor(front(e.fake), e.fake.URL, extra), t.TempDir())
	return e
}

// expire_in of 0 is refused as malformed; 1 second is honoured without
// hammering the token endpoint.
func TestExpireInZeroAndOne(t *testing.T) {
	t.Run("zero", func(t *testing.T) {
		e := setupFront(t, webanktest.Options{}, "", func(fake *webanktest.Server) string {
			return startFront(t, rewriteToken(fake, func(tok string) string {
				return fmt.Sprintf(`{"code":"0","access_token":%q,"expire_in":0}`, tok)
			}))
		})
		status, body := e.get(ocrPath + "?order_no=Z1")
		if se := decodeError(t, body); status != http.StatusBadGateway || !strings.Contains(se.Msg, "access token failed (malformed)") {
			t.Errorf("expire_in 0: %d %s, want 502 for a malformed token answer", status, body)
		}
		if st := e.status(); st.LastError == nil || !strings.Contains(st.LastError.Message, "expire_in is not positive") {
			t.Errorf("admin status: last error %+v, want it naming expire_in", st.LastError)
		}
	})
	t.Run("one", func(t *testing.T) {
		e := setupFront(t, webanktest.Options{}, "", func(fake *webanktest.Server) string {
			return startFront(t, rewriteToken(fake, func(tok string) string {
				return fmt.Sprintf(`{"code":"0","access_token":%q,"expire_in":"1"}`, tok)
			}))
		})
		start := time.Now()
		failed := 0
		for i := 0; time.Since(start) < 3*time.Second; i++ {
			if status, _ := e.get(fmt.Sprintf("%s?order_no=O%d", ocrPath, i)); status != http.StatusOK {
				failed++
			}
		}
		calls := e.fake.TokenCalls()
		if perSecond := float64(calls) / time.Since(start).Seconds(); perSecond > 3 {
			t.Errorf("%d token calls in %v with 1s tokens: the endpoint is hammered", calls, time.Since(start))
		}
		if failed > 0 {
			t.Errorf("%d requests failed with 1s tokens", failed)
		}
		e.wantCleanSignatures()
	})
}

// A token endpoint that trickles its answer is cut off at fetch_timeout.
func TestTricklingTokenEndpoint(t *testing.T) {
	e := setupFront(t, webanktest.Options{}, "fetch_timeout 1s", func(fake *webanktest.Server) string {
		return startFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/access_token") {
				fake.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			for _, c := range []byte(`{"code":"0","access_token":"x","expire_in":7200}`) {
				w.Write([]byte{c})
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond): // the trickle itself
				}
			}
		}))
	})
	start := time.Now()
	status, body := e.get(ocrPath + "?order_no=T1")
	if se := decodeError(t, body); status != http.StatusBadGateway || !strings.Contains(se.Msg, "(timeout)") {
		t.Errorf("trickle: %d %s, want 502 timeout", status, body)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("the client waited %v, past fetch_timeout 1s", took)
	}
}

// TLS failures towards the token endpoint: a plain server spoken to in TLS,
// and a certificate nobody trusts.
func TestTLSErrors(t *testing.T) {
	tests := []struct {
		name  string
		front func(*testing.T, *webanktest.Server) string
	}{
		{"plain server", func(t *testing.T, fake *webanktest.Server) string {
			return strings.Replace(fake.URL, "http://", "https://", 1)
		}},
		{"untrusted certificate", func(t *testing.T, fake *webanktest.Server) string {
			srv := httptest.NewTLSServer(fake)
			t.Cleanup(srv.Close)
			return srv.URL
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setupFront(t, webanktest.Options{}, "fetch_timeout 2s", func(fake *webanktest.Server) string { return tt.front(t, fake) })
			status, body := e.get(ocrPath + "?order_no=TLS1")
			se := decodeError(t, body)
			if status != http.StatusBadGateway || se.Code != "ticket_unavailable" || !strings.Contains(se.Msg, "access token") {
				t.Errorf("%d %s, want 502 ticket_unavailable", status, body)
			}
			if strings.Contains(string(body), "secret=") {
				t.Errorf("answer holds the token URL's query: %s", body)
			}
			if e.fake.TokenCalls() != 0 {
				t.Errorf("a token call got through")
			}
		})
	}
}

// getOcrResult resetting the connection: the client gets a JSON 502, the
// sidecar keeps working.
func TestUpstreamResetAnsweredAsJSON(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	e.fake.SetFault(webanktest.OCREndpoint, webanktest.Fault{Reset: true})
	status, body := e.get(ocrPath + "?order_no=R1")
	if se := decodeError(t, body); status != http.StatusBadGateway || se.Code != "upstream_failed" {
		t.Errorf("reset: %d %s, want 502 upstream_failed", status, body)
	}
	e.fake.ClearFaults()
	if status, _ := e.get(ocrPath + "?order_no=R2"); status != http.StatusOK {
		t.Errorf("after the reset: %d", status)
	}
}

// WeBank refusing every signature (400101 for everything): each client gets
// WeBank's answer, and the token endpoint sees at most one forced fetch.
func TestEverythingRefusedDoesNotHammer(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	e.fake.SetFault(webanktest.OCREndpoint, webanktest.Fault{Code: "400101"})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.client.Get(fmt.Sprintf("%s%s?order_no=H%d", siteURL, ocrPath, i))
			if err != nil {
				mu.Lock()
				bad = append(bad, err.Error())
				mu.Unlock()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Contains(body, []byte(`"400101"`)) {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%d %.100s", resp.StatusCode, body))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, b := range bad {
		t.Errorf("want WeBank's 400101, got %s", b)
	}
	if n := e.fake.TokenCalls(); n > 2 {
		t.Errorf("%d token calls for 40 refused requests: want the first plus at most one forced", n)
	}
}

// A slow getOcrResult is waited for, not cut: the answer arrives whole.
func TestSlowUpstreamWaitedFor(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	e.fake.SetFault(webanktest.OCREndpoint, webanktest.Fault{Delay: 1500 * time.Millisecond})
	status, body := e.get(ocrPath + "?order_no=SLOW1")
	if want := e.fake.OCRResultBody(appID, "SLOW1", false, false); status != http.StatusOK || !bytes.Equal(body, want) {
		t.Errorf("slow upstream: %d %.100s", status, body)
	}
}

// getOcrResult sending headers and part of a small answer, then dropping
// the connection: nothing has reached the client yet (the probe holds up to
// 4 KiB), so it gets a JSON 502 rather than a truncated answer.
func TestUpstreamResetMidBody(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string { return "" })
	upstream := startFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "5000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"code":"0","result":{"name":"`))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	e.load(siteFor(e.fake.URL, upstream, ""), t.TempDir())
	status, body := e.get(ocrPath + "?order_no=MID1")
	if se := decodeError(t, body); status != http.StatusBadGateway || se.Code != "upstream_failed" {
		t.Errorf("reset mid-body: %d %s, want 502 upstream_failed", status, body)
	}
}

// requestsCounted reads requests_total of the test app for outcome and
// status.
func requestsCounted(t *testing.T, outcome, status string) float64 {
	t.Helper()
	return metric(t, "caddy_webank_sign_requests_total", `app_id="`+appID+`"`, `outcome="`+outcome+`"`, `status="`+status+`"`)
}

// An upstream that fails before answering gets the module's JSON 502 on
// every way a signed request goes to it, not only on the probed first
// attempt, and the request is counted once, as upstream_failed.
func TestUpstreamFailedOnEveryPath(t *testing.T) {
	const dead = "127.0.0.1:1" // nothing listens: the connection is refused
	tests := []struct {
		name, method, extra string
		upstream            func(t *testing.T) string
	}{
		{"first attempt", http.MethodGet, "", func(*testing.T) string { return dead }},
		{"HEAD", http.MethodHead, "", func(*testing.T) string { return dead }},
		{"retry_codes off", http.MethodGet, "retry_codes off", func(*testing.T) string { return dead }},
		// WeBank rejects the ticket, and the attempt with the new one finds
		// the connection reset (each time: the transport retries once).
		{"retried attempt", http.MethodGet, "", func(t *testing.T) string {
			var calls atomic.Int32
			return startFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"code":"15","msg":"access_token invalid"}`)
					return
				}
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					conn.Close()
				}
			}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, webanktest.Options{}, func(string) string { return "" })
			e.load(siteFor(e.fake.URL, tt.upstream(t), tt.extra), t.TempDir())
			signed0, failed0 := requestsCounted(t, "signed", ""), requestsCounted(t, "upstream_failed", "502")
			status, body, hdr := e.do(tt.method, ocrPath+"?order_no=UF1")
			if status != http.StatusBadGateway || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Errorf("%d %q %s, want 502 JSON", status, hdr.Get("Content-Type"), body)
			}
			if got := requestsCounted(t, "upstream_failed", "502") - failed0; got != 1 {
				t.Errorf("requests_total{upstream_failed,502} moved by %v, want 1", got)
			}
			if got := requestsCounted(t, "signed", "") - signed0; got != 0 {
				t.Errorf("requests_total{signed} moved by %v, want 0: WeBank's answer never got through", got)
			}
			if tt.method != http.MethodHead {
				if se := decodeError(t, body); se.Code != "upstream_failed" {
					t.Errorf("code %q, want upstream_failed", se.Code)
				}
			}
		})
	}
}

// A client that gives up while the ticket is being fetched is counted as
// client_gone, not unavailable; the fetch goes on, and serves the next
// request.
func TestClientGoneDuringFetchCounted(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var arrivedOnce, releaseOnce sync.Once
	e := setupFront(t, webanktest.Options{}, "fetch_timeout 10s", func(fake *webanktest.Server) string {
		return startFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/access_token") {
				arrivedOnce.Do(func() { close(arrived) })
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			fake.ServeHTTP(w, r)
		}))
	})
	releaseFetch := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseFetch) // before the front stops, which waits for the fetch

	gone0, unavailable0 := requestsCounted(t, "client_gone", ""), requestsCounted(t, "unavailable", "502")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, siteURL+ocrPath+"?order_no=GONE1", nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := e.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-arrived // the fetch is held
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the client was answered while the fetch was held")
	}
	waitFor(t, "the request counted", 10*time.Second, func() bool {
		return requestsCounted(t, "client_gone", "") > gone0 || requestsCounted(t, "unavailable", "502") > unavailable0
	})
	if got := requestsCounted(t, "unavailable", "502") - unavailable0; got != 0 {
		t.Errorf("requests_total{unavailable} moved by %v, want 0: the client had left", got)
	}
	if got := requestsCounted(t, "client_gone", "") - gone0; got != 1 {
		t.Errorf("requests_total{client_gone} moved by %v, want 1", got)
	}
	releaseFetch()
	if status, body := e.get(ocrPath + "?order_no=GONE2"); status != http.StatusOK {
		t.Errorf("after the fetch was released: %d %s", status, body)
	}
	e.wantCounts(1, 1)
}
