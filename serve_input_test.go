package webanksign

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// This file tests what serveQuery and serveJSON accept and refuse, through
// ServeHTTP: the checks of a request's method, headers, URL and body.

const facePath = "/api/v2/base/queryfacerecord"

// recordingNext is a next handler that answers WeBank's success code and
// records what it was sent. It is safe for concurrent use.
type recordingNext struct {
	mu     sync.Mutex
	reqs   []*http.Request // as they were when sent on
	bodies []string
}

func (n *recordingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.reqs = append(n.reqs, r.Clone(r.Context()))
	n.bodies = append(n.bodies, string(body))
	n.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"code":"0"}`)
	return nil
}

func (n *recordingNext) sent() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.reqs)
}

// postJSON serves a POST of body to target, with hdr, through h.
func postJSON(t *testing.T, h *Handler, next *recordingNext, target string, hdr http.Header, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

// wantCode fails t unless w is a JSON answer with status and code.
func wantCode(t *testing.T, what string, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	var body struct{ Code, Msg string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Errorf("%s: %d %q is not a JSON {code, msg}", what, w.Code, w.Body)
		return
	}
	if w.Code != status || body.Code != code {
		t.Errorf("%s: %d %s (%s), want %d %s", what, w.Code, body.Code, body.Msg, status, code)
	}
}

// TestJSONURLNames checks the names in a JSON request's URL: orderNo, as
// WeBank asks, and any other name but those that imitate an owned one
// (issue 12, item 4), which are refused; an owned one itself too, since
// only the body is signed.
func TestJSONURLNames(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		query   string
		refusal *refusal // nil: forwarded
	}{
		{"orderNo=A1", nil},
		{"orderNo=A1&getFile=0&queryVersion=1.0&signs=x", nil},
		{"order_no=A1", errNameConfusable[fieldOrderNo]},
		{"ORDERNO=A1", errNameConfusable[fieldOrderNo]},
		{"orderNo=A1&OrderNo=A2", errNameConfusable[fieldOrderNo]},
		{"Sign=x", errNameConfusable[fieldSign]},
		{"sign=x", errNameConfusable[fieldSign]},
		{"nonce=x", errNameConfusable[fieldNonce]},
		{"VERSION=2", errNameConfusable[fieldVersion]},
		{"appId=" + testAppID, errNameConfusable[fieldAppID]},
		{"app_id=" + testAppID, errNameConfusable[fieldAppID]},
		{"%C5%BFign=x&app-id=y", errNameConfusable[fieldAppID]}, // the first owned name is the one named
	}
	for _, tt := range tests {
		next := new(recordingNext)
		w := postJSON(t, h, next, facePath+"?"+tt.query, nil, `{"orderNo":"A1"}`)
		if tt.refusal == nil {
			if w.Code != http.StatusOK || next.sent() != 1 {
				t.Errorf("?%s: %d %s, sent on %d times; want it forwarded once", tt.query, w.Code, w.Body, next.sent())
			}
			continue
		}
		wantCode(t, "?"+tt.query, w, tt.refusal.Status, tt.refusal.Code)
		if !strings.Contains(w.Body.String(), jsonEscape(tt.refusal.Msg)) {
			t.Errorf("?%s: %s, want the message %q", tt.query, w.Body, tt.refusal.Msg)
		}
		if next.sent() != 0 {
			t.Errorf("?%s was forwarded", tt.query)
		}
	}
}

// jsonEscape is s as encoding/json writes it inside a string.
func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// TestJSONContentHeaders checks the Content-Type and Content-Encoding of a
// JSON request: one of each at most (issue 12, item 11), JSON in UTF-8,
// not compressed; and the body sent on with exactly one Content-Type,
// application/json, and no Content-Encoding.
func TestJSONContentHeaders(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		name    string
		hdr     http.Header
		refusal *refusal // nil: forwarded
	}{
		{"plain", http.Header{"Content-Type": {"application/json"}}, nil},
		{"charset UTF-8", http.Header{"Content-Type": {"application/json; charset=UTF-8"}}, nil},
		{"charset utf8", http.Header{"Content-Type": {"application/json;charset=utf8"}}, nil},
		{"identity encoding", http.Header{"Content-Encoding": {"identity"}}, nil},
		{"empty encoding", http.Header{"Content-Encoding": {""}}, nil},
		{"Content-Type twice", http.Header{"Content-Type": {"application/json", "application/json"}}, errContentTypeRep},
		{"Content-Type twice, the second other", http.Header{"Content-Type": {"application/json", "text/plain"}}, errContentTypeRep},
		{"Content-Encoding twice", http.Header{"Content-Encoding": {"identity", "identity"}}, errContentEncRep},
		{"Content-Encoding twice, the second gzip", http.Header{"Content-Encoding": {"identity", "gzip"}}, errContentEncRep},
		{"gzip", http.Header{"Content-Encoding": {"gzip"}}, errContentEnc},
		{"a list of encodings", http.Header{"Content-Encoding": {"identity, gzip"}}, errContentEnc},
		{"text", http.Header{"Content-Type": {"text/plain"}}, errContentType},
		{"two types in one line", http.Header{"Content-Type": {"application/json, text/plain"}}, errContentType},
		// The body goes on as application/json, which is UTF-8: a body in
		// another charset would be mislabelled.
		{"charset GBK", http.Header{"Content-Type": {"application/json; charset=GBK"}}, errContentType},
		{"another parameter", http.Header{"Content-Type": {"application/json; boundary=x"}}, errContentType},
	}
	for _, tt := range tests {
		next := new(recordingNext)
		w := postJSON(t, h, next, facePath, tt.hdr, `{"orderNo":"A1"}`)
		if tt.refusal != nil {
			wantCode(t, tt.name, w, tt.refusal.Status, tt.refusal.Code)
			if next.sent() != 0 {
				t.Errorf("%s: forwarded", tt.name)
			}
			continue
		}
		if w.Code != http.StatusOK || next.sent() != 1 {
			t.Errorf("%s: %d %s, sent on %d times; want it forwarded once", tt.name, w.Code, w.Body, next.sent())
			continue
		}
		sent := next.reqs[0].Header
		if ct := sent.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json" {
			t.Errorf("%s: sent on with Content-Type %q, want one, application/json", tt.name, ct)
		}
		if ce, ok := sent["Content-Encoding"]; ok {
			t.Errorf("%s: sent on with Content-Encoding %q, want none", tt.name, ce)
		}
	}
}

// TestWrongMethods checks the answer to a method a route does not sign:
// 405 with the methods it does sign in Allow, and, for the other shape's
// method, the code wrong_shape (issue 12, item 12).
func TestWrongMethods(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		method, target string
		refusal        *refusal
		allow          string
	}{
		{http.MethodPost, "/api/server/getOcrResult?order_no=A1", errQueryShape, "GET, HEAD"},
		{http.MethodPut, "/api/server/getOcrResult?order_no=A1", errQueryMethod, "GET, HEAD"},
		{http.MethodGet, facePath + "?orderNo=A1", errJSONShape, "POST"},
		{http.MethodHead, facePath + "?orderNo=A1", errJSONShape, "POST"},
		{http.MethodDelete, facePath, errJSONMethod, "POST"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(`{"orderNo":"A1"}`))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		next := new(recordingNext)
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatalf("ServeHTTP: %v", err)
		}
		what := tt.method + " " + tt.target
		wantCode(t, what, w, http.StatusMethodNotAllowed, tt.refusal.Code)
		if got := w.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s: Allow = %q, want %q", what, got, tt.allow)
		}
		if next.sent() != 0 {
			t.Errorf("%s: forwarded", what)
		}
	}
}

// TestBodyTimeout serves a JSON body that stops arriving (issue 12, item
// 15): a client sends the headers and part of the body, then waits. The
// handler answers 408 body_timeout once body_timeout has passed, forwards
// nothing, and closes the connection. It runs on a real net/http server,
// since a read deadline needs a connection.
func TestBodyTimeout(t *testing.T) {
	const bodyTimeout = 200 * time.Millisecond
	next := new(recordingNext)
	srv := serveOn(t, newBodyHandler(t, bodyTimeout), next)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Only a bound on a hung test: the answer comes after bodyTimeout.
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"orderNo\":", facePath)
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a body that stopped: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if waited := time.Since(start); waited < bodyTimeout {
		t.Errorf("answered after %v, before body_timeout (%v)", waited, bodyTimeout)
	}
	var got struct{ Code string }
	if resp.StatusCode != http.StatusRequestTimeout || json.Unmarshal(body, &got) != nil || got.Code != "body_timeout" {
		t.Errorf("answer %d %s, want 408 body_timeout", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Error("the connection is kept open after a body cut short")
	}
	if next.sent() != 0 {
		t.Error("the request was forwarded")
	}
}

// TestBodyTimeoutLiftedAfterRead sends a whole body in time, to a next
// handler slower than body_timeout: the deadline, set for the body, must
// not outlive it. Left armed, it would fail net/http's background read of
// the connection, which cancels the request: every upstream slower than
// body_timeout would have its request cancelled. Waiting past the deadline
// is the property under test here.
func TestBodyTimeoutLiftedAfterRead(t *testing.T) {
	const bodyTimeout = 50 * time.Millisecond
	slow := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		select {
		case <-r.Context().Done():
			http.Error(w, "request cancelled", http.StatusInternalServerError)
		case <-time.After(4 * bodyTimeout):
			io.WriteString(w, `{"code":"0"}`)
		}
		return nil
	})
	srv := serveOn(t, newBodyHandler(t, bodyTimeout), slow)
	resp, err := srv.Client().Post(srv.URL+facePath, "application/json", strings.NewReader(`{"orderNo":"A1"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a next handler slower than body_timeout: %d %s, want 200", resp.StatusCode, body)
	}
}

// newBodyHandler provisions a handler with body_timeout d.
func newBodyHandler(t *testing.T, d time.Duration) *Handler {
	t.Helper()
	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	t.Cleanup(fake.Close)
	t.Setenv("WBS_UNIT_SECRET", testSecret)
	h := &Handler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_UNIT_SECRET}", BaseURL: fake.URL}, BodyTimeout: d.String()}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	return h
}

// serveOn serves h, with next behind it, on a real server.
func serveOn(t *testing.T, h *Handler, next caddyhttp.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.ServeHTTP(w, r, next); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestJSONValueSetsServed sends the faceId APIs' and geth5faceid's bodies
// through ServeHTTP: each is signed with its path's value set, orderNo put
// on the URL, the image-sized body accepted there and not on a result
// query, and a body without its userId refused, not forwarded.
func TestJSONValueSetsServed(t *testing.T) {
	h, _ := newTestHandler(t)
	small, _ := newServeHandler(t, func(h *Handler) { h.MaxBodySize = 1 << 10 })
	photo := strings.Repeat("QUJD", 1<<19) // 2 MiB of base64
	const person = `"orderNo":"O1","userId":"U1","name":"\u5f20\u4e09","idNo":"4300000000000"`
	tests := []struct {
		name    string
		h       *Handler
		target  string
		body    string
		status  int
		code    string                           // for a refusal
		wantSig func(m map[string]string) string // for a 200: the sign expected, from the ticket and the members sent
		noNonce bool                             // geth5faceid: none sent
	}{
		{name: "getAdvFaceId with a photo", h: h, target: "/api/server/getAdvFaceId",
			body: `{` + person + `,"sourcePhotoStr":"` + photo + `","sourcePhotoType":"1"}`, status: 200,
			wantSig: func(m map[string]string) string {
				return referenceSign(testAppID, "U1", m[fieldNonce], m[fieldVersion], m["ticket"])
			}},
		{name: "geth5faceid", h: h, target: "/api/server/h5/geth5faceid", body: `{` + person + `,"nonce":"x"}`, status: 200, noNonce: true,
			wantSig: func(m map[string]string) string {
				return referenceSign(testAppID, "O1", "张三", "4300000000000", "U1", m[fieldVersion], m["ticket"])
			}},
		{name: "a photo-sized body on a result query", h: h, target: facePath,
			body: `{"orderNo":"O1","x":"` + photo + `"}`, status: 413, code: "body_too_large"},
		{name: "max_body_size given applies on getfaceid", h: small, target: "/api/server/getfaceid",
			body: `{` + person + `,"sourcePhotoStr":"` + photo[:2048] + `"}`, status: 413, code: "body_too_large"},
		{name: "getfaceid without userId", h: h, target: "/api/server/getfaceid",
			body: `{"orderNo":"O1","name":"N","idNo":"1"}`, status: 400, code: "user_id_missing"},
		{name: "getfaceid with UserId in the URL", h: h, target: "/api/server/getfaceid?UserId=U2",
			body: `{` + person + `}`, status: 400, code: "param_name_confusable"},
		{name: "queryfacerecord with UserId in the URL", h: h, target: facePath + "?UserId=U2",
			body: `{"orderNo":"O1"}`, status: 200, wantSig: func(m map[string]string) string {
				return referenceSign(testAppID, "O1", m[fieldNonce], m[fieldVersion], m["ticket"])
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := new(recordingNext)
			w := postJSON(t, tt.h, next, tt.target, nil, tt.body)
			if tt.wantSig == nil {
				wantCode(t, tt.name, w, tt.status, tt.code)
				if next.sent() != 0 {
					t.Errorf("%s was forwarded", tt.name)
				}
				return
			}
			if w.Code != tt.status || next.sent() != 1 {
				t.Fatalf("%d %s, sent on %d times; want %d, sent once", w.Code, w.Body, next.sent(), tt.status)
			}
			ticket, err := tt.h.tenants[0].tickets.Ticket(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{"ticket": ticket.Value()}
			for k, raw := range members(t, []byte(next.bodies[0])) {
				var s string
				if json.Unmarshal(raw, &s) == nil {
					m[k] = s
				}
			}
			if _, ok := m[fieldNonce]; ok == tt.noNonce {
				t.Errorf("body sent %s: nonce sent %v, want %v", next.bodies[0][:min(200, len(next.bodies[0]))], ok, !tt.noNonce)
			}
			if got, want := m[fieldSign], tt.wantSig(m); got != want {
				t.Errorf("sign = %s, want %s", got, want)
			}
			if q := next.reqs[0].URL.Query(); q.Get(fieldOrderNo) != "O1" {
				t.Errorf("URL query %q, want orderNo=O1", next.reqs[0].URL.RawQuery)
			}
			if next.reqs[0].ContentLength != int64(len(next.bodies[0])) {
				t.Errorf("Content-Length %d, body of %d bytes", next.reqs[0].ContentLength, len(next.bodies[0]))
			}
		})
	}
}

// TestPhotosDenyQueryPhotoInfo shows that photos deny does not keep
// a route from fetching the face photo: queryphotoinfo (docs/protocol.md
// §8, README "the face photo of a verification") answers with the photo
// whatever getFile says, and a body without getFile was signed and
// forwarded.
func TestPhotosDenyQueryPhotoInfo(t *testing.T) {
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

// TestWebankAppIDNotPassedOn shows that a body's webankAppId went on to
// WeBank as the client wrote it. docs/protocol.md §8.3 names webankAppId
// as the app's field in geth5faceid's body, and as one some clients send
// to getAdvFaceId: WeBank may read the client's app there instead of the
// one signed, fail the sign and so draw a retry code, which drops the
// ticket and rotates the token (README: why imitations are refused). It
// must be refused, dropped or the signed app's.
func TestWebankAppIDNotPassedOn(t *testing.T) {
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

// TestWebankAppIDInURL is TestReviewWebankAppIDPassedOn for a JSON
// request's URL, which went on as the client wrote it.
func TestWebankAppIDInURL(t *testing.T) {
	h, _ := newTestHandler(t)
	next := new(recordingNext)
	w := postJSON(t, h, next, "/api/server/getAdvFaceId?webank_app_id=IDAOTHER", nil,
		`{"orderNo":"O1","userId":"U1","name":"N","idNo":"4300000000000"}`)
	wantCode(t, "webank_app_id in the URL", w, http.StatusBadRequest, errWebankAppID.Code)
	if next.sent() != 0 {
		t.Errorf("forwarded %d request(s) with the client's webank_app_id", next.sent())
	}
}

// TestContentLengthHeaderRestored shows that serveJSON left the
// signed body's length in the request's Content-Length header once it
// returned, while r.ContentLength and the body were the client's again:
// what runs later (Caddy's access log, an error route) saw a header that
// matched neither.
func TestContentLengthHeaderRestored(t *testing.T) {
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

// A body's buffer follows what arrives, not the length the client
// announced: a request on an image API saying Content-Length: 8 MiB and
// sending a few bytes (or none, until body_timeout) must not cost the
// sidecar 8 MiB, or a few hundred such connections hold gigabytes. A body
// that does arrive whole is read whole. (A review finding: the buffer was
// made the announced size up front.)
func TestBodyBufferFollowsWhatArrives(t *testing.T) {
	const announced = defaultImageBodySize
	b, err := readAtMost(strings.NewReader(`{"orderNo":"A1"}`), announced, announced+1)
	if err != nil || string(b) != `{"orderNo":"A1"}` {
		t.Fatalf("readAtMost = %q, %v", b, err)
	}
	if cap(b) > maxPrealloc+1 {
		t.Errorf("16 bytes of a body announced as %d bytes took a buffer of %d bytes", announced, cap(b))
	}
	full := strings.Repeat("x", 3*maxPrealloc+7)
	if b, err := readAtMost(strings.NewReader(full), int64(len(full)), announced+1); err != nil || string(b) != full {
		t.Errorf("a body of %d bytes, announced: read %d bytes, %v", len(full), len(b), err)
	}
}

// geth5faceid's body names the app webankAppId (docs/protocol.md §8.3): the
// signed body names it so, and a client may name its app so too, but not
// twice.
func TestH5FaceIDNamesTheAppWebankAppID(t *testing.T) {
	h, _ := newTestHandler(t)
	const person = `"orderNo":"O1","userId":"U1","name":"N","idNo":"4300000000000"`
	for _, body := range []string{`{` + person + `}`, `{"webankAppId":"` + testAppID + `",` + person + `}`, `{"appId":"` + testAppID + `",` + person + `}`} {
		next := new(recordingNext)
		w := postJSON(t, h, next, "/api/server/h5/geth5faceid", nil, body)
		if w.Code != http.StatusOK || next.sent() != 1 {
			t.Fatalf("%s: %d, forwarded %d", body, w.Code, next.sent())
		}
		var sent map[string]any
		if err := json.Unmarshal([]byte(next.bodies[0]), &sent); err != nil {
			t.Fatal(err)
		}
		if sent[fieldWebankAppID] != testAppID {
			t.Errorf("%s: forwarded webankAppId %v, want %s", body, sent[fieldWebankAppID], testAppID)
		}
		if _, ok := sent[fieldAppID]; ok {
			t.Errorf("%s: forwarded appId beside webankAppId", body)
		}
	}
	next := new(recordingNext)
	w := postJSON(t, h, next, "/api/server/h5/geth5faceid", nil, `{"appId":"`+testAppID+`","webankAppId":"`+testAppID+`",`+person+`}`)
	wantCode(t, "appId and webankAppId", w, http.StatusBadRequest, errBodyAppIDTwice.Code)
	if next.sent() != 0 {
		t.Errorf("forwarded a body naming the app twice")
	}
}
