package webanksign

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

const (
	testAppID  = "IDAUNIT1"
	testSecret = "unit-secret"
)

// scriptedNext is a next handler that answers the attempts of a request in
// turn from a script, and records what it was sent.
type scriptedNext struct {
	mu      sync.Mutex
	answers []string // bodies, one per attempt
	queries []url.Values
	encs    []string // Accept-Encoding as sent on
}

func (n *scriptedNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.mu.Lock()
	i := len(n.queries)
	q, _ := url.ParseQuery(r.URL.RawQuery)
	n.queries = append(n.queries, q)
	n.encs = append(n.encs, r.Header.Get("Accept-Encoding"))
	n.mu.Unlock()
	w.Header().Add("X-Attempt", strings.Repeat("I", i+1))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, n.answers[i])
	return nil
}

func newTestHandler(t testing.TB) (*Handler, *webanktest.Server) {
	t.Helper()
	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	t.Cleanup(fake.Close)
	t.Setenv("WBS_UNIT_SECRET", testSecret)
	h := &Handler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}", BaseURL: fake.URL}}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	return h, fake
}

func serve(t *testing.T, h *Handler, next *scriptedNext, target string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	w.Header().Set("Server", "Caddy") // as Caddy's server does before any handler
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	if r.URL.RawQuery != strings.SplitN(target, "?", 2)[1] {
		t.Errorf("client query not restored: %q", r.URL.RawQuery)
	}
	return w
}

func TestServeHTTPRetry(t *testing.T) {
	h, fake := newTestHandler(t)
	next := &scriptedNext{answers: []string{`{"code":"15","msg":"stale"}`, `{"code":"0","result":{}}`}}
	w := serve(t, h, next, "/api/server/getOcrResult?order_no=A1", nil)

	if w.Body.String() != `{"code":"0","result":{}}` {
		t.Errorf("client got %q, want only the second answer", w.Body.String())
	}
	if got := w.Header().Values("X-Attempt"); len(got) != 1 || got[0] != "II" {
		t.Errorf("X-Attempt = %q, want only the second attempt's", got)
	}
	if got := w.Header().Get("Server"); got != "Caddy" {
		t.Errorf("headers set before the handler were lost: Server = %q", got)
	}
	if len(next.queries) != 2 {
		t.Fatalf("next called %d times, want 2", len(next.queries))
	}
	a, b := next.queries[0], next.queries[1]
	if a.Get("nonce") == b.Get("nonce") || a.Get("sign") == b.Get("sign") {
		t.Errorf("the retry was not signed afresh")
	}
	if fake.TokenCalls() != 2 {
		t.Errorf("token calls = %d, want 2 (a new ticket for the retry)", fake.TokenCalls())
	}

	// Rejected again right away: the ticket is not dropped again within the
	// guard interval, so WeBank's answer goes to the client, unretried.
	next = &scriptedNext{answers: []string{`{"code":"15","msg":"stale"}`}}
	w = serve(t, h, next, "/api/server/getOcrResult?order_no=A2", nil)
	if len(next.queries) != 1 || !strings.Contains(w.Body.String(), `"15"`) {
		t.Errorf("within the guard: %d attempts, body %q; want 1 and WeBank's answer", len(next.queries), w.Body.String())
	}
	if fake.TokenCalls() != 2 {
		t.Errorf("token calls = %d, want still 2", fake.TokenCalls())
	}
}

// If no other ticket can be had for the retry, the client gets WeBank's own
// answer rather than a 502.
func TestServeHTTPRetryWithoutTicketSendsWeBankAnswer(t *testing.T) {
	h, fake := newTestHandler(t)
	next := &scriptedNext{answers: []string{`{"code":"0"}`}}
	serve(t, h, next, "/api/server/getOcrResult?order_no=A1", nil) // warm the ticket
	fake.SetFault(webanktest.TokenEndpoint, webanktest.Fault{Status: 500})
	next = &scriptedNext{answers: []string{`{"code":"400101","msg":"illegal"}`}}
	w := serve(t, h, next, "/api/server/getOcrResult?order_no=A2", nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"400101"`) {
		t.Errorf("got %d %q, want WeBank's 400101 answer", w.Code, w.Body.String())
	}
}

func TestServeHTTPAcceptEncoding(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct{ client, want string }{
		{"gzip, deflate, br", "gzip"},
		{"br;q=1.0, gzip;q=0.5", "gzip"},
		{"br", "identity"},
		{"gzip;q=0", "identity"},
		{"", ""},
	}
	for _, tt := range tests {
		next := &scriptedNext{answers: []string{`{"code":"0"}`}}
		hdr := http.Header{}
		if tt.client != "" {
			hdr.Set("Accept-Encoding", tt.client)
		}
		r := httptest.NewRequest(http.MethodGet, "/api/server/getOcrResult?order_no=A1", nil)
		r.Header = hdr
		if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
			t.Fatal(err)
		}
		if next.encs[0] != tt.want {
			t.Errorf("Accept-Encoding %q sent on as %q, want %q", tt.client, next.encs[0], tt.want)
		}
		if got := r.Header.Get("Accept-Encoding"); got != tt.client {
			t.Errorf("Accept-Encoding %q afterwards = %q, want the client's back", tt.client, got)
		}
	}
}

func TestServeHTTPRefusesBody(t *testing.T) {
	h, fake := newTestHandler(t)
	r := httptest.NewRequest(http.MethodGet, "/api/server/getOcrResult?order_no=A1", strings.NewReader("x=1"))
	w := httptest.NewRecorder()
	next := &scriptedNext{}
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"body_not_allowed"`) {
		t.Errorf("got %d %q, want 400 body_not_allowed", w.Code, w.Body.String())
	}
	if len(next.queries) != 0 || fake.TokenCalls() != 0 {
		t.Errorf("a request with a body was forwarded or fetched a token")
	}
}

// A tenant printed by mistake shows its app, not its secret.
func TestTenantRedacted(t *testing.T) {
	h, _ := newTestHandler(t)
	tn := h.tenants[0]
	for _, v := range []any{tn, *tn} {
		for _, verb := range []string{"%v", "%+v", "%#v"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, testSecret) || !strings.Contains(out, testAppID) {
				t.Errorf("Sprintf(%q, %T) = %q, want the app_id and no secret", verb, v, out)
			}
		}
	}
}

// After a JSON request is served, what handlers before webank_sign see
// when it returns (log placeholders evaluated late, say) is the client's
// request again: its query and its body, not the signed ones.
func TestJSONRequestRestored(t *testing.T) {
	h, _ := newTestHandler(t)
	const body = `{"orderNo":"RESTORE1"}`
	r := httptest.NewRequest(http.MethodPost, "/api/v2/base/queryfacerecord?x=1", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	next := &scriptedNext{answers: []string{`{"code":"0"}`}}
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if len(next.queries) != 1 || next.queries[0].Get("orderNo") != "RESTORE1" {
		t.Fatalf("next got %v, want the signed request with orderNo in the URL", next.queries)
	}
	got, err := io.ReadAll(r.Body)
	if err != nil || string(got) != body || r.URL.RawQuery != "x=1" {
		t.Errorf("after ServeHTTP the request holds query %q and body %q (%v), want the client's", r.URL.RawQuery, got, err)
	}
}
