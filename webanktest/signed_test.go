package webanktest

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSignedChecks runs the checks every signed endpoint shares against each
// of them.
func TestSignedChecks(t *testing.T) {
	notFound := map[string]string{
		PathOCR:        "66660020",
		PathBankCard:   "66660020",
		PathSync:       "66660011",
		PathFaceRecord: "66660011",
	}
	for _, path := range signedPaths {
		t.Run(path, func(t *testing.T) {
			fx := newFixture(t, Options{})
			ticket := fx.ticketNow()
			otherTicket := fx.ticket(otherApp, fx.token(otherApp))
			tests := []struct {
				name          string
				req           signedReq
				want          string
				badSignatures int64
			}{
				{name: "valid", req: newSignedReq(ticket, "A1"), want: "0"},
				{name: "lowercase sign", req: lowercase(newSignedReq(ticket, "A2")), want: "0"},
				{name: "order not found", req: newSignedReq(ticket, "NOTFOUND1"), want: notFound[path]},
				{name: "unknown ticket", req: newSignedReq(strings.Repeat("x", 64), "A3"), want: "400101", badSignatures: 1},
				{name: "other app's ticket", req: newSignedReq(otherTicket, "A4"), want: "400101", badSignatures: 1},
				{name: "sign of other values", req: withOrder(newSignedReq(ticket, "A5"), "A6"), want: "400101", badSignatures: 1},
				{name: "sign without version", req: signedWithout(newSignedReq(ticket, "A7"), ticket), want: "400101", badSignatures: 1},
				{name: "unknown app", req: withApp(newSignedReq(ticket, "A8"), "IDANOPE1"), want: "400103"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := fx.s.BadSignatures()
					status, body := fx.send(path, tt.req)
					if got := fx.code(body); status != http.StatusOK || got != tt.want {
						t.Fatalf("answer = %d %s, want 200 with code %s", status, truncate(body), tt.want)
					}
					if tt.want == "0" {
						if want := resultBody(fx.s.Fake, path, tt.req.orderNo); !bytes.Equal(body, want) {
							t.Errorf("body = %s, want %s", truncate(body), truncate(want))
						}
					}
					if got := fx.s.BadSignatures() - before; got != tt.badSignatures {
						t.Errorf("BadSignatures grew by %d, want %d", got, tt.badSignatures)
					}
					for _, s := range []string{tt.req.sign, tt.req.nonce, ticket} {
						if bytes.Contains(body, []byte(s)) {
							t.Errorf("answer %s holds a sign, nonce or ticket", truncate(body))
						}
					}
				})
			}
			if n := fx.s.StaleTickets() + fx.s.ReusedNonces() + fx.s.BadRequests(); n != 0 {
				t.Errorf("StaleTickets+ReusedNonces+BadRequests = %d, want 0", n)
			}
			if got, want := fx.s.Calls(path), int64(len(tests)); got != want {
				t.Errorf("Calls(%s) = %d, want %d", path, got, want)
			}
		})
	}
}

func lowercase(r signedReq) signedReq {
	r.sign = strings.ToLower(r.sign)
	return r
}

// withOrder returns r for orderNo, keeping the sign made for r's order.
func withOrder(r signedReq, orderNo string) signedReq {
	r.orderNo = orderNo
	return r
}

// withApp returns r for appID, keeping the sign made for r's app.
func withApp(r signedReq, appID string) signedReq {
	r.appID = appID
	return r
}

// signedWithout returns r signed over four values, version left out.
func signedWithout(r signedReq, ticket string) signedReq {
	r.sign = sign(r.appID, r.orderNo, ticket, r.nonce)
	return r
}

func TestSignedStaleTicket(t *testing.T) {
	for _, path := range signedPaths {
		t.Run(path, func(t *testing.T) {
			fx := newFixture(t, Options{TicketTTL: time.Hour})
			ticket := fx.ticketNow()
			fx.clock.Advance(time.Hour)
			if got := fx.sendCode(path, newSignedReq(ticket, "A1")); got != "15" {
				t.Errorf("expired ticket: code = %s, want 15", got)
			}
			oldTicket := fx.ticketNow()
			fx.s.RotateToken(testApp)
			fx.clock.Advance(time.Minute)
			if got := fx.sendCode(path, newSignedReq(oldTicket, "A2")); got != "15" {
				t.Errorf("superseded token's ticket: code = %s, want 15", got)
			}
			if got := fx.s.StaleTickets(); got != 2 {
				t.Errorf("StaleTickets = %d, want 2", got)
			}
			if n := fx.s.BadSignatures() + fx.s.ReusedNonces(); n != 0 {
				t.Errorf("BadSignatures+ReusedNonces = %d, want 0", n)
			}
		})
	}
}

func TestNonceReuseAcrossEndpoints(t *testing.T) {
	for _, first := range signedPaths {
		t.Run("first "+first, func(t *testing.T) {
			fx := newFixture(t, Options{})
			ticket := fx.ticketNow()
			nonce := newSignedReq(ticket, "A0").nonce
			reqFor := func(orderNo string) signedReq {
				r := newSignedReq(ticket, orderNo)
				r.nonce = nonce
				return r.signedWith(ticket)
			}
			if got := fx.sendCode(first, reqFor("A0")); got != "0" {
				t.Fatalf("first use: code = %s, want 0", got)
			}
			for i, path := range signedPaths {
				if got := fx.sendCode(path, reqFor("B"+string(rune('0'+i)))); got != "400101" {
					t.Errorf("%s: code = %s, want 400101", path, got)
				}
			}
			if got, want := fx.s.ReusedNonces(), int64(len(signedPaths)); got != want {
				t.Errorf("ReusedNonces = %d, want %d", got, want)
			}
			if got := fx.s.BadSignatures(); got != 0 {
				t.Errorf("BadSignatures = %d, want 0", got)
			}

			// Nonces are per app: another app may use the same one.
			otherTicket := fx.ticket(otherApp, fx.token(otherApp))
			r := withApp(reqFor("C1"), otherApp).signedWith(otherTicket)
			if got := fx.sendCode(first, r); got != "0" {
				t.Errorf("other app, same nonce: code = %s, want 0", got)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	fx := newFixture(t, Options{})
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodPost, PathOCR, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodPost, PathBankCard, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodPut, PathBankCard, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodPost, PathSync, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, PathSync, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodGet, PathFaceRecord, http.StatusMethodNotAllowed, "POST"},
		{http.MethodHead, PathFaceRecord, http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, PathFaceRecord, http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, PathFaceRecord + "/x", http.StatusNotFound, ""},
		{http.MethodGet, "/api/server/getbankcardocrresult", http.StatusNotFound, ""}, // paths are case-sensitive
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, fx.s.URL+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := fx.s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d, Allow %q; want %d, Allow %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Allow"), tt.status, tt.allow)
		}
	}
	for _, path := range signedPaths {
		if n := fx.s.Calls(path); n != 0 {
			t.Errorf("Calls(%s) = %d, want 0", path, n)
		}
	}

	// HEAD is answered as GET, without the body.
	ticket := fx.ticketNow()
	for _, path := range []string{PathBankCard, PathSync} {
		q := ocrQuery(ticket, "H1", nil)
		status, body := fx.do(http.MethodHead, path, q.Encode())
		if status != http.StatusOK || len(body) != 0 {
			t.Errorf("HEAD %s = %d with %d bytes, want 200 with none", path, status, len(body))
		}
	}
}
