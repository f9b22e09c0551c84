package webanksign

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRequestInFlightAcrossReload cleans up a handler, as Caddy does on a
// reload without waiting for its requests, while a JSON request it serves
// is still uploading its body: the request still finishes, signed (issue
// 12, item 1: Cleanup emptied the handler's apps and the request panicked,
// dropping the client's connection). It does so whether the new config
// signs for the same app or for none.
func TestRequestInFlightAcrossReload(t *testing.T) {
	for _, tt := range []struct {
		name     string
		appStays bool // the new config signs for the same app
	}{
		{"the app stays", true},
		{"the app leaves", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old, fake := newTestHandler(t)
			warm := &scriptedNext{answers: []string{`{"code":"0"}`}}
			serve(t, old, warm, "/api/server/getOcrResult?order_no=WARM1", nil)

			body, upload := io.Pipe()
			r := httptest.NewRequest(http.MethodPost, "/api/v2/base/queryfacerecord", body)
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			next := &scriptedNext{answers: []string{`{"code":"0","result":{}}`}}
			done := make(chan error)
			go func() { done <- old.ServeHTTP(w, r, next) }()
			// A pipe's write returns once the reader has taken it: the
			// handler is now inside its body read.
			if _, err := io.WriteString(upload, `{"orderNo":`); err != nil {
				t.Fatal(err)
			}
			if tt.appStays { // the new config is provisioned before the old is cleaned up
				t.Setenv("WBS_UNIT_SECRET", testSecret)
				if err := provision(t, &Handler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}", BaseURL: fake.URL}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := old.Cleanup(); err != nil {
				t.Fatal(err)
			}
			io.WriteString(upload, `"RELOAD1"}`)
			upload.Close()
			if err := <-done; err != nil {
				t.Fatalf("ServeHTTP: %v", err)
			}
			if w.Code != http.StatusOK || w.Body.String() != `{"code":"0","result":{}}` || len(next.queries) != 1 {
				t.Errorf("the request in flight across the reload got %d %s (passed on %d times), want WeBank's answer",
					w.Code, w.Body, len(next.queries))
			}
			if n := fake.TokenCalls(); n != 1 {
				t.Errorf("token calls = %d, want 1", n)
			}
		})
	}
}
