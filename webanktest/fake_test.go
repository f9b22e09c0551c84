package webanktest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHappyPath(t *testing.T) {
	fx := newFixture(t, Options{PhotoBytes: 100 << 10})
	ticket := fx.ticketNow()
	tests := []struct {
		name          string
		extra         url.Values
		files, native bool
	}{
		{name: "plain"},
		{name: "get_file", extra: url.Values{"get_file": {"1"}}, files: true},
		{name: "get_native", extra: url.Values{"get_native": {"1"}}, native: true},
		{name: "both", extra: url.Values{"get_file": {"1"}, "get_native": {"1"}}, files: true, native: true},
		// Only "1" asks for files.
		{name: "get_file=0", extra: url.Values{"get_file": {"0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := ocrQuery(ticket, "ORDER_"+strings.ReplaceAll(tt.name, "=", "-"), tt.extra)
			resp, err := fx.s.Client().Get(fx.s.URL + PathOCR + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			if _, err := body.ReadFrom(resp.Body); err != nil {
				t.Fatal(err)
			}
			want := fx.s.OCRResultBody(testApp, q.Get("order_no"), tt.files, tt.native)
			if !bytes.Equal(body.Bytes(), want) {
				t.Errorf("body = %s, want OCRResultBody = %s", truncate(body.Bytes()), truncate(want))
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json;charset=UTF-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := resp.ContentLength; got != int64(len(want)) {
				t.Errorf("Content-Length = %d, want %d", got, len(want))
			}
		})
	}
	if got := fx.s.OCRCalls(); got != int64(len(tests)) {
		t.Errorf("OCRCalls = %d, want %d", got, len(tests))
	}
	if got, want := fx.s.TokenCalls()+fx.s.TicketCalls(), int64(2); got != want {
		t.Errorf("TokenCalls+TicketCalls = %d, want %d", got, want)
	}
}

func TestExpireIn(t *testing.T) {
	fx := newFixture(t, Options{TokenTTL: 30 * time.Minute, TicketTTL: 10 * time.Minute})
	_, body := fx.get(PathToken, url.Values{
		"appId": {testApp}, "secret": {testSecret}, "grant_type": {"client_credential"}, "version": {"1.0.0"},
	}.Encode())
	var token map[string]any
	if err := json.Unmarshal(body, &token); err != nil {
		t.Fatal(err)
	}
	if got, ok := token["expire_in"].(float64); !ok || got != 1800 {
		t.Errorf("token expire_in = %#v, want the number 1800", token["expire_in"])
	}
	now := fx.clock.Now().In(beijing)
	if got, want := token["transactionTime"], now.Format(wbTimeLayout); got != want {
		t.Errorf("token transactionTime = %v, want %s", got, want)
	}
	if got, want := token["expire_time"], now.Add(30*time.Minute).Format(wbTimeLayout); got != want {
		t.Errorf("token expire_time = %v, want %s", got, want)
	}
	if tok, _ := token["access_token"].(string); len(tok) != 64 || !allOf(tok, isAlnum) {
		t.Errorf("access_token is %d characters, want 64 alphanumerics", len(tok))
	}

	// appId is accepted on the ticket endpoint too.
	_, body = fx.get(PathTicket, url.Values{
		"appId": {testApp}, "access_token": {token["access_token"].(string)}, "type": {"SIGN"}, "version": {"1.0.0"},
	}.Encode())
	var ticket struct {
		Code    string
		Tickets []map[string]any
	}
	if err := json.Unmarshal(body, &ticket); err != nil || len(ticket.Tickets) != 1 {
		t.Fatalf("ticket answer %s (%v)", body, err)
	}
	if got := ticket.Tickets[0]["expire_in"]; got != "600" {
		t.Errorf("ticket expire_in = %#v, want the string \"600\"", got)
	}
	if got, want := ticket.Tickets[0]["expire_time"], now.Add(10*time.Minute).Format(wbTimeLayout); got != want {
		t.Errorf("ticket expire_time = %v, want %s", got, want)
	}
}

func TestOCRAnswers(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	otherTicket := fx.ticket(otherApp, fx.token(otherApp))
	tests := []struct {
		name          string
		query         url.Values
		want          string
		badSignatures int64
	}{
		{name: "valid", query: ocrQuery(ticket, "A1", nil), want: "0"},
		{name: "lowercase sign", query: lowerSign(ocrQuery(ticket, "A2", nil)), want: "0"},
		{name: "order not found", query: ocrQuery(ticket, "NOTFOUND-1", nil), want: "66660020"},
		{name: "unknown ticket", query: ocrQuery(strings.Repeat("x", 64), "A3", nil), want: "400101", badSignatures: 1},
		// A ticket of another app does not sign for this one.
		{name: "other app's ticket", query: ocrQuery(otherTicket, "A4", nil), want: "400101", badSignatures: 1},
		{name: "sign of other values", query: with(ocrQuery(ticket, "A5", nil), "order_no", "A6"), want: "400101", badSignatures: 1},
		{name: "unknown app", query: with(ocrQuery(ticket, "A7", nil), "app_id", "IDANOPE1"), want: "400103"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fx.s.BadSignatures()
			if got := fx.ocr(tt.query); got != tt.want {
				t.Errorf("code = %s, want %s", got, tt.want)
			}
			if got := fx.s.BadSignatures() - before; got != tt.badSignatures {
				t.Errorf("BadSignatures grew by %d, want %d", got, tt.badSignatures)
			}
		})
	}
	if n := fx.s.StaleTickets() + fx.s.ReusedNonces() + fx.s.BadRequests(); n != 0 {
		t.Errorf("StaleTickets+ReusedNonces+BadRequests = %d, want 0", n)
	}
}

func lowerSign(q url.Values) url.Values {
	return with(q, "sign", strings.ToLower(q.Get("sign")))
}

// with returns a copy of q with key set to value.
func with(q url.Values, key, value string) url.Values {
	c := copyValues(q)
	c.Set(key, value)
	return c
}

func TestNonceReuse(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	q := ocrQuery(ticket, "A1", nil)

	// A nonce that came with a bad signature is not used up.
	if got := fx.ocr(with(q, "sign", strings.Repeat("0", 40))); got != "400101" {
		t.Fatalf("bad sign: code = %s, want 400101", got)
	}
	if got := fx.ocr(q); got != "0" {
		t.Fatalf("first use: code = %s, want 0", got)
	}
	if got := fx.ocr(q); got != "400101" {
		t.Errorf("second use: code = %s, want 400101", got)
	}
	// The same nonce for another order is a reuse as well.
	other := ocrQuery(ticket, "A2", nil)
	other.Set("nonce", q.Get("nonce"))
	other.Set("sign", sign(testApp, "A2", "1.0.0", ticket, q.Get("nonce")))
	if got := fx.ocr(other); got != "400101" {
		t.Errorf("other order: code = %s, want 400101", got)
	}
	if got := fx.s.ReusedNonces(); got != 2 {
		t.Errorf("ReusedNonces = %d, want 2", got)
	}
	if got := fx.s.BadSignatures(); got != 1 {
		t.Errorf("BadSignatures = %d, want 1", got)
	}
}

func TestTokenSupersession(t *testing.T) {
	tests := []struct {
		name    string
		grace   time.Duration
		advance time.Duration
		want    string // code for a ticket made from the superseded token
	}{
		{name: "within default grace", advance: 59 * time.Second, want: "0"},
		{name: "at the end of default grace", advance: 60 * time.Second, want: "15"},
		{name: "within custom grace", grace: 5 * time.Minute, advance: 4 * time.Minute, want: "0"},
		{name: "past custom grace", grace: 5 * time.Minute, advance: 6 * time.Minute, want: "15"},
		{name: "no grace", grace: -1, want: "15"},
	}
	for _, tt := range tests {
		for _, how := range []string{"RotateToken", "token call"} {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				fx := newFixture(t, Options{Grace: tt.grace})
				oldToken := fx.token(testApp)
				oldTicket := fx.ticket(testApp, oldToken)
				var newToken string
				if how == "RotateToken" {
					fx.s.RotateToken(testApp)
				} else {
					newToken = fx.token(testApp)
				}
				fx.clock.Advance(tt.advance)

				if got := fx.ocr(ocrQuery(oldTicket, "A1", nil)); got != tt.want {
					t.Errorf("old ticket: code = %s, want %s", got, tt.want)
				}
				_, body := fx.get(PathTicket, ticketQuery(testApp, oldToken))
				if got := fx.code(body); got != tt.want {
					t.Errorf("ticket from old token: code = %s, want %s", got, tt.want)
				}
				wantStale := int64(0)
				if tt.want == "15" {
					wantStale = 1
				}
				if got := fx.s.StaleTickets(); got != wantStale {
					t.Errorf("StaleTickets = %d, want %d", got, wantStale)
				}
				if newToken != "" {
					if got := fx.ocr(ocrQuery(fx.ticket(testApp, newToken), "A2", nil)); got != "0" {
						t.Errorf("new token's ticket: code = %s, want 0", got)
					}
				}
				// Superseding one app's token leaves other apps alone.
				if got := fx.ocr(otherAppQuery(fx)); got != "0" {
					t.Errorf("other app: code = %s, want 0", got)
				}
			})
		}
	}
}

// otherAppQuery returns a valid getOcrResult query for otherApp.
func otherAppQuery(fx *fixture) url.Values {
	ticket := fx.ticket(otherApp, fx.token(otherApp))
	q := ocrQuery(ticket, "B1", nil)
	q.Set("app_id", otherApp)
	q.Set("sign", sign(otherApp, "B1", "1.0.0", ticket, q.Get("nonce")))
	return q
}

func TestExpiry(t *testing.T) {
	tests := []struct {
		name      string
		tokenTTL  time.Duration
		ticketTTL time.Duration
		advance   time.Duration
		wantOCR   string
		wantToken string // code for a new ticket from the token
	}{
		{name: "ticket just alive", ticketTTL: time.Hour, advance: time.Hour - time.Second, wantOCR: "0", wantToken: "0"},
		{name: "ticket expired", ticketTTL: time.Hour, advance: time.Hour, wantOCR: "15", wantToken: "0"},
		// A ticket dies with its token even within its own TTL.
		{name: "token expired", tokenTTL: time.Hour, ticketTTL: 2 * time.Hour, advance: time.Hour, wantOCR: "15", wantToken: "15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, Options{TokenTTL: tt.tokenTTL, TicketTTL: tt.ticketTTL})
			token := fx.token(testApp)
			ticket := fx.ticket(testApp, token)
			fx.clock.Advance(tt.advance)
			if got := fx.ocr(ocrQuery(ticket, "A1", nil)); got != tt.wantOCR {
				t.Errorf("getOcrResult: code = %s, want %s", got, tt.wantOCR)
			}
			_, body := fx.get(PathTicket, ticketQuery(testApp, token))
			if got := fx.code(body); got != tt.wantToken {
				t.Errorf("api_ticket: code = %s, want %s", got, tt.wantToken)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	tokenQuery := func(app, secret string) string {
		return url.Values{"app_id": {app}, "secret": {secret}, "grant_type": {"client_credential"}, "version": {"1.0.0"}}.Encode()
	}
	tests := []struct {
		name, path, query, want string
	}{
		{"wrong secret", PathToken, tokenQuery(testApp, testSecret+"x"), "400103"},
		{"other app's secret", PathToken, tokenQuery(otherApp, testSecret), "400103"},
		{"unknown app", PathToken, tokenQuery("IDANOPE1", testSecret), "400103"},
		{"ticket for unknown app", PathTicket, ticketQuery("IDANOPE1", token), "400103"},
		{"unknown token", PathTicket, ticketQuery(testApp, strings.Repeat("a", 64)), "15"},
		{"other app's token", PathTicket, ticketQuery(otherApp, token), "15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := fx.get(tt.path, tt.query)
			if status != http.StatusOK {
				t.Errorf("status = %d, want 200", status)
			}
			if got := fx.code(body); got != tt.want {
				t.Errorf("code = %s, want %s", got, tt.want)
			}
			for _, secret := range []string{testSecret, token} {
				if bytes.Contains(body, []byte(secret)) {
					t.Errorf("answer %s echoes a secret or token", body)
				}
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	ticket := fx.ticket(testApp, token)
	valid := ocrQuery(ticket, "A1", nil)
	without := func(q url.Values, key string) string {
		c := copyValues(q)
		c.Del(key)
		return c.Encode()
	}
	// repeated appends a second value for key to the encoded query.
	repeated := func(q url.Values, key string) string {
		return q.Encode() + "&" + key + "=" + url.QueryEscape(q.Get(key))
	}
	tokenQ := url.Values{"app_id": {testApp}, "secret": {testSecret}, "grant_type": {"client_credential"}, "version": {"1.0.0"}}
	ticketQ, _ := url.ParseQuery(ticketQuery(testApp, token))

	tests := []struct {
		name, path, query string
	}{
		{"ocr without app_id", PathOCR, without(valid, "app_id")},
		{"ocr without order_no", PathOCR, without(valid, "order_no")},
		{"ocr without nonce", PathOCR, without(valid, "nonce")},
		{"ocr without version", PathOCR, without(valid, "version")},
		{"ocr without sign", PathOCR, without(valid, "sign")},
		{"ocr empty order_no", PathOCR, with(valid, "order_no", "").Encode()},
		{"ocr repeated app_id", PathOCR, repeated(valid, "app_id")},
		{"ocr repeated order_no", PathOCR, repeated(valid, "order_no")},
		{"ocr repeated nonce", PathOCR, repeated(valid, "nonce")},
		{"ocr repeated sign", PathOCR, repeated(valid, "sign")},
		{"ocr repeated version", PathOCR, repeated(valid, "version")},
		{"ocr repeated get_file", PathOCR, valid.Encode() + "&get_file=1&get_file=1"},
		{"ocr repeated get_native", PathOCR, valid.Encode() + "&get_native=1&get_native=0"},
		{"ocr order_no of 33", PathOCR, signedWithOrder(ticket, strings.Repeat("a", 33))},
		{"ocr order_no with a dot", PathOCR, signedWithOrder(ticket, "A.1")},
		{"ocr order_no with a space", PathOCR, signedWithOrder(ticket, "A 1")},
		{"ocr order_no in Chinese", PathOCR, signedWithOrder(ticket, "订单1")},
		{"ocr nonce of 31", PathOCR, with(valid, "nonce", strings.Repeat("a", 31)).Encode()},
		{"ocr nonce of 33", PathOCR, with(valid, "nonce", strings.Repeat("a", 33)).Encode()},
		{"ocr nonce with underscore", PathOCR, with(valid, "nonce", strings.Repeat("a", 31)+"_").Encode()},
		{"ocr sign of 39", PathOCR, with(valid, "sign", valid.Get("sign")[:39]).Encode()},
		{"ocr sign not hex", PathOCR, with(valid, "sign", "G"+valid.Get("sign")[1:]).Encode()},
		{"ocr malformed escape", PathOCR, valid.Encode() + "&x=%zz"},
		{"token without secret", PathToken, without(tokenQ, "secret")},
		{"token repeated secret", PathToken, repeated(tokenQ, "secret")},
		{"token with app_id and appId", PathToken, tokenQ.Encode() + "&appId=" + testApp},
		{"token grant_type uppercase", PathToken, with(tokenQ, "grant_type", "CLIENT_CREDENTIAL").Encode()},
		{"token version 2", PathToken, with(tokenQ, "version", "2.0.0").Encode()},
		{"ticket type NONCE", PathTicket, with(ticketQ, "type", "NONCE").Encode()},
		{"ticket type lowercase", PathTicket, with(ticketQ, "type", "sign").Encode()},
		{"ticket without access_token", PathTicket, without(ticketQ, "access_token")},
		{"ticket repeated type", PathTicket, repeated(ticketQ, "type")},
		{"ticket without app_id", PathTicket, without(ticketQ, "app_id")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fx.s.BadRequests()
			if _, body := fx.get(tt.path, tt.query); fx.code(body) != "400102" {
				t.Errorf("answer = %s, want code 400102", body)
			}
			if got := fx.s.BadRequests() - before; got != 1 {
				t.Errorf("BadRequests grew by %d, want 1", got)
			}
		})
	}
	if n := fx.s.BadSignatures() + fx.s.ReusedNonces() + fx.s.StaleTickets(); n != 0 {
		t.Errorf("BadSignatures+ReusedNonces+StaleTickets = %d, want 0", n)
	}
	// The valid query was never spent by the bad ones.
	if got := fx.ocr(valid); got != "0" {
		t.Errorf("valid query: code = %s, want 0", got)
	}
}

// signedWithOrder returns a query for orderNo, correctly signed with ticket.
func signedWithOrder(ticket, orderNo string) string {
	return ocrQuery(ticket, orderNo, nil).Encode()
}

func TestOrderNoAccepted(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	for _, orderNo := range []string{"1", strings.Repeat("Z", 32), "a-b_C-9"} {
		if got := fx.ocr(ocrQuery(ticket, orderNo, nil)); got != "0" {
			t.Errorf("order_no %q: code = %s, want 0", orderNo, got)
		}
	}
}

func TestNotFoundAndMethod(t *testing.T) {
	fx := newFixture(t, Options{})
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/api/server/nope", http.StatusNotFound, "404"},
		{http.MethodGet, "/", http.StatusNotFound, "404"},
		{http.MethodGet, "/__fake/nope", http.StatusNotFound, "404"},
		{http.MethodPost, PathToken, http.StatusMethodNotAllowed, "405"},
		{http.MethodPut, PathOCR, http.StatusMethodNotAllowed, "405"},
	}
	for _, tt := range tests {
		status, body := fx.do(tt.method, tt.path, "")
		if status != tt.status || fx.code(body) != tt.code {
			t.Errorf("%s %s = %d %s, want %d with code %s", tt.method, tt.path, status, body, tt.status, tt.code)
		}
	}
	if n := fx.s.TokenCalls() + fx.s.OCRCalls(); n != 0 {
		t.Errorf("TokenCalls+OCRCalls = %d, want 0", n)
	}
}

func TestOCRQueries(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	q1 := ocrQuery(ticket, "A1", url.Values{"get_file": {"1"}})
	q2 := ocrQuery(ticket, "A2", url.Values{"extra": {"x", "y"}})
	fx.ocr(q1)
	fx.ocr(q2)
	got := fx.s.OCRQueries()
	if len(got) != 2 || got[0].Encode() != q1.Encode() || got[1].Encode() != q2.Encode() {
		t.Fatalf("OCRQueries = %v, want [%v %v]", got, q1, q2)
	}
	got[0].Set("order_no", "changed")
	if again := fx.s.OCRQueries(); again[0].Get("order_no") != "A1" {
		t.Errorf("changing a returned query changed the fake's copy")
	}
}

func TestOCRQueriesBounded(t *testing.T) {
	f := New(Options{Apps: map[string]string{testApp: testSecret}})
	const n = maxRequests + 5
	for i := range n {
		r := httptest.NewRequest(http.MethodGet, PathOCR+"?order_no="+strconv.Itoa(i), nil)
		f.ServeHTTP(httptest.NewRecorder(), r)
	}
	got := f.OCRQueries()
	if len(got) != maxRequests {
		t.Fatalf("len(OCRQueries) = %d, want %d", len(got), maxRequests)
	}
	if first, last := got[0].Get("order_no"), got[len(got)-1].Get("order_no"); first != "5" || last != strconv.Itoa(n-1) {
		t.Errorf("OCRQueries spans %s..%s, want 5..%d", first, last, n-1)
	}
	if got := f.OCRCalls(); got != n {
		t.Errorf("OCRCalls = %d, want %d", got, n)
	}
}

func TestConcurrentUse(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	const n = 50
	codes := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			q := ocrQuery(ticket, "C"+strconv.Itoa(i), nil)
			resp, err := fx.s.Client().Get(fx.s.URL + PathOCR + "?" + q.Encode())
			if err != nil {
				codes[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			var v struct{ Code string }
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
				codes[i] = err.Error()
				return
			}
			codes[i] = v.Code
		})
		// Other apps' tokens rotate meanwhile.
		wg.Go(func() { fx.s.RotateToken(otherApp) })
	}
	wg.Wait()
	for i, c := range codes {
		if c != "0" {
			t.Errorf("request %d: %s, want code 0", i, c)
		}
	}
	if got := fx.s.OCRCalls(); got != n {
		t.Errorf("OCRCalls = %d, want %d", got, n)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	var logs logRecorder
	fx := newFixture(t, Options{Logf: logs.Logf})
	token := fx.token(testApp)
	ticket := fx.ticket(testApp, token)
	q := ocrQuery(ticket, "A1", url.Values{"get_native": {"1"}})
	fx.ocr(q)
	fx.ocr(q) // reused nonce
	fx.get(PathToken, url.Values{"app_id": {testApp}, "secret": {"wrong-" + testSecret}, "grant_type": {"client_credential"}, "version": {"1.0.0"}}.Encode())
	fx.s.SetFault(OCREndpoint, Fault{Code: "66661099"})
	fx.ocr(ocrQuery(ticket, "A2", nil))
	fx.s.Close() // every handler has returned, and logged, once Close returns

	lines := logs.Lines()
	if len(lines) != 6 {
		t.Errorf("%d log lines, want 6: %q", len(lines), lines)
	}
	result := decodeResult(t, fx.s.OCRResultBody(testApp, "A1", false, true)).Result
	secrets := []string{testSecret, token, ticket, q.Get("sign"), q.Get("nonce"), result["idcard"].(string), result["name"].(string)}
	for _, line := range lines {
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log line %q holds %q", line, s)
			}
		}
	}
	want := []string{
		`GET /api/server/getOcrResult app_id="IDATEST1" order_no="A1": code 0`,
		`GET /api/server/getOcrResult app_id="IDATEST1" order_no="A1": code 400101`,
		`GET /api/oauth2/access_token app_id="IDATEST1": code 400103`,
		`GET /api/server/getOcrResult app_id="IDATEST1" order_no="A2": fault code "66661099"`,
	}
	for _, w := range want {
		if !containsString(lines, w) {
			t.Errorf("no log line %q in %q", w, lines)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
