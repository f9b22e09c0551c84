package webanksign

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// This file tests what serveQuery and serveJSON accept and refuse, through
// ServeHTTP: the checks of a request's method, headers, URL and body.

const facePath = "/api/v2/base/queryfacerecord"

// recordingNext is a next handler that answers WeBank's success code and
// records what it was sent. It is safe for concurrent use.
type recordingNext struct {
	mu     sync.Mutex
	reqs   []*http.Request // as they were when sent on
	bodies []string
}

func (n *recordingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.reqs = append(n.reqs, r.Clone(r.Context()))
	n.bodies = append(n.bodies, string(body))
	n.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"code":"0"}`)
	return nil
}

func (n *recordingNext) sent() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.reqs)
}

// post serves a POST of body to target, with hdr, through h.
func post(t *testing.T, h *Handler, next *recordingNext, target string, hdr http.Header, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

// wantCode fails t unless w is a JSON answer with status and code.
func wantCode(t *testing.T, what string, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	var body struct{ Code, Msg string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Errorf("%s: %d %q is not a JSON {code, msg}", what, w.Code, w.Body)
		return
	}
	if w.Code != status || body.Code != code {
		t.Errorf("%s: %d %s (%s), want %d %s", what, w.Code, body.Code, body.Msg, status, code)
	}
}

// TestJSONURLNames checks the names in a JSON request's URL: orderNo, as
// WeBank asks, and any other name but those that imitate an owned one
// (issue 12, item 4), which are refused; an owned one itself too, since
// only the body is signed.
func TestJSONURLNames(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		query   string
		refusal *refusal // nil: forwarded
	}{
		{"orderNo=A1", nil},
		{"orderNo=A1&getFile=0&queryVersion=1.0&signs=x", nil},
		{"order_no=A1", errNameConfusable[fieldOrderNo]},
		{"ORDERNO=A1", errNameConfusable[fieldOrderNo]},
		{"orderNo=A1&OrderNo=A2", errNameConfusable[fieldOrderNo]},
		{"Sign=x", errNameConfusable[fieldSign]},
		{"sign=x", errNameConfusable[fieldSign]},
		{"nonce=x", errNameConfusable[fieldNonce]},
		{"VERSION=2", errNameConfusable[fieldVersion]},
		{"appId=" + testAppID, errNameConfusable[fieldAppID]},
		{"app_id=" + testAppID, errNameConfusable[fieldAppID]},
		{"%C5%BFign=x&app-id=y", errNameConfusable[fieldAppID]}, // the first owned name is the one named
	}
	for _, tt := range tests {
		next := new(recordingNext)
		w := post(t, h, next, facePath+"?"+tt.query, nil, `{"orderNo":"A1"}`)
		if tt.refusal == nil {
			if w.Code != http.StatusOK || next.sent() != 1 {
				t.Errorf("?%s: %d %s, sent on %d times; want it forwarded once", tt.query, w.Code, w.Body, next.sent())
			}
			continue
		}
		wantCode(t, "?"+tt.query, w, tt.refusal.Status, tt.refusal.Code)
		if !strings.Contains(w.Body.String(), jsonEscape(tt.refusal.Msg)) {
			t.Errorf("?%s: %s, want the message %q", tt.query, w.Body, tt.refusal.Msg)
		}
		if next.sent() != 0 {
			t.Errorf("?%s was forwarded", tt.query)
		}
	}
}

// jsonEscape is s as encoding/json writes it inside a string.
func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
