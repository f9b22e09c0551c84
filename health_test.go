package webanksign

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// probe runs the health handler once and returns its status and body.
func probe(t *testing.T, h *Health) (int, healthBody) {
	t.Helper()
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil), nil); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	var body healthBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer %q is not JSON: %v", w.Body, err)
	}
	return w.Code, body
}

type healthBody struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Apps   []struct {
		AppID  string `json:"app_id"`
		Ready  bool   `json:"ready"`
		Reason string `json:"reason"`
	} `json:"apps"`
}

func TestHealth(t *testing.T) {
	ctx := testContext(t)
	lone := new(Health)
	if err := lone.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := probe(t, lone); code != http.StatusServiceUnavailable || !strings.Contains(body.Reason, "no webank_sign handler") {
		t.Errorf("with no handler: %d %+v, want 503 saying there is no handler", code, body)
	}

	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	t.Cleanup(fake.Close)
	t.Setenv("WBS_UNIT_SECRET", testSecret)
	h := &Handler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}", BaseURL: fake.URL}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	code, body := probe(t, lone)
	if code != http.StatusOK || len(body.Apps) != 1 || !body.Apps[0].Ready || body.Apps[0].AppID != testAppID {
		t.Errorf("with a handler: %d %+v, want 200 and the app ready", code, body)
	}
	if n := fake.TokenCalls(); n != 1 {
		t.Errorf("token calls = %d, want 1: the probe warms the sidecar up", n)
	}

	// A ticket lives an hour: a margin of two is never met.
	strict := &Health{Margin: "2h"}
	if err := strict.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := probe(t, strict); code != http.StatusServiceUnavailable || len(body.Apps) != 1 ||
		body.Apps[0].Ready || !strings.Contains(body.Apps[0].Reason, "not more than the margin 2h") {
		t.Errorf("margin 2h: %d %+v, want 503 with the reason", code, body)
	}
	if n := fake.TokenCalls(); n != 1 {
		t.Errorf("token calls = %d, want still 1: probes use the cached ticket", n)
	}

	for _, bad := range []string{"soon", "-1s"} {
		if err := (&Health{Margin: bad}).Provision(ctx); err == nil || !strings.Contains(err.Error(), "margin") {
			t.Errorf("margin %q: error = %v, want one naming margin", bad, err)
		}
	}
}

// The readiness answer, served where a cluster's probes reach it, says
// which fetch failed and how, as a client's 502 does, but never the
// failure's own text: WeBank's message, or an internal address.
func TestHealthHidesFetchErrorText(t *testing.T) {
	const detail = "internal detail 10.9.8.7"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"code":"400104","msg":"` + detail + `"}`))
	}))
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	t.Setenv("WBS_UNIT_SECRET", testSecret)
	h := &Handler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}", BaseURL: srv.URL}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	hc := new(Health)
	if err := hc.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	code, body := probe(t, hc)
	if code != http.StatusServiceUnavailable || len(body.Apps) != 1 || body.Apps[0].Ready {
		t.Fatalf("with WeBank refusing the token: %d %+v, want 503 and the app not ready", code, body)
	}
	reason := body.Apps[0].Reason
	if strings.Contains(reason, "10.9.8.7") || strings.Contains(reason, "internal detail") {
		t.Errorf("reason %q quotes the fetch error's text", reason)
	}
	if !strings.Contains(reason, "access token") || !strings.Contains(reason, "(code)") {
		t.Errorf("reason %q does not say which fetch failed and how", reason)
	}
}
