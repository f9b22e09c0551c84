package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

const ocrPath = "/api/server/getOcrResult"

func TestHappyPath(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	status, body := e.get(ocrPath + "?order_no=ORD20261126001")
	if status != http.StatusOK {
		t.Fatalf("status = %d, body %s", status, body)
	}
	if want := e.fake.OCRResultBody(appID, "ORD20261126001", false, false); !bytes.Equal(body, want) {
		t.Errorf("body = %.200s, want the fake's answer %.200s", body, want)
	}
	qs := e.fake.OCRQueries()
	if len(qs) != 1 {
		t.Fatalf("fake got %d getOcrResult queries, want 1", len(qs))
	}
	q := qs[0]
	for k, want := range map[string]string{"app_id": appID, "order_no": "ORD20261126001", "version": "1.0.0"} {
		if q.Get(k) != want {
			t.Errorf("forwarded %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if len(q.Get("nonce")) != 32 || len(q.Get("sign")) != 40 {
		t.Errorf("forwarded nonce/sign have lengths %d/%d, want 32/40", len(q.Get("nonce")), len(q.Get("sign")))
	}

	// A second request reuses the ticket, with a fresh nonce.
	if status, body := e.get(ocrPath + "?order_no=ORD20261126002&get_native=1"); status != http.StatusOK {
		t.Fatalf("second request: status = %d, body %s", status, body)
	}
	qs = e.fake.OCRQueries()
	if qs[1].Get("nonce") == qs[0].Get("nonce") {
		t.Errorf("nonce reused across requests")
	}
	if qs[1].Get("get_native") != "1" {
		t.Errorf("get_native not passed through: %v", qs[1])
	}
	e.wantCounts(1, 1)
	e.wantCleanSignatures()

	// HEAD is signed too, and gets no body.
	status, body, _ = e.do(http.MethodHead, ocrPath+"?order_no=ORD20261126003")
	if status != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD: status %d, %d body bytes; want 200 and none", status, len(body))
	}
}

func TestClientSignNonceVersionReplaced(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	const forged = "DEADBEEFDEADBEEFDEADBEEFDEADBEEFDEADBEEF"
	e.clientSent = append(e.clientSent, forged)
	status, body := e.get(ocrPath + "?order_no=A1&sign=" + forged + "&nonce=short&version=9.9.9&sign=X&app_id=" + appID)
	if status != http.StatusOK {
		t.Fatalf("status = %d, body %s", status, body)
	}
	q := e.fake.OCRQueries()[0]
	if len(q["sign"]) != 1 || q.Get("sign") == forged || len(q["nonce"]) != 1 || q.Get("nonce") == "short" ||
		len(q["version"]) != 1 || q.Get("version") != "1.0.0" || len(q["app_id"]) != 1 {
		t.Errorf("forwarded query kept client values: %v", redactSign(q))
	}
	e.wantCleanSignatures()
}

func redactSign(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		if k != "sign" {
			out[k] = v
		}
	}
	return out
}

func TestBadRequestsAnsweredAndNotForwarded(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	tests := []struct {
		method, query string
		status        int
		code          string
	}{
		{"GET", "", 400, "order_no_missing"},
		{"GET", "?get_file=1", 400, "order_no_missing"},
		{"GET", "?order_no=", 400, "order_no_empty"},
		{"GET", "?order_no=A1&order_no=A2", 400, "order_no_repeated"},
		{"GET", "?order_no=" + strings.Repeat("9", 33), 400, "order_no_too_long"},
		{"GET", "?order_no=A.1", 400, "order_no_invalid"},
		{"GET", "?order_no=A1%0D%0AX-Injected:%201", 400, "order_no_invalid"},
		{"GET", "?order_no=A1;sign=X", 400, "query_malformed"},
		{"GET", "?order_no=A1&app_id=IDAOTHER", 403, "app_id_mismatch"},
		{"GET", "?order_no=A1&app_id=" + appID + "&app_id=IDAOTHER", 403, "app_id_mismatch"},
		{"GET", "?order_no=A1&order%5Fno=A2", 400, "order_no_repeated"}, // an encoded name is the same name
		{"POST", "?order_no=A1", 405, "wrong_shape"},                    // the JSON shape, on a query API
		{"PUT", "?order_no=A1", 405, "method_not_allowed"},
		{"DELETE", "?order_no=A1", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.query, func(t *testing.T) {
			status, body, hdr := e.do(tt.method, ocrPath+tt.query)
			if status != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", status, tt.status, body)
			}
			if got := decodeError(t, body); got.Code != tt.code {
				t.Errorf("code = %q, want %q (msg %q)", got.Code, tt.code, got.Msg)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
			if status == http.StatusMethodNotAllowed && hdr.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q, want GET, HEAD", hdr.Get("Allow"))
			}
		})
	}
	if n := e.fake.OCRCalls(); n != 0 {
		t.Errorf("fake got %d getOcrResult calls, want none", n)
	}
	// Bad input never costs a token fetch.
	e.wantCounts(0, 0)

	// An overlong query is refused by Caddy itself, before the module.
	if status, _ := e.get(ocrPath + "?order_no=A1&" + strings.Repeat("x=1&", 100000)); status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 400 KB query: status %d, want 431", status)
	}
	if n := e.fake.OCRCalls(); n != 0 {
		t.Errorf("the overlong query was forwarded")
	}

	// An encoded parameter name is decoded, and forwarded (and signed) as the
	// name the upstream reads.
	if status, body := e.get(ocrPath + "?order%5Fno=ENC1&get%5Ffile=0"); status != http.StatusOK {
		t.Fatalf("encoded names: %d %s", status, body)
	}
	q := e.fake.OCRQueries()[0]
	if q.Get("order_no") != "ENC1" || q.Get("get_file") != "0" {
		t.Errorf("encoded names forwarded as %v", redactSign(q))
	}
	e.wantCleanSignatures()
}

// Photos (several MB with get_file=1) come back byte-identical, and stream:
// the upstream sends the first half and waits until the client has read it
// before sending the rest. A sidecar that buffered the answer whole would
// never deliver the first half, and the test would time out.
func TestPhotosStreamedByteIdentical(t *testing.T) {
	const orderNo = "PHOTO0001"
	var fake *webanktest.Server
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, r) // the fake checks the signature
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		half := len(body) / 2
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		w.Write(body[half:])
	}))
	t.Cleanup(upstream.Close)

	e := setup(t, webanktest.Options{PhotoBytes: 768 << 10}, signSite(""))
	fake = e.fake
	// Point reverse_proxy at the gated upstream instead of the fake.
	e.load(siteFor(fake.URL, upstream.URL, ""), t.TempDir())

	want := fake.OCRResultBody(appID, orderNo, true, false)
	if len(want) < 3<<20 {
		t.Fatalf("photo answer is only %d bytes; the test needs several MB", len(want))
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	defer client.CloseIdleConnections()
	resp, err := client.Get(siteURL + ocrPath + "?order_no=" + orderNo + "&get_file=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The upstream holds back its second half until the client has read
	// well into the first: a quarter, so that the last bytes of the first
	// half, which Caddy's server may keep in its write buffer until more
	// come, are not waited for (waiting for them made this test hang now
	// and then).
	got := make([]byte, len(want)/4)
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, got); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("reading the first quarter: %v", err)
		}
	case <-time.After(60 * time.Second): // a sidecar that buffers whole never delivers it; 60s is for a loaded machine
		t.Fatal("the first quarter of the answer never arrived: the sidecar is not streaming")
	}
	release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got = append(got, rest...); !bytes.Equal(got, want) {
		t.Errorf("photo answer differs: got %d bytes, want %d", len(got), len(want))
	}
	if cl := resp.Header.Get("Content-Length"); cl != fmt.Sprint(len(want)) {
		t.Errorf("Content-Length = %q, want %d", cl, len(want))
	}
	e.wantCleanSignatures()
}

// Hundreds of requests on a cold cache make exactly one token and one ticket
// call. The token endpoint is slowed so that they all arrive while the first
// fetch is under way.
func TestStampedeFetchesOnce(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	e.fake.SetFault(webanktest.TokenEndpoint, webanktest.Fault{Delay: 300 * time.Millisecond})
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan string, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := e.client.Get(fmt.Sprintf("%s%s?order_no=STAMPEDE%d", siteURL, ocrPath, i))
			if err != nil {
				errs <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"code":"0"`)) {
				errs <- fmt.Sprintf("status %d: %.200s", resp.StatusCode, body)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	e.wantCounts(1, 1)
	if got := e.fake.OCRCalls(); got != n {
		t.Errorf("fake got %d getOcrResult calls, want %d", got, n)
	}
	e.wantCleanSignatures()
}

// Under steady traffic, tickets that live 3 s are replaced every second in
// the background; no request fails and none is signed with a dead ticket.
func TestRefreshBeforeExpiryUnderTraffic(t *testing.T) {
	e := setup(t, webanktest.Options{TokenTTL: 3 * time.Second, TicketTTL: 3 * time.Second, Grace: 2 * time.Second},
		signSite("refresh 1s"))
	const workers, wantTokens = 4, 4
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	requests := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; e.fake.TokenCalls() < wantTokens && time.Now().Before(deadline); i++ {
				resp, err := e.client.Get(fmt.Sprintf("%s%s?order_no=W%dR%d", siteURL, ocrPath, w, i))
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				requests++
				if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"code":"0"`)) {
					failures = append(failures, fmt.Sprintf("%v %.120s", err, body))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got := e.fake.TokenCalls(); got < wantTokens {
		t.Fatalf("only %d token fetches within 30s; want %d (background refresh every second)", got, wantTokens)
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed, first: %s", len(failures), requests, failures[0])
	}
	if n := e.fake.StaleTickets(); n != 0 {
		t.Errorf("fake saw %d requests signed with a dead ticket", n)
	}
	e.wantCleanSignatures()
	t.Logf("%d requests across %d token fetches", requests, e.fake.TokenCalls())
}

// Another party fetching a token kills ours (no grace here): WeBank answers
// code 15, the sidecar fetches a new ticket and retries, and the client sees
// only the final, good answer.
func TestRotationByAnotherPartyRecovered(t *testing.T) {
	e := setup(t, webanktest.Options{Grace: -1}, signSite(""))
	if status, body := e.get(ocrPath + "?order_no=BEFORE1"); status != http.StatusOK {
		t.Fatalf("status = %d, body %s", status, body)
	}
	e.fake.RotateToken(appID)
	status, body := e.get(ocrPath + "?order_no=AFTER1")
	if status != http.StatusOK {
		t.Fatalf("after rotation: status = %d, body %s", status, body)
	}
	if want := e.fake.OCRResultBody(appID, "AFTER1", false, false); !bytes.Equal(body, want) {
		t.Errorf("after rotation: body = %.200s, want the fake's answer", body)
	}
	if n := e.fake.StaleTickets(); n != 1 {
		t.Errorf("fake saw %d stale-ticket requests, want exactly the 1 that was retried", n)
	}
	e.wantCounts(2, 2)
	e.wantCleanSignatures()

	// A second rotation right away: the ticket is not dropped again within
	// the guard interval, so WeBank's answer reaches the client as it is.
	e.fake.RotateToken(appID)
	status, body = e.get(ocrPath + "?order_no=AFTER2")
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"code":"15"`)) {
		t.Errorf("second rotation within the guard: status %d body %s, want WeBank's code 15 passed through", status, body)
	}
	e.wantCounts(2, 2)
}

func TestRetryOff(t *testing.T) {
	e := setup(t, webanktest.Options{Grace: -1}, signSite("retry_codes off"))
	if status, _ := e.get(ocrPath + "?order_no=BEFORE1"); status != http.StatusOK {
		t.Fatalf("status = %d", status)
	}
	e.fake.RotateToken(appID)
	status, body := e.get(ocrPath + "?order_no=AFTER1")
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"code":"15"`)) {
		t.Errorf("status %d body %s, want WeBank's code 15 passed through", status, body)
	}
	e.wantCounts(1, 1)
}

// When no ticket can be had, requests are answered 502 with a JSON reason
// that says which step failed and how, but holds no secret and none of the
// error's own text (such as WeBank's address); nothing is forwarded, and
// the sidecar recovers by itself once WeBank does, without hammering the
// failing endpoint.
func TestTicketUnavailableThenRecovery(t *testing.T) {
	tests := []struct {
		name    string
		ep      webanktest.Endpoint
		fault   webanktest.Fault
		wantMsg string
	}{
		{"token HTTP 500", webanktest.TokenEndpoint, webanktest.Fault{Status: 500}, "fetching the access token failed (http_status)"},
		{"token error code", webanktest.TokenEndpoint, webanktest.Fault{Code: "400103"}, "fetching the access token failed (code)"},
		{"token malformed JSON", webanktest.TokenEndpoint, webanktest.Fault{Malformed: true}, "fetching the access token failed (malformed)"},
		{"token timeout", webanktest.TokenEndpoint, webanktest.Fault{Hang: true}, "fetching the access token failed (timeout)"},
		{"token connection reset", webanktest.TokenEndpoint, webanktest.Fault{Reset: true}, "fetching the access token failed (transport)"},
		{"ticket HTTP 503", webanktest.TicketEndpoint, webanktest.Fault{Status: 503}, "fetching the SIGN ticket failed (http_status)"},
		{"ticket error code", webanktest.TicketEndpoint, webanktest.Fault{Code: "15"}, "fetching the SIGN ticket failed (code)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, webanktest.Options{}, signSite("fetch_timeout 1s"))
			e.fake.SetFault(tt.ep, tt.fault)
			status, body := e.get(ocrPath + "?order_no=DOWN1")
			if status != http.StatusBadGateway {
				t.Fatalf("status = %d, want 502 (body %s)", status, body)
			}
			se := decodeError(t, body)
			if se.Code != "ticket_unavailable" || !strings.Contains(se.Msg, tt.wantMsg) {
				t.Errorf("answer = %+v, want code ticket_unavailable and a msg containing %q", se, tt.wantMsg)
			}
			if strings.Contains(string(body), secret) || strings.Contains(string(body), "secret=") {
				t.Errorf("answer holds the secret or the token URL: %s", body)
			}
			if host := strings.TrimPrefix(e.fake.URL, "http://"); strings.Contains(string(body), host) {
				t.Errorf("answer names WeBank's address %s: %s", host, body)
			}
			// During the backoff, requests are answered at once without a fetch.
			calls := e.fake.TokenCalls() + e.fake.TicketCalls()
			if status, _ := e.get(ocrPath + "?order_no=DOWN2"); status != http.StatusBadGateway {
				t.Errorf("second request: status = %d, want 502", status)
			}
			if now := e.fake.TokenCalls() + e.fake.TicketCalls(); now != calls {
				t.Errorf("a request during the backoff fetched again (%d calls, then %d)", calls, now)
			}
			if n := e.fake.OCRCalls(); n != 0 {
				t.Errorf("fake got %d getOcrResult calls while no ticket could be had", n)
			}

			e.fake.ClearFaults()
			polls := pollUntilOK(t, e, ocrPath+"?order_no=UP1", 15*time.Second)
			// The backoff after one failure is at most 1s: a few fetches at most,
			// however many requests polled meanwhile.
			if n := e.fake.TokenCalls(); n > 3 {
				t.Errorf("%d token calls for one outage and %d polls; the endpoint was hammered", n, polls)
			}
			e.wantCleanSignatures()
		})
	}
}

// pollUntilOK requests path every 50ms until it is answered 200, and fails
// the test if that takes longer than limit. It returns how many polls it took.
func pollUntilOK(t *testing.T, e *env, path string, limit time.Duration) int {
	t.Helper()
	polls := 0
	waitFor(t, "recovery of "+path, limit, func() bool {
		polls++
		status, _ := e.get(path)
		return status == http.StatusOK
	})
	return polls
}

// A reload keeps the ticket: the cache lives in a UsagePool, not in the
// config, so the new config's first request fetches nothing.
func TestReloadKeepsTicket(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	if status, _ := e.get(ocrPath + "?order_no=R1"); status != http.StatusOK {
		t.Fatalf("status = %d", status)
	}
	e.load(signSite("version 1.0.0")(e.fake.URL), t.TempDir()) // a different config, same app
	if status, _ := e.get(ocrPath + "?order_no=R2"); status != http.StatusOK {
		t.Fatalf("after reload: status = %d", status)
	}
	e.wantCounts(1, 1)
	e.wantCleanSignatures()
}

// Two blocks with one app_id share one token, whatever route they are in.
func TestTwoBlocksShareOneTicket(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		block := fmt.Sprintf(`webank_sign {
			app_id %s
			secret {env.%s}
			base_url %s
		}
		reverse_proxy %s`, appID, secretEnv, fakeURL, fakeURL)
		return fmt.Sprintf(`http://:%d {
	bind 127.0.0.1
	route /a/* {
		uri strip_prefix /a
		%s
	}
	route /b/* {
		uri strip_prefix /b
		%s
	}
}
`, sitePort, block, block)
	})
	for _, p := range []string{"/a", "/b", "/a", "/b"} {
		if status, body := e.get(p + ocrPath + "?order_no=SHARED1"); status != http.StatusOK {
			t.Fatalf("%s: status = %d body %s", p, status, body)
		}
	}
	e.wantCounts(1, 1)
	e.wantCleanSignatures()
}

// The forwarded answer is not touched: WeBank's own error codes (here: order
// not found) reach the client as they are.
func TestWeBankErrorsPassThrough(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	status, body := e.get(ocrPath + "?order_no=NOTFOUND1")
	var answer struct{ Code string }
	if status != http.StatusOK || json.Unmarshal(body, &answer) != nil || answer.Code != "66660020" {
		t.Errorf("status %d body %s, want WeBank's 66660020 passed through", status, body)
	}
	e.wantCounts(1, 1)
}
