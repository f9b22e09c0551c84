package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// This file holds the cases of issue 12, "Hold under hostile use": input
// meant to slip past the sidecar's checks to a lenient server behind it.
// Each is refused with its status and code, and none reaches WeBank.

// denySite is one webank_sign block for every API, with photos deny.
func denySite(fakeURL string) string {
	return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s\nphotos deny", appID, secretEnv, fakeURL))
}

// wantNothingForwarded fails t if any signed API of the fake was called.
func (e *env) wantNothingForwarded() {
	e.t.Helper()
	for _, p := range []string{webanktest.PathOCR, webanktest.PathBankCard, webanktest.PathSync, webanktest.PathFaceRecord} {
		if n := e.fake.Calls(p); n != 0 {
			e.t.Errorf("%d refused requests reached %s", n, p)
		}
	}
}

// TestPhotoPolicyLenientNames sends get_file under the names a lenient
// server binds to it (Java's equalsIgnoreCase, binders that strip [] or
// punctuation): with photos deny, each is refused, in a query, a JSON body
// and a JSON request's URL.
func TestPhotoPolicyLenientNames(t *testing.T) {
	e := setup(t, webanktest.Options{}, denySite)
	for _, name := range []string{
		"!get_file", "get_file%5B%5D", "getFile%5B%5D", "get.file", "get_file%20", "get_file%00",
		"getf%C4%B1le", // getfıle, a dotless ı
	} {
		target := webanktest.PathSync + "?order_no=P1&" + name + "=1"
		status, body := e.get(target)
		wantRefused(t, target, status, body, 403, "photos_denied")
		target = webanktest.PathFaceRecord + "?" + name + "=1"
		status, body = e.post(target, "application/json", `{"orderNo":"P1"}`, false)
		wantRefused(t, "POST "+target, status, body, 403, "photos_denied")
	}
	for _, b := range []string{
		`{"orderNo":"P1","get_file[]":"1"}`,
		`{"orderNo":"P1","getf\u0131le":1}`, // the JSON escape of ı
		`{"orderNo":"P1","getfıle":"2"}`,
		`{"orderNo":"P1","GET.FILE":"3"}`,
		`{"orderNo":"P1","get_file\u0000":"1"}`,
	} {
		status, body := e.post(webanktest.PathFaceRecord, "application/json", b, false)
		wantRefused(t, b, status, body, 403, "photos_denied")
	}
	e.wantNothingForwarded()
	e.wantCounts(0, 0)

	// Such a name with 0 asks for nothing, and goes on as sent.
	status, body := e.get(webanktest.PathSync + "?order_no=P2&get.file=0")
	wantAnswer(t, "get.file=0", status, body, e.fake.SyncResultBody(appID, "P2", false, false))
	e.wantCleanSignatures()
}

// TestConfusableNamesRefused sends names a case-insensitive, last-wins
// server reads as one the sidecar owns: the client's value would replace
// the signed one, WeBank would reject the sign, and the retry would rotate
// the token. Each is refused with 400 param_name_confusable and a message
// that names the owned parameter; the owned names themselves still work.
func TestConfusableNamesRefused(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s", appID, secretEnv, fakeURL))
	})
	e.clientSent = append(e.clientSent, "FORGED")
	tests := []struct{ what, target, body, owned string }{
		{"query ORDER_NO", ocrPath + "?order_no=C1&ORDER_NO=C2", "", "order_no"},
		{"query Sign", ocrPath + "?order_no=C1&Sign=FORGED", "", "sign"},
		{"query appId", ocrPath + "?order_no=C1&appId=" + appID, "", "app_id"},
		{"query ſign", ocrPath + "?order_no=C1&%C5%BFign=FORGED", "", "sign"},
		{"body OrderNo", webanktest.PathFaceRecord, `{"orderNo":"C1","OrderNo":"C2"}`, "orderNo"},
		{"body Sign", webanktest.PathFaceRecord, `{"orderNo":"C1","Sign":"FORGED"}`, "sign"},
		{"body AppId", webanktest.PathFaceRecord, `{"orderNo":"C1","AppId":"` + appID + `"}`, "appId"},
		{"body NONCE", webanktest.PathFaceRecord, `{"orderNo":"C1","NONCE":"FORGED"}`, "nonce"},
		{"body Version", webanktest.PathFaceRecord, `{"orderNo":"C1","Version":"9"}`, "version"},
		{"URL order_no", webanktest.PathFaceRecord + "?order_no=C1", `{"orderNo":"C1"}`, "orderNo"},
		{"URL sign", webanktest.PathFaceRecord + "?sign=FORGED", `{"orderNo":"C1"}`, "sign"},
	}
	for _, tt := range tests {
		var status int
		var body []byte
		if tt.body == "" {
			status, body = e.get(tt.target)
		} else {
			status, body = e.post(tt.target, "application/json", tt.body, false)
		}
		wantRefused(t, tt.what, status, body, 400, "param_name_confusable")
		if se := decodeError(t, body); status == 400 && !strings.Contains(se.Msg, " "+tt.owned+" ") {
			t.Errorf("%s: message %q does not name %s", tt.what, se.Msg, tt.owned)
		} else if strings.Contains(se.Msg, "FORGED") || strings.Contains(se.Msg, "C2") {
			t.Errorf("%s: message %q holds the client's value", tt.what, se.Msg)
		}
	}
	e.wantNothingForwarded()
	e.wantCounts(0, 0)

	// The owned names, spelled as the sidecar spells them, still work:
	// sign, nonce and version replaced, app_id checked, orderNo in the URL.
	status, body := e.get(ocrPath + "?order_no=C3&app_id=" + appID + "&sign=FORGED&nonce=x&version=9")
	wantAnswer(t, "owned query names", status, body, e.fake.OCRResultBody(appID, "C3", false, false))
	status, body = e.post(webanktest.PathFaceRecord+"?orderNo=C4", "application/json",
		`{"appId":"`+appID+`","orderNo":"C4","sign":"FORGED","nonce":"x","version":"9"}`, false)
	wantAnswer(t, "owned JSON names", status, body, e.fake.FaceRecordResultBody(appID, "C4", false, false, false))
	e.wantCounts(1, 1)
	e.wantCleanSignatures()
}

// postWith sends a POST of body to the sidecar with exactly the headers
// hdr, repeated ones included.
func (e *env) postWith(pathAndQuery string, hdr http.Header, body string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, siteURL+pathAndQuery, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header = hdr
	return e.send(req)
}

// TestRepeatedContentHeaders sends a JSON body with Content-Type or
// Content-Encoding twice: the sidecar checked only the first and sent on
// both, in front of a body it had rewritten. Both are refused; a body that
// is accepted goes on with exactly one Content-Type, application/json.
func TestRepeatedContentHeaders(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s", appID, secretEnv, fakeURL))
	})
	const face = webanktest.PathFaceRecord
	for _, tt := range []struct {
		what string
		hdr  http.Header
	}{
		{"Content-Type twice", http.Header{"Content-Type": {"application/json", "application/json"}}},
		{"Content-Type twice, the second text", http.Header{"Content-Type": {"application/json", "text/plain"}}},
		{"Content-Encoding twice", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"identity", "gzip"}}},
	} {
		status, body := e.postWith(face, tt.hdr, `{"orderNo":"H1"}`)
		wantRefused(t, tt.what, status, body, 400, "header_repeated")
	}
	status, body := e.postWith(face, http.Header{"Content-Type": {"application/json; charset=GBK"}}, `{"orderNo":"H1"}`)
	wantRefused(t, "charset GBK", status, body, 415, "content_type_unsupported")
	e.wantNothingForwarded()
	e.wantCounts(0, 0)

	status, body = e.postWith(face, http.Header{"Content-Type": {"application/json; charset=UTF-8"}, "Content-Encoding": {"identity"}}, `{"orderNo":"H2"}`)
	wantAnswer(t, "one Content-Type and Content-Encoding identity", status, body, e.fake.FaceRecordResultBody(appID, "H2", false, false, false))
	reqs := e.fake.Requests(face)
	if len(reqs) != 1 {
		t.Fatalf("the fake got %d queryfacerecord requests, want 1", len(reqs))
	}
	if ct := reqs[0]["header:Content-Type"]; len(ct) != 1 || ct[0] != "application/json" {
		t.Errorf("sent on with Content-Type %q, want one, application/json", ct)
	}
	e.wantCleanSignatures()
}

// TestBodyTimeout sends the headers and part of a JSON body, then waits,
// as a client trickling its body would: with body_timeout 200ms, the
// sidecar answers 408 body_timeout instead of holding the request until
// Caddy's own timeouts (a minute without a byte, by default), and nothing
// reaches WeBank.
func TestBodyTimeout(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s\nbody_timeout 200ms", appID, secretEnv, fakeURL))
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(siteURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second)) // only a bound on a hung test
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"orderNo\":", webanktest.PathFaceRecord)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a body that stopped: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantRefused(t, "a body that stopped", resp.StatusCode, body, 408, "body_timeout")
	e.wantNothingForwarded()
	e.wantCounts(0, 0)

	// A body that arrives in time goes on as before.
	status, got := e.post(webanktest.PathFaceRecord, "application/json", `{"orderNo":"T1"}`, true)
	wantAnswer(t, "a body in time", status, got, e.fake.FaceRecordResultBody(appID, "T1", false, false, false))
}

// TestBodyTimeoutUnderReadBody answers a JSON request slower than both
// body_timeout and Caddy's read_body timeout, counted from the request's
// start: once the body is read, neither deadline may be left on the
// connection, where Caddy's background read would hit it and cancel the
// request mid-answer (put back, for one, by lifting the handler's deadline
// through Caddy's response controller). The upstream's delay is the
// property under test, not a wait for something to happen.
func TestBodyTimeoutUnderReadBody(t *testing.T) {
	e := setupGlobals(t, webanktest.Options{}, "servers {\n\t\ttimeouts {\n\t\t\tread_body 300ms\n\t\t}\n\t}", func(fakeURL string) string {
		return openSite(fakeURL, fmt.Sprintf("app_id %s\nsecret {env.%s}\nbase_url %s\nbody_timeout 100ms", appID, secretEnv, fakeURL))
	})
	e.fake.SetFault(webanktest.FaceRecordEndpoint, webanktest.Fault{Delay: 600 * time.Millisecond})
	status, got := e.post(webanktest.PathFaceRecord, "application/json", `{"orderNo":"T2"}`, false)
	wantAnswer(t, "an answer slower than read_body", status, got, e.fake.FaceRecordResultBody(appID, "T2", false, false, false))
	e.wantCleanSignatures()
}
