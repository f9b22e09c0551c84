package webanktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testApp    = "IDATEST1"
	testSecret = "TestSecret0123456789TestSecret0123456789TestSecret0123456789abcd"
	otherApp   = "IDATEST2"
)

// testClock is a clock that moves only when told to. It is safe for
// concurrent use.
type testClock struct {
	mu  sync.Mutex // protects now
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2025, 3, 15, 10, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is a running fake with an injected clock, and a client for it.
type fixture struct {
	t     *testing.T
	s     *Server
	clock *testClock
}

// newFixture starts a fake with the test apps, a test clock and opts' other
// fields, and closes it when the test ends.
func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	clock := newTestClock()
	if opts.Apps == nil {
		opts.Apps = map[string]string{testApp: testSecret, otherApp: testSecret + "2"}
	}
	opts.Now = clock.Now
	if opts.PhotoBytes == 0 {
		opts.PhotoBytes = 4 << 10 // keep get_file bodies small unless a test asks
	}
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return &fixture{t: t, s: s, clock: clock}
}

// get sends GET path?rawQuery and returns the status and body.
func (fx *fixture) get(path, rawQuery string) (int, []byte) {
	fx.t.Helper()
	return fx.do(http.MethodGet, path, rawQuery)
}

func (fx *fixture) do(method, path, rawQuery string) (int, []byte) {
	fx.t.Helper()
	req, err := http.NewRequest(method, fx.s.URL+path+"?"+rawQuery, nil)
	if err != nil {
		fx.t.Fatal(err)
	}
	resp, err := fx.s.Client().Do(req)
	if err != nil {
		fx.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fx.t.Fatalf("reading %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// code returns the code of a JSON answer.
func (fx *fixture) code(body []byte) string {
	fx.t.Helper()
	var v struct{ Code string }
	if err := json.Unmarshal(body, &v); err != nil {
		fx.t.Fatalf("decoding %q: %v", truncate(body), err)
	}
	return v.Code
}

// token fetches an access token for app, failing the test on any error.
func (fx *fixture) token(app string) string {
	fx.t.Helper()
	secret := testSecret
	if app == otherApp {
		secret += "2"
	}
	_, body := fx.get(tokenPath, url.Values{
		"app_id": {app}, "secret": {secret}, "grant_type": {"client_credential"}, "version": {"1.0.0"},
	}.Encode())
	var v struct {
		Code        string
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Code != "0" {
		fx.t.Fatalf("token answer %q (%v)", truncate(body), err)
	}
	return v.AccessToken
}

// ticketQuery is the query of a ticket request for app with token.
func ticketQuery(app, token string) string {
	return url.Values{"app_id": {app}, "access_token": {token}, "type": {"SIGN"}, "version": {"1.0.0"}}.Encode()
}

// ticket fetches a SIGN ticket for app with token, failing the test on any
// error.
func (fx *fixture) ticket(app, token string) string {
	fx.t.Helper()
	_, body := fx.get(ticketPath, ticketQuery(app, token))
	var v struct {
		Code    string
		Tickets []struct{ Value string }
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Code != "0" || len(v.Tickets) != 1 {
		fx.t.Fatalf("ticket answer %q (%v)", truncate(body), err)
	}
	return v.Tickets[0].Value
}

// ticketNow fetches a new token and a ticket from it for testApp.
func (fx *fixture) ticketNow() string {
	fx.t.Helper()
	return fx.ticket(testApp, fx.token(testApp))
}

// ocrQuery returns a getOcrResult query for testApp and orderNo, signed with
// ticket and a fresh nonce, with extra parameters added.
func ocrQuery(ticket, orderNo string, extra url.Values) url.Values {
	q := url.Values{
		"app_id":   {testApp},
		"order_no": {orderNo},
		"nonce":    {randomAlnum(32)},
		"version":  {"1.0.0"},
	}
	q.Set("sign", sign(testApp, orderNo, "1.0.0", ticket, q.Get("nonce")))
	for k, vs := range extra {
		q[k] = vs
	}
	return q
}

// ocr sends a getOcrResult query and returns the code answered.
func (fx *fixture) ocr(q url.Values) string {
	fx.t.Helper()
	_, body := fx.get(ocrPath, q.Encode())
	return fx.code(body)
}

func truncate(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// logRecorder collects log lines. It is safe for concurrent use.
type logRecorder struct {
	mu    sync.Mutex // protects lines
	lines []string
}

func (l *logRecorder) Logf(format string, args ...any) {
	line := strings.TrimSpace(fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

func (l *logRecorder) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}
