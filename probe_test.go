package webanksign

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

func gzipped(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

func TestRetryProbe(t *testing.T) {
	big := `{"code":"15","pad":"` + strings.Repeat("x", maxProbe) + `"}`
	tests := []struct {
		name     string
		encoding string
		chunks   [][]byte
		wantCode string
		wantSent bool // already committed to the client when the handler returns
	}{
		{name: "string code", chunks: [][]byte{[]byte(`{"code":"15","msg":"access_token invalid"}`)}, wantCode: "15"},
		{name: "number code in two writes", chunks: [][]byte{[]byte(`{"code":40`), []byte(`0101,"msg":"x"}`)}, wantCode: "400101"},
		{name: "success", chunks: [][]byte{[]byte(`{"code":"0","result":{}}`)}, wantCode: "0"},
		{name: "gzip", encoding: "gzip", chunks: [][]byte{gzipped(`{"code":"15"}`)}, wantCode: "15"},
		{name: "brotli is not read", encoding: "br", chunks: [][]byte{[]byte("\x0b\x02")}, wantCode: ""},
		{name: "html", chunks: [][]byte{[]byte("<html>busy</html>")}, wantCode: ""},
		{name: "larger than the probe streams", chunks: [][]byte{[]byte(big[:100]), []byte(big[100:])}, wantCode: "", wantSent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &watchedWriter{ResponseRecorder: httptest.NewRecorder()}
			p := newRetryProbe(rec)
			defer p.release()
			p.Header().Set("Content-Type", "application/json")
			if tt.encoding != "" {
				p.Header().Set("Content-Encoding", tt.encoding)
			}
			p.WriteHeader(http.StatusOK)
			var all []byte
			for _, c := range tt.chunks {
				if n, err := p.Write(c); n != len(c) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				all = append(all, c...)
			}
			if p.committed != tt.wantSent {
				t.Fatalf("committed = %v, want %v", p.committed, tt.wantSent)
			}
			if !tt.wantSent && rec.sent {
				t.Fatalf("the client got a status or bytes before the decision")
			}
			if got := p.code(); got != tt.wantCode {
				t.Errorf("code() = %q, want %q", got, tt.wantCode)
			}
			if err := p.commit(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.Body.Bytes(), all) || rec.Code != http.StatusOK ||
				rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("committed answer differs: status %d, %d of %d bytes", rec.Code, rec.Body.Len(), len(all))
			}
		})
	}
}

// watchedWriter is a recorder that says whether anything was sent: a
// status or body bytes. Headers are not sent until then.
type watchedWriter struct {
	*httptest.ResponseRecorder
	sent bool
}

func (w *watchedWriter) WriteHeader(status int) {
	w.sent = true
	w.ResponseRecorder.WriteHeader(status)
}

func (w *watchedWriter) Write(b []byte) (int, error) {
	w.sent = true
	return w.ResponseRecorder.Write(b)
}

// A discarded first attempt leaves nothing behind: its headers do not mix
// with the second attempt's, which writes straight to the client, and the
// headers set before it are back as they were, even those it changed in
// place or removed.
func TestRetryProbeDiscardedLeavesNoTrace(t *testing.T) {
	rec := &watchedWriter{ResponseRecorder: httptest.NewRecorder()}
	rec.Header().Set("Server", "Caddy")
	rec.Header()["Date"] = nil // suppresses net/http's Date
	p := newRetryProbe(rec)
	p.Header().Add("X-Attempt", "1")
	p.Header()["Server"][0] = "upstream"
	delete(p.Header(), "Date")
	p.WriteHeader(http.StatusOK)
	p.Write([]byte(`{"code":"15"}`))
	if p.code() != "15" {
		t.Fatal("probe did not read the code")
	}
	p.discard()
	p.release()
	if rec.sent {
		t.Fatal("the discarded attempt sent something")
	}
	rec.Header().Add("X-Attempt", "2")
	rec.WriteHeader(http.StatusOK)
	rec.Write([]byte(`{"code":"0"}`))
	want := http.Header{"Server": {"Caddy"}, "Date": nil, "X-Attempt": {"2"}}
	if !reflect.DeepEqual(rec.Header(), want) {
		t.Errorf("headers = %v, want %v", rec.Header(), want)
	}
	if rec.Body.String() != `{"code":"0"}` {
		t.Errorf("body = %q", rec.Body.String())
	}
}

// A probe given back and taken again starts afresh: nothing of the request
// it served before (headers to put back, a held-back answer) reaches the
// next one.
func TestRetryProbeReused(t *testing.T) {
	for range 10 { // the pool may drop a probe (with -race, one in four on purpose)
		first := httptest.NewRecorder()
		first.Header().Set("X-First", "1")
		p := newRetryProbe(first)
		p.WriteHeader(http.StatusTeapot)
		p.Write([]byte("first"))
		if err := p.commit(); err != nil {
			t.Fatal(err)
		}
		p.release()

		second := &watchedWriter{ResponseRecorder: httptest.NewRecorder()}
		p = newRetryProbe(second)
		p.Header().Set("X-Second", "1")
		p.discard()
		if len(second.Header()) != 0 {
			t.Fatalf("headers after discarding = %v, want none", second.Header())
		}
		p.Write([]byte(`{"code":"0"}`))
		if err := p.commit(); err != nil {
			t.Fatal(err)
		}
		p.release()
		if second.Code != http.StatusOK || second.Body.String() != `{"code":"0"}` {
			t.Fatalf("second answer %d %q, want 200 {\"code\":\"0\"}", second.Code, second.Body.String())
		}
	}
}

func TestRetryProbeInformational(t *testing.T) {
	rec := httptest.NewRecorder()
	p := newRetryProbe(rec)
	p.Header().Set("Link", "</a.css>; rel=preload")
	p.WriteHeader(http.StatusEarlyHints)
	if rec.Code != http.StatusEarlyHints {
		t.Errorf("103 not passed on: %d", rec.Code)
	}
	if p.committed {
		t.Error("a 1xx committed the answer")
	}
}

// retryCodeReference is what retryCode must answer: the code, if it is one
// of codes.
func retryCodeReference(p *retryProbe, codes map[string]bool) string {
	if code := p.code(); codes[code] {
		return code
	}
	return ""
}

// checkRetryCode fails t unless retryCode and retryCodeReference agree on an
// answer of body with encoding enc, for the default codes and for codes
// that include the answer's own.
func checkRetryCode(t *testing.T, enc string, body []byte) {
	t.Helper()
	p := newRetryProbe(httptest.NewRecorder())
	if enc != "" {
		p.Header().Set("Content-Encoding", enc)
	}
	if _, err := p.Write(body); err != nil {
		t.Fatal(err)
	}
	own := map[string]bool{"15": true, "400101": true, "0": true, "-1": true, "A1": true, "\uFFFD": true}
	if c := p.code(); c != "" {
		own[c] = true
	}
	for _, codes := range []map[string]bool{{"15": true, "400101": true}, own} {
		if got, want := p.retryCode(codes), retryCodeReference(p, codes); got != want {
			t.Errorf("retryCode(%v) of %q (%s) = %q, want %q", codes, body, enc, got, want)
		}
	}
}

func TestRetryCodeMatchesDecoding(t *testing.T) {
	tests := []struct {
		name, enc, body string
	}{
		{"string code", "", `{"code":"15","msg":"access_token invalid"}`},
		{"number code", "", `{"code":400101}`},
		{"number code after whitespace", "", "{\"code\" :\n\t15 }"},
		{"success holding the digits elsewhere", "", `{"code":"0","bizSeqNo":"2508302001559599153","n":400101.5,"s":"x15"}`},
		{"success holding a string 15 elsewhere", "", `{"code":"0","clarity":"15"}`},
		{"success holding a number 15 elsewhere", "", `{"code":"0","clarity":15}`},
		{"last of duplicate keys", "", `{"code":"0","code":"15"}`},
		{"key in another case", "", `{"CODE":"15"}`},
		{"nested code is not WeBank's", "", `{"result":{"code":"15"}}`},
		{"escaped code", "", `{"code":"\u00315"}`},
		{"escaped key", "", `{"\u0063ode":"15"}`},
		{"invalid UTF-8 becomes U+FFFD", "", "{\"code\":\"\xff\"}"},
		{"negative number", "", `{"code":-1}`},
		{"invalid JSON holding the code", "", `{"code":"15",}`},
		{"array", "", `["15"]`},
		{"empty", "", ``},
		{"identity in capitals", "IDENTITY", `{"code":"15"}`},
		{"gzip", "gzip", string(gzipped(`{"code":"15"}`))},
		{"gzip success", "gzip", string(gzipped(`{"code":"0","seq":"2015"}`))},
		{"gzip, corrupt", "gzip", "\x1f\x8b\x08\x00garbage"},
		{"brotli", "br", `{"code":"15"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRetryCode(t, tt.enc, []byte(tt.body)) })
	}
}

// FuzzRetryCode checks retryCode against retryCodeReference on plain
// answers; run it with go test -run '^$' -fuzz FuzzRetryCode.
func FuzzRetryCode(f *testing.F) {
	for _, s := range []string{
		`{"code":"15","msg":"x"}`, `{"code":400101}`, `{"code":"0","bizSeqNo":"2508302001559599153"}`,
		`{"code":"0","code": 15}`, `{"code":"\u00315"}`, `{"Code":"400101"}`,
		`{"x":"15","CODE" : "0"}`, `{"code":"0","result":{"cOdE":15}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) { checkRetryCode(t, "", []byte(body)) })
}

// The point of mayHoldAny: a usual successful answer is not decoded.
func TestMayHoldAny(t *testing.T) {
	success := webanktest.New(webanktest.Options{Apps: map[string]string{testAppID: testSecret}}).
		OCRResultBody(testAppID, "ORD20261126001", false, true)
	tests := []struct {
		name string
		body []byte
		code string
		want bool
	}{
		{"successful OCR result", success, "15", false},
		{"successful OCR result", success, "400101", false},
		{"digits inside other values", []byte(`{"code":"0","seq":"2015","n":400101.5,"s":"x15"}`), "15", false},
		{"string", []byte(`{"code":"15"}`), "15", true},
		{"number", []byte(`{"code": 15}`), "15", true},
		{"an escape could spell it", []byte(`{"code":"0","s":"\n"}`), "15", true},
		{"non-ASCII code", []byte(`{"code":"0"}`), "\uFFFD", true},
		{"the code as another member's value", []byte(`{"code":"0","status":"15","n":15}`), "15", false},
		{"code named in another case", []byte(`{"code":"0","CoDe":"15"}`), "15", true},
		{"space around the colon", []byte(`{"code" :\t15}`), "15", true},
		{"a nested code errs towards decoding", []byte(`{"code":"0","result":{"code":"15"}}`), "15", true},
		{"code as a value, not a name", []byte(`{"x":"code","y":"15"}`), "15", false},
	}
	for _, tt := range tests {
		if got := mayHoldAny(tt.body, map[string]bool{tt.code: true}); got != tt.want {
			t.Errorf("%s: mayHoldAny(%q) = %v, want %v", tt.name, tt.code, got, tt.want)
		}
	}
}
