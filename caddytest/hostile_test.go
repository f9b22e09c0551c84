package integration

import (
	"fmt"
	"testing"

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
