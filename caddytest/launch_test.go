package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// This file covers the launch flows (issue 13): the faceId APIs through
// webank_sign, and webank_sign_local's sdk_sign, h5_login_url and verify,
// through a real Caddy in front of the fake WeBank.

// launchSite serves webank_sign_local under /webank/ and webank_sign, with
// the mode and value set its path gives, for everything else.
func launchSite(localExtra string) func(fakeURL string) string {
	return func(fakeURL string) string {
		return fmt.Sprintf(`http://:%d {
	bind 127.0.0.1
	log
	handle /webank/* {
		webank_sign_local {
			app_id %s
			secret {env.%s}
			base_url %s
			login_url %s
			%s
		}
	}
	handle {
		webank_sign {
			app_id %s
			secret {env.%s}
			base_url %s
			max_body_size 8MiB
		}
		reverse_proxy %s
	}
}
`, sitePort, appID, secretEnv, fakeURL, fakeURL, localExtra, appID, secretEnv, fakeURL, fakeURL)
	}
}

// postJSON POSTs v as JSON to the sidecar and decodes its JSON answer.
func (e *env) postJSON(path string, v any) (int, map[string]any) {
	e.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	status, body := e.post(path, "application/json", string(data), false)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		e.t.Fatalf("POST %s: %d, answer %.200q is not JSON", path, status, body)
	}
	return status, out
}

// fakeJSON POSTs v to the fake WeBank directly, as the app's SDK or
// browser would, and decodes its answer.
func (e *env) fakeJSON(path string, v any) map[string]any {
	e.t.Helper()
	data, _ := json.Marshal(v)
	resp, err := e.fake.Client().Post(e.fake.URL+path, "application/json", bytes.NewReader(data))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatalf("%s answered no JSON: %v", path, err)
	}
	return out
}

// A whole face verification, as an app that holds no secret runs it: the
// faceId through webank_sign, the H5 login URL from the sidecar, the
// browser at WeBank's page, the callback checked by the sidecar, the result
// through webank_sign. One token for all of it, and nothing secret or
// personal in Caddy's log.
func TestFaceVerificationWalk(t *testing.T) {
	e := setup(t, webanktest.Options{}, launchSite(""))
	photo := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff, 0xd8, 0x42}, 300<<10)) // about 1.2 MB
	status, a := e.postJSON(webanktest.PathAdvFaceID, map[string]string{
		"orderNo": "ORDWALK01", "name": "王小明", "idNo": "11010119900307123X", "userId": "userWalk01",
		"sourcePhotoStr": photo, "sourcePhotoType": "1",
	})
	result, _ := a["result"].(map[string]any)
	if status != http.StatusOK || a["code"] != "0" || result == nil {
		t.Fatalf("getAdvFaceId through the sidecar: %d %v", status, a)
	}
	faceID, domain := result["faceId"].(string), result["optimalDomain"].(string)

	status, a = e.postJSON("/webank/h5_login_url", map[string]string{
		"order_no": "ORDWALK01", "user_id": "userWalk01", "face_id": faceID, "optimal_domain": domain,
		"callback_url": "https://app.example.com/face/done",
	})
	if status != http.StatusOK {
		t.Fatalf("h5_login_url: %d %v", status, a)
	}
	loginURL := a["url"].(string)
	e.launchSecrets = append(e.launchSecrets, loginURL)
	if u, _ := url.Parse(loginURL); u != nil {
		e.launchSecrets = append(e.launchSecrets, u.Query().Get("sign"), u.Query().Get("nonce"))
	}

	browser := e.fake.Client()
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := browser.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("login page: %d, want a redirect to the callback", resp.StatusCode)
	}
	cb := back.Query()

	verify := func(code, sign string) bool {
		t.Helper()
		status, a := e.postJSON("/webank/verify", map[string]string{"order_no": cb.Get("orderNo"), "code": code, "sign": sign})
		if status != http.StatusOK {
			t.Fatalf("verify: %d %v", status, a)
		}
		return a["valid"].(bool)
	}
	if !verify(cb.Get("code"), cb.Get("newSignature")) {
		t.Fatal("the callback WeBank signed was refused")
	}
	if verify("1", cb.Get("newSignature")) {
		t.Error("a callback with its code changed was accepted")
	}

	status, body := e.post(webanktest.PathFaceRecord, "application/json", `{"orderNo":"ORDWALK01"}`, false)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"code":"0"`)) {
		t.Errorf("queryfacerecord: %d %.200s", status, body)
	}
	e.wantCounts(1, 1)
	if n := e.fake.NonceTickets(); n != 1 {
		t.Errorf("NONCE tickets = %d, want 1", n)
	}
	e.wantCleanSignatures()
}

// A hundred launches at once, for a hundred users: one token, a hundred
// NONCE tickets, no rotation, and every launch logs in once.
func TestHundredSDKLaunches(t *testing.T) {
	e := setup(t, webanktest.Options{}, launchSite(""))
	const n = 100
	answers := make([]map[string]any, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			data := fmt.Sprintf(`{"user_id":"user%03d"}`, i)
			req, _ := http.NewRequest(http.MethodPost, siteURL+"/webank/sdk_sign", strings.NewReader(data))
			req.Header.Set("Content-Type", "application/json")
			resp, err := e.client.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			statuses[i] = resp.StatusCode
			_ = json.NewDecoder(resp.Body).Decode(&answers[i])
		})
	}
	wg.Wait()
	for i, a := range answers {
		if statuses[i] != http.StatusOK {
			t.Fatalf("launch %d: %d %v", i, statuses[i], a)
		}
		e.launchSecrets = append(e.launchSecrets, a["sign"].(string), a["nonce"].(string))
		login := e.fakeJSON(webanktest.PathSDKLogin, map[string]any{
			"appId": a["app_id"], "userId": a["user_id"], "nonce": a["nonce"], "version": a["version"], "sign": a["sign"]})
		if login["code"] != "0" {
			t.Fatalf("launch %d did not log in: %v", i, login)
		}
	}
	if got := e.fake.TokenCalls(); got != 1 {
		t.Errorf("token calls = %d, want 1: no rotation", got)
	}
	if got := e.fake.NonceTickets(); got != n {
		t.Errorf("NONCE tickets = %d, want %d", got, n)
	}
}

// Past the in-flight bound and the queue, a launch is refused at once with
// 503 and Retry-After; those within the bounds are served.
func TestLaunchQueueBounded(t *testing.T) {
	e := setup(t, webanktest.Options{}, launchSite("nonce_limit 1\n\t\t\tnonce_queue 1\n\t\t\tfetch_timeout 1s"))
	if status, a := e.postJSON("/webank/sdk_sign", map[string]string{"user_id": "warm"}); status != http.StatusOK {
		t.Fatalf("first launch: %d %v", status, a) // the token and SIGN ticket are in
	}
	e.fake.SetFault(webanktest.NonceEndpoint, webanktest.Fault{Hang: true})
	type answer struct {
		status     int
		code       string
		retryAfter string
	}
	answers := make(chan answer, 3)
	for i := range 3 {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, siteURL+"/webank/sdk_sign", strings.NewReader(fmt.Sprintf(`{"user_id":"q%d"}`, i)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := e.client.Do(req)
			if err != nil {
				answers <- answer{}
				return
			}
			defer resp.Body.Close()
			var se sidecarError
			_ = json.NewDecoder(resp.Body).Decode(&se)
			answers <- answer{resp.StatusCode, se.Code, resp.Header.Get("Retry-After")}
		}()
	}
	// With one fetch held by the fake and one launch queued behind it, the
	// third is refused at once. (The held fetch may not have reached the
	// fake yet when that answer comes: the fault stays until the other two
	// have ended, so that either way each of them is held in turn.)
	first := <-answers
	if first.status != http.StatusServiceUnavailable || first.code != "launches_busy" || first.retryAfter == "" {
		t.Fatalf("first answer %+v, want 503 launches_busy with Retry-After", first)
	}
	for range 2 {
		if a := <-answers; a.status != http.StatusBadGateway || a.code != "ticket_unavailable" {
			t.Errorf("a launch whose fetch the fake held: %+v, want 502 ticket_unavailable after fetch_timeout", a)
		}
	}
	e.fake.ClearFaults()
	if status, a := e.postJSON("/webank/sdk_sign", map[string]string{"user_id": "after"}); status != http.StatusOK {
		t.Errorf("a launch after the fake recovered: %d %v", status, a)
	}
}

// Every JSON API of the launch flows through one webank_sign block whose
// value set comes from the path: the fake checks each sign exactly, and bad
// bodies are refused by the sidecar and never reach WeBank.
func TestEveryLaunchAPI(t *testing.T) {
	e := setup(t, webanktest.Options{}, launchSite(""))
	person := map[string]string{"name": "李四", "idNo": "44030119800101002X", "userId": "userAPI01"}
	body := func(orderNo string, extra map[string]string) map[string]string {
		b := map[string]string{"orderNo": orderNo}
		for k, v := range person {
			b[k] = v
		}
		for k, v := range extra {
			if v == "-" {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	for i, path := range []string{webanktest.PathAdvFaceID, webanktest.PathFaceID, webanktest.PathPlusFaceID,
		webanktest.PathWillFaceID, webanktest.PathH5FaceID} {
		status, a := e.postJSON(path, body(fmt.Sprintf("ORDAPI%02d", i), nil))
		if status != http.StatusOK || a["code"] != "0" {
			t.Errorf("%s: %d %v", path, status, a)
		}
	}
	status, a := e.postJSON(webanktest.PathPhotoInfo, map[string]string{"orderNo": "ORDAPI10"})
	if code, _ := a["code"].(float64); status != http.StatusOK || code != 0 || a["code"] == nil {
		t.Errorf("queryphotoinfo: %d %v", status, a)
	}
	card := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x89, 0x50}, 1<<20)) // a 2 MiB image, 2.7 MB of base64
	status, a = e.postJSON(webanktest.PathBankCardOCR, map[string]string{"orderNo": "ORDAPI11", "bankcardStr": card})
	if status != http.StatusOK || a["code"] != "0" {
		t.Errorf("bankcardocrapp with a 2 MiB image: %d %v", status, a)
	}
	e.wantCleanSignatures()

	forwarded := e.fake.Calls(webanktest.PathAdvFaceID) + e.fake.Calls(webanktest.PathH5FaceID)
	for _, tt := range []struct {
		name, path string
		body       map[string]string
		status     int
		code       string
	}{
		{"no userId", webanktest.PathAdvFaceID, body("ORDBAD01", map[string]string{"userId": "-"}), 400, "user_id_missing"},
		{"userId with a space", webanktest.PathAdvFaceID, body("ORDBAD02", map[string]string{"userId": "user 1"}), 400, "user_id_invalid"},
		{"userId imitated", webanktest.PathAdvFaceID, body("ORDBAD03", map[string]string{"UserID": "other"}), 400, "param_name_confusable"},
		{"no orderNo", webanktest.PathAdvFaceID, body("ORDBAD00", map[string]string{"orderNo": "-"}), 400, "order_no_missing"},
		{"no name for H5", webanktest.PathH5FaceID, body("ORDBAD04", map[string]string{"name": "-"}), 400, "name_missing"},
		{"idNo not alphanumeric", webanktest.PathH5FaceID, body("ORDBAD05", map[string]string{"idNo": "4403-01"}), 400, "id_no_invalid"},
		{"name with a control character", webanktest.PathH5FaceID, body("ORDBAD06", map[string]string{"name": "李\x01四"}), 400, "name_invalid"},
	} {
		status, out := e.postJSON(tt.path, tt.body)
		if status != tt.status || out["code"] != tt.code {
			t.Errorf("%s: %d %v, want %d %s", tt.name, status, out, tt.status, tt.code)
		}
	}
	if got := e.fake.Calls(webanktest.PathAdvFaceID) + e.fake.Calls(webanktest.PathH5FaceID); got != forwarded {
		t.Errorf("%d refused requests reached the fake", got-forwarded)
	}

	// webank_sign_local's bad input is refused before a NONCE ticket is
	// fetched.
	nonces := e.fake.NonceTickets()
	for _, tt := range []struct {
		path string
		body map[string]string
		code string
	}{
		{"/webank/sdk_sign", map[string]string{"user_id": "a b"}, "user_id_invalid"},
		{"/webank/sdk_sign", map[string]string{"user_id": "u1", "userId": "u2"}, "field_unknown"},
		{"/webank/h5_login_url", map[string]string{"order_no": "O1", "user_id": "U1", "face_id": "F1",
			"callback_url": "https://app.example.com/cb", "optimal_domain": "evil.example.com"}, "login_host_not_allowed"},
		{"/webank/verify", map[string]string{"order_no": "O1", "code": "0", "sign": "not hex"}, "sign_invalid"},
		{"/webank/launch", map[string]string{}, "endpoint_unknown"},
	} {
		_, out := e.postJSON(tt.path, tt.body)
		if out["code"] != tt.code {
			t.Errorf("%s %v: %v, want %s", tt.path, tt.body, out, tt.code)
		}
	}
	if got := e.fake.NonceTickets(); got != nonces {
		t.Errorf("refused launches fetched %d NONCE tickets", got-nonces)
	}
}
