package webanktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// The app ids of the known-answer vectors of docs/protocol.md §12.
const (
	vectorApp2 = "IDAXXXXX" // vector 2
	vectorApp  = "appId001" // vectors 4, 6, 7 and 8
)

// newVectorFixture starts a fake that knows the test apps and the apps of
// the vectors.
func newVectorFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	opts.Apps = map[string]string{
		testApp: testSecret, otherApp: testSecret + "2",
		vectorApp2: "vector-secret-2", vectorApp: "vector-secret",
	}
	return newFixture(t, opts)
}

// plantToken gives appID a new current access token, as RotateToken does,
// and returns it, so that tickets of known value can be made from it.
func (fx *fixture) plantToken(appID string) *accessToken {
	c := fx.s.creds
	c.issueToken(appID, fx.clock.Now())
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apps[appID].current
}

// plantSignTicket makes value a SIGN ticket of appID, the latest, from a new
// token, as if the api_ticket endpoint had issued it now.
func (fx *fixture) plantSignTicket(appID, value string) {
	tok := fx.plantToken(appID)
	c := fx.s.creds
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.apps[appID]
	a.tickets = append(a.tickets, &signTicket{value: value, expires: fx.clock.Now().Add(c.ticketTTL), token: tok})
}

// plantNonceTicket makes value a NONCE ticket of appID for userID, from a
// new token, as if the api_ticket endpoint had issued it now.
func (fx *fixture) plantNonceTicket(appID, userID, value string) {
	tok := fx.plantToken(appID)
	c := fx.s.creds
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.apps[appID]
	a.nonces = append(a.nonces, &nonceTicket{value: value, userID: userID, expires: fx.clock.Now().Add(c.nonceTTL), token: tok})
}

// nonceQuery is the query of a NONCE ticket request for app, token and
// userID.
func nonceQuery(app, token, userID string) url.Values {
	return url.Values{"app_id": {app}, "access_token": {token}, "type": {"NONCE"}, "version": {"1.0.0"}, "user_id": {userID}}
}

// nonceTicket fetches a NONCE ticket for userID of app with token, failing
// the test on any error.
func (fx *fixture) nonceTicket(app, token, userID string) string {
	fx.t.Helper()
	_, body := fx.get(PathTicket, nonceQuery(app, token, userID).Encode())
	var v struct {
		Code    string
		Tickets []struct{ Value string }
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Code != "0" || len(v.Tickets) != 1 {
		fx.t.Fatalf("NONCE ticket answer %q (%v)", truncate(body), err)
	}
	return v.Tickets[0].Value
}

// postJSON sends body, JSON-encoded, to path with rawQuery and returns the
// status and the answer.
func (fx *fixture) postJSON(path, rawQuery string, body any) (int, []byte) {
	fx.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		fx.t.Fatal(err)
	}
	return fx.postRaw(path, rawQuery, b)
}

// postRaw sends body as application/json to path with rawQuery and returns
// the status and the answer.
func (fx *fixture) postRaw(path, rawQuery string, body []byte) (int, []byte) {
	fx.t.Helper()
	resp, err := fx.s.Client().Post(fx.s.URL+path+"?"+rawQuery, "application/json", bytes.NewReader(body))
	if err != nil {
		fx.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		fx.t.Fatalf("reading %s: %v", path, err)
	}
	return resp.StatusCode, answer
}

// launch is the body of a request to a faceId API, or to geth5faceid.
type launch map[string]string

// newLaunch returns a getAdvFaceId body for testApp, orderNo and userID,
// signed as the userId type with ticket and a fresh nonce.
func newLaunch(ticket, orderNo, userID string) launch {
	l := launch{
		"appId": testApp, "orderNo": orderNo, "name": "张三", "idNo": "11010119900307001X",
		"userId": userID, "version": "1.0.0", "nonce": randomAlnum(32),
	}
	l["sign"] = sign(testApp, userID, "1.0.0", ticket, l["nonce"])
	return l
}

// newH5Launch returns a geth5faceid body for testApp, orderNo and userID,
// signed over its seven values with ticket.
func newH5Launch(ticket, orderNo, userID string) launch {
	l := launch{
		"webankAppId": testApp, "orderNo": orderNo, "name": "张三", "idNo": "11010119900307001X",
		"userId": userID, "version": "1.0.0",
	}
	l["sign"] = sign(testApp, orderNo, l["name"], l["idNo"], userID, "1.0.0", ticket)
	return l
}

// appFieldOf returns the name a launch body at path gives the app.
func appFieldOf(path string) string {
	if path == PathH5FaceID {
		return "webankAppId"
	}
	return "appId"
}

// with returns a copy of l with key set to value.
func (l launch) with(key, value string) launch {
	c := make(launch, len(l))
	for k, v := range l {
		c[k] = v
	}
	c[key] = value
	return c
}

// without returns a copy of l without key.
func (l launch) without(key string) launch {
	c := l.with(key, "")
	delete(c, key)
	return c
}

// launchAnswer is what the faceId APIs answer.
type launchAnswer struct {
	Code, Msg, BizSeqNo, TransactionTime string
	Result                               struct {
		BizSeqNo, TransactionTime, OrderNo string
		FaceID                             string `json:"faceId"`
		H5FaceID                           string `json:"h5faceId"`
		OptimalDomain                      string `json:"optimalDomain"`
		Success                            bool
	}
}

// sendLaunch posts l to path, with its orderNo in the URL, and returns the
// decoded answer.
func (fx *fixture) sendLaunch(path string, l launch) launchAnswer {
	fx.t.Helper()
	status, body := fx.postJSON(path, url.Values{"orderNo": {l["orderNo"]}}.Encode(), l)
	var a launchAnswer
	if err := json.Unmarshal(body, &a); err != nil || status != http.StatusOK {
		fx.t.Fatalf("%s answered %d %q (%v)", path, status, truncate(body), err)
	}
	return a
}

// login is a login page query.
type login struct {
	appID, userID, orderNo, faceID, nonce, callback string
}

// query returns the login page query of l signed with the NONCE ticket.
func (l login) query(ticket string) url.Values {
	return url.Values{
		"appId": {l.appID}, "version": {"1.0.0"}, "nonce": {l.nonce}, "orderNo": {l.orderNo},
		"faceId": {l.faceID}, "url": {l.callback}, "from": {"browser"}, "userId": {l.userID},
		"sign":         {sign(l.appID, l.orderNo, l.userID, "1.0.0", l.faceID, ticket, l.nonce)},
		"redirectType": {"1"},
	}
}

// getLogin sends GET PathLogin?q without following a redirect and returns
// the response, its body read.
func (fx *fixture) getLogin(q url.Values) (*http.Response, []byte) {
	fx.t.Helper()
	client := *fx.s.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(fx.s.URL + PathLogin + "?" + q.Encode())
	if err != nil {
		fx.t.Fatalf("GET %s: %v", PathLogin, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		fx.t.Fatal(err)
	}
	return resp, body
}

// sdkLogin returns the SDK login body of testApp for userID, signed with
// the NONCE ticket and a fresh nonce.
func sdkLogin(ticket, userID string) map[string]string {
	nonce := randomAlnum(32)
	return map[string]string{
		"appId": testApp, "userId": userID, "nonce": nonce, "version": "1.0.0",
		"sign": sign(testApp, userID, "1.0.0", ticket, nonce),
	}
}
