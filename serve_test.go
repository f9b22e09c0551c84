package webanksign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
	"github.com/webanksign/caddy-webanksign/webanktest"
)

// newServeHandler is newTestHandler with configure applied to the handler
// before it is provisioned.
func newServeHandler(t *testing.T, configure func(*Handler)) (*Handler, *webanktest.Server) {
	t.Helper()
	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	t.Cleanup(fake.Close)
	t.Setenv("WBS_UNIT_SECRET", testSecret)
	h := &Handler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}", BaseURL: fake.URL}}
	configure(h)
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	return h, fake
}

// requestCounts returns requests_total of the unit tests' app, by
// "outcome status".
func requestCounts(t *testing.T) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.requests)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := make(map[string]float64)
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := make(map[string]string)
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["app_id"] == testAppID {
				counts[labels["outcome"]+" "+labels["status"]] = m.GetCounter().GetValue()
			}
		}
	}
	return counts
}

// countedSince returns what requests_total counted for the unit tests' app
// since before, by "outcome status".
func countedSince(t *testing.T, before map[string]float64) map[string]float64 {
	t.Helper()
	moved := make(map[string]float64)
	for k, v := range requestCounts(t) {
		if d := v - before[k]; d != 0 {
			moved[k] = d
		}
	}
	return moved
}

// failingNext answers the first attempts of a request from answers, as
// WeBank would, and fails every later one as reverse_proxy does when the
// round trip fails before anything is written: it returns err and writes
// nothing.
type failingNext struct {
	mu      sync.Mutex
	answers []string
	err     error
	calls   int
}

func (n *failingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.mu.Lock()
	n.calls++
	i := n.calls - 1
	n.mu.Unlock()
	if i >= len(n.answers) {
		return n.err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err := io.WriteString(w, n.answers[i])
	return err
}

// refused is what reverse_proxy returns when the upstream refuses the
// connection: its text names an internal address.
var refused = caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp 127.0.0.1:1: connect: connection refused"))

// Every way a request goes to next answers a round trip that failed before
// anything was written with the module's JSON and the status reverse_proxy
// chose, never with the error's text, and counts the request once, as
// upstream_failed.
func TestUpstreamFailedAnsweredOnEveryPath(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		retryCodes []string
		answers    []string // WeBank's answers to the attempts before the one that fails
		err        error
		wantStatus int
		wantMsg    string
	}{
		{name: "first attempt", method: http.MethodGet, err: refused, wantStatus: 502, wantMsg: "the connection failed"},
		{name: "HEAD", method: http.MethodHead, err: refused, wantStatus: 502, wantMsg: "the connection failed"},
		{name: "retry_codes off", method: http.MethodGet, retryCodes: []string{"off"}, err: refused, wantStatus: 502, wantMsg: "the connection failed"},
		{
			name: "retried attempt", method: http.MethodGet, answers: []string{`{"code":"15","msg":"stale"}`},
			err:        caddyhttp.Error(http.StatusGatewayTimeout, errors.New("dial tcp 127.0.0.1:1: i/o timeout")),
			wantStatus: 504, wantMsg: "in time",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newServeHandler(t, func(h *Handler) { h.RetryCodes = tt.retryCodes })
			next := &failingNext{answers: tt.answers, err: tt.err}
			r := httptest.NewRequest(tt.method, "/api/server/getOcrResult?order_no=U1", nil)
			w := httptest.NewRecorder()
			before := requestCounts(t)
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Fatalf("ServeHTTP = %v, want nil (answered here)", err)
			}
			if next.calls != len(tt.answers)+1 {
				t.Errorf("next called %d times, want %d", next.calls, len(tt.answers)+1)
			}
			if w.Code != tt.wantStatus || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("answer %d %q, want %d JSON", w.Code, w.Header().Get("Content-Type"), tt.wantStatus)
			}
			var se struct{ Code, Msg string }
			if err := json.Unmarshal(w.Body.Bytes(), &se); err != nil || se.Code != "upstream_failed" || !strings.Contains(se.Msg, tt.wantMsg) {
				t.Errorf("body %q, want code upstream_failed and a msg containing %q", w.Body.String(), tt.wantMsg)
			}
			if strings.Contains(w.Body.String(), "127.0.0.1") {
				t.Errorf("body %q holds the error's text", w.Body.String())
			}
			want := map[string]float64{"upstream_failed " + strconv.Itoa(tt.wantStatus): 1}
			if got := countedSince(t, before); !maps.Equal(got, want) {
				t.Errorf("requests_total moved by %v, want %v", got, want)
			}
		})
	}
}

// A request whose answer from WeBank is passed on is counted once, as
// signed, retried or not.
func TestSignedCountedOnce(t *testing.T) {
	for _, answers := range [][]string{
		{`{"code":"0"}`},
		{`{"code":"15","msg":"stale"}`, `{"code":"0"}`},
	} {
		h, _ := newServeHandler(t, func(*Handler) {})
		next := &scriptedNext{answers: answers}
		before := requestCounts(t)
		serve(t, h, next, "/api/server/getOcrResult?order_no=C1", nil)
		if len(next.queries) != len(answers) {
			t.Fatalf("next called %d times, want %d", len(next.queries), len(answers))
		}
		if got, want := countedSince(t, before), map[string]float64{"signed ": 1}; !maps.Equal(got, want) {
			t.Errorf("%d attempts: requests_total moved by %v, want %v", len(answers), got, want)
		}
	}
}

// A client that gives up while its app's ticket is being fetched is owed no
// answer: nothing is written, and it is counted as client_gone, not as
// unavailable.
func TestClientGoneDuringTicketFetch(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	oauth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(oauth.Close)
	t.Cleanup(func() { close(release) }) // before oauth.Close, which waits for the fetch
	h, _ := newServeHandler(t, func(h *Handler) { h.BaseURL = oauth.URL })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := httptest.NewRequest(http.MethodGet, "/api/server/getOcrResult?order_no=G1", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	next := &failingNext{}
	before := requestCounts(t)
	done := make(chan error, 1)
	go func() { done <- h.ServeHTTP(w, r, next) }()
	<-arrived // the fetch is under way, and held
	cancel()
	err := <-done

	if got, want := countedSince(t, before), map[string]float64{"client_gone ": 1}; !maps.Equal(got, want) {
		t.Errorf("requests_total moved by %v, want %v", got, want)
	}
	if w.Body.Len() != 0 {
		t.Errorf("a client that left was answered %q", w.Body.String())
	}
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != 499 {
		t.Errorf("ServeHTTP = %v, want a HandlerError with status 499, as reverse_proxy returns for a client that left", err)
	}
	if next.calls != 0 {
		t.Errorf("next called %d times, want 0", next.calls)
	}
}

// An unavailable ticket is explained by the step that failed and the class
// of the failure, the first time and during the backoff that follows, but
// never by the fetch error's own text, which names internal addresses.
func TestTicketUnavailableSaysStepAndClassOnly(t *testing.T) {
	h, _ := newServeHandler(t, func(h *Handler) { h.BaseURL = "http://127.0.0.1:1" }) // refused
	const want = "no SIGN ticket for app_id " + testAppID + ": fetching the access token failed (transport); retrying shortly"
	for _, when := range []string{"the failed fetch", "during the backoff"} {
		next := &failingNext{}
		r := httptest.NewRequest(http.MethodGet, "/api/server/getOcrResult?order_no=N1", nil)
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatalf("%s: ServeHTTP = %v", when, err)
		}
		var se struct{ Code, Msg string }
		if err := json.Unmarshal(w.Body.Bytes(), &se); err != nil || w.Code != http.StatusBadGateway || se.Code != "ticket_unavailable" || se.Msg != want {
			t.Errorf("%s: answer %d %q, want 502 ticket_unavailable %q", when, w.Code, w.Body.String(), want)
		}
		if next.calls != 0 {
			t.Errorf("%s: next called without a ticket", when)
		}
	}
}

func TestNoTicketReason(t *testing.T) {
	const detail = `Get "http://10.1.2.3:8443/api/oauth2/access_token": dial tcp 10.1.2.3:8443: connection refused`
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"fetch error", &tickets.FetchError{Step: "SIGN ticket", Class: "code", Msg: `endpoint answered code "15": ` + detail},
			"fetching the SIGN ticket failed (code); retrying shortly"},
		// A backoff's error wraps the failure it backs off from.
		{"during a backoff", fmt.Errorf("%w (next attempt in 2s)", &tickets.FetchError{Step: "access token", Class: "transport", Msg: detail}),
			"fetching the access token failed (transport); retrying shortly"},
		{"not registered", tickets.ErrNotRegistered, "the app's configuration was unloaded by a reload; send the request again"},
		{"deadline", fmt.Errorf("%s: %w", detail, context.DeadlineExceeded), "fetching it took too long (timeout); retrying shortly"},
		{"cancelled", fmt.Errorf("%s: %w", detail, context.Canceled), "fetching it was cancelled (the sidecar is stopping)"},
		{"lock timeout", errors.New("waiting for the storage lock: " + detail), "waiting for another instance's fetch took too long (lock_timeout); retrying shortly"},
	}
	for _, tt := range tests {
		if got := noTicketReason(tt.err); got != tt.want {
			t.Errorf("%s: noTicketReason(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
	}
}

// breakingNext writes the start of an answer of n bytes, then breaks off as
// reverse_proxy does when the upstream drops the connection mid-body.
type breakingNext struct{ n int }

func (b breakingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Upstream", "broken")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"code":"0","result":{"pad":"`+strings.Repeat("x", b.n))
	panic(http.ErrAbortHandler)
}

// An answer that breaks off is counted once, as upstream_failed: with the
// status answered here if none of it had reached the client (the probe held
// it back), and with none if it had, when Caddy can only end it.
func TestBrokenOffAnswerCountedOnce(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		n         int
		wantPanic bool
		want      string // requests_total's "outcome status"
	}{
		{"held back", http.MethodGet, 100, false, "upstream_failed 502"},
		{"under way", http.MethodGet, 2 * maxProbe, true, "upstream_failed "},
		{"HEAD", http.MethodHead, 100, true, "upstream_failed "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newServeHandler(t, func(*Handler) {})
			r := httptest.NewRequest(tt.method, "/api/server/getOcrResult?order_no=B1", nil)
			w := httptest.NewRecorder()
			before := requestCounts(t)
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				_ = h.ServeHTTP(w, r, breakingNext{tt.n})
			}()
			if tt.wantPanic && recovered != http.ErrAbortHandler || !tt.wantPanic && recovered != nil {
				t.Errorf("recovered %v, want abort: %v", recovered, tt.wantPanic)
			}
			if !tt.wantPanic && (w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), `"upstream_failed"`)) {
				t.Errorf("answer %d %q, want 502 upstream_failed", w.Code, w.Body.String())
			}
			if !tt.wantPanic && w.Header().Get("X-Upstream") != "" {
				t.Errorf("the error answer carries the broken answer's headers: %v", w.Header())
			}
			if got, want := countedSince(t, before), map[string]float64{tt.want: 1}; !maps.Equal(got, want) {
				t.Errorf("requests_total moved by %v, want %v", got, want)
			}
		})
	}
}
