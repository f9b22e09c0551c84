package webanktest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestLoginVectors checks vector 6 (the login's sign) and vector 8 (the
// callback's newSignature) of docs/protocol.md §12 through the login page,
// with the vectors' tickets and faceId planted.
func TestLoginVectors(t *testing.T) {
	fx := newVectorFixture(t, Options{})
	fx.plantNonceTicket(vectorApp, "userID19959248596551", "zxc9Qfxlti9iTVgHAjwvJdAZKN3nMuUhrsPdPlPVKlcyS50N6tlLnfuFBPIucaMS")
	fx.plantSignTicket(vectorApp, "duSz9ptwyW1Xn7r6gYItxz3feMdJ8Na5x7JZuoxurE7RcI5TdwCE4KT2eEeNNDoe")
	fx.s.faceIDs.add(faceIDKey(vectorApp, "aabc1457895464", "bwiwe1457895464"))

	got, err := fx.s.CallbackSignature(vectorApp, "test1480921551481", "0")
	if want := "526365E042766AE27A6E52D2E4829D4C6E156B5D"; err != nil || got != want {
		t.Errorf("CallbackSignature = %s, %v, want vector 8's %s", got, err, want)
	}

	q := url.Values{
		"appId": {vectorApp}, "version": {"1.0.0"}, "nonce": {"kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T"},
		"orderNo": {"aabc1457895464"}, "faceId": {"bwiwe1457895464"}, "url": {"https://partner.example/cb"},
		"from": {"browser"}, "userId": {"userID19959248596551"}, "redirectType": {"1"},
		"sign": {"4E9DFABF938BF37BDB7A7DC25CCA1233D12D986B"},
	}
	resp, body := fx.getLogin(q)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login = %d %s, want 302", resp.StatusCode, body)
	}
	to, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	// newSignature is vector 8's maths over this order.
	want := sign(vectorApp, "aabc1457895464", "0", "duSz9ptwyW1Xn7r6gYItxz3feMdJ8Na5x7JZuoxurE7RcI5TdwCE4KT2eEeNNDoe")
	if got := to.Query().Get("newSignature"); got != want {
		t.Errorf("newSignature = %s, want %s", got, want)
	}
}

// TestLoginFlow walks one verification: launch, NONCE ticket, login, and
// the callback's signature checked as the partner would.
func TestLoginFlow(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	signTicket := fx.ticket(testApp, token)
	a := fx.sendLaunch(PathAdvFaceID, newLaunch(signTicket, "ORDER1", "user1"))
	latest := fx.ticket(testApp, token) // the callback is signed with the latest SIGN ticket
	nonceTicket := fx.nonceTicket(testApp, token, "user1")
	l := login{
		appID: testApp, userID: "user1", orderNo: "ORDER1", faceID: a.Result.FaceID, nonce: randomAlnum(32),
		callback: "https://partner.example/h5/done?session=s%201&x=1#top",
	}
	resp, body := fx.getLogin(l.query(nonceTicket))
	if resp.StatusCode != http.StatusFound || len(body) != 0 {
		t.Fatalf("login = %d %s, want 302 with no body", resp.StatusCode, body)
	}
	to, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := to.Query()
	if to.Scheme != "https" || to.Host != "partner.example" || to.Path != "/h5/done" || to.Fragment != "top" {
		t.Errorf("redirected to %s, want the callback", to)
	}
	// The callback's own query is kept.
	if q.Get("session") != "s 1" || q.Get("x") != "1" {
		t.Errorf("callback query = %v, want session and x kept", q)
	}
	if q.Get("code") != "0" || q.Get("orderNo") != "ORDER1" || q.Get("h5faceId") != a.Result.FaceID {
		t.Errorf("callback query = %v, want code 0, orderNo ORDER1, h5faceId %s", q, a.Result.FaceID)
	}
	// The partner checks newSignature with vector 8's maths and its latest ticket.
	if got, want := q.Get("newSignature"), sign(testApp, "ORDER1", "0", latest); got != want {
		t.Errorf("newSignature = %s, want %s", got, want)
	}
	if got, want := q.Get("newSignature"), sign(testApp, "ORDER1", "0", signTicket); got == want {
		t.Error("newSignature made with an older SIGN ticket, want the latest")
	}
	if got, err := fx.s.CallbackSignature(testApp, "ORDER1", "0"); err != nil || got != q.Get("newSignature") {
		t.Errorf("CallbackSignature = %s, %v, want the callback's", got, err)
	}
	if got := fx.s.Logins(); got != 1 {
		t.Errorf("Logins = %d, want 1", got)
	}
	// The NONCE ticket is used up.
	l.nonce = randomAlnum(32)
	if resp, body := fx.getLogin(l.query(nonceTicket)); resp.StatusCode != http.StatusBadRequest || fx.code(body) != "400101" {
		t.Errorf("second login = %d %s, want 400 with code 400101", resp.StatusCode, body)
	}
	if got := fx.s.Calls(PathLogin); got != 2 {
		t.Errorf("Calls(PathLogin) = %d, want 2", got)
	}
}

func TestCallbackSignatureErrors(t *testing.T) {
	fx := newFixture(t, Options{})
	if _, err := fx.s.CallbackSignature("IDANOPE1", "O1", "0"); err == nil {
		t.Error("unknown app: no error")
	}
	fx.token(testApp)
	if _, err := fx.s.CallbackSignature(testApp, "O1", "0"); err == nil {
		t.Error("no SIGN ticket yet: no error")
	}
}

func TestLoginRefusals(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	signTicket := fx.ticket(testApp, token)
	faceID := fx.sendLaunch(PathAdvFaceID, newLaunch(signTicket, "O1", "u1")).Result.FaceID
	fx.sendLaunch(PathAdvFaceID, newLaunch(signTicket, "O2", "u1"))
	ticket := fx.nonceTicket(testApp, token, "u1")
	forU2 := fx.nonceTicket(testApp, token, "u2")
	base := login{appID: testApp, userID: "u1", orderNo: "O1", faceID: faceID, nonce: randomAlnum(32), callback: "https://partner.example/cb"}
	valid := base.query(ticket)
	change := func(key, value string) url.Values {
		c := copyValues(valid)
		if value == "-" {
			c.Del(key)
		} else {
			c.Set(key, value)
		}
		return c
	}
	signed := func(l login, ticket string) url.Values { return l.query(ticket) }
	withURL := func(u string) url.Values { l := base; l.callback = u; return signed(l, ticket) }
	tests := []struct {
		name  string
		query url.Values
		want  string
	}{
		{"without appId", change("appId", "-"), "400102"},
		{"without version", change("version", "-"), "400102"},
		{"without nonce", change("nonce", "-"), "400102"},
		{"without orderNo", change("orderNo", "-"), "400102"},
		{"without faceId", change("faceId", "-"), "400102"},
		{"without url", change("url", "-"), "400102"},
		{"without from", change("from", "-"), "400102"},
		{"without userId", change("userId", "-"), "400102"},
		{"without sign", change("sign", "-"), "400102"},
		{"without redirectType", change("redirectType", "-"), "400102"},
		{"empty userId", change("userId", ""), "400102"},
		{"repeated sign", func() url.Values { c := copyValues(valid); c.Add("sign", valid.Get("sign")); return c }(), "400102"},
		{"orderNo with a dot", change("orderNo", "O.1"), "400102"},
		{"userId of 33", change("userId", strings.Repeat("u", 33)), "400102"},
		{"faceId with a dot", change("faceId", "wb.1"), "400102"},
		{"nonce of 31", change("nonce", base.nonce[:31]), "400102"},
		{"sign not hex", change("sign", "G"+valid.Get("sign")[1:]), "400102"},
		{"from other", change("from", "pc"), "400102"},
		{"relative url", withURL("/cb"), "400102"},
		{"ftp url", withURL("ftp://partner.example/cb"), "400102"},
		{"url without host", withURL("https:///cb"), "400102"},
		{"url with a bad query", withURL("https://partner.example/cb?a=%zz"), "400102"},
		{"unknown app", signed(login{appID: "IDANOPE1", userID: "u1", orderNo: "O1", faceID: faceID, nonce: base.nonce, callback: base.callback}, ticket), "400103"},
		{"another order's faceId", signed(login{appID: testApp, userID: "u1", orderNo: "O2", faceID: faceID, nonce: base.nonce, callback: base.callback}, ticket), "400102"},
		{"faceId never issued", signed(login{appID: testApp, userID: "u1", orderNo: "O3", faceID: FaceID(testApp, "O3"), nonce: base.nonce, callback: base.callback}, ticket), "400102"},
		{"signed with the SIGN ticket", signed(base, signTicket), "400101"},
		{"signed with another user's ticket", signed(base, forU2), "400101"},
		{"sign of other values", change("version", "1.0.1"), "400101"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := fx.getLogin(tt.query)
			if resp.StatusCode != http.StatusBadRequest || fx.code(body) != tt.want {
				t.Errorf("answer = %d %s, want 400 with code %s", resp.StatusCode, body, tt.want)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("refusal redirects to %s", loc)
			}
			for _, s := range []string{ticket, forU2, signTicket, base.nonce, valid.Get("sign")} {
				if strings.Contains(string(body), s) {
					t.Errorf("answer %s holds a ticket, nonce or sign", body)
				}
			}
		})
	}
	// HEAD would use the ticket up without a page to show: refused.
	if status, _ := fx.do(http.MethodHead, PathLogin, valid.Encode()); status != http.StatusMethodNotAllowed {
		t.Errorf("HEAD = %d, want 405", status)
	}
	// None of the refusals used the ticket up.
	if resp, body := fx.getLogin(valid); resp.StatusCode != http.StatusFound {
		t.Errorf("valid login after the refusals = %d %s, want 302", resp.StatusCode, body)
	}

	// An expired NONCE ticket is refused like a used one.
	late := fx.nonceTicket(testApp, token, "u1")
	fx.clock.Advance(2 * time.Minute)
	base.nonce = randomAlnum(32)
	if resp, body := fx.getLogin(base.query(late)); resp.StatusCode != http.StatusBadRequest || fx.code(body) != "400101" {
		t.Errorf("expired ticket = %d %s, want 400 with code 400101", resp.StatusCode, body)
	}
}
