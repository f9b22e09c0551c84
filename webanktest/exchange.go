package webanktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// firstOf returns the first value of the first of keys present in q.
func firstOf(q url.Values, keys ...string) string {
	for _, k := range keys {
		if v := q.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// exchange is one request being answered. It holds the parsed query, and
// body if JSON, and remembers what was answered, for the log line.
type exchange struct {
	w        http.ResponseWriter
	r        *http.Request
	query    url.Values // as much as could be parsed
	queryErr error      // non-nil if the raw query is malformed
	body     *jsonBody  // the body of a POST endpoint's request; nil for GET endpoints
	numeric  bool       // codes are answered as JSON numbers
	refusal  int        // the HTTP status of a refusal with a code; 0 means 200
	outcome  string     // what was answered, e.g. "code 0"; never a secret
}

func newExchange(w http.ResponseWriter, r *http.Request) *exchange {
	q, err := url.ParseQuery(r.URL.RawQuery)
	return &exchange{w: w, r: r, query: q, queryErr: err, outcome: "no answer"}
}

// ids returns the app id and order number of the request, for the log
// line: from the body of a JSON request, else from the query.
func (x *exchange) ids() (appID, orderNo string) {
	if x.body != nil {
		if appID, _ = x.body.str("appId"); appID == "" {
			appID, _ = x.body.str("webankAppId") // geth5faceid's
		}
		if orderNo, _ = x.body.str("orderNo"); orderNo == "" {
			orderNo = x.query.Get("orderNo")
		}
		return appID, orderNo
	}
	return firstOf(x.query, "app_id", "appId"), firstOf(x.query, "order_no", "orderNo")
}

// reply answers {"code":code,"msg":msg}, as WeBank answers errors: with
// HTTP 200, or the route's refusal status if code is not "0".
func (x *exchange) reply(code, msg string) {
	status := http.StatusOK
	if code != codeOK && x.refusal != 0 {
		status = x.refusal
	}
	x.writeJSON(status, code, msg)
}

// writeJSON answers status with {"code":code,"msg":msg}.
func (x *exchange) writeJSON(status int, code, msg string) {
	x.writeBody(status, code, marshal(errorBody{Code: x.codeValue(code), Msg: msg}))
}

// codeValue returns code as the JSON value to answer: a number if the
// route answers numbers and code is an integer, else a string.
func (x *exchange) codeValue(code string) any {
	if _, err := strconv.ParseInt(code, 10, 64); x.numeric && err == nil {
		return json.Number(code)
	}
	return code
}

// writeBody answers status with body, a JSON object whose code is code.
func (x *exchange) writeBody(status int, code string, body []byte) {
	switch {
	case status == http.StatusOK:
		x.outcome = "code " + code
	case x.refusal == status:
		x.outcome = fmt.Sprintf("status %d code %s", status, code)
	default:
		x.outcome = fmt.Sprintf("status %d", status)
	}
	x.write(status, jsonContentType, body)
}

// write answers status with body, in pieces of writeChunk bytes, each
// flushed, so that big bodies reach the client as a stream.
func (x *exchange) write(status int, contentType string, body []byte) {
	h := x.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.w.WriteHeader(status)
	rc := http.NewResponseController(x.w)
	for len(body) > 0 {
		n := min(len(body), writeChunk)
		if _, err := x.w.Write(body[:n]); err != nil {
			return // the client is gone
		}
		body = body[n:]
		_ = rc.Flush() // not every ResponseWriter can flush; the body is complete anyway
	}
}

type errorBody struct {
	Code any    `json:"code"` // a string, or a json.Number where WeBank answers numbers
	Msg  string `json:"msg"`
}

// marshal returns the JSON encoding of v, which must be one of the fake's
// own answer types; they always encode.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("webanktest: encoding answer: " + err.Error())
	}
	return b
}
