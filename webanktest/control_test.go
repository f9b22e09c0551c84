package webanktest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestControlAPI(t *testing.T) {
	fx := newFixture(t, Options{})
	post := func(path, query string) {
		t.Helper()
		status, body := fx.do(http.MethodPost, path, query)
		if status != http.StatusOK || string(body) != `{"code":"0","msg":"ok"}` {
			t.Fatalf("POST %s?%s = %d %s", path, query, status, body)
		}
	}

	post("/__fake/fault", "endpoint=token&status=503")
	if status, _ := fx.get(PathToken, ""); status != http.StatusServiceUnavailable {
		t.Errorf("token status = %d, want 503", status)
	}
	post("/__fake/fault", "endpoint=ocr&code=66661099&delay=1ms")
	if got := fx.ocr(ocrQuery("t", "A1", nil)); got != "66661099" {
		t.Errorf("getOcrResult code = %s, want 66661099", got)
	}
	post("/__fake/fault", "endpoint=ticket&malformed=1")
	if _, body := fx.get(PathTicket, ""); string(body) != malformedBody {
		t.Errorf("ticket body = %s, want the malformed body", body)
	}
	post("/__fake/clear", "")
	ticket := fx.ticketNow()

	post("/__fake/rotate", "app_id="+testApp)
	fx.clock.Advance(time.Minute)
	if got := fx.ocr(ocrQuery(ticket, "A2", nil)); got != "15" {
		t.Errorf("after rotate: code = %s, want 15", got)
	}
	fx.get(PathOCR, "app_id=x") // a bad request

	status, body := fx.get("/__fake/stats", "")
	var got map[string]int64
	if err := json.Unmarshal(body, &got); status != http.StatusOK || err != nil {
		t.Fatalf("stats = %d %s (%v)", status, body, err)
	}
	want := map[string]int64{
		"token_calls":      2, // the faulted call and ticketNow's; RotateToken is not counted
		"ticket_calls":     2,
		"ocr_calls":        3,
		"bankcard_calls":   0,
		"sync_calls":       0,
		"facerecord_calls": 0,
		"bad_signatures":   0,
		"stale_tickets":    1,
		"reused_nonces":    0,
		"bad_requests":     1,
		// The launch flows were not used.
		"nonce_calls": 0, "advfaceid_calls": 0, "faceid_calls": 0, "plusfaceid_calls": 0,
		"willfaceid_calls": 0, "h5faceid_calls": 0, "photoinfo_calls": 0, "bankcardocr_calls": 0,
		"login_calls": 0, "sdklogin_calls": 0, "nonce_tickets": 0, "logins": 0, "sdk_logins": 0,
	}
	if len(got) != len(want) {
		t.Errorf("stats = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("stats[%s] = %d, want %d", k, got[k], v)
		}
	}
}

func TestControlErrors(t *testing.T) {
	fx := newFixture(t, Options{})
	tests := []struct {
		name, method, path, query string
		status                    int
	}{
		{"stats by POST", http.MethodPost, "/__fake/stats", "", http.StatusMethodNotAllowed},
		{"fault by GET", http.MethodGet, "/__fake/fault", "endpoint=token&status=500", http.StatusMethodNotAllowed},
		{"fault without endpoint", http.MethodPost, "/__fake/fault", "status=500", http.StatusBadRequest},
		{"fault unknown endpoint", http.MethodPost, "/__fake/fault", "endpoint=nope&status=500", http.StatusBadRequest},
		{"fault status not a number", http.MethodPost, "/__fake/fault", "endpoint=token&status=abc", http.StatusBadRequest},
		{"fault status out of range", http.MethodPost, "/__fake/fault", "endpoint=token&status=99", http.StatusBadRequest},
		{"fault bad delay", http.MethodPost, "/__fake/fault", "endpoint=token&delay=soon", http.StatusBadRequest},
		{"fault negative delay", http.MethodPost, "/__fake/fault", "endpoint=token&delay=-1s", http.StatusBadRequest},
		{"fault bad boolean", http.MethodPost, "/__fake/fault", "endpoint=token&hang=maybe", http.StatusBadRequest},
		{"fault repeated parameter", http.MethodPost, "/__fake/fault", "endpoint=token&endpoint=ocr&reset=1", http.StatusBadRequest},
		{"fault malformed query", http.MethodPost, "/__fake/fault", "endpoint=token&code=%zz", http.StatusBadRequest},
		{"rotate without app_id", http.MethodPost, "/__fake/rotate", "", http.StatusBadRequest},
		{"rotate unknown app", http.MethodPost, "/__fake/rotate", "app_id=IDANOPE1", http.StatusBadRequest},
		{"unknown control path", http.MethodGet, "/__fake/faults", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := fx.do(tt.method, tt.path, tt.query)
			if status != tt.status {
				t.Errorf("status = %d %s, want %d", status, body, tt.status)
			}
			var v struct{ Code, Msg string }
			if err := json.Unmarshal(body, &v); err != nil || v.Code == "" || v.Code == "0" {
				t.Errorf("body = %s, want a JSON error", body)
			}
		})
	}
	// No bad control request set a fault.
	if got := fx.ocr(ocrQuery(fx.ticketNow(), "A1", nil)); got != "0" {
		t.Errorf("getOcrResult code = %s, want 0", got)
	}
}
