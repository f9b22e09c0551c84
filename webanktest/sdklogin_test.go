package webanktest

import (
	"net/http"
	"strings"
	"testing"
)

// TestSDKLoginVector2 checks vector 2 of docs/protocol.md §12 through the
// SDK login's checker: the userId-type sign, here over a NONCE ticket.
func TestSDKLoginVector2(t *testing.T) {
	fx := newVectorFixture(t, Options{})
	fx.plantNonceTicket(vectorApp2, "userID19959248596551", "XO99Qfxlti9iTVgHAjwvJdAZKN3nMuUhrsPdPlPVKlcyS50N6tlLnfuFBPIucaMS")
	body := map[string]string{
		"appId": vectorApp2, "userId": "userID19959248596551", "nonce": "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T",
		"version": "1.0.0", "sign": "D7606F1741DDCF90757DA924EDCF152A200AC7F0",
	}
	status, answer := fx.postJSON(PathSDKLogin, "", body)
	if status != http.StatusOK || string(answer) != `{"code":"0","msg":"ok"}` {
		t.Errorf("answer = %d %s, want 200 {\"code\":\"0\",\"msg\":\"ok\"}", status, answer)
	}
	if got := fx.s.SDKLogins(); got != 1 {
		t.Errorf("SDKLogins = %d, want 1", got)
	}
}

func TestSDKLoginRefusals(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	ticket := fx.nonceTicket(testApp, token, "u1")
	valid := sdkLogin(ticket, "u1")
	withKey := func(key, value string) map[string]string {
		c := map[string]string{}
		for k, v := range valid {
			c[k] = v
		}
		c[key] = value
		if value == "-" {
			delete(c, key)
		}
		return c
	}
	tests := []struct {
		name  string
		query string
		body  map[string]string
		raw   string // sent as is, if not empty
		want  string
	}{
		{name: "not JSON", raw: "appId=" + testApp, want: "400102"},
		{name: "without appId", body: withKey("appId", "-"), want: "400102"},
		{name: "without userId", body: withKey("userId", "-"), want: "400102"},
		{name: "without nonce", body: withKey("nonce", "-"), want: "400102"},
		{name: "without version", body: withKey("version", "-"), want: "400102"},
		{name: "without sign", body: withKey("sign", "-"), want: "400102"},
		{name: "userId of 33", body: withKey("userId", strings.Repeat("u", 33)), want: "400102"},
		{name: "nonce of 31", body: withKey("nonce", valid["nonce"][:31]), want: "400102"},
		{name: "sign not hex", body: withKey("sign", "G"+valid["sign"][1:]), want: "400102"},
		{name: "bad orderNo", body: withKey("orderNo", "A.1"), want: "400102"},
		{name: "URL orderNo differs", query: "orderNo=A2", body: withKey("orderNo", "A1"), want: "400102"},
		{name: "URL orderNo, none in body", query: "orderNo=A2", body: valid, want: "400102"},
		{name: "unknown app", body: withKey("appId", "IDANOPE1"), want: "400103"},
		{name: "sign of other values", body: withKey("version", "1.0.1"), want: "400101"},
		{name: "SIGN ticket instead", body: sdkLogin(fx.ticket(testApp, token), "u1"), want: "400101"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var status int
			var answer []byte
			if tt.raw != "" {
				status, answer = fx.postRaw(PathSDKLogin, tt.query, []byte(tt.raw))
			} else {
				status, answer = fx.postJSON(PathSDKLogin, tt.query, tt.body)
			}
			if got := fx.code(answer); status != http.StatusOK || got != tt.want {
				t.Errorf("answer = %d %s, want 200 with code %s", status, answer, tt.want)
			}
			for _, s := range []string{ticket, valid["sign"], valid["nonce"]} {
				if strings.Contains(string(answer), s) {
					t.Errorf("answer %s holds a ticket, sign or nonce", answer)
				}
			}
		})
	}
	// The refusals left the ticket unused; an orderNo is allowed.
	if _, answer := fx.postJSON(PathSDKLogin, "orderNo=A1", withKey("orderNo", "A1")); fx.code(answer) != "0" {
		t.Errorf("valid login after the refusals: %s, want code 0", answer)
	}
}
