package webanktest

import (
	"bytes"
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

func newTestClock() *Clock {
	return NewClock(time.Date(2025, 3, 15, 10, 0, 0, 0, time.UTC))
}

// fixture is a running fake with an injected clock, and a client for it.
type fixture struct {
	t     *testing.T
	s     *Server
	clock *Clock
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
	_, body := fx.get(PathToken, url.Values{
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
	_, body := fx.get(PathTicket, ticketQuery(app, token))
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
// ticket and a fresh nonce, with extra parameters added. It is also a valid
// query for getBankCardOcrResult and sync, which take the same parameters.
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
	_, body := fx.get(PathOCR, q.Encode())
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

// signedPaths are the endpoints that check a sign.
var signedPaths = []string{PathOCR, PathBankCard, PathSync, PathFaceRecord}

// signedReq is a request to any signed endpoint, sent by fixture.send in
// the endpoint's own spelling.
type signedReq struct {
	appID, orderNo, nonce, version, sign string
	extra                                map[string]string // e.g. get_file, or getFile for queryfacerecord
}

// newSignedReq returns a request of testApp for orderNo, signed with ticket
// and a fresh nonce.
func newSignedReq(ticket, orderNo string) signedReq {
	r := signedReq{appID: testApp, orderNo: orderNo, nonce: randomAlnum(32), version: "1.0.0"}
	return r.signedWith(ticket)
}

// signedWith returns r with its sign made with ticket.
func (r signedReq) signedWith(ticket string) signedReq {
	r.sign = sign(r.appID, r.orderNo, r.version, ticket, r.nonce)
	return r
}

// send sends r to path, one of signedPaths: as a query for the GET
// endpoints, as a JSON body (and orderNo in the URL) for queryfacerecord.
// It returns the status and the body.
func (fx *fixture) send(path string, r signedReq) (int, []byte) {
	fx.t.Helper()
	if path != PathFaceRecord {
		q := url.Values{"app_id": {r.appID}, "order_no": {r.orderNo}, "nonce": {r.nonce}, "version": {r.version}, "sign": {r.sign}}
		for k, v := range r.extra {
			q.Set(k, v)
		}
		return fx.get(path, q.Encode())
	}
	body := map[string]string{"appId": r.appID, "orderNo": r.orderNo, "nonce": r.nonce, "version": r.version, "sign": r.sign}
	for k, v := range r.extra {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		fx.t.Fatal(err)
	}
	return fx.post(url.Values{"orderNo": {r.orderNo}}.Encode(), "application/json", b, false)
}

// sendCode sends r to path, as send does, and returns the code answered.
func (fx *fixture) sendCode(path string, r signedReq) string {
	fx.t.Helper()
	_, body := fx.send(path, r)
	return fx.code(body)
}

// post sends a queryfacerecord request with rawQuery, contentType (no
// header if empty) and body, chunked (with no Content-Length) if chunked,
// and returns the status and the body answered.
func (fx *fixture) post(rawQuery, contentType string, body []byte, chunked bool) (int, []byte) {
	fx.t.Helper()
	req, err := http.NewRequest(http.MethodPost, fx.s.URL+PathFaceRecord+"?"+rawQuery, bytes.NewReader(body))
	if err != nil {
		fx.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if chunked {
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	resp, err := fx.s.Client().Do(req)
	if err != nil {
		fx.t.Fatalf("POST %s: %v", PathFaceRecord, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		fx.t.Fatalf("reading %s: %v", PathFaceRecord, err)
	}
	return resp.StatusCode, answer
}

// msg returns the msg of a JSON answer.
func (fx *fixture) msg(body []byte) string {
	fx.t.Helper()
	var v struct{ Msg string }
	if err := json.Unmarshal(body, &v); err != nil {
		fx.t.Fatalf("decoding %q: %v", truncate(body), err)
	}
	return v.Msg
}

// resultBody returns what path answers to a valid request of testApp for
// orderNo that asks for no files.
func resultBody(f *Fake, path, orderNo string) []byte {
	switch path {
	case PathOCR:
		return f.OCRResultBody(testApp, orderNo, false, false)
	case PathBankCard:
		return f.BankCardResultBody(testApp, orderNo, false)
	case PathSync:
		return f.SyncResultBody(testApp, orderNo, false, false)
	case PathFaceRecord:
		return f.FaceRecordResultBody(testApp, orderNo, false, false, false)
	}
	panic("no result body for " + path)
}
