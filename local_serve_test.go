package webanksign

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// newLocalHandler returns a provisioned webank_sign_local handler for the
// unit tests' app, fetching from a new fake WeBank, whose login page its
// H5 login URLs point to.
func newLocalHandler(t *testing.T, configure func(*LocalHandler)) (*LocalHandler, *webanktest.Server) {
	t.Helper()
	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	t.Cleanup(fake.Close)
	t.Setenv("WBS_UNIT_SECRET", testSecret)
	h := &LocalHandler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}", BaseURL: fake.URL}, LoginURL: fake.URL}
	if configure != nil {
		configure(h)
	}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	return h, fake
}

// callLocal POSTs body to h's endpoint and returns the status and the
// decoded JSON answer.
func callLocal(t *testing.T, h *LocalHandler, endpoint string, body any) (int, map[string]any) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/webank/"+endpoint, bytes.NewReader(data))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, nil); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	var answer map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
		t.Fatalf("answer %q is not JSON: %v", w.Body, err)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store: answers hold launch signs", cc)
	}
	return w.Code, answer
}

// postFake POSTs a JSON body to the fake WeBank and returns its answer.
func postFake(t *testing.T, fake *webanktest.Server, path string, body any) map[string]any {
	t.Helper()
	data, _ := json.Marshal(body)
	resp, err := fake.Client().Post(fake.URL+path, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("%s answered no JSON: %v", path, err)
	}
	return answer
}

// The SDK launch: sdk_sign's answer is what the SDK logs in with, once.
func TestSDKSignLaunches(t *testing.T) {
	h, fake := newLocalHandler(t, nil)
	status, a := callLocal(t, h, "sdk_sign", map[string]string{"user_id": "user_001"})
	if status != http.StatusOK {
		t.Fatalf("sdk_sign: %d %v", status, a)
	}
	if len(a) != 5 || a["app_id"] != testAppID || a["user_id"] != "user_001" || a["version"] != "1.0.0" ||
		len(a["nonce"].(string)) != 32 || !isHexSign(a["sign"].(string)) {
		t.Fatalf("sdk_sign answered %v, want app_id, user_id, a 32-character nonce, version and a sign", a)
	}
	login := map[string]any{"appId": a["app_id"], "userId": a["user_id"], "nonce": a["nonce"], "version": a["version"], "sign": a["sign"]}
	if got := postFake(t, fake, webanktest.PathSDKLogin, login); got["code"] != "0" {
		t.Fatalf("the fake's SDK login refused the launch: %v", got)
	}
	if got := postFake(t, fake, webanktest.PathSDKLogin, login); got["code"] == "0" {
		t.Fatalf("the same launch logged in twice: the NONCE ticket is single use")
	}
	if fake.TokenCalls() != 1 || fake.NonceTickets() != 1 {
		t.Errorf("token calls %d, NONCE tickets %d; want 1 and 1", fake.TokenCalls(), fake.NonceTickets())
	}
}

// faceIDFor starts a verification at the fake, signing getAdvFaceId with
// h's ticket as webank_sign would, and returns its faceId and
// optimalDomain.
func faceIDFor(t *testing.T, h *LocalHandler, fake *webanktest.Server, orderNo, userID string) (string, string) {
	t.Helper()
	tk, err := h.tenants[0].tickets.Ticket(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nonce := newNonce()
	vals := [...]string{testAppID, userID, "1.0.0", tk.Value(), nonce}
	a := postFake(t, fake, webanktest.PathAdvFaceID+"?orderNo="+orderNo, map[string]string{
		"appId": testAppID, "orderNo": orderNo, "name": "张三", "idNo": "110101199001011234", "userId": userID,
		"version": "1.0.0", "nonce": nonce, "sign": signValues(vals[:]),
	})
	r, _ := a["result"].(map[string]any)
	if a["code"] != "0" || r == nil {
		t.Fatalf("getAdvFaceId: %v", a)
	}
	return r["faceId"].(string), r["optimalDomain"].(string)
}

// The H5 walk: the login URL takes the browser to WeBank's page, whose
// redirect back carries a signature the sidecar verifies.
func TestH5LoginWalk(t *testing.T) {
	h, fake := newLocalHandler(t, nil)
	faceID, domain := faceIDFor(t, h, fake, "ORDH5001", "user_h5")
	status, a := callLocal(t, h, "h5_login_url", map[string]string{
		"order_no": "ORDH5001", "user_id": "user_h5", "face_id": faceID,
		"callback_url": "https://app.example.com/done?session=7", "optimal_domain": domain, "from": "app", "redirect_type": "1",
	})
	if status != http.StatusOK {
		t.Fatalf("h5_login_url: %d %v", status, a)
	}
	loginURL, _ := url.Parse(a["url"].(string))
	if loginURL.Host != domain || loginURL.Path != "/api/web/login" {
		t.Fatalf("login URL %s: want WeBank's login page at %s", loginURL.Redacted(), domain)
	}
	q := loginURL.Query()
	if q.Get("from") != "app" || q.Get("redirectType") != "1" || q.Get("url") != "https://app.example.com/done?session=7" {
		t.Errorf("login URL query %v lacks from, redirectType or the callback", q)
	}

	// The browser follows it.
	client := fake.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(loginURL.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login page answered %d %s, want a redirect to the callback", resp.StatusCode, body)
	}
	back, _ := url.Parse(resp.Header.Get("Location"))
	cb := back.Query()
	if back.Host != "app.example.com" || cb.Get("session") != "7" || cb.Get("orderNo") != "ORDH5001" {
		t.Fatalf("redirected to %s, want the callback with its query and the result", back.Redacted())
	}

	check := func(orderNo, code, sign string) bool {
		t.Helper()
		status, a := callLocal(t, h, "verify", map[string]string{"order_no": orderNo, "code": code, "sign": sign})
		if status != http.StatusOK {
			t.Fatalf("verify: %d %v", status, a)
		}
		return a["valid"].(bool)
	}
	sig := cb.Get("newSignature")
	if !check("ORDH5001", cb.Get("code"), sig) {
		t.Error("the callback WeBank signed was refused")
	}
	if !check("ORDH5001", cb.Get("code"), strings.ToLower(sig)) {
		t.Error("the callback's sign in lower case was refused: signs are case-insensitive")
	}
	if check("ORDH5001", "66660004", sig) {
		t.Error("a callback whose code was changed was accepted")
	}
	if check("ORDH5002", cb.Get("code"), sig) {
		t.Error("a callback for another order was accepted")
	}
	// The same login URL does not log in twice: its NONCE ticket is used up.
	resp, err = client.Get(loginURL.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusFound {
		t.Error("the login URL worked twice")
	}
	if fake.TokenCalls() != 1 || fake.NonceTickets() != 1 {
		t.Errorf("token calls %d, NONCE tickets %d; want 1 and 1", fake.TokenCalls(), fake.NonceTickets())
	}
}

// An empty optimal_domain, as an app passes on getAdvFaceId's when it has
// none, is no domain: the URL goes to login_url's host.
func TestH5LoginURLEmptyDomain(t *testing.T) {
	h, fake := newLocalHandler(t, nil)
	status, a := callLocal(t, h, "h5_login_url", map[string]string{"order_no": "O1", "user_id": "U1", "face_id": "F1",
		"callback_url": "https://app.example.com/#/done", "optimal_domain": ""})
	if status != http.StatusOK {
		t.Fatalf("h5_login_url: %d %v", status, a)
	}
	u, _ := url.Parse(a["url"].(string))
	if want, _ := url.Parse(fake.URL); u.Host != want.Host || u.Query().Get("url") != "https://app.example.com/#/done" {
		t.Errorf("login URL host %s, callback %q; want %s and the callback with its fragment", u.Host, u.Query().Get("url"), want.Host)
	}
	if rt := u.Query().Get("redirectType"); rt != "1" {
		t.Errorf("redirectType = %q, want 1 (WeBank's template) when the request gives none", rt)
	}
}

// A callback signed just before a refresh is still accepted after it, for
// the minute WeBank may sign with the replaced ticket; an OCR result is
// checked over three values.
func TestVerifyAcrossRefresh(t *testing.T) {
	h, fake := newLocalHandler(t, nil)
	if _, err := h.tenants[0].tickets.Ticket(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, err := fake.CallbackSignature(testAppID, "ORDV001", "0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadedCache().ForceRefresh(context.Background(), testAppID); err != nil {
		t.Fatal(err)
	}
	after, _ := fake.CallbackSignature(testAppID, "ORDV001", "0")
	if after == before {
		t.Fatal("the forced refresh did not change the SIGN ticket")
	}
	for _, tt := range []struct {
		name string
		body map[string]string
		want bool
	}{
		{"signed with the new ticket", map[string]string{"order_no": "ORDV001", "code": "0", "sign": after}, true},
		{"signed just before the refresh", map[string]string{"order_no": "ORDV001", "code": "0", "sign": before}, true},
		{"tampered", map[string]string{"order_no": "ORDV001", "code": "0", "sign": tamper(after)}, false},
		{"as an OCR result", map[string]string{"kind": "ocr", "order_no": "ORDV001", "sign": after}, false},
	} {
		status, a := callLocal(t, h, "verify", tt.body)
		if status != http.StatusOK || a["valid"] != tt.want {
			t.Errorf("%s: %d %v, want valid %v", tt.name, status, a, tt.want)
		}
	}
	if fake.TokenCalls() != 2 {
		t.Errorf("token calls = %d, want 2: checks fetch nothing", fake.TokenCalls())
	}
}

// tamper returns sign with its first hex digit changed.
func tamper(sign string) string {
	if sign[0] == '0' {
		return "1" + sign[1:]
	}
	return "0" + sign[1:]
}

// Bad requests are refused with a status and a code, before anything is
// fetched.
func TestLocalRefusals(t *testing.T) {
	h, fake := newLocalHandler(t, nil)
	long := strings.Repeat("u", 33)
	okLogin := func(change map[string]string) map[string]string {
		b := map[string]string{"order_no": "O1", "user_id": "U1", "face_id": "F1", "callback_url": "https://app.example.com/cb"}
		for k, v := range change {
			if v == "-" {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	sign := strings.Repeat("A", 40)
	tests := []struct {
		name, endpoint string
		body           any
		status         int
		code           string
	}{
		{"unknown endpoint", "launch", map[string]string{}, 404, "endpoint_unknown"},
		{"no user_id", "sdk_sign", map[string]string{}, 400, "user_id_missing"},
		{"long user_id", "sdk_sign", map[string]string{"user_id": long}, 400, "user_id_invalid"},
		{"user_id not a string", "sdk_sign", map[string]int{"user_id": 1}, 400, "field_invalid"},
		{"unknown member", "sdk_sign", map[string]string{"user_id": "U1", "secret": "x"}, 400, "field_unknown"},
		{"other app", "sdk_sign", map[string]string{"user_id": "U1", "app_id": "IDAOTHER"}, 403, "app_id_mismatch"},
		{"login without order_no", "h5_login_url", okLogin(map[string]string{"order_no": "-"}), 400, "order_no_missing"},
		{"login with a bad order_no", "h5_login_url", okLogin(map[string]string{"order_no": "O 1"}), 400, "order_no_invalid"},
		{"login without face_id", "h5_login_url", okLogin(map[string]string{"face_id": "-"}), 400, "face_id_missing"},
		{"login with a bad face_id", "h5_login_url", okLogin(map[string]string{"face_id": "f/1"}), 400, "face_id_invalid"},
		{"login without callback", "h5_login_url", okLogin(map[string]string{"callback_url": "-"}), 400, "callback_url_missing"},
		{"login with a relative callback", "h5_login_url", okLogin(map[string]string{"callback_url": "/cb"}), 400, "callback_url_invalid"},
		{"login to another host", "h5_login_url", okLogin(map[string]string{"optimal_domain": "evil.example.com"}), 400, "login_host_not_allowed"},
		{"login to a URL", "h5_login_url", okLogin(map[string]string{"optimal_domain": "https://kyc1.qcloud.com"}), 400, "login_host_invalid"},
		{"login with a userinfo callback", "h5_login_url", okLogin(map[string]string{"callback_url": "https://u@app.example.com/"}), 400, "callback_url_invalid"},
		{"login from elsewhere", "h5_login_url", okLogin(map[string]string{"from": "web"}), 400, "from_invalid"},
		{"login redirect type", "h5_login_url", okLogin(map[string]string{"redirect_type": "x"}), 400, "redirect_type_invalid"},
		{"verify without code", "verify", map[string]string{"order_no": "O1", "sign": sign}, 400, "code_missing"},
		{"verify with a bad code", "verify", map[string]string{"order_no": "O1", "code": "0;", "sign": sign}, 400, "code_invalid"},
		{"verify ocr with a code", "verify", map[string]string{"kind": "ocr", "order_no": "O1", "code": "0", "sign": sign}, 400, "code_not_taken"},
		{"verify of another kind", "verify", map[string]string{"kind": "bank", "order_no": "O1", "sign": sign}, 400, "kind_invalid"},
		{"verify without sign", "verify", map[string]string{"order_no": "O1", "code": "0"}, 400, "sign_missing"},
		{"verify with a short sign", "verify", map[string]string{"order_no": "O1", "code": "0", "sign": "ABC"}, 400, "sign_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a := callLocal(t, h, tt.endpoint, tt.body)
			if status != tt.status || a["code"] != tt.code {
				t.Errorf("answer %d %v, want %d %s", status, a, tt.status, tt.code)
			}
		})
	}
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, httptest.NewRequest(m, "/webank/sdk_sign", nil), nil); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
			t.Errorf("%s: %d, Allow %q; want 405, POST", m, w.Code, w.Header().Get("Allow"))
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/webank/sdk_sign", strings.NewReader(`user_id=U1`))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, nil); err != nil || w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("a form body: %d, %v; want 415", w.Code, err)
	}
	if fake.TokenCalls() != 0 || fake.NonceTickets() != 0 {
		t.Errorf("bad requests fetched: %d token calls, %d NONCE tickets", fake.TokenCalls(), fake.NonceTickets())
	}
}

// A NONCE fetch that WeBank refuses with a retry code because of the
// launch itself (400101, "illegal request", is also what a user_id WeBank
// will not take draws: the 2018 page allows 30 characters, no "special"
// ones) says nothing about the token: the sidecar must not fetch a new
// one for it, or any client of sdk_sign rotates the fleet's token once a
// minute, forever. Finding R1-3 of the review.
func TestNonceRefusalForOneUserKeepsToken(t *testing.T) {
	fake := webanktest.New(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	t.Cleanup(fake.Close)
	var probes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("user_id") == "webanksign_probe" {
			probes.Add(1)
		}
		if q := r.URL.Query(); q.Get("type") == "NONCE" && strings.HasPrefix(q.Get("user_id"), "refused_user") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"code":"400101","msg":"不合法的请求"}`)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("WBS_UNIT_SECRET", testSecret)
	h := &LocalHandler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}", BaseURL: srv.URL}, LoginURL: srv.URL}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	if status, a := callLocal(t, h, "sdk_sign", map[string]string{"user_id": "good_user"}); status != http.StatusOK {
		t.Fatalf("sdk_sign for a good user: %d %v", status, a)
	}
	if status, a := callLocal(t, h, "sdk_sign", map[string]string{"user_id": "refused_user"}); status != http.StatusBadGateway {
		t.Fatalf("sdk_sign for a refused user: %d %v, want 502", status, a)
	}
	if status, a := callLocal(t, h, "sdk_sign", map[string]string{"user_id": "refused_user2"}); status != http.StatusBadGateway {
		t.Fatalf("sdk_sign for another refused user: %d %v, want 502", status, a)
	}
	if got := fake.TokenCalls(); got != 1 {
		t.Errorf("token calls = %d, want 1: a launch WeBank refused for its user rotated the token", got)
	}
	if got := probes.Load(); got != 1 {
		t.Errorf("%d probes of the token, want 1: a probe that found it alive is trusted for a while", got)
	}
	if status, a := callLocal(t, h, "sdk_sign", map[string]string{"user_id": "good_user"}); status != http.StatusOK {
		t.Fatalf("sdk_sign for a good user after: %d %v", status, a)
	}
}

// With several apps, a request names its app: the launch is signed for
// that app, with that app's token, and a request that names none or
// another is refused before anything is fetched.
func TestLocalSeveralApps(t *testing.T) {
	const otherApp, otherSecret = "IDAUNIT2", "unit-secret-two"
	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret, otherApp: otherSecret}})
	t.Cleanup(fake.Close)
	t.Setenv("WBS_UNIT_SECRET", testSecret)
	t.Setenv("WBS_UNIT_SECRET2", otherSecret)
	h := &LocalHandler{
		AppOptions: AppOptions{BaseURL: fake.URL, Apps: []AppCredentials{
			{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}"}, {AppID: otherApp, Secret: "{env.WBS_UNIT_SECRET2}"}}},
		LoginURL: fake.URL,
	}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		body   map[string]string
		status int
		code   string
	}{
		{map[string]string{"user_id": "U1"}, 400, "app_id_missing"},
		{map[string]string{"user_id": "U1", "app_id": "IDANOPE1"}, 403, "app_id_unknown"},
	} {
		if status, a := callLocal(t, h, "sdk_sign", tt.body); status != tt.status || a["code"] != tt.code {
			t.Errorf("%v: %d %v, want %d %s", tt.body, status, a, tt.status, tt.code)
		}
	}
	if fake.TokenCalls() != 0 {
		t.Fatalf("refused launches fetched %d tokens", fake.TokenCalls())
	}
	status, a := callLocal(t, h, "sdk_sign", map[string]string{"user_id": "U2", "app_id": otherApp})
	if status != http.StatusOK || a["app_id"] != otherApp {
		t.Fatalf("sdk_sign for %s: %d %v", otherApp, status, a)
	}
	login := map[string]any{"appId": a["app_id"], "userId": a["user_id"], "nonce": a["nonce"], "version": a["version"], "sign": a["sign"]}
	if got := postFake(t, fake, webanktest.PathSDKLogin, login); got["code"] != "0" {
		t.Errorf("the launch signed for %s did not log in: %v", otherApp, got)
	}
	if fake.TokenCalls() != 1 {
		t.Errorf("token calls = %d, want 1: only the app named fetched", fake.TokenCalls())
	}
}

// A burst of launches as large as nonce_limit, raised above its default,
// fetches that many NONCE tickets at once; the next burst must find as
// many connections to WeBank kept open, rather than pay a new connection
// (a TLS handshake, against WeBank) for each launch beyond the default.
func TestNonceBurstKeepsConnections(t *testing.T) {
	const burst = 32 // twice tickets.DefaultNonceLimit
	fake := webanktest.New(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	t.Cleanup(fake.Close)
	// Each burst's NONCE fetches are held at the fake until all of them
	// have arrived: the burst is then surely burst connections wide.
	arrived := make(chan struct{}, burst)
	var release atomic.Pointer[chan struct{}]
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Get("type") == "NONCE" && strings.HasPrefix(q.Get("user_id"), "burst") {
			gate := *release.Load()
			arrived <- struct{}{}
			<-gate
		}
		fake.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	t.Setenv("WBS_UNIT_SECRET", testSecret)
	h := &LocalHandler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}", BaseURL: srv.URL},
		LoginURL: srv.URL, NonceLimit: burst}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	launch := func(user string) int {
		r := httptest.NewRequest(http.MethodPost, "/webank/sdk_sign", strings.NewReader(`{"user_id":"`+user+`"}`))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, nil); err != nil {
			return 0
		}
		return w.Code
	}
	if status := launch("warm"); status != http.StatusOK { // the token and SIGN ticket
		t.Fatalf("first launch: %d", status)
	}
	for round := range 2 {
		gate := make(chan struct{})
		release.Store(&gate)
		before := conns.Load()
		statuses := make(chan int, burst)
		for i := range burst {
			go func() { statuses <- launch(fmt.Sprintf("burst%d_%d", round, i)) }()
		}
		for range burst {
			<-arrived
		}
		close(gate)
		for range burst {
			if status := <-statuses; status != http.StatusOK {
				t.Fatalf("round %d: a launch answered %d", round, status)
			}
		}
		opened := conns.Load() - before
		t.Logf("round %d: %d new connections to WeBank", round, opened)
		if round == 1 && opened != 0 {
			t.Errorf("the second burst of %d launches opened %d new connections to WeBank, want 0: the first burst's were not all kept", burst, opened)
		}
	}
	if got := fake.NonceTickets(); got != 2*burst+1 {
		t.Errorf("NONCE tickets = %d, want %d", got, 2*burst+1)
	}
}
