package webanktest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFaultAnswers(t *testing.T) {
	tests := []struct {
		name        string
		fault       Fault
		status      int
		contentType string
		check       func(body []byte) error
	}{
		{
			name:        "status",
			fault:       Fault{Status: http.StatusBadGateway},
			status:      http.StatusBadGateway,
			contentType: "text/html",
			check:       contains("<h1>502 Bad Gateway</h1>"),
		},
		{
			name:        "code",
			fault:       Fault{Code: "66661099"},
			status:      http.StatusOK,
			contentType: jsonContentType,
			check:       equals(`{"code":"66661099","msg":"injected fault"}`),
		},
		{
			name:        "malformed",
			fault:       Fault{Malformed: true},
			status:      http.StatusOK,
			contentType: jsonContentType,
			check: func(body []byte) error {
				var v any
				if err := json.Unmarshal(body, &v); err == nil {
					return errors.New("body is valid JSON")
				}
				return nil
			},
		},
		{
			name:        "delay alone delays the normal answer",
			fault:       Fault{Delay: time.Millisecond},
			status:      http.StatusOK,
			contentType: jsonContentType,
			check:       contains(`"access_token":`),
		},
		{
			name:        "status before code",
			fault:       Fault{Status: http.StatusServiceUnavailable, Code: "15", Malformed: true},
			status:      http.StatusServiceUnavailable,
			contentType: "text/html",
			check:       contains("503 Service Unavailable"),
		},
		{
			name:        "code before malformed",
			fault:       Fault{Code: "15", Malformed: true, Delay: time.Millisecond},
			status:      http.StatusOK,
			contentType: jsonContentType,
			check:       equals(`{"code":"15","msg":"injected fault"}`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, Options{})
			fx.s.SetFault(TokenEndpoint, tt.fault)
			resp, err := fx.s.Client().Get(fx.s.URL + PathToken + "?" + url.Values{
				"app_id": {testApp}, "secret": {testSecret}, "grant_type": {"client_credential"}, "version": {"1.0.0"},
			}.Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			if err := tt.check(body); err != nil {
				t.Errorf("body %q: %v", body, err)
			}
			if got := fx.s.TokenCalls(); got != 1 {
				t.Errorf("TokenCalls = %d, want 1", got)
			}
			// Other endpoints keep answering normally.
			if got := fx.ocr(ocrQuery("no-ticket", "A1", nil)); got != "400101" {
				t.Errorf("getOcrResult: code = %s, want 400101", got)
			}
		})
	}
}

func contains(s string) func([]byte) error {
	return func(body []byte) error {
		if !strings.Contains(string(body), s) {
			return errors.New("does not contain " + s)
		}
		return nil
	}
}

func equals(s string) func([]byte) error {
	return func(body []byte) error {
		if string(body) != s {
			return errors.New("want " + s)
		}
		return nil
	}
}

func TestFaultOnOCRSkipsChecks(t *testing.T) {
	fx := newFixture(t, Options{})
	fx.s.SetFault(OCREndpoint, Fault{Code: "66661099"})
	q := ocrQuery("no-ticket", "A1", nil)
	if got := fx.ocr(q); got != "66661099" {
		t.Errorf("code = %s, want 66661099", got)
	}
	if got := fx.s.BadSignatures(); got != 0 {
		t.Errorf("BadSignatures = %d, want 0", got)
	}
	if got := fx.s.OCRQueries(); len(got) != 1 || got[0].Encode() != q.Encode() {
		t.Errorf("OCRQueries = %v, want [%v]", got, q)
	}
}

func TestClearFaults(t *testing.T) {
	fx := newFixture(t, Options{})
	for _, ep := range []Endpoint{TokenEndpoint, TicketEndpoint, OCREndpoint} {
		fx.s.SetFault(ep, Fault{Code: "1"})
	}
	fx.s.ClearFaults()
	if got := fx.ocr(ocrQuery(fx.ticketNow(), "A1", nil)); got != "0" {
		t.Errorf("code = %s, want 0", got)
	}

	// Setting the zero Fault removes one endpoint's fault.
	fx.s.SetFault(OCREndpoint, Fault{Code: "1"})
	fx.s.SetFault(OCREndpoint, Fault{})
	if got := fx.ocr(ocrQuery(fx.ticketNow(), "A2", nil)); got != "0" {
		t.Errorf("after zero Fault: code = %s, want 0", got)
	}
}

func TestFaultDelayEndsWithRequest(t *testing.T) {
	fx := newFixture(t, Options{})
	fx.s.SetFault(TicketEndpoint, Fault{Delay: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fx.s.URL+PathTicket, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := fx.s.Client().Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want context.DeadlineExceeded", err)
	}
}

func TestFaultWaitsEndWithRequestContext(t *testing.T) {
	tests := []struct {
		name      string
		fault     Fault
		wantPanic bool // the connection is dropped rather than answered
		outcome   string
	}{
		{"delay", Fault{Delay: time.Hour}, false, "fault delay: request ended"},
		{"hang", Fault{Hang: true}, true, "fault hang: request ended"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logRecorder
			f := New(Options{Apps: map[string]string{testApp: testSecret}, Logf: logs.Logf})
			f.SetFault(TokenEndpoint, tt.fault)
			ctx, cancel := context.WithCancel(t.Context())
			cancel() // the client has gone before the fault starts waiting
			rec := httptest.NewRecorder()
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				f.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, PathToken, nil))
			}()
			if tt.wantPanic && recovered != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", recovered)
			}
			if !tt.wantPanic && recovered != nil {
				t.Errorf("recovered %v, want no panic", recovered)
			}
			if rec.Body.Len() != 0 {
				t.Errorf("answered %q, want nothing", rec.Body)
			}
			if lines := logs.Lines(); len(lines) != 1 || !strings.HasSuffix(lines[0], tt.outcome) {
				t.Errorf("log = %q, want one line ending %q", lines, tt.outcome)
			}
		})
	}
}

func TestFaultHangEndsOnClose(t *testing.T) {
	f := New(Options{Apps: map[string]string{testApp: testSecret}})
	hanging := make(chan struct{})
	f.testHookHang = func() { close(hanging) }
	s := newServer(f)
	s.SetFault(TicketEndpoint, Fault{Hang: true})

	errc := make(chan error, 1)
	go func() {
		resp, err := s.Client().Get(s.URL + PathTicket)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-hanging
	s.Close() // must not wait for the hung request
	if err := <-errc; err == nil {
		t.Error("hung request got an answer, want an error")
	}
}

func TestFaultReset(t *testing.T) {
	fx := newFixture(t, Options{})
	fx.s.SetFault(TokenEndpoint, Fault{Reset: true, Status: http.StatusBadGateway})
	// A connection of its own, so that http.Transport has no reused
	// connection to retry on.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(fx.s.URL + PathToken)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want an error", resp.StatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want a connection error", err)
	}
	if got := fx.s.TokenCalls(); got != 1 {
		t.Errorf("TokenCalls = %d, want 1", got)
	}
}

func TestSetFaultPanics(t *testing.T) {
	tests := []struct {
		name  string
		ep    Endpoint
		fault Fault
	}{
		{"unknown endpoint", "nope", Fault{Code: "1"}},
		{"status below 200", TokenEndpoint, Fault{Status: 99}},
		{"status above 599", TokenEndpoint, Fault{Status: 600}},
		{"negative delay", TokenEndpoint, Fault{Delay: -time.Second}},
	}
	f := New(Options{Apps: map[string]string{testApp: testSecret}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("SetFault did not panic")
				}
			}()
			f.SetFault(tt.ep, tt.fault)
		})
	}
}
