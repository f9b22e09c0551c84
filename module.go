// Package webanksign is a Caddy HTTP handler that signs requests to WeBank's
// (Tencent Cloud FaceID) server APIs, starting with the ID-card OCR result
// query getOcrResult, so that legacy applications can call them without ever
// holding the app secret. See README.md.
package webanksign

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("webank_sign", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("webank_sign", httpcaddyfile.Before, "reverse_proxy")
}

const (
	defaultBaseURL      = "https://idasc.webank.com"
	defaultVersion      = "1.0.0"
	defaultRefresh      = 20 * time.Minute // WeBank asks for a new token about every 20 minutes
	defaultFetchTimeout = 10 * time.Second
)

// WeBank's answers that mean "this ticket (or its access token) is no longer
// valid" in public clients; see the protocol notes, section 4.
var defaultRetryCodes = []string{"15", "400101"}

// Handler signs requests to WeBank's server APIs that use the five-value
// SIGN scheme, so that a following reverse_proxy can forward them. It adds
// app_id, a fresh 32-character nonce, version, and the SHA1 sign over
// app_id, order_no, version, the SIGN ticket and the nonce. It obtains the
// access token and the SIGN ticket itself, caches them per app, and
// refreshes them before they expire.
//
// Requests come in one of two shapes, chosen by mode (by default from the
// path, see Mode):
//
//   - query: GET or HEAD with the parameters in the query string, as for
//     getOcrResult, getBankCardOcrResult and sync. The client's order_no must
//     be 1 to 32 characters of [A-Za-z0-9_-].
//   - json: POST with a JSON object body, as for queryfacerecord; the module
//     reads the body (up to max_body_size), signs it, and passes on the new
//     body with its Content-Length. The field names are appId, orderNo,
//     nonce, version and sign, and orderNo is also put in the URL.
//
// What the client sends for sign, nonce and version is discarded. A handler
// signs for one app (app_id and secret), or for several (apps), in which
// case the client names its app with app_id (appId in a JSON body). Other
// parameters pass through. Bad requests, other methods, HTTPS proxying
// (CONNECT), and requests that cannot be signed because no ticket can be had
// are answered here with a JSON body {"code": "…", "msg": "…"} and are not
// forwarded.
//
// If WeBank answers a signed request with one of retry_codes, the ticket is
// dropped and the request is signed again with a new ticket and nonce and
// retried once; the client sees only the final answer.
type Handler struct {
	// The WeBank app ID (WBappid) requests are signed for. Required unless
	// apps is given. Accepts placeholders, expanded once at provision time.
	AppID string `json:"app_id,omitempty"`

	// The app secret, used only to obtain access tokens. Required with
	// app_id. Give it as a placeholder, such as {env.WEBANK_SECRET} or
	// {file./run/secrets/webank}, so that it stays out of the config; it is
	// expanded once, at provision time, and never logged. A literal secret
	// draws a warning.
	Secret string `json:"secret,omitempty"`

	// Several apps, instead of app_id and secret: the client picks one by
	// sending its app_id (appId in a JSON body). A request without one gets
	// 400, one with an app_id not listed 403.
	Apps []AppCredentials `json:"apps,omitempty"`

	// Where access tokens and SIGN tickets are fetched from: the scheme and
	// host of WeBank's oauth2 endpoints. Default: https://idasc.webank.com.
	// Accepts placeholders.
	BaseURL string `json:"base_url,omitempty"`

	// The API version sent and signed. Default: 1.0.0. Accepts placeholders.
	Version string `json:"version,omitempty"`

	// How often the access token and SIGN ticket are replaced, ahead of their
	// expiry, as a duration string such as "20m". They are also replaced
	// earlier if WeBank's expire_in says so. Default: 20m. Accepts placeholders.
	Refresh string `json:"refresh,omitempty"`

	// The longest a token+ticket fetch may take before requests waiting on it
	// are answered 502, as a duration string. Default: 10s. Accepts placeholders.
	FetchTimeout string `json:"fetch_timeout,omitempty"`

	// WeBank answer codes that mean the ticket is no longer valid: the request
	// is signed again with a new ticket and retried once. Default: ["15",
	// "400101"]. ["off"] disables the retry. Accepts placeholders.
	RetryCodes []string `json:"retry_codes,omitempty"`

	// The shape of the requests signed: "query" (GET, parameters in the
	// query string) or "json" (POST, a JSON object body). Default: json for
	// the paths of WeBank's JSON APIs (/api/v2/base/queryfacerecord,
	// /api/server/getOcrCertId, /api/paas/easyface, /api/paas/idcardocrapp),
	// query for every other path. A request of the other shape gets 400.
	Mode string `json:"mode,omitempty"`

	// Whether clients may ask for photos and videos: "allow" (the default)
	// or "deny". With deny, a request with a get_file (getFile in a JSON
	// body) other than 0 is refused with 403 photos_denied, not forwarded:
	// it is refused rather than stripped, so that an app never takes a
	// missing photo for a result without one.
	Photos string `json:"photos,omitempty"`

	// The largest JSON body accepted, in bytes; a larger one gets 413.
	// Default: 1 MiB, ample for the result queries; raise it for the APIs
	// that upload images.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// The hosts for which absolute-form requests, as clients that use the
	// sidecar as an HTTP proxy send them (GET http://idasc.webank.com/...),
	// are signed, as host or host:port. Others get 403. Default: the host
	// of base_url. Accepts placeholders.
	ProxyHosts []string `json:"proxy_hosts,omitempty"`

	// Where the handler is defined, such as "Caddyfile:12": set by the
	// Caddyfile adapter, and used only to name places in config errors.
	Source string `json:"source,omitempty"`

	tenants    []*tenant          // the apps signed for; one unless Apps is used
	byID       map[string]*tenant // with Apps: the tenants by app_id
	baseURL    string
	version    string
	refresh    time.Duration
	timeout    time.Duration
	retryCodes map[string]bool
	mode       string // "", modeQuery or modeJSON
	denyFiles  bool
	maxBody    int64
	proxyHosts map[string]bool // normalized by normalHost
	cache      *ticketCache
	logger     *zap.Logger
}

// AppCredentials is one app of a handler that signs for several.
type AppCredentials struct {
	// The WeBank app ID. Accepts placeholders.
	AppID string `json:"app_id"`
	// The app secret; see Handler.Secret. Accepts placeholders.
	Secret string `json:"secret"`
}

// tenant is one app a handler signs for, with its place in the ticket cache.
type tenant struct {
	creds    credentials // expanded; creds.secret is never logged
	key      string      // the app's key in the ticket cache
	reg      *appConfig  // the handler's registration there
	entry    atomic.Pointer[entry]
	signed   prometheus.Counter // requests_total for this app's signed requests
	orderKey []byte             // keys the order_no hashes in debug logs
}

// The request shapes; see Handler.Mode.
const (
	modeQuery = "query"
	modeJSON  = "json"
)

// jsonAPIs are the paths of WeBank's APIs signed over a JSON body; see the
// protocol notes, section 6.
var jsonAPIs = map[string]bool{
	"/api/v2/base/queryfacerecord": true,
	"/api/server/getOcrCertId":     true,
	"/api/paas/easyface":           true,
	"/api/paas/idcardocrapp":       true,
}

const defaultMaxBodySize = 1 << 20

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webank_sign",
		New: func() caddy.Module { return new(Handler) },
	}
}

var (
	// WeBank's app IDs are short (IDA + 5 digits, TIDA + 4); secrets are 64
	// characters. An app_id that long is a secret in the wrong place.
	appIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
	versionPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
)

// Provision sets up h: it expands placeholders, applies defaults, parses
// values and joins the shared ticket cache. It does not talk to WeBank.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	expand := func(option, val, def string) (string, error) {
		if val == "" {
			return def, nil
		}
		out, err := repl.ReplaceOrErr(val, true, true)
		if err != nil {
			return "", fmt.Errorf("%s: expanding placeholders: %w", option, err)
		}
		return out, nil
	}
	base, err := expand("base_url", h.BaseURL, defaultBaseURL)
	if err != nil {
		return err
	}
	if h.baseURL, err = parseBaseURL(base); err != nil {
		return fmt.Errorf("base_url: %w", err)
	}
	if h.version, err = expand("version", h.Version, defaultVersion); err != nil {
		return err
	}
	if h.refresh, err = parseDuration("refresh", h.Refresh, defaultRefresh, expand); err != nil {
		return err
	}
	if h.timeout, err = parseDuration("fetch_timeout", h.FetchTimeout, defaultFetchTimeout, expand); err != nil {
		return err
	}
	codes := h.RetryCodes
	if len(codes) == 0 {
		codes = defaultRetryCodes
	}
	h.retryCodes = make(map[string]bool, len(codes))
	for _, c := range codes {
		code, err := expand("retry_codes", c, "")
		if err != nil {
			return err
		}
		h.retryCodes[code] = true
	}
	if h.retryCodes["off"] {
		if len(h.retryCodes) > 1 {
			return errors.New("retry_codes: 'off' cannot be combined with codes")
		}
		h.retryCodes = nil
	}
	if u, _ := url.Parse(h.baseURL); u != nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		h.logger.Warn("base_url uses plain http: the secret and the access token cross the network unencrypted",
			zap.String("base_url", h.baseURL))
	}
	if err := h.provisionRequests(expand); err != nil {
		return err
	}

	appVal, err := ctx.App("webank_sign")
	if err != nil {
		return fmt.Errorf("loading the webank_sign app: %w", err)
	}
	app := appVal.(*App)
	h.cache = app.cache
	place := app.place(h.Source)
	creds, err := h.credentials(expand)
	if err != nil {
		return err
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	var emit func(string, map[string]any)
	if app, err := ctx.App("events"); err == nil {
		events := app.(*caddyevents.App)
		emit = func(name string, data map[string]any) { events.Emit(ctx, name, data) }
	}
	for _, c := range creds {
		if err := app.claim(c.appID, c.secret, place); err != nil {
			return err
		}
		store, err := newTicketStore(ctx.Storage(), c)
		if err != nil {
			return fmt.Errorf("setting up ticket storage: %w", err)
		}
		if others := h.cache.otherBaseURLs(c.appID, c.baseURL); len(others) > 0 {
			h.logger.Warn("this app_id is also configured with another base_url; each base_url fetches its own token, and WeBank may invalidate one with the other",
				zap.String("app_id", c.appID), zap.String("base_url", c.baseURL), zap.Strings("other_base_urls", others))
		}
		tn := &tenant{creds: c, key: appKey(c), signed: metrics.requests.WithLabelValues(c.appID, "signed", "")}
		if tn.orderKey, err = hkdf.Key(sha256.New, []byte(c.secret), nil, "webank_sign order_no log hash", 32); err != nil {
			return err
		}
		tn.reg = h.cache.register(tn.key, appConfig{
			creds:   c,
			refresh: h.refresh,
			timeout: h.timeout,
			store:   store,
			poll:    min(maxStoragePoll, h.refresh/4),
			logger:  h.logger.Named("tickets"),
			emit:    emit,
		})
		h.tenants = append(h.tenants, tn)
	}
	if len(h.Apps) > 0 {
		h.byID = make(map[string]*tenant, len(h.tenants))
		for _, tn := range h.tenants {
			h.byID[tn.creds.appID] = tn
		}
	}
	return nil
}

// credentials expands the apps' credentials and checks them.
func (h *Handler) credentials(expand func(option, val, def string) (string, error)) ([]credentials, error) {
	one := func(option string, appID, secret string) (credentials, error) {
		c := credentials{baseURL: h.baseURL}
		var err error
		if appID == "" {
			return c, fmt.Errorf("%sapp_id is required", option)
		}
		if c.appID, err = expand(option+"app_id", appID, ""); err != nil {
			return c, err
		}
		if !appIDPattern.MatchString(c.appID) {
			if len(c.appID) > 16 { // perhaps the secret, given in its place: not shown
				return c, fmt.Errorf("%sapp_id: a value of %d characters is not 1 to 32 characters of [A-Za-z0-9_.-]; the value is not shown, in case it is the secret in the wrong place", option, len(c.appID))
			}
			return c, fmt.Errorf("%sapp_id: %q is not 1 to 32 characters of [A-Za-z0-9_.-]", option, c.appID)
		}
		if secret == "" {
			return c, fmt.Errorf("%ssecret is required", option)
		}
		if c.secret, err = expand(option+"secret", secret, ""); err != nil {
			if !isPlaceholder(secret) {
				// A literal secret with braces in it: the replacer's error
				// would quote part of it.
				return c, fmt.Errorf("%ssecret: it has braces but is not one {…} placeholder; the value is not shown", option)
			}
			return c, err
		}
		if c.secret == "" {
			return c, fmt.Errorf("%ssecret: is empty", option)
		}
		if !isPlaceholder(secret) {
			h.logger.Warn("secret is written into the config, where the admin API, `caddy adapt` and Caddy's debug log of the config show it; give it as a placeholder such as {env.WEBANK_SECRET} or {file./run/secrets/webank}",
				zap.String("app_id", c.appID))
		}
		return c, nil
	}
	if len(h.Apps) == 0 {
		c, err := one("", h.AppID, h.Secret)
		if err != nil {
			return nil, err
		}
		return []credentials{c}, nil
	}
	if h.AppID != "" || h.Secret != "" {
		return nil, errors.New("app_id and secret cannot be combined with apps: give every app in apps")
	}
	out := make([]credentials, 0, len(h.Apps))
	for i, a := range h.Apps {
		c, err := one(fmt.Sprintf("apps[%d].", i), a.AppID, a.Secret)
		if err != nil {
			return nil, err
		}
		for _, prev := range out {
			if prev.appID == c.appID {
				return nil, fmt.Errorf("apps[%d]: app_id %s is listed more than once", i, c.appID)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// provisionRequests sets up the options about the requests accepted: mode,
// photos, max_body_size and proxy_hosts.
func (h *Handler) provisionRequests(expand func(option, val, def string) (string, error)) error {
	switch h.Mode {
	case "", modeQuery, modeJSON:
		h.mode = h.Mode
	default:
		return fmt.Errorf("mode: %q is not query or json", h.Mode)
	}
	switch h.Photos {
	case "", "allow":
	case "deny":
		h.denyFiles = true
	default:
		return fmt.Errorf("photos: %q is not allow or deny", h.Photos)
	}
	switch {
	case h.MaxBodySize < 0:
		return fmt.Errorf("max_body_size: must be positive, not %d", h.MaxBodySize)
	case h.MaxBodySize == 0:
		h.maxBody = defaultMaxBodySize
	default:
		h.maxBody = h.MaxBodySize
	}
	hosts := h.ProxyHosts
	if len(hosts) == 0 {
		hosts = []string{h.baseURL}
	}
	h.proxyHosts = make(map[string]bool, len(hosts))
	for _, v := range hosts {
		host, err := expand("proxy_hosts", v, "")
		if err != nil {
			return err
		}
		if u, err := url.Parse(host); err == nil && u.Scheme != "" && u.Host != "" { // base_url
			host = u.Host
		}
		// Proxy clients send http://h/…, and rarely https://h/…: a host is
		// allowed in both, with its port normalized for each.
		for _, scheme := range []string{"http", "https"} {
			n, ok := normalHost(scheme, host)
			if !ok {
				return fmt.Errorf("proxy_hosts: %q is not a host or host:port", v)
			}
			h.proxyHosts[n] = true
		}
	}
	return nil
}

// normalHost returns host (host or host:port, as in a URL) in lowercase and
// without the scheme's default port, and whether it is well-formed.
func normalHost(scheme, host string) (string, bool) {
	host = strings.ToLower(host)
	name, port, err := net.SplitHostPort(host)
	if err != nil {
		name, port = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ""
	}
	if name == "" || strings.ContainsAny(name, "/?#@ ") {
		return "", false
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return "", false
		}
	}
	if port == "" || scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		return name, true
	}
	return net.JoinHostPort(name, port), true
}

// parseDuration expands and parses a duration option.
func parseDuration(option, val string, def time.Duration, expand func(option, val, def string) (string, error)) (time.Duration, error) {
	s, err := expand(option, val, "")
	if err != nil || s == "" {
		return def, err
	}
	d, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: parsing %q: %v", option, s, err)
	}
	return d, nil
}

// parseBaseURL checks that s is an http(s) URL with a host and nothing after
// its path, and returns it without a trailing slash.
func parseBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("parsing %q: %v", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: scheme must be https or http", s)
	case u.Host == "":
		return "", fmt.Errorf("%q: no host", s)
	case u.User != nil:
		return "", fmt.Errorf("%q: must not hold user information", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("%q: must not have a query or fragment", s)
	}
	// One spelling per host, so that one app at one host is one app in the
	// cache, whatever the case or the default port written.
	u.Host = strings.ToLower(u.Host)
	if u.Scheme == "https" {
		u.Host = strings.TrimSuffix(u.Host, ":443")
	} else {
		u.Host = strings.TrimSuffix(u.Host, ":80")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// isPlaceholder reports whether s is exactly one placeholder, such as
// {env.WEBANK_SECRET}.
func isPlaceholder(s string) bool {
	return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' && strings.Count(s, "{") == 1 && strings.Count(s, "}") == 1
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate checks that h is complete and sane. The credentials are checked
// as they are expanded, by Provision.
func (h *Handler) Validate() error {
	switch {
	case !versionPattern.MatchString(h.version):
		return fmt.Errorf("version: %q is not 1 to 32 characters of [A-Za-z0-9_.-]", h.version)
	case h.refresh < time.Second:
		return fmt.Errorf("refresh: must be at least 1s, not %v", h.refresh)
	case h.timeout <= 0:
		return fmt.Errorf("fetch_timeout: must be positive, not %v", h.timeout)
	}
	for code := range h.retryCodes {
		if code == "" || code == "0" {
			return fmt.Errorf("retry_codes: %q is not an error code", code)
		}
	}
	return nil
}

// Cleanup releases h's registrations in the ticket cache.
func (h *Handler) Cleanup() error {
	for _, tn := range h.tenants {
		h.cache.unregister(tn.key, tn.reg)
	}
	h.tenants = nil // a second Cleanup must not release another handler's registration
	return nil
}

// ServeHTTP signs r and passes it to next, or answers it with a JSON error.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method == http.MethodConnect {
		w.Header().Set("Allow", "GET, HEAD, POST")
		return h.reject(w, nil, errConnect)
	}
	if r.URL.Host != "" { // absolute-form: a client that uses the sidecar as its HTTP proxy
		if host, ok := normalHost(r.URL.Scheme, r.URL.Host); !ok || !h.proxyHosts[host] {
			return h.reject(w, nil, errProxyHost)
		}
	}
	mode := h.mode
	if mode == "" {
		mode = modeQuery
		if jsonAPIs[r.URL.Path] {
			mode = modeJSON
		}
	}
	if mode == modeJSON {
		return h.serveJSON(w, r, next)
	}
	return h.serveQuery(w, r, next)
}

// The errors of requests that are refused whatever their app.
var (
	errConnect        = &queryError{405, "connect_not_supported", "HTTPS proxying (CONNECT) cannot be signed: the sidecar would see only encrypted bytes. Point the app at the sidecar's own URL, such as http://127.0.0.1:8080/api/server/getOcrResult, instead of using it as an HTTPS proxy"}
	errProxyHost      = &queryError{403, "proxy_host_not_allowed", "this sidecar signs requests for WeBank's host only (see proxy_hosts): it is not an open proxy"}
	errQueryMethod    = &queryError{405, "method_not_allowed", "this route signs GET and HEAD requests only"}
	errQueryShape     = &queryError{400, "wrong_shape", "this route signs GET requests with the parameters in the query string (mode query), not a POST body"}
	errJSONMethod     = &queryError{405, "method_not_allowed", "this route signs POST requests with a JSON body only"}
	errJSONShape      = &queryError{400, "wrong_shape", "this route signs POST requests with a JSON body (mode json), not parameters in the query string"}
	errBodyNotAllowed = &queryError{400, "body_not_allowed", "GET and HEAD requests to WeBank's query APIs carry no body"}
	errContentType    = &queryError{415, "content_type_unsupported", "the body must be JSON, sent with Content-Type: application/json"}
	errContentEnc     = &queryError{415, "content_encoding_unsupported", "the body must not be compressed (no Content-Encoding)"}
	errBodyTooLarge   = &queryError{413, "body_too_large", "the body is larger than this route accepts (see max_body_size)"}
	errBodyUnreadable = &queryError{400, "body_unreadable", "the body could not be read to its end"}
	errOrderNoURL     = &queryError{400, "order_no_mismatch", "orderNo in the URL differs from orderNo in the body"}
	errOrderNoURLRep  = &queryError{400, "order_no_repeated", "orderNo is given more than once in the URL"}
	errFilesDenied    = &queryError{403, "photos_denied", "this route may not fetch photos or videos (photos deny): leave out get_file, or set it to 0"}
)

// serveQuery signs a request whose parameters are in the query string.
func (h *Handler) serveQuery(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if r.Method == http.MethodPost {
			return h.reject(w, nil, errQueryShape)
		}
		w.Header().Set("Allow", "GET, HEAD")
		return h.reject(w, nil, errQueryMethod)
	}
	if r.ContentLength != 0 { // -1: chunked
		return h.reject(w, nil, errBodyNotAllowed)
	}
	q, err := clientQuery(r.URL.RawQuery)
	if err != nil {
		return h.reject(w, nil, err)
	}
	tn, err := h.pick(q.appID)
	if err != nil {
		return h.reject(w, nil, err)
	}
	if h.denyFiles && q.filesRequested() {
		return h.reject(w, tn, errFilesDenied)
	}
	// r.URL carries the signed query to the next handler; r.RequestURI stays
	// as the client sent it, since reverse_proxy logs it. Restore the client's
	// query afterwards, so that nothing later (logs, placeholders) sees sign.
	clientRaw := r.URL.RawQuery
	defer func() { r.URL.RawQuery = clientRaw }()
	return h.forward(w, r, next, tn, q.orderNo, func(t *ticket) {
		r.URL.RawQuery = signQuery(&q, tn.creds.appID, h.version, t.value)
	})
}

// serveJSON signs a request whose parameters are in a JSON body.
func (h *Handler) serveJSON(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != http.MethodPost {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return h.reject(w, nil, errJSONShape)
		}
		w.Header().Set("Allow", "POST")
		return h.reject(w, nil, errJSONMethod)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return h.reject(w, nil, errContentType)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return h.reject(w, nil, errContentEnc)
	}
	if r.ContentLength > h.maxBody {
		return h.reject(w, nil, errBodyTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok { // Caddy's request_body max_size
			return h.reject(w, nil, errBodyTooLarge)
		}
		if r.Context().Err() != nil {
			return caddyhttp.Error(http.StatusBadRequest, err) // the client went away
		}
		return h.reject(w, nil, errBodyUnreadable)
	}
	if int64(len(data)) > h.maxBody {
		return h.reject(w, nil, errBodyTooLarge)
	}
	b, err := parseBody(data)
	if err != nil {
		return h.reject(w, nil, err)
	}
	tn, err := h.pick(appIDs{value: b.appID, given: b.hasAppID})
	if err != nil {
		return h.reject(w, nil, err)
	}
	// WeBank wants orderNo in the URL too, to track latency.
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return h.reject(w, tn, errQueryMalformed)
	}
	clientRaw := r.URL.RawQuery
	switch orderNos := vals[fieldOrderNo]; {
	case len(orderNos) > 1:
		return h.reject(w, tn, errOrderNoURLRep)
	case len(orderNos) == 1 && orderNos[0] != b.orderNo:
		return h.reject(w, tn, errOrderNoURL)
	case len(orderNos) == 0:
		if r.URL.RawQuery != "" {
			r.URL.RawQuery += "&"
		}
		r.URL.RawQuery += fieldOrderNo + "=" + b.orderNo // an order number needs no escaping
	}
	defer func() { r.URL.RawQuery = clientRaw }()
	if h.denyFiles && (b.filesRequested() || urlFilesRequested(vals)) {
		return h.reject(w, tn, errFilesDenied)
	}
	// The body is read: it goes on whole, with its length, and the client's
	// Expect: 100-continue has been answered already.
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	r.Header.Del("Expect")
	return h.forward(w, r, next, tn, b.orderNo, func(t *ticket) {
		body := signBody(&b, tn.creds.appID, h.version, t.value)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	})
}

// urlFilesRequested reports whether a JSON request's URL query asks for
// photos or videos too.
func urlFilesRequested(vals url.Values) bool {
	for k, vs := range vals {
		if isGetFile(k) && slices.ContainsFunc(vs, func(v string) bool { return v != "0" }) {
			return true
		}
	}
	return false
}

// pick returns the app a request is signed for, from the app_id it gave.
func (h *Handler) pick(ids appIDs) (*tenant, error) {
	if h.byID == nil {
		tn := h.tenants[0]
		if ids.mismatch(tn.creds.appID) {
			return nil, errAppIDMismatch
		}
		return tn, nil
	}
	switch {
	case !ids.given:
		return nil, errAppIDMissing
	case ids.conflict:
		return nil, errAppIDRepeated
	}
	tn := h.byID[ids.value]
	if tn == nil {
		return nil, errAppIDUnknown
	}
	return tn, nil
}

// forward signs r for tn with sign, passes it to next, and, if WeBank
// rejects the ticket, signs it again with another one and retries once.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, tn *tenant, orderNo string, sign func(*ticket)) error {
	t := h.cachedTicket(tn)
	if t == nil {
		var err error
		if t, err = h.cache.ticket(r.Context(), tn.key); err != nil {
			return h.unavailable(w, tn, err)
		}
	}
	facts := &signFacts{tn: tn, t: t}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(facts.placeholder)
	}
	tn.signed.Inc()
	sign(t)
	if ce := h.logger.Check(zapcore.DebugLevel, "request signed"); ce != nil {
		ce.Write(zap.String("app_id", tn.creds.appID), zap.String("order_no_hash", tn.orderHash(orderNo)),
			zap.Uint64("generation", t.token.gen), zap.Duration("ticket_age", time.Since(t.fetched)))
	}
	if h.retryCodes == nil || r.Method == http.MethodHead { // a HEAD answer has no code to read
		return next.ServeHTTP(w, r)
	}

	// The probe can read WeBank's code only in an answer it can decode.
	if ae := r.Header.Get("Accept-Encoding"); ae != "" {
		defer r.Header.Set("Accept-Encoding", ae)
		r.Header.Set("Accept-Encoding", probeAcceptEncoding(ae))
	}
	probe := newRetryProbe(w)
	aborted, err := serveProbed(next, probe, r)
	if aborted {
		return h.upstreamFailed(w, r, tn, errors.New("the upstream broke off its answer"))
	}
	if err != nil {
		if probe.committed {
			return err // the answer is under way: Caddy can only end it
		}
		return h.upstreamFailed(w, r, tn, err)
	}
	code := probe.retryCode(h.retryCodes)
	if code == "" {
		return probe.commit()
	}
	appID := tn.creds.appID
	if !h.cache.invalidate(tn.key, t) {
		metrics.retries.WithLabelValues(appID, "not_retried").Inc()
		return probe.commit()
	}
	h.logger.Info("WeBank rejected the ticket; retrying with another one",
		zap.String("app_id", appID), zap.String("code", code))
	t, err = h.cache.ticket(r.Context(), tn.key)
	if err != nil {
		// No other ticket: WeBank's own answer says more than a 502 would.
		metrics.retries.WithLabelValues(appID, "no_ticket").Inc()
		h.logger.Warn("no other ticket for the retry", zap.String("app_id", appID), zap.Error(err))
		return probe.commit()
	}
	metrics.retries.WithLabelValues(appID, "retried").Inc()
	facts.t, facts.retried = t, true
	sign(t)
	return next.ServeHTTP(w, r)
}

// cachedTicket returns tn's ticket without taking a lock: an atomic load of
// its cache entry and one of its ticket. It returns nil when the request
// must go the slow way: no entry yet, the entry left the cache, or no usable
// ticket.
func (h *Handler) cachedTicket(tn *tenant) *ticket {
	e := tn.entry.Load()
	if e == nil || e.gone.Load() {
		if e = h.cache.peek(tn.key); e == nil {
			return nil
		}
		tn.entry.Store(e)
	}
	now := h.cache.now()
	if t := e.cur.Load(); t != nil && now.Before(t.expires) {
		h.cache.touch(tn.key, e, now)
		return t
	}
	return nil
}

// signFacts are a request's placeholders: facts about its signing, never a
// secret. They are looked up only if something uses them.
type signFacts struct {
	tn      *tenant
	t       *ticket
	retried bool
}

func (f *signFacts) placeholder(key string) (any, bool) {
	switch key {
	case "http.webank_sign.app_id":
		return f.tn.creds.appID, true
	case "http.webank_sign.retried":
		return f.retried, true
	case "http.webank_sign.generation":
		return f.t.token.gen, true
	case "http.webank_sign.ticket_age":
		return int(time.Since(f.t.fetched).Seconds()), true
	}
	return nil, false
}

// orderHash returns a short keyed hash of an order number, so that logs can
// correlate requests without holding the number itself (order numbers are
// guessable, so the hash is keyed with a key derived from the secret).
func (tn *tenant) orderHash(orderNo string) string {
	m := hmac.New(sha256.New, tn.orderKey)
	m.Write([]byte(orderNo))
	return hex.EncodeToString(m.Sum(nil)[:6])
}

// reject answers a request the module refuses by itself, with err, a
// *queryError. tn is the app the request was for, if known.
func (h *Handler) reject(w http.ResponseWriter, tn *tenant, err error) error {
	qe := err.(*queryError)
	metrics.requests.WithLabelValues(h.appLabel(tn), "rejected", strconv.Itoa(qe.Status)).Inc()
	return writeError(w, qe.Status, qe.Code, qe.Msg)
}

// appLabel is the app_id label of a request's metrics: its app's, if known;
// for a handler of several apps, "" until the request's app is known (the
// label never holds an app_id a client made up).
func (h *Handler) appLabel(tn *tenant) string {
	if tn == nil {
		if h.byID != nil {
			return ""
		}
		tn = h.tenants[0]
	}
	return tn.creds.appID
}

// serveProbed runs next into probe. reverse_proxy aborts an answer whose
// upstream breaks off mid-body by panicking with http.ErrAbortHandler; if
// none of the answer has reached the client yet, serveProbed reports that
// instead, so that the client gets an error answer rather than a dropped
// connection. Once the answer is under way, the abort goes on.
func serveProbed(next caddyhttp.Handler, probe *retryProbe, r *http.Request) (aborted bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler || probe.committed {
				panic(v)
			}
			aborted = true
		}
	}()
	return false, next.ServeHTTP(probe, r)
}

// upstreamFailed answers a signed request whose upstream failed before
// sending anything (connection refused or reset, timeout), with the status
// the next handler chose and a JSON body like every other error here. The
// error is logged, not sent: it names internal addresses.
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, tn *tenant, err error) error {
	if r.Context().Err() != nil {
		return err // the client went away: nobody to answer, nothing WeBank did
	}
	status := http.StatusBadGateway
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		if he.StatusCode < 500 {
			return err // a later handler's own client error: Caddy's error routes answer it
		}
		status = he.StatusCode
	}
	h.logger.Warn("the upstream failed", zap.String("app_id", tn.creds.appID), zap.Int("status", status), zap.Error(err))
	metrics.requests.WithLabelValues(tn.creds.appID, "upstream_failed", strconv.Itoa(status)).Inc()
	msg := "WeBank did not answer (the connection failed)"
	if status == http.StatusGatewayTimeout {
		msg = "WeBank did not answer in time"
	}
	return writeError(w, status, "upstream_failed", msg)
}

// unavailable answers a request that cannot be signed because no ticket can
// be had. err says why, without secrets.
func (h *Handler) unavailable(w http.ResponseWriter, tn *tenant, err error) error {
	metrics.requests.WithLabelValues(tn.creds.appID, "unavailable", "502").Inc()
	return writeError(w, http.StatusBadGateway, "ticket_unavailable",
		fmt.Sprintf("no SIGN ticket for app_id %s: %v", tn.creds.appID, err))
}

// writeError answers with status and a fixed JSON body. The response is
// then complete, so it returns nil.
func writeError(w http.ResponseWriter, status int, code, msg string) error {
	body, _ := json.Marshal(struct {
		Code string `json:"code"`
		Msg  string `json:"msg"`
	}{code, msg})
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
