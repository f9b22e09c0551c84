package webanksign

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file holds the review's findings on webank_sign (brief R2), each a
// test that failed on the tree it was written against.

// TestReviewBodyKeyRepeatCutShort shows the same sibling in parseBody: a
// body cut short after a name given twice was refused as
// body_key_repeated, before the body was known whole.
func TestReviewBodyKeyRepeatCutShort(t *testing.T) {
	for _, body := range []string{
		`{"orderNo":"A1","x":1,"x":2`,
		`{"orderNo":"A1","x":1,"x":`,
		`{"orderNo":"A1","y":{"x":1,"x":2}`,
		`{"orderNo":"A1","x":1,"x":2,}`,
	} {
		var b checkedBody
		if err := parseBody([]byte(body), setOrderNo, &b); err != errBodyMalformed {
			t.Errorf("parseBody(%s) = %v, want %v", body, err, errBodyMalformed)
		}
	}
	// A whole body with a name twice is still refused as such.
	var b checkedBody
	if err := parseBody([]byte(`{"orderNo":"A1","x":1,"x":2}`), setOrderNo, &b); err != errBodyKeyRepeat {
		t.Errorf("whole body with a name twice: %v, want %v", err, errBodyKeyRepeat)
	}
}

// TestReviewPhotosDenyQueryPhotoInfo shows that photos deny does not keep
// a route from fetching the face photo: queryphotoinfo (docs/protocol.md
// §8, README "the face photo of a verification") answers with the photo
// whatever getFile says, and a body without getFile was signed and
// forwarded.
func TestReviewPhotosDenyQueryPhotoInfo(t *testing.T) {
	h, _ := newServeHandler(t, func(h *Handler) { h.Photos = "deny" })
	next := new(recordingNext)
	w := postJSON(t, h, next, "/api/v2/base/queryphotoinfo", nil, `{"orderNo":"A1"}`)
	wantCode(t, "queryphotoinfo under photos deny", w, http.StatusForbidden, errFilesDenied.Code)
	if next.sent() != 0 {
		t.Errorf("forwarded %d request(s) for the face photo under photos deny", next.sent())
	}
	// The result query without files is still signed and forwarded.
	before := next.sent()
	w = postJSON(t, h, next, facePath, nil, `{"orderNo":"A1"}`)
	if w.Code != http.StatusOK || next.sent() != before+1 {
		t.Errorf("queryfacerecord without getFile: %d, forwarded %d; want 200, 1", w.Code, next.sent()-before)
	}
}

// TestReviewAnnouncedLengthNotAllocated shows that readBody allocated the
// length a client announced before any of the body arrived: a request on
// an image API saying Content-Length: 8 MiB and sending a few bytes (or
// none, until body_timeout) cost the sidecar 8 MiB, so that a few hundred
// such connections, a few hundred bytes of headers each, held gigabytes.
// What is allocated must follow what arrives.
func TestReviewAnnouncedLengthNotAllocated(t *testing.T) {
	const announced = defaultImageBodySize
	read := func() {
		r := httptest.NewRequest(http.MethodPost, "/api/server/getAdvFaceId", strings.NewReader(`{"orderNo":"A1"}`))
		r.ContentLength = announced // a body cut short: the client sends 16 bytes of it
		if _, err := readBody(httptest.NewRecorder(), r, announced, time.Second); err != nil && !errors.Is(err, errBodyUnreadable) {
			t.Fatal(err)
		}
	}
	read() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	read()
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > announced/8 {
		t.Errorf("reading 16 bytes of a body announced as %d bytes allocated %d bytes", announced, got)
	}
}

// TestReviewWebankAppIDPassedOn shows that a body's webankAppId went on to
// WeBank as the client wrote it. docs/protocol.md §8.3 names webankAppId
// as the app's field in geth5faceid's body, and as one some clients send
// to getAdvFaceId: WeBank may read the client's app there instead of the
// one signed, fail the sign and so draw a retry code, which drops the
// ticket and rotates the token (README: why imitations are refused). It
// must be refused, dropped or the signed app's.
func TestReviewWebankAppIDPassedOn(t *testing.T) {
	h, _ := newTestHandler(t)
	const person = `"orderNo":"O1","userId":"U1","name":"N","idNo":"4300000000000"`
	for _, target := range []string{"/api/server/h5/geth5faceid", "/api/server/getAdvFaceId"} {
		next := new(recordingNext)
		w := postJSON(t, h, next, target, nil, `{"webankAppId":"IDAOTHER",`+person+`}`)
		if w.Code >= 400 {
			continue // refused
		}
		if next.sent() != 1 {
			t.Fatalf("%s: %d, forwarded %d", target, w.Code, next.sent())
		}
		var sent map[string]any
		if err := json.Unmarshal([]byte(next.bodies[0]), &sent); err != nil {
			t.Fatal(err)
		}
		if v, ok := sent["webankAppId"]; ok && v != testAppID {
			t.Errorf("%s: forwarded webankAppId %v with a body signed for %s", target, v, testAppID)
		}
	}
}

// TestReviewWebankAppIDInURL is TestReviewWebankAppIDPassedOn for a JSON
// request's URL, which went on as the client wrote it.
func TestReviewWebankAppIDInURL(t *testing.T) {
	h, _ := newTestHandler(t)
	next := new(recordingNext)
	w := postJSON(t, h, next, "/api/server/getAdvFaceId?webank_app_id=IDAOTHER", nil,
		`{"orderNo":"O1","userId":"U1","name":"N","idNo":"4300000000000"}`)
	wantCode(t, "webank_app_id in the URL", w, http.StatusBadRequest, errWebankAppID.Code)
	if next.sent() != 0 {
		t.Errorf("forwarded %d request(s) with the client's webank_app_id", next.sent())
	}
}

// TestReviewContentLengthHeaderRestored shows that serveJSON left the
// signed body's length in the request's Content-Length header once it
// returned, while r.ContentLength and the body were the client's again:
// what runs later (Caddy's access log, an error route) saw a header that
// matched neither.
func TestReviewContentLengthHeaderRestored(t *testing.T) {
	h, _ := newTestHandler(t)
	const body = `{"orderNo":"O1"}`
	r := httptest.NewRequest(http.MethodPost, facePath, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	next := new(recordingNext)
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusOK || next.sent() != 1 {
		t.Fatalf("ServeHTTP: %v, %d, forwarded %d", err, w.Code, next.sent())
	}
	if got := r.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) || r.ContentLength != int64(len(body)) {
		t.Errorf("afterwards Content-Length %q, ContentLength %d; want the client's, %d", got, r.ContentLength, len(body))
	}
}
