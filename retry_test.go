package webanksign

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
			rec := httptest.NewRecorder()
			p := newRetryProbe(rec)
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
			if !tt.wantSent && (rec.Body.Len() != 0 || len(rec.Header()) != 0) {
				t.Fatalf("the client got bytes or headers before the decision")
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

// A discarded first attempt leaves nothing behind: its headers do not mix
// with the second attempt's, which writes straight to the client.
func TestRetryProbeDiscardedLeavesNoTrace(t *testing.T) {
	rec := httptest.NewRecorder()
	p := newRetryProbe(rec)
	p.Header().Add("X-Attempt", "1")
	p.WriteHeader(http.StatusOK)
	p.Write([]byte(`{"code":"15"}`))
	if p.code() != "15" {
		t.Fatal("probe did not read the code")
	}
	rec.Header().Add("X-Attempt", "2")
	rec.WriteHeader(http.StatusOK)
	rec.Write([]byte(`{"code":"0"}`))
	if got := rec.Header().Values("X-Attempt"); len(got) != 1 || got[0] != "2" {
		t.Errorf("X-Attempt = %q, want only the second attempt's", got)
	}
	if rec.Body.String() != `{"code":"0"}` {
		t.Errorf("body = %q", rec.Body.String())
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
