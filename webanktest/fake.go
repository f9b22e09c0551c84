package webanktest

import (
	"net/http"
	"net/url"
	"slices"
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
	defaultNonceTTL   = 120 * time.Second
	defaultPhotoBytes = 512 << 10

	maxRequests = 1000     // requests kept per recorded endpoint for Requests
	writeChunk  = 32 << 10 // bodies are written and flushed in pieces of this size
)

// Paths of the WeBank endpoints the fake serves, for Calls and Requests.
const (
	PathToken      = "/api/oauth2/access_token"
	PathTicket     = "/api/oauth2/api_ticket"
	PathOCR        = "/api/server/getOcrResult"
	PathBankCard   = "/api/server/getBankCardOcrResult"
	PathSync       = "/api/server/sync"
	PathFaceRecord = "/api/v2/base/queryfacerecord"

	PathAdvFaceID   = "/api/server/getAdvFaceId"
	PathFaceID      = "/api/server/getfaceid"
	PathPlusFaceID  = "/api/server/getPlusFaceId"
	PathWillFaceID  = "/api/server/getWillFaceId"
	PathH5FaceID    = "/api/server/h5/geth5faceid"
	PathPhotoInfo   = "/api/v2/base/queryphotoinfo"
	PathBankCardOCR = "/api/paas/bankcardocrapp"
	PathLogin       = "/api/web/login"
	PathSDKLogin    = "/api/sdk/login"
)

// JSON body limits: queries carry a few short values, launches a photo of
// about 1 MB in base64, the bank-card upload an image of a few MB.
const (
	smallBody = 1 << 20
	photoBody = 8 << 20
)

// Answer codes; see the package doc.
const (
	codeOK             = "0"
	codeInvalidToken   = "15"
	codeBadSignature   = "400101"
	codeBadParameter   = "400102"
	codeBadCredentials = "400103"
	codeNotFound       = "66660020" // getOcrResult and getBankCardOcrResult
	codeFaceNotFound   = "66660011" // sync and queryfacerecord

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

	// NonceTTL is the lifetime of a NONCE ticket, answered as its
	// expire_in in whole seconds. A NONCE ticket also dies with its access
	// token, and once used. Default: 120s.
	NonceTTL time.Duration

	// Grace is how long a superseded access token, and every ticket made
	// from it, stays valid after a newer token is issued for the same app.
	// Default: 60s. A negative value means no grace: a token is invalid
	// from the moment it is superseded.
	Grace time.Duration

	// PhotoBytes is the size of each raw (pre-base64) photo or video
	// answered for get_file (getFile). Default: 512 KiB. Values below 6,
	// the size of the JPEG markers each photo starts and ends with, are
	// raised to 6.
	PhotoBytes int

	// OptimalDomain is the host[:port] that the faceId APIs answer as
	// optimalDomain, where the H5 login page is to be found. Default: the
	// address the fake listens on (NewServer's, or else the local address
	// of the connection the request came in on), never the request's Host
	// header, which a proxy passes through from its client.
	OptimalDomain string

	// Now is the fake's clock, used for every validity decision and the
	// transaction times of token and ticket answers. Default: time.Now.
	// Tests inject their own clock to move time without sleeping.
	Now func() time.Time

	// Logf, if set, is called once per request with a line holding the
	// method, the path, the app id and order number (from the query, or
	// for the POST endpoints from the body) and the code, status, redirect
	// or fault answered. The line never holds a secret, access_token,
	// ticket, sign, nonce or result field, nor a name, ID number, photo,
	// user id or callback url. Logf may be called from several goroutines at
	// once, and, for a request held by a Hang or Delay fault, as late as
	// Close.
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
	nonces     *recentSet // app_id + nonce, shared by every endpoint signed with a SIGN ticket
	faceIDs    *recentSet // app_id, order number and faceId of every faceId issued
	routes     map[string]route
	nonceRoute route                      // the NONCE ticket endpoint: PathTicket with type=NONCE
	calls      map[Endpoint]*atomic.Int64 // one per route; never modified after New

	optimalDomain string // set by New, or by newServer before it serves

	badSignatures atomic.Int64
	staleTickets  atomic.Int64
	reusedNonces  atomic.Int64
	badRequests   atomic.Int64
	nonceTickets  atomic.Int64
	logins        atomic.Int64
	sdkLogins     atomic.Int64

	requestsMu sync.Mutex              // protects requests
	requests   map[string][]url.Values // by path of a recorded endpoint; oldest first, each at most maxRequests

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
	nonceTTL := orDefault(opts.NonceTTL, defaultNonceTTL)
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
	f := &Fake{
		now:        now,
		logf:       opts.Logf,
		photoBytes: photoBytes,
		creds:      newCredentials(secrets, tokenTTL, ticketTTL, nonceTTL, grace),
		nonces:     newRecentSet(maxNonces),
		faceIDs:    newRecentSet(maxFaceIDs),
		requests:   make(map[string][]url.Values),
		faults:     make(map[Endpoint]Fault),
		done:       make(chan struct{}),

		optimalDomain: opts.OptimalDomain,
	}
	f.routes = map[string]route{
		PathToken:      {ep: TokenEndpoint, serve: f.serveToken},
		PathTicket:     {ep: TicketEndpoint, serve: f.serveTicket},
		PathOCR:        {ep: OCREndpoint, serve: f.serveOCR, record: true},
		PathBankCard:   {ep: BankCardEndpoint, serve: f.serveBankCard, record: true},
		PathSync:       {ep: SyncEndpoint, serve: f.serveSync, record: true},
		PathFaceRecord: {ep: FaceRecordEndpoint, serve: f.serveFaceRecord, record: true, maxBody: smallBody},

		PathAdvFaceID:   {ep: AdvFaceIDEndpoint, serve: f.serveFaceID, record: true, maxBody: photoBody},
		PathFaceID:      {ep: FaceIDEndpoint, serve: f.serveFaceID, record: true, maxBody: photoBody},
		PathPlusFaceID:  {ep: PlusFaceIDEndpoint, serve: f.serveFaceID, record: true, maxBody: photoBody},
		PathWillFaceID:  {ep: WillFaceIDEndpoint, serve: f.serveFaceID, record: true, maxBody: photoBody},
		PathH5FaceID:    {ep: H5FaceIDEndpoint, serve: f.serveH5FaceID, record: true, maxBody: photoBody},
		PathPhotoInfo:   {ep: PhotoInfoEndpoint, serve: f.servePhotoInfo, record: true, maxBody: smallBody, numeric: true},
		PathBankCardOCR: {ep: BankCardOCREndpoint, serve: f.serveBankCardOCR, record: true, maxBody: photoBody},
		PathLogin:       {ep: LoginEndpoint, serve: f.serveLogin, record: true, getOnly: true, refusal: http.StatusBadRequest},
		PathSDKLogin:    {ep: SDKLoginEndpoint, serve: f.serveSDKLogin, record: true, maxBody: smallBody},
	}
	f.nonceRoute = route{ep: NonceEndpoint, serve: f.serveNonceTicket}
	f.calls = make(map[Endpoint]*atomic.Int64, len(f.routes)+1)
	for _, rt := range f.routes {
		f.calls[rt.ep] = new(atomic.Int64)
	}
	f.calls[f.nonceRoute.ep] = new(atomic.Int64)
	return f
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
	rt, ok := f.routeOf(x)
	if !ok {
		x.writeJSON(http.StatusNotFound, "404", "not found")
		return
	}
	if !rt.allows(r.Method) {
		w.Header().Set("Allow", rt.allow())
		x.writeJSON(http.StatusMethodNotAllowed, "405", "method not allowed")
		return
	}
	f.calls[rt.ep].Add(1)
	x.numeric, x.refusal = rt.numeric, rt.refusal
	if rt.maxBody > 0 {
		x.body = readJSONBody(w, r, rt.maxBody) // before any fault, so that faulted requests are recorded too
	}
	if rt.record {
		f.recordRequest(r.URL.Path, x.recorded())
	}
	if f.injectFault(x, f.fault(rt.ep)) {
		return
	}
	rt.serve(x)
}

// routeOf returns the route of x's request: by path, except that a query
// with the single type NONCE asks the api_ticket path for a NONCE ticket.
func (f *Fake) routeOf(x *exchange) (route, bool) {
	rt, ok := f.routes[x.r.URL.Path]
	if ok && x.r.URL.Path == PathTicket && x.queryErr == nil && slices.Equal(x.query["type"], []string{"NONCE"}) {
		return f.nonceRoute, true
	}
	return rt, ok
}

// route is how the fake serves one WeBank endpoint.
type route struct {
	ep      Endpoint
	serve   func(*exchange)
	record  bool  // its requests are kept for Requests; those of token and tickets hold secrets
	maxBody int64 // if not 0, POST with a JSON body of at most maxBody bytes; otherwise GET with a query
	getOnly bool  // GET but not HEAD, because answering uses something up
	numeric bool  // every code is answered as a JSON number
	refusal int   // the HTTP status of a refusal with a code; 0 means 200, as WeBank's APIs answer
}

// allows reports whether r takes method. HEAD is answered as GET, without
// the body, unless getOnly.
func (r route) allows(method string) bool {
	switch {
	case r.maxBody > 0:
		return method == http.MethodPost
	case r.getOnly:
		return method == http.MethodGet
	}
	return method == http.MethodGet || method == http.MethodHead
}

// allow returns the methods r takes, as an Allow header.
func (r route) allow() string {
	switch {
	case r.maxBody > 0:
		return http.MethodPost
	case r.getOnly:
		return http.MethodGet
	}
	return "GET, HEAD"
}

// IssuedValues returns every access token, SIGN ticket and NONCE ticket the
// fake has issued and still remembers (the last 1,024 tokens and SIGN
// tickets and 16,384 NONCE tickets per app), so that tests can check that
// none of them leaked into a log or an answer.
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

func (f *Fake) logExchange(x *exchange) {
	if f.logf == nil {
		return
	}
	line := x.r.Method + " " + x.r.URL.Path
	appID, orderNo := x.ids()
	if appID != "" {
		line += " app_id=" + strconv.Quote(appID)
	}
	if orderNo != "" {
		line += " order_no=" + strconv.Quote(orderNo)
	}
	f.logf("%s: %s", line, x.outcome)
}
