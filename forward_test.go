package webanksign

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// answerWriter is a ResponseWriter that keeps one header map and counts the
// bytes written, so that it allocates nothing of its own per request.
type answerWriter struct {
	header http.Header
	status int
	n      int
}

func (w *answerWriter) Header() http.Header { return w.header }

func (w *answerWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *answerWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(b)
	return len(b), nil
}

// A signed query request with a warm ticket allocates at most 4 times more
// than passing it on: the signed query, the placeholders' provider and its
// facts (issue 14). The retry probe and its buffer are reused. Allocations,
// unlike time, are a property of the code, so they are checked here; the
// time is measured by BenchmarkServeHTTP.
func TestServeHTTPQueryAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items on purpose")
	}
	h, _ := newTestHandler(t)
	body := []byte(`{"code":"0","msg":"ok","result":{"orderNo":"A1","frontCode":"0"}}`)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, err := w.Write(body)
		return err
	})
	r0 := httptest.NewRequest(http.MethodGet, "/api/server/getOcrResult?order_no=A1&get_file=1", nil)
	w := &answerWriter{header: make(http.Header)}
	run := func(serve func(http.ResponseWriter, *http.Request) error) {
		clear(w.header)
		w.status, w.n = 0, 0
		r := r0.WithContext(r0.Context())
		caddyhttp.NewTestReplacer(r) // as Caddy's server gives every request
		if err := serve(w, r); err != nil || w.status != http.StatusOK || w.n != len(body) {
			t.Fatalf("answer %d, %d bytes, %v; want 200, %d bytes", w.status, w.n, err, len(body))
		}
	}
	passed := testing.AllocsPerRun(100, func() { run(next.ServeHTTP) })
	signed := testing.AllocsPerRun(100, func() {
		run(func(w http.ResponseWriter, r *http.Request) error { return h.ServeHTTP(w, r, next) })
	})
	if signed-passed > 4 {
		t.Errorf("signing allocates %v times (%v, against %v passing the request on), want at most 4", signed-passed, signed, passed)
	}
}
