package webanksign

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// callAdmin runs one admin handler and returns its answer, or its error's
// status.
func callAdmin(t *testing.T, handle func(http.ResponseWriter, *http.Request) error, method, target string) (int, *httptest.ResponseRecorder) {
	t.Helper()
	w := httptest.NewRecorder()
	err := handle(w, httptest.NewRequest(method, target, nil))
	var ae caddy.APIError
	switch {
	case errors.As(err, &ae):
		return ae.HTTPStatus, w
	case err != nil:
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if strings.Contains(w.Body.String(), testSecret) {
		t.Errorf("%s %s answered with the secret", method, target)
	}
	return w.Code, w
}

func TestAdminAPI(t *testing.T) {
	_, fake := newTestHandler(t)
	a := adminAPI{}
	apps := func(w *httptest.ResponseRecorder) []tickets.AppStatus {
		t.Helper()
		var body struct{ Apps []tickets.AppStatus }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("answer %q: %v", w.Body, err)
		}
		return body.Apps
	}

	if code, _ := callAdmin(t, a.handleStatus, http.MethodPost, "/webank_sign/status"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST status = %d, want 405", code)
	}
	code, w := callAdmin(t, a.handleStatus, http.MethodGet, "/webank_sign/status")
	if st := apps(w); code != http.StatusOK || len(st) != 1 || st[0].AppID != testAppID || st[0].State != "no_ticket" {
		t.Errorf("status before any request = %d %+v, want 200 and the app with no ticket", code, st)
	}

	for _, tt := range []struct {
		method, target string
		want           int
	}{
		{http.MethodGet, "/webank_sign/refresh?app_id=" + testAppID, http.StatusMethodNotAllowed},
		{http.MethodPost, "/webank_sign/refresh", http.StatusBadRequest},
		{http.MethodPost, "/webank_sign/refresh?app_id=IDANONE1", http.StatusNotFound},
	} {
		if code, _ := callAdmin(t, a.handleRefresh, tt.method, tt.target); code != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.target, code, tt.want)
		}
	}
	if n := fake.TokenCalls(); n != 0 {
		t.Fatalf("refused refreshes made %d token calls", n)
	}

	code, w = callAdmin(t, a.handleRefresh, http.MethodPost, "/webank_sign/refresh?app_id="+testAppID)
	if st := apps(w); code != http.StatusOK || len(st) != 1 || st[0].Generation != 1 || st[0].Fingerprint == "" || st[0].RemainingLife <= 0 {
		t.Errorf("forced refresh = %d %+v, want 200 and a ticket of the first token", code, st)
	}
	code, w = callAdmin(t, a.handleRefresh, http.MethodPost, "/webank_sign/refresh?app_id="+testAppID)
	if code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("a second forced refresh = %d (Retry-After %q), want 429 with Retry-After", code, w.Header().Get("Retry-After"))
	}
	if n := fake.TokenCalls(); n != 1 {
		t.Errorf("token calls = %d, want 1", n)
	}
}
