package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// appStatus mirrors the admin API's per-app status.
type appStatus struct {
	AppID         string  `json:"app_id"`
	BaseURL       string  `json:"base_url"`
	State         string  `json:"state"`
	Generation    uint64  `json:"generation"`
	FetchedBy     string  `json:"fetched_by"`
	TicketAge     float64 `json:"ticket_age_seconds"`
	RemainingLife float64 `json:"remaining_life_seconds"`
	Fingerprint   string  `json:"ticket_fingerprint"`
	LastError     *struct {
		Class   string    `json:"class"`
		Message string    `json:"message"`
		At      time.Time `json:"at"`
	} `json:"last_error"`
}

// admin calls the admin API and returns the status and body; the body must
// never hold a secret.
func (e *env) admin(method, path string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, "http://"+adminAddr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, s := range append([]string{secret}, e.fake.IssuedValues()...) {
		if strings.Contains(string(body), s) {
			e.t.Errorf("admin API %s %s answered a secret value", method, path)
		}
	}
	return resp.StatusCode, body
}

func (e *env) status() appStatus {
	e.t.Helper()
	code, body := e.admin("GET", "/webank_sign/status")
	var st struct{ Apps []appStatus }
	if code != http.StatusOK || json.Unmarshal(body, &st) != nil || len(st.Apps) != 1 {
		e.t.Fatalf("status: %d %s", code, body)
	}
	return st.Apps[0]
}

// waitFor polls cond every 50ms until it holds, failing the test after limit.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within %v", what, limit)
		}
	}
}

// The status shows the app's state as the fake fails and recovers, with the
// last error kept after recovery, and never a secret.
func TestAdminStatusFollowsFailures(t *testing.T) {
	e := setup(t, webanktest.Options{TokenTTL: 4 * time.Second, TicketTTL: 4 * time.Second, Grace: 2 * time.Second},
		signSite("refresh 1s"))
	if st := e.status(); st.State != "no_ticket" || st.AppID != appID {
		t.Errorf("before any request: %+v, want no_ticket", st)
	}
	if status, body := e.get(ocrPath + "?order_no=S1"); status != http.StatusOK {
		t.Fatalf("status = %d body %s", status, body)
	}
	st := e.status()
	if st.State != "valid" || st.Generation < 1 || len(st.Fingerprint) != 8 || st.RemainingLife <= 0 || st.FetchedBy == "" {
		t.Errorf("after a request: %+v", st)
	}
	e.fake.SetFault(webanktest.TokenEndpoint, webanktest.Fault{Status: 500})
	waitFor(t, "state refresh_failing", 10*time.Second, func() bool {
		st = e.status()
		return st.State == "refresh_failing" || st.State == "no_ticket"
	})
	if st.LastError == nil || st.LastError.Class != "http_status" || !strings.Contains(st.LastError.Message, "HTTP 500") {
		t.Errorf("failing: last error %+v, want class http_status", st.LastError)
	}
	failedGen := st.Generation
	e.fake.ClearFaults()
	waitFor(t, "state valid again", 20*time.Second, func() bool {
		st = e.status()
		return st.State == "valid" && st.Generation > failedGen
	})
	if st.LastError == nil {
		t.Errorf("the last error was forgotten after recovery")
	}
}

// A forced refresh makes exactly one fetch; a second one within the rate
// limit makes none and is refused with 429.
func TestAdminForcedRefresh(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	if status, _ := e.get(ocrPath + "?order_no=F1"); status != http.StatusOK {
		t.Fatal("warm-up failed")
	}
	before := e.status()
	code, body := e.admin("POST", "/webank_sign/refresh?app_id="+appID)
	if code != http.StatusOK {
		t.Fatalf("forced refresh: %d %s", code, body)
	}
	e.wantCounts(2, 2)
	after := e.status()
	if after.Generation != before.Generation+1 || after.Fingerprint == before.Fingerprint {
		t.Errorf("generation %d → %d, fingerprint %s → %s: want a new token and ticket",
			before.Generation, after.Generation, before.Fingerprint, after.Fingerprint)
	}
	if status, _ := e.get(ocrPath + "?order_no=F2"); status != http.StatusOK {
		t.Errorf("request after the forced refresh: %d", status)
	}

	code, body = e.admin("POST", "/webank_sign/refresh?app_id="+appID)
	if code != http.StatusTooManyRequests {
		t.Errorf("second forced refresh: %d %s, want 429", code, body)
	}
	e.wantCounts(2, 2)
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/webank_sign/refresh?app_id=IDANOPE1", http.StatusNotFound},
		{"POST", "/webank_sign/refresh", http.StatusBadRequest},
		{"GET", "/webank_sign/refresh?app_id=" + appID, http.StatusMethodNotAllowed},
		{"POST", "/webank_sign/status", http.StatusMethodNotAllowed},
	} {
		if code, body := e.admin(tt.method, tt.path); code != tt.want {
			t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, code, body, tt.want)
		}
	}
	e.wantCleanSignatures()
}

// Readiness: 200 while the app can sign, 503 with the reason once the token
// endpoint has failed past the ticket's life, 200 again after recovery.
func TestHealthFlipsWithTicketLife(t *testing.T) {
	e := setup(t, webanktest.Options{TokenTTL: 3 * time.Second, TicketTTL: 3 * time.Second, Grace: time.Second},
		func(fakeURL string) string {
			return fmt.Sprintf(`http://:%d {
	bind 127.0.0.1
	handle /healthz {
		webank_sign_health {
			margin 500ms
		}
	}
	handle %s {
		webank_sign {
			app_id %s
			secret {env.%s}
			base_url %s
			refresh 1s
		}
		reverse_proxy %s
	}
}
`, sitePort, ocrPath, appID, secretEnv, fakeURL, fakeURL)
		})
	health := func() (int, string) {
		status, body := e.get("/healthz")
		return status, string(body)
	}
	// The probe itself fetches the first ticket.
	if status, body := health(); status != http.StatusOK || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("healthz at start: %d %s", status, body)
	}
	e.wantCounts(1, 1)
	e.fake.SetFault(webanktest.TokenEndpoint, webanktest.Fault{Status: 500})
	var body string
	waitFor(t, "healthz 503", 10*time.Second, func() bool {
		var status int
		status, body = health()
		return status == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, `"ready":false`) || !strings.Contains(body, `"reason"`) {
		t.Errorf("503 body without a reason: %s", body)
	}
	e.fake.ClearFaults()
	waitFor(t, "healthz 200 again", 30*time.Second, func() bool {
		status, _ := health()
		return status == http.StatusOK
	})
}

// metric reads one sample from Caddy's /metrics, 0 if it is absent.
func metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if match {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return v
		}
	}
	return 0
}

func TestMetricsMove(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	app := `app_id="` + appID + `"`
	signed := func() float64 {
		return metric(t, "caddy_webank_sign_requests_total", app, `outcome="signed"`)
	}
	rejected := func() float64 {
		return metric(t, "caddy_webank_sign_requests_total", app, `outcome="rejected"`, `status="400"`)
	}
	s0, r0 := signed(), rejected()
	for i := range 3 {
		if status, _ := e.get(fmt.Sprintf("%s?order_no=M%d", ocrPath, i)); status != http.StatusOK {
			t.Fatal("request failed")
		}
	}
	e.get(ocrPath + "?order_no=")
	if got := signed() - s0; got != 3 {
		t.Errorf("signed requests moved by %v, want 3", got)
	}
	if got := rejected() - r0; got != 1 {
		t.Errorf("rejected requests (400) moved by %v, want 1", got)
	}
	if v := metric(t, "caddy_webank_sign_ticket_remaining_seconds", app); v <= 0 {
		t.Errorf("ticket_remaining_seconds = %v, want > 0", v)
	}
	if v := metric(t, "caddy_webank_sign_refreshes_total", app, `kind="on_demand"`, `result="fetched"`); v < 1 {
		t.Errorf("refreshes_total{on_demand,fetched} = %v, want >= 1", v)
	}
	e.fake.RotateToken(appID)
	e.fake.SetFault(webanktest.OCREndpoint, webanktest.Fault{Code: "15"})
	rt0 := metric(t, "caddy_webank_sign_retries_total", app, `result="retried"`)
	e.get(ocrPath + "?order_no=M9")
	if got := metric(t, "caddy_webank_sign_retries_total", app, `result="retried"`) - rt0; got != 1 {
		t.Errorf("retries_total{retried} moved by %v, want 1", got)
	}
}

// Refreshes are Caddy events (logged by Caddy at debug level, where a
// subscriber would see them), and the placeholders work in headers.
func TestEventsAndPlaceholders(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return fmt.Sprintf(`http://:%d {
	bind 127.0.0.1
	header >X-Webank-App {http.webank_sign.app_id}
	header >X-Webank-Retried {http.webank_sign.retried}
	header >X-Webank-Generation {http.webank_sign.generation}
	route %s {
		webank_sign {
			app_id %s
			secret {env.%s}
			base_url %s
		}
		reverse_proxy %s
	}
}
`, sitePort, ocrPath, appID, secretEnv, fakeURL, fakeURL)
	})
	status, _, hdr := e.do(http.MethodGet, ocrPath+"?order_no=E1")
	if status != http.StatusOK {
		t.Fatal("request failed")
	}
	if hdr.Get("X-Webank-App") != appID || hdr.Get("X-Webank-Retried") != "false" || hdr.Get("X-Webank-Generation") != "1" {
		t.Errorf("placeholders: app %q retried %q generation %q", hdr.Get("X-Webank-App"), hdr.Get("X-Webank-Retried"), hdr.Get("X-Webank-Generation"))
	}
	logs, err := os.ReadFile(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(line, `"ticket_refreshed"`) && strings.Contains(line, appID) && strings.Contains(line, "ticket_fingerprint") {
			found = true
		}
	}
	if !found {
		t.Errorf("no ticket_refreshed event in the log")
	}
}

// Storage that fails (here its directory is replaced by a file): requests
// are still signed, from memory, the failures are counted, and the warning
// is logged once, not per request.
func TestStorageFailureCountedAndWarnedOnce(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	// The harness puts storage in "storage" under the config's temp dir,
	// next to nothing else: nothing has written to it before the first
	// request, so a file in its place fails every storage call.
	if err := os.RemoveAll(e.storageDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.storageDir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	errs0 := metric(t, "caddy_webank_sign_storage_errors_total")
	for i := range 5 {
		if status, body := e.get(fmt.Sprintf("%s?order_no=SF%d", ocrPath, i)); status != http.StatusOK {
			t.Fatalf("request %d with storage failing: %d %s", i, status, body)
		}
	}
	if got := metric(t, "caddy_webank_sign_storage_errors_total") - errs0; got < 1 {
		t.Errorf("storage_errors_total moved by %v, want at least 1", got)
	}
	logs, _ := os.ReadFile(e.logPath)
	if n := strings.Count(string(logs), "storage unavailable; tickets are kept in memory only"); n != 1 {
		t.Errorf("storage warning logged %d times over 5 requests, want once", n)
	}
	e.wantCounts(1, 1)
}
