package webanktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNonceTicketAnswer(t *testing.T) {
	for _, tt := range []struct {
		name     string
		nonceTTL time.Duration
		want     string // expire_in
	}{
		{name: "default", want: "120"},
		// Scaled like the other lifetimes, for tests that cross it quickly.
		{name: "scaled", nonceTTL: 3 * time.Second, want: "3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, Options{NonceTTL: tt.nonceTTL})
			token := fx.token(testApp)
			q := nonceQuery(testApp, token, "user-1")
			// appId is accepted as for SIGN tickets.
			q["appId"] = q["app_id"]
			delete(q, "app_id")
			status, body := fx.get(PathTicket, q.Encode())
			var v struct {
				Code, Msg, TransactionTime string
				Tickets                    []map[string]any
			}
			if err := json.Unmarshal(body, &v); err != nil || status != http.StatusOK || v.Code != "0" || len(v.Tickets) != 1 {
				t.Fatalf("answer = %d %s (%v), want 200 with code 0 and one ticket", status, body, err)
			}
			now := fx.clock.Now().In(beijing)
			ttl := orDefault(tt.nonceTTL, defaultNonceTTL)
			ticket := v.Tickets[0]
			if got := ticket["expire_in"]; got != tt.want {
				t.Errorf("expire_in = %#v, want the string %q", got, tt.want)
			}
			if got, want := ticket["expire_time"], now.Add(ttl).Format(wbTimeLayout); got != want {
				t.Errorf("expire_time = %v, want %s", got, want)
			}
			if got, want := v.TransactionTime, now.Format(wbTimeLayout); got != want {
				t.Errorf("transactionTime = %v, want %s", got, want)
			}
			if value, _ := ticket["value"].(string); len(value) != 64 || !allOf(value, isAlnum) {
				t.Errorf("value is %d characters, want 64 alphanumerics", len(value))
			}
			if !containsString(fx.s.IssuedValues(), ticket["value"].(string)) {
				t.Error("IssuedValues lacks the NONCE ticket")
			}
		})
	}
}

// TestNonceTicketCounters checks that NONCE tickets are counted apart from
// SIGN tickets, which keep their count.
func TestNonceTicketCounters(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	fx.ticket(testApp, token)
	for _, user := range []string{"u1", "u2", "u2"} {
		fx.nonceTicket(testApp, token, user)
	}
	fx.get(PathTicket, nonceQuery(testApp, token, "").Encode()) // refused: no user_id
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"TicketCalls", fx.s.TicketCalls(), 1},
		{"Calls(PathTicket)", fx.s.Calls(PathTicket), 1},
		{"NonceCalls", fx.s.NonceCalls(), 4},
		{"NonceTickets", fx.s.NonceTickets(), 3},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	_, body := fx.get("/__fake/stats", "")
	var stats map[string]int64
	if err := json.Unmarshal(body, &stats); err != nil {
		t.Fatal(err)
	}
	if stats["ticket_calls"] != 1 || stats["nonce_calls"] != 4 || stats["nonce_tickets"] != 3 {
		t.Errorf("stats = %s, want ticket_calls 1, nonce_calls 4, nonce_tickets 3", body)
	}
	if got := fx.s.Requests(PathTicket); got != nil {
		t.Errorf("Requests(PathTicket) = %v, want nil: NONCE requests hold the access token", got)
	}
}

func TestNonceTicketRefusals(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	valid := nonceQuery(testApp, token, "user_1-A")
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"without user_id", without(valid, "user_id"), "400102"},
		{"empty user_id", with(valid, "user_id", "").Encode(), "400102"},
		{"user_id of 33", with(valid, "user_id", strings.Repeat("u", 33)).Encode(), "400102"},
		{"user_id with a dot", with(valid, "user_id", "u.1").Encode(), "400102"},
		{"user_id with a space", with(valid, "user_id", "u 1").Encode(), "400102"},
		{"user_id in Chinese", with(valid, "user_id", "用户").Encode(), "400102"},
		{"repeated user_id", valid.Encode() + "&user_id=u2", "400102"},
		{"without access_token", without(valid, "access_token"), "400102"},
		{"version 2", with(valid, "version", "2.0.0").Encode(), "400102"},
		{"type lowercase", with(valid, "type", "nonce").Encode(), "400102"},
		{"type other", with(valid, "type", "OTHER").Encode(), "400102"},
		{"type repeated", valid.Encode() + "&type=NONCE", "400102"},
		{"unknown app", with(valid, "app_id", "IDANOPE1").Encode(), "400103"},
		{"unknown token", with(valid, "access_token", strings.Repeat("a", 64)).Encode(), "15"},
		{"other app's token", with(valid, "app_id", otherApp).Encode(), "15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := fx.get(PathTicket, tt.query)
			if got := fx.code(body); status != http.StatusOK || got != tt.want {
				t.Errorf("answer = %d %s, want 200 with code %s", status, body, tt.want)
			}
			if strings.Contains(string(body), token) {
				t.Errorf("answer %s holds the access token", body)
			}
		})
	}
	if got := fx.s.NonceTickets(); got != 0 {
		t.Errorf("NonceTickets = %d, want 0", got)
	}
	if got := fx.s.BadRequests(); got != 12 {
		t.Errorf("BadRequests = %d, want 12", got)
	}
	// None of them spent anything: the valid query works.
	if _, body := fx.get(PathTicket, valid.Encode()); fx.code(body) != "0" {
		t.Errorf("valid query: %s, want code 0", body)
	}
}

func without(q url.Values, key string) string {
	c := copyValues(q)
	c.Del(key)
	return c.Encode()
}

// TestNonceTicketSingleUse uses a NONCE ticket twice, through the SDK login
// and the login page, which share the ticket's rules.
func TestNonceTicketSingleUse(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	fx.ticket(testApp, token)
	ticket := fx.nonceTicket(testApp, token, "u1")
	if _, body := fx.postJSON(PathSDKLogin, "", sdkLogin(ticket, "u1")); fx.code(body) != "0" {
		t.Fatalf("first use: %s, want code 0", body)
	}
	_, body := fx.postJSON(PathSDKLogin, "", sdkLogin(ticket, "u1")) // a fresh nonce, the same ticket
	if fx.code(body) != "400101" || fx.msg(body) != "ticket already used" {
		t.Errorf("second use: %s, want 400101, ticket already used", body)
	}
	// Nor may the login page use it.
	fx.sendLaunch(PathAdvFaceID, newLaunch(fx.ticket(testApp, token), "O1", "u1"))
	l := login{appID: testApp, userID: "u1", orderNo: "O1", faceID: FaceID(testApp, "O1"), nonce: randomAlnum(32), callback: "https://partner.example/cb"}
	if resp, body := fx.getLogin(l.query(ticket)); resp.StatusCode != http.StatusBadRequest || fx.code(body) != "400101" {
		t.Errorf("login with the used ticket = %d %s, want 400 with code 400101", resp.StatusCode, body)
	}
	if got := fx.s.SDKLogins() + fx.s.Logins(); got != 1 {
		t.Errorf("SDKLogins+Logins = %d, want 1", got)
	}
}

// TestNonceTicketUserBinding signs one user's launch with another user's
// ticket.
func TestNonceTicketUserBinding(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	forU1 := fx.nonceTicket(testApp, token, "u1")
	fx.nonceTicket(testApp, token, "u2") // u2 has a ticket too, just not this one
	if _, body := fx.postJSON(PathSDKLogin, "", sdkLogin(forU1, "u2")); fx.code(body) != "400101" {
		t.Errorf("u2 with u1's ticket: %s, want code 400101", body)
	}
	if _, body := fx.postJSON(PathSDKLogin, "", sdkLogin(forU1, "u3")); fx.code(body) != "400101" {
		t.Errorf("u3, who has no ticket, with u1's: %s, want code 400101", body)
	}
	// The refusals did not use u1's ticket up.
	if _, body := fx.postJSON(PathSDKLogin, "", sdkLogin(forU1, "u1")); fx.code(body) != "0" {
		t.Errorf("u1 with its own ticket: %s, want code 0", body)
	}
}

func TestNonceTicketLifetime(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		rotate   bool // the token is superseded before the clock moves
		advance  time.Duration
		want     string // SDK login
		wantMsg  string
		wantNext string // a new NONCE ticket from the same token
	}{
		{name: "just alive", advance: 119 * time.Second, want: "0", wantNext: "0"},
		{name: "expired", advance: 120 * time.Second, want: "400101", wantMsg: "ticket expired or its access_token invalid", wantNext: "0"},
		{name: "scaled, just alive", opts: Options{NonceTTL: 10 * time.Second}, advance: 9 * time.Second, want: "0", wantNext: "0"},
		{name: "scaled, expired", opts: Options{NonceTTL: 10 * time.Second}, advance: 10 * time.Second, want: "400101", wantNext: "0"},
		// A NONCE ticket dies with its token, like a SIGN ticket.
		{name: "token superseded, within grace", rotate: true, advance: 59 * time.Second, want: "0", wantNext: "0"},
		{name: "token superseded, past grace", rotate: true, advance: 60 * time.Second, want: "400101", wantMsg: "ticket expired or its access_token invalid", wantNext: "15"},
		{name: "token superseded, no grace", opts: Options{Grace: -1}, rotate: true, want: "400101", wantNext: "15"},
		{name: "token expired", opts: Options{TokenTTL: time.Minute}, advance: time.Minute, want: "400101", wantNext: "15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, tt.opts)
			token := fx.token(testApp)
			ticket := fx.nonceTicket(testApp, token, "u1")
			if tt.rotate {
				fx.s.RotateToken(testApp)
			}
			fx.clock.Advance(tt.advance)
			_, body := fx.postJSON(PathSDKLogin, "", sdkLogin(ticket, "u1"))
			if got := fx.code(body); got != tt.want {
				t.Errorf("SDK login: %s, want code %s", body, tt.want)
			}
			if tt.wantMsg != "" && fx.msg(body) != tt.wantMsg {
				t.Errorf("SDK login msg = %q, want %q", fx.msg(body), tt.wantMsg)
			}
			if _, body := fx.get(PathTicket, nonceQuery(testApp, token, "u1").Encode()); fx.code(body) != tt.wantNext {
				t.Errorf("new NONCE ticket from the token: %s, want code %s", body, tt.wantNext)
			}
		})
	}
}

// TestNonceTicketsConcurrently launches 100 users at once, and races 20
// logins on one ticket: exactly one may win.
func TestNonceTicketsConcurrently(t *testing.T) {
	fx := newFixture(t, Options{})
	token := fx.token(testApp)
	const users = 100
	codes := make([]string, users)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			user := "user" + strconv.Itoa(i)
			ticket, err := fetchNonceTicket(fx, token, user)
			if err != nil {
				codes[i] = err.Error()
				return
			}
			codes[i] = sdkLoginCode(fx, sdkLogin(ticket, user))
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != "0" {
			t.Errorf("user %d: %s, want code 0", i, c)
		}
	}
	if got := fx.s.NonceTickets(); got != users {
		t.Errorf("NonceTickets = %d, want %d", got, users)
	}

	shared := fx.nonceTicket(testApp, token, "shared")
	const racers = 20
	wins := make([]string, racers)
	for i := range racers {
		wg.Go(func() { wins[i] = sdkLoginCode(fx, sdkLogin(shared, "shared")) })
	}
	wg.Wait()
	passed := 0
	for _, c := range wins {
		switch c {
		case "0":
			passed++
		case "400101":
		default:
			t.Errorf("a login with the shared ticket: %s, want code 0 or 400101", c)
		}
	}
	if passed != 1 {
		t.Errorf("%d of %d logins with one ticket passed, want 1", passed, racers)
	}
	if got := fx.s.SDKLogins(); got != users+1 {
		t.Errorf("SDKLogins = %d, want %d", got, users+1)
	}
}

// fetchNonceTicket fetches a NONCE ticket for user of testApp with token;
// unlike fixture.nonceTicket it may run on any goroutine.
func fetchNonceTicket(fx *fixture, token, user string) (string, error) {
	resp, err := fx.s.Client().Get(fx.s.URL + PathTicket + "?" + nonceQuery(testApp, token, user).Encode())
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		Code    string
		Tickets []struct{ Value string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	if v.Code != "0" || len(v.Tickets) != 1 {
		return "", errors.New("NONCE ticket refused with code " + v.Code)
	}
	return v.Tickets[0].Value, nil
}

// sdkLoginCode sends body to the SDK login and returns the code answered,
// or the error; it may run on any goroutine.
func sdkLoginCode(fx *fixture, body map[string]string) string {
	b, _ := json.Marshal(body)
	resp, err := fx.s.Client().Post(fx.s.URL+PathSDKLogin, "application/json", bytes.NewReader(b))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var v struct{ Code string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return err.Error()
	}
	return v.Code
}
