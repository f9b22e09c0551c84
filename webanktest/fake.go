package webanktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Options, and the fake's bounds.
const (
	defaultTokenTTL   = 7200 * time.Second
	defaultTicketTTL  = 3600 * time.Second
	defaultGrace      = 60 * time.Second
	defaultPhotoBytes = 512 << 10

	maxQueries = 1000     // getOcrResult queries kept for OCRQueries
	writeChunk = 32 << 10 // bodies are written and flushed in pieces of this size
)

// Paths of the WeBank endpoints the fake serves.
const (
	tokenPath  = "/api/oauth2/access_token"
	ticketPath = "/api/oauth2/api_ticket"
	ocrPath    = "/api/server/getOcrResult"
)

// Answer codes; see the package doc.
const (
	codeOK             = "0"
	codeInvalidToken   = "15"
	codeBadSignature   = "400101"
	codeBadParameter   = "400102"
	codeBadCredentials = "400103"
	codeNotFound       = "66660020"

	msgOK = "请求成功"
)

const jsonContentType = "application/json;charset=UTF-8"

// Options configures a Fake. Only Apps is required; the zero value of every
// other field selects its default.
type Options struct {
	// Apps maps each known app_id to its secret. Required: at least one
	// app, and no empty app_id or secret.
	Apps map[string]string

	// TokenTTL is the lifetime of an access token, answered as its
	// expire_in in whole seconds. Default: 7200s.
	TokenTTL time.Duration

	// TicketTTL is the lifetime of a SIGN ticket, answered as its
	// expire_in in whole seconds. A ticket also dies with its access
	// token. Default: 3600s.
	TicketTTL time.Duration

	// Grace is how long a superseded access token, and every ticket made
	// from it, stays valid after a newer token is issued for the same app.
	// Default: 60s. A negative value means no grace: a token is invalid
	// from the moment it is superseded.
	Grace time.Duration

	// PhotoBytes is the size of each raw (pre-base64) photo answered for
	// get_file=1. Default: 512 KiB. Values below 6, the size of the JPEG
	// markers each photo starts and ends with, are raised to 6.
	PhotoBytes int

	// Now is the fake's clock, used for every validity decision and the
	// transaction times of token and ticket answers. Default: time.Now.
	// Tests inject their own clock to move time without sleeping.
	Now func() time.Time

	// Logf, if set, is called once per request with a line holding the
	// method, the path, the app_id and order_no parameters and the code,
	// status or fault answered. The line never holds a secret,
	// access_token, ticket, sign, nonce or OCR result field. Logf may be
	// called from several goroutines at once, and, for a request held by a
	// Hang or Delay fault, as late as Close.
	Logf func(format string, args ...any)
}

// Fake is a fake WeBank server. It is an http.Handler serving the endpoints
// described in the package doc, and is safe for concurrent use. Create one
// with New, or with NewServer to also listen on a local port.
type Fake struct {
	now        func() time.Time
	logf       func(format string, args ...any)
	photoBytes int
	creds      *credentials
	nonces     *nonceSet

	tokenCalls    atomic.Int64
	ticketCalls   atomic.Int64
	ocrCalls      atomic.Int64
	badSignatures atomic.Int64
	staleTickets  atomic.Int64
	reusedNonces  atomic.Int64
	badRequests   atomic.Int64

	queriesMu sync.Mutex   // protects queries
	queries   []url.Values // oldest first, at most maxQueries

	faultsMu sync.Mutex // protects faults
	faults   map[Endpoint]Fault

	done      chan struct{} // closed by Close; ends Hang and Delay faults
	closeOnce sync.Once

	testHookHang func() // if set, called when a Hang fault starts waiting
}

// New returns a Fake configured by opts. It panics if opts.Apps is empty or
// holds an empty app_id or secret.
func New(opts Options) *Fake {
	if len(opts.Apps) == 0 {
		panic("webanktest: Options.Apps is empty")
	}
	secrets := make(map[string]string, len(opts.Apps))
	for id, secret := range opts.Apps {
		if id == "" || secret == "" {
			panic("webanktest: Options.Apps holds an empty app_id or secret")
		}
		secrets[id] = secret
	}
	tokenTTL := orDefault(opts.TokenTTL, defaultTokenTTL)
	ticketTTL := orDefault(opts.TicketTTL, defaultTicketTTL)
	grace := orDefault(opts.Grace, defaultGrace)
	if grace < 0 {
		grace = 0
	}
	photoBytes := orDefault(opts.PhotoBytes, defaultPhotoBytes)
	photoBytes = max(photoBytes, minPhotoBytes)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Fake{
		now:        now,
		logf:       opts.Logf,
		photoBytes: photoBytes,
		creds:      newCredentials(secrets, tokenTTL, ticketTTL, grace),
		nonces:     newNonceSet(maxNonces),
		faults:     make(map[Endpoint]Fault),
		done:       make(chan struct{}),
	}
}

// orDefault returns v, or def if v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ServeHTTP answers one request to the fake, as described in the package doc.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := newExchange(w, r)
	defer f.logExchange(x)

	if strings.HasPrefix(r.URL.Path, controlPrefix) {
		f.serveControl(x)
		return
	}
	var (
		ep    Endpoint
		calls *atomic.Int64
		serve func(*exchange)
	)
	switch r.URL.Path {
	case tokenPath:
		ep, calls, serve = TokenEndpoint, &f.tokenCalls, f.serveToken
	case ticketPath:
		ep, calls, serve = TicketEndpoint, &f.ticketCalls, f.serveTicket
	case ocrPath:
		ep, calls, serve = OCREndpoint, &f.ocrCalls, f.serveOCR
	default:
		x.writeJSON(http.StatusNotFound, "404", "not found")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead { // HEAD: as GET, without the body
		w.Header().Set("Allow", "GET, HEAD")
		x.writeJSON(http.StatusMethodNotAllowed, "405", "method not allowed")
		return
	}
	calls.Add(1)
	if ep == OCREndpoint {
		f.recordQuery(x.query)
	}
	if f.injectFault(x, f.fault(ep)) {
		return
	}
	serve(x)
}

// TokenCalls reports how many GET requests reached the access_token
// endpoint, however they were answered, faults included. A request is
// counted on arrival, before it is answered. RotateToken is not counted.
func (f *Fake) TokenCalls() int64 { return f.tokenCalls.Load() }

// TicketCalls reports how many GET requests reached the api_ticket endpoint,
// however they were answered, faults included. A request is counted on
// arrival, before it is answered.
func (f *Fake) TicketCalls() int64 { return f.ticketCalls.Load() }

// OCRCalls reports how many GET requests reached the getOcrResult endpoint,
// however they were answered, faults included. A request is counted on
// arrival, before it is answered.
func (f *Fake) OCRCalls() int64 { return f.ocrCalls.Load() }

// BadSignatures reports how many getOcrResult requests were answered
// "400101" because their sign matched no ticket issued for the app.
func (f *Fake) BadSignatures() int64 { return f.badSignatures.Load() }

// StaleTickets reports how many getOcrResult requests were answered "15"
// because they were signed with a ticket that had expired, or whose access
// token had expired or been superseded past grace.
func (f *Fake) StaleTickets() int64 { return f.staleTickets.Load() }

// ReusedNonces reports how many getOcrResult requests were answered "400101"
// because their nonce had already come with a valid signature.
func (f *Fake) ReusedNonces() int64 { return f.reusedNonces.Load() }

// BadRequests reports how many requests, on any of the three endpoints, were
// answered "400102" for a missing, repeated or malformed parameter.
func (f *Fake) BadRequests() int64 { return f.badRequests.Load() }

// OCRQueries returns copies of the queries of the last 1000 requests that
// reached the getOcrResult endpoint, oldest first, faults included. The
// caller may modify the result.
func (f *Fake) OCRQueries() []url.Values {
	f.queriesMu.Lock()
	defer f.queriesMu.Unlock()
	out := make([]url.Values, len(f.queries))
	for i, q := range f.queries {
		out[i] = copyValues(q)
	}
	return out
}

// IssuedValues returns every access token and SIGN ticket the fake has
// issued and still remembers (the last 1,024 of each per app), so that tests
// can check that none of them leaked into a log or an answer.
func (f *Fake) IssuedValues() []string { return f.creds.issued() }

// RotateToken issues a new access token for appID as if another party had
// called the access_token endpoint right now, superseding the current token
// exactly as that call would. It is not counted in TokenCalls. It panics if
// appID is not one of Options.Apps.
func (f *Fake) RotateToken(appID string) {
	if !f.creds.known(appID) {
		panic("webanktest: RotateToken of unknown app_id " + strconv.Quote(appID))
	}
	f.creds.issueToken(appID, f.now())
}

// Close ends, without an answer, every request held by a Hang or Delay
// fault, and makes such faults end at once from then on. Other requests are
// still answered. Close is idempotent and safe for concurrent use; call it
// before shutting down an http.Server that serves f, so that the shutdown
// need not wait for hung requests.
func (f *Fake) Close() {
	f.closeOnce.Do(func() { close(f.done) })
}

func (f *Fake) recordQuery(q url.Values) {
	c := copyValues(q)
	f.queriesMu.Lock()
	defer f.queriesMu.Unlock()
	f.queries = appendBounded(f.queries, c, maxQueries)
}

func (f *Fake) logExchange(x *exchange) {
	if f.logf == nil {
		return
	}
	line := x.r.Method + " " + x.r.URL.Path
	if id := firstOf(x.query, "app_id", "appId"); id != "" {
		line += " app_id=" + strconv.Quote(id)
	}
	if no := x.query.Get("order_no"); no != "" {
		line += " order_no=" + strconv.Quote(no)
	}
	f.logf("%s: %s", line, x.outcome)
}

// firstOf returns the first value of the first of keys present in q.
func firstOf(q url.Values, keys ...string) string {
	for _, k := range keys {
		if v := q.Get(k); v != "" {
			return v
		}
	}
	return ""
}

func copyValues(q url.Values) url.Values {
	c := make(url.Values, len(q))
	for k, vs := range q {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// appendBounded appends v to s and drops the oldest elements so that at most
// limit remain.
func appendBounded[T any](s []T, v T, limit int) []T {
	s = append(s, v)
	if over := len(s) - limit; over > 0 {
		s = append(s[:0], s[over:]...)
	}
	return s
}

// exchange is one request being answered. It holds the parsed query and
// remembers what was answered, for the log line.
type exchange struct {
	w        http.ResponseWriter
	r        *http.Request
	query    url.Values // as much as could be parsed
	queryErr error      // non-nil if the raw query is malformed
	outcome  string     // what was answered, e.g. "code 0"; never a secret
}

func newExchange(w http.ResponseWriter, r *http.Request) *exchange {
	q, err := url.ParseQuery(r.URL.RawQuery)
	return &exchange{w: w, r: r, query: q, queryErr: err, outcome: "no answer"}
}

// reply answers HTTP 200 with {"code":code,"msg":msg}, as WeBank answers
// errors.
func (x *exchange) reply(code, msg string) {
	x.writeJSON(http.StatusOK, code, msg)
}

// writeJSON answers status with {"code":code,"msg":msg}.
func (x *exchange) writeJSON(status int, code, msg string) {
	x.writeBody(status, code, marshal(errorBody{Code: code, Msg: msg}))
}

// writeBody answers status with body, a JSON object whose code is code.
func (x *exchange) writeBody(status int, code string, body []byte) {
	if status == http.StatusOK {
		x.outcome = "code " + code
	} else {
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
	Code string `json:"code"`
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
