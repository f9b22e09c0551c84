package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// This file covers the APIs besides getOcrResult, several apps, the photo
// policy and clients that use the sidecar as their HTTP proxy.

const appID2, secret2, secret2Env = "IDATEST2", "itest-second-secret-abcdefghijklmnopqrstuvwxyz0123456789", "WBS_IT_SECRET2"

// openSite is a site whose one webank_sign handler, configured by block,
// takes every request (no path matcher), then reverse_proxy to upstream.
func openSite(upstream, block string) string {
	return fmt.Sprintf(`http://:%d {
	bind 127.0.0.1
	log
	route {
		webank_sign {
			%s
		}
		reverse_proxy %s
	}
}
`, sitePort, block, upstream)
}

// post sends a POST with body (chunked if chunked) to the sidecar.
func (e *env) post(pathAndQuery, contentType, body string, chunked bool) (int, []byte) {
	e.t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length: the client sends it chunked
	}
	req, err := http.NewRequest(http.MethodPost, siteURL+pathAndQuery, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.send(req)
}

// send sends req to the sidecar and returns the status and body.
func (e *env) send(req *http.Request) (int, []byte) {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.RequestURI(), err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.RequestURI(), err)
	}
	return resp.StatusCode, out
}

// wantAnswer checks a 200 answer whose body is exactly want.
func wantAnswer(t *testing.T, what string, status int, body, want []byte) {
	t.Helper()
	if status != http.StatusOK || !bytes.Equal(body, want) {
		t.Errorf("%s: %d %.300s, want 200 and the fake's result (%d bytes)", what, status, body, len(want))
	}
}

// wantRefused checks an answer the sidecar gave by itself.
func wantRefused(t *testing.T, what string, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d (%s), want %d", what, status, body, wantStatus)
		return
	}
	if se := decodeError(t, body); se.Code != wantCode {
		t.Errorf("%s: code %q (%s), want %q", what, se.Code, se.Msg, wantCode)
	}
}

// TestEveryAPIShape sends each API its shape through one webank_sign block
// whose mode comes from the path: the fake checks every signature, and the
// client gets WeBank's answer byte for byte.
func TestEveryAPIShape(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s", appID, secretEnv, fakeURL))
	})
	f := e.fake

	status, body := e.get(webanktest.PathOCR + "?order_no=OCR1&get_file=1")
	wantAnswer(t, "getOcrResult", status, body, f.OCRResultBody(appID, "OCR1", true, false))
	status, body = e.get(webanktest.PathBankCard + "?order_no=CARD1&get_file=1")
	wantAnswer(t, "getBankCardOcrResult", status, body, f.BankCardResultBody(appID, "CARD1", true))
	status, body = e.get(webanktest.PathSync + "?order_no=FACE1&get_file=2")
	wantAnswer(t, "sync", status, body, f.SyncResultBody(appID, "FACE1", true, false))

	const faceBody = `{"orderNo":"FACE2","getFile":"3","queryVersion":"1.0","nonce":"client-chosen","sign":"FORGED"}`
	e.clientSent = append(e.clientSent, "client-chosen", "FORGED")
	for _, chunked := range []bool{false, true} {
		status, body = e.post(webanktest.PathFaceRecord, "application/json", faceBody, chunked)
		wantAnswer(t, fmt.Sprintf("queryfacerecord (chunked: %v)", chunked), status, body,
			f.FaceRecordResultBody(appID, "FACE2", false, true, true))
	}
	// The URL's orderNo, when the client gives it, must be the body's.
	status, body = e.post(webanktest.PathFaceRecord+"?orderNo=FACE3", "application/json; charset=utf-8", `{"orderNo":"FACE3"}`, false)
	wantAnswer(t, "queryfacerecord with orderNo in the URL", status, body, f.FaceRecordResultBody(appID, "FACE3", false, false, false))

	// A client that waits for 100 Continue before it sends the body.
	req, err := http.NewRequest(http.MethodPost, siteURL+webanktest.PathFaceRecord, strings.NewReader(`{"orderNo":"FACE4"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	waiting := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	defer waiting.CloseIdleConnections()
	resp, err := waiting.Do(req)
	if err != nil {
		t.Fatalf("POST with Expect: 100-continue: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	wantAnswer(t, "queryfacerecord with Expect: 100-continue", resp.StatusCode, body, f.FaceRecordResultBody(appID, "FACE4", false, false, false))

	reqs := f.Requests(webanktest.PathFaceRecord)
	if len(reqs) != 4 {
		t.Fatalf("the fake got %d queryfacerecord requests, want 4", len(reqs))
	}
	for i, q := range reqs {
		if q.Get("appId") != appID || len(q["nonce"]) != 1 || q.Get("nonce") == "client-chosen" || q.Get("url:orderNo") != q.Get("orderNo") {
			t.Errorf("queryfacerecord %d reached WeBank as %v: want the sidecar's appId and nonce, and orderNo in the URL", i, redacted(q))
		}
		if _, err := strconv.Atoi(q.Get("header:Content-Length")); err != nil || len(q["url:orderNo"]) != 1 {
			t.Errorf("queryfacerecord %d: Content-Length %q, URL orderNo %q: want one each", i, q.Get("header:Content-Length"), q["url:orderNo"])
		}
	}
	e.wantCounts(1, 1) // one ticket for every API
	e.wantCleanSignatures()
}

// redacted is q without its nonce and sign, for error messages.
func redacted(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		if k != "nonce" && k != "sign" {
			out[k] = v
		}
	}
	return out
}

// TestWrongShapes sends each API the other shape, and JSON bodies the
// sidecar must refuse: each gets its status and code, and nothing reaches
// WeBank, not even a token fetch.
func TestWrongShapes(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s\nmax_body_size 1KiB", appID, secretEnv, fakeURL))
	})
	face := webanktest.PathFaceRecord
	big := `{"orderNo":"BIG1","pad":"` + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name, method, target, contentType, body string
		chunked                                 bool
		status                                  int
		code                                    string
	}{
		{"GET to a JSON API", "GET", face + "?orderNo=F1", "", "", false, 405, "wrong_shape"},
		{"POST to a query API", "POST", ocrPath + "?order_no=A1", "application/x-www-form-urlencoded", "order_no=A1", false, 405, "wrong_shape"},
		{"PUT to a JSON API", "PUT", face, "application/json", `{"orderNo":"F1"}`, false, 405, "method_not_allowed"},
		{"DELETE to a query API", "DELETE", ocrPath + "?order_no=A1", "", "", false, 405, "method_not_allowed"},
		{"form body", "POST", face, "application/x-www-form-urlencoded", "orderNo=F1", false, 415, "content_type_unsupported"},
		{"no content type", "POST", face, "", `{"orderNo":"F1"}`, false, 415, "content_type_unsupported"},
		{"too large", "POST", face, "application/json", big, false, 413, "body_too_large"},
		{"too large, chunked", "POST", face, "application/json", big, true, 413, "body_too_large"},
		{"empty body", "POST", face, "application/json", "", false, 400, "body_missing"},
		{"not JSON", "POST", face, "application/json", `{"orderNo":`, false, 400, "body_malformed"},
		{"an array", "POST", face, "application/json", `[{"orderNo":"F1"}]`, false, 400, "body_malformed"},
		{"repeated key", "POST", face, "application/json", `{"orderNo":"F1","orderNo":"F2"}`, false, 400, "body_key_repeated"},
		{"no orderNo", "POST", face, "application/json", `{"getFile":"1"}`, false, 400, "order_no_missing"},
		{"orderNo a number", "POST", face, "application/json", `{"orderNo":1}`, false, 400, "order_no_invalid"},
		{"URL orderNo differs", "POST", face + "?orderNo=F2", "application/json", `{"orderNo":"F1"}`, false, 400, "order_no_mismatch"},
		{"other appId", "POST", face, "application/json", `{"appId":"IDAOTHER","orderNo":"F1"}`, false, 403, "app_id_mismatch"},
	}
	for _, tt := range tests {
		var status int
		var body []byte
		if tt.method == "POST" {
			status, body = e.post(tt.target, tt.contentType, tt.body, tt.chunked)
		} else {
			req, err := http.NewRequest(tt.method, siteURL+tt.target, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tt.contentType)
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		wantRefused(t, tt.name, status, body, tt.status, tt.code)
	}
	e.wantCounts(0, 0)
	for _, p := range []string{webanktest.PathOCR, webanktest.PathFaceRecord} {
		if n := e.fake.Calls(p); n != 0 {
			t.Errorf("%d refused requests reached %s", n, p)
		}
	}
}

// TestModeOption makes the shape explicit: json for a path the default
// does not know, query for one it takes as JSON.
func TestModeOption(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return fmt.Sprintf(`http://:%d {
	bind 127.0.0.1
	log
	route /json/* {
		webank_sign {
			app_id %[2]s
			secret {env.%[3]s}
			base_url %[4]s
			mode json
		}
		rewrite * %[5]s
		reverse_proxy %[4]s
	}
	route %[5]s {
		webank_sign {
			app_id %[2]s
			secret {env.%[3]s}
			base_url %[4]s
			mode query
		}
		reverse_proxy %[4]s
	}
}
`, sitePort, appID, secretEnv, fakeURL, webanktest.PathFaceRecord)
	})
	status, body := e.post("/json/face", "application/json", `{"orderNo":"M1"}`, false)
	wantAnswer(t, "mode json on another path", status, body, e.fake.FaceRecordResultBody(appID, "M1", false, false, false))
	status, body = e.post(webanktest.PathFaceRecord, "application/json", `{"orderNo":"M2"}`, false)
	wantRefused(t, "mode query on queryfacerecord", status, body, 405, "wrong_shape")
	e.wantCleanSignatures()
}

// TestSharedTicketAcrossBlocks has two webank_sign blocks for one app, one
// per API: they share one access token and one ticket.
func TestSharedTicketAcrossBlocks(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		block := func(path string) string {
			return fmt.Sprintf(`	route %s {
		webank_sign {
			app_id %s
			secret {env.%s}
			base_url %s
		}
		reverse_proxy %s
	}
`, path, appID, secretEnv, fakeURL, fakeURL)
		}
		return fmt.Sprintf("http://:%d {\n\tbind 127.0.0.1\n\tlog\n%s%s}\n", sitePort, block(webanktest.PathOCR), block(webanktest.PathSync))
	})
	for i := range 3 {
		status, body := e.get(fmt.Sprintf("%s?order_no=SH%d", webanktest.PathOCR, i))
		wantAnswer(t, "getOcrResult", status, body, e.fake.OCRResultBody(appID, fmt.Sprintf("SH%d", i), false, false))
		status, body = e.get(fmt.Sprintf("%s?order_no=SY%d", webanktest.PathSync, i))
		wantAnswer(t, "sync", status, body, e.fake.SyncResultBody(appID, fmt.Sprintf("SY%d", i), false, false))
	}
	e.wantCounts(1, 1)
	e.wantCleanSignatures()
}

// TestConflictingSecrets loads a Caddyfile that gives one app_id two
// secrets in two blocks: the load fails, naming both blocks' lines, and the
// running config stays.
func TestConflictingSecrets(t *testing.T) {
	e := setup(t, webanktest.Options{}, signSite(""))
	t.Setenv(secret2Env, secret2)
	caddyfile := fmt.Sprintf(`{
	admin %s
	persist_config off
}
http://:%d {
	bind 127.0.0.1
	route /a {
		webank_sign {
			app_id %s
			secret {env.%s}
			base_url %s
		}
		reverse_proxy %s
	}
	route /b {
		webank_sign {
			app_id %s
			secret {env.%s}
			base_url %s
		}
		reverse_proxy %s
	}
}
`, adminAddr, sitePort, appID, secretEnv, e.fake.URL, e.fake.URL, appID, secret2Env, e.fake.URL, e.fake.URL)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	resp, err := http.Post("http://"+adminAddr+"/load", "application/json", bytes.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf("app_id %s is given one secret at Caddyfile:8 and another at Caddyfile:16", appID)
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(msg, []byte(want)) {
		t.Errorf("loading two secrets for one app: %s %s, want 400 with %q", resp.Status, msg, want)
	}
	for _, s := range []string{secret, secret2} {
		if bytes.Contains(msg, []byte(s)) {
			t.Error("the error holds a secret")
		}
	}
	if status, body := e.get(ocrPath + "?order_no=STILL1"); status != http.StatusOK {
		t.Errorf("the running config after the refused load: %d %s", status, body)
	}
}

// multiSite is a site with one block for two apps on every path but
// /healthz, the readiness probe.
func multiSite(extra string) func(string) string {
	return func(fakeURL string) string {
		return fmt.Sprintf(`http://:%d {
	bind 127.0.0.1
	log
	handle /healthz {
		webank_sign_health
	}
	handle {
		webank_sign {
			app %s {env.%s}
			app %s {env.%s}
			base_url %s
			%s
		}
		reverse_proxy %s
	}
}
`, sitePort, appID, secretEnv, appID2, secret2Env, fakeURL, extra, fakeURL)
	}
}

// TestSelectAppByClient has one block for two apps: the client names its
// app with app_id (appId in a JSON body), and each request is signed for
// the app named.
func TestSelectAppByClient(t *testing.T) {
	t.Setenv(secret2Env, secret2)
	e := setup(t, webanktest.Options{Apps: map[string]string{appID: secret, appID2: secret2}}, multiSite(""))
	e.clientSent = append(e.clientSent, "IDAOTHER")
	for _, app := range []string{appID, appID2, appID} {
		status, body := e.get(ocrPath + "?order_no=SEL1&app_id=" + app)
		wantAnswer(t, "getOcrResult for "+app, status, body, e.fake.OCRResultBody(app, "SEL1", false, false))
		status, body = e.post(webanktest.PathFaceRecord, "application/json", `{"appId":"`+app+`","orderNo":"SEL2"}`, false)
		wantAnswer(t, "queryfacerecord for "+app, status, body, e.fake.FaceRecordResultBody(app, "SEL2", false, false, false))
	}
	status, body := e.get(ocrPath + "?order_no=SEL3")
	wantRefused(t, "no app_id", status, body, 400, "app_id_missing")
	status, body = e.get(ocrPath + "?order_no=SEL3&app_id=IDAOTHER")
	wantRefused(t, "unknown app_id", status, body, 403, "app_id_unknown")
	status, body = e.get(ocrPath + "?order_no=SEL3&app_id=" + appID + "&app_id=" + appID2)
	wantRefused(t, "two app_ids", status, body, 400, "app_id_repeated")
	status, body = e.post(webanktest.PathFaceRecord, "application/json", `{"orderNo":"SEL4"}`, false)
	wantRefused(t, "no appId", status, body, 400, "app_id_missing")

	if status, body, _ := e.do(http.MethodHead, ocrPath+"?order_no=SEL5&app_id="+appID2); status != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD for %s: %d with %d bytes, want 200 without a body", appID2, status, len(body))
	}
	if n := e.fake.OCRCalls(); n != 4 {
		t.Errorf("the fake got %d getOcrResult calls, want 4: refused requests must not be forwarded", n)
	}
	e.wantCounts(2, 2) // one token and one ticket per app
	e.wantCleanSignatures()
}

// TestEvictionAndRefetch keeps one app in a cache of one while two apps
// take turns: each turn evicts the other app, which gets its ticket back
// from storage, not from WeBank.
func TestEvictionAndRefetch(t *testing.T) {
	t.Setenv(secret2Env, secret2)
	e := setupGlobals(t, webanktest.Options{Apps: map[string]string{appID: secret, appID2: secret2}},
		"webank_sign {\n\t\tcache_size 1\n\t}", multiSite(""))
	evictions0 := metric(t, "caddy_webank_sign_evictions_total")
	const turns = 6
	for i := range turns {
		app := []string{appID, appID2}[i%2]
		order := fmt.Sprintf("EV%d", i)
		status, body := e.get(ocrPath + "?order_no=" + order + "&app_id=" + app)
		wantAnswer(t, "getOcrResult for "+app, status, body, e.fake.OCRResultBody(app, order, false, false))
	}
	if got := metric(t, "caddy_webank_sign_evictions_total") - evictions0; got != turns-1 {
		t.Errorf("evictions = %v, want %d: one per turn after the first", got, turns-1)
	}
	e.wantCounts(2, 2) // evicted apps came back from storage

	// Readiness probes with more apps than room: they neither evict nor fetch.
	evictions1 := metric(t, "caddy_webank_sign_evictions_total")
	for range 3 {
		resp, err := e.client.Get(siteURL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("not kept in memory")) {
			t.Errorf("health with a full cache: %d %s, want 200 with the evicted app marked", resp.StatusCode, body)
		}
	}
	if got := metric(t, "caddy_webank_sign_evictions_total") - evictions1; got != 0 {
		t.Errorf("health probes evicted %v apps, want none", got)
	}
	e.wantCounts(2, 2)
	e.wantCleanSignatures()
}

// TestPhotoPolicy denies photos and videos: requests for them are refused,
// not forwarded; the same requests without them go through.
func TestPhotoPolicy(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s\nphotos deny", appID, secretEnv, fakeURL))
	})
	for _, target := range []string{
		ocrPath + "?order_no=P1&get_file=1",
		webanktest.PathBankCard + "?order_no=P1&get_file=1",
		webanktest.PathSync + "?order_no=P1&get_file=3",
		webanktest.PathSync + "?order_no=P1&get_file=",
	} {
		status, body := e.get(target)
		wantRefused(t, target, status, body, 403, "photos_denied")
	}
	for _, b := range []string{`{"orderNo":"P1","getFile":"1"}`, `{"orderNo":"P1","getFile":2}`, `{"orderNo":"P1","GetFile":"1"}`} {
		status, body := e.post(webanktest.PathFaceRecord, "application/json", b, false)
		wantRefused(t, b, status, body, 403, "photos_denied")
	}
	status, body := e.post(webanktest.PathFaceRecord+"?getFile=1", "application/json", `{"orderNo":"P1"}`, false)
	wantRefused(t, "getFile in a JSON request's URL", status, body, 403, "photos_denied")
	if e.fake.Calls(webanktest.PathOCR)+e.fake.Calls(webanktest.PathBankCard)+e.fake.Calls(webanktest.PathSync)+e.fake.Calls(webanktest.PathFaceRecord) != 0 {
		t.Error("a request for photos reached WeBank")
	}
	status, body = e.get(ocrPath + "?order_no=P2&get_file=0")
	wantAnswer(t, "get_file=0", status, body, e.fake.OCRResultBody(appID, "P2", false, false))
	status, body = e.get(webanktest.PathSync + "?order_no=P3")
	wantAnswer(t, "no get_file", status, body, e.fake.SyncResultBody(appID, "P3", false, false))
	status, body = e.post(webanktest.PathFaceRecord, "application/json", `{"orderNo":"P4","queryVersion":"1.0"}`, false)
	wantAnswer(t, "no getFile", status, body, e.fake.FaceRecordResultBody(appID, "P4", false, false, true))
	e.wantCleanSignatures()
}

// TestProxyStyleClients uses the sidecar as an HTTP proxy, as an app that
// can only set HTTP_PROXY does: requests for WeBank's host are signed,
// others refused, and CONNECT gets a 405 that says what to do instead.
func TestProxyStyleClients(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s\nproxy_hosts idasc.webank.com", appID, secretEnv, fakeURL))
	})
	proxyURL, _ := url.Parse(siteURL)
	client := &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyURL(proxyURL),
		// Nothing may leave loopback: every connection goes to the sidecar.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, proxyURL.Host)
		},
	}}
	defer client.CloseIdleConnections()
	send := func(req *http.Request) (int, []byte) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s via the sidecar: %v", req.Method, req.URL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	get := func(u string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		return send(req)
	}
	status, body := get("http://idasc.webank.com" + ocrPath + "?order_no=PX1")
	wantAnswer(t, "absolute-form getOcrResult", status, body, e.fake.OCRResultBody(appID, "PX1", false, false))
	status, body = get("http://IDASC.webank.com:80" + webanktest.PathSync + "?order_no=PX2")
	wantAnswer(t, "absolute-form sync, host in capitals and port 80", status, body, e.fake.SyncResultBody(appID, "PX2", false, false))
	req, _ := http.NewRequest(http.MethodPost, "http://idasc.webank.com"+webanktest.PathFaceRecord, strings.NewReader(`{"orderNo":"PX3"}`))
	req.Header.Set("Content-Type", "application/json")
	status, body = send(req)
	wantAnswer(t, "absolute-form queryfacerecord", status, body, e.fake.FaceRecordResultBody(appID, "PX3", false, false, false))

	for _, u := range []string{"http://evil.example" + ocrPath + "?order_no=PX4", "http://idasc.webank.com:8080" + ocrPath + "?order_no=PX4"} {
		status, body = get(u)
		wantRefused(t, u, status, body, 403, "proxy_host_not_allowed")
	}
	if n := e.fake.OCRCalls(); n != 1 {
		t.Errorf("the fake got %d getOcrResult calls, want 1", n)
	}

	// CONNECT, as a client sends it for an https:// URL.
	conn, err := net.Dial("tcp", proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT idasc.webank.com:443 HTTP/1.1\r\nHost: idasc.webank.com:443\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("reading the answer to CONNECT: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	wantRefused(t, "CONNECT", resp.StatusCode, body, 405, "connect_not_supported")
	if se := decodeError(t, body); !strings.Contains(se.Msg, "sidecar's own URL") {
		t.Errorf("CONNECT: message %q does not say what to do instead", se.Msg)
	}
	e.wantCleanSignatures()
}

// TestJSONBodyRetriedAfterRotation has another party rotate the token: the
// sidecar signs the JSON body again with a new ticket and nonce, and sends
// it again, with its length, on the retry.
func TestJSONBodyRetriedAfterRotation(t *testing.T) {
	e := setup(t, webanktest.Options{Grace: -1}, func(fakeURL string) string {
		return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s", appID, secretEnv, fakeURL))
	})
	const body = `{"orderNo":"ROT1","getFile":"2","note":"kept as sent"}`
	status, got := e.post(webanktest.PathFaceRecord, "application/json", body, false)
	wantAnswer(t, "before rotation", status, got, e.fake.FaceRecordResultBody(appID, "ROT1", true, false, false))
	e.fake.RotateToken(appID)
	status, got = e.post(webanktest.PathFaceRecord, "application/json", body, true)
	wantAnswer(t, "after rotation", status, got, e.fake.FaceRecordResultBody(appID, "ROT1", true, false, false))

	reqs := e.fake.Requests(webanktest.PathFaceRecord)
	if len(reqs) != 3 {
		t.Fatalf("the fake got %d queryfacerecord requests, want 3 (one, then a stale one and its retry)", len(reqs))
	}
	stale, retry := reqs[1], reqs[2]
	if stale.Get("nonce") == retry.Get("nonce") || stale.Get("sign") == retry.Get("sign") {
		t.Error("the retry reused the stale attempt's nonce or sign")
	}
	if retry.Get("note") != "kept as sent" || retry.Get("header:Content-Length") == "" {
		t.Errorf("the retry reached WeBank as %v: want the client's members and a Content-Length", redacted(retry))
	}
	if n := e.fake.StaleTickets(); n != 1 {
		t.Errorf("fake saw %d stale-ticket requests, want the 1 that was retried", n)
	}
	e.wantCounts(2, 2)
	e.wantCleanSignatures()
}
