// Package webanksign is a Caddy HTTP handler that signs requests to WeBank's
// (Tencent Cloud FaceID) server APIs, starting with the ID-card OCR result
// query getOcrResult, so that legacy applications can call them without ever
// holding the app secret. See README.md.
package webanksign

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
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

// Handler adds WeBank's signing parameters to GET and HEAD requests so that
// a following reverse_proxy can forward them: app_id, a fresh 32-character
// nonce, version, and the SHA1 sign over app_id, order_no, version, the SIGN
// ticket and the nonce. It obtains the access token and the SIGN ticket
// itself, caches them per app, and refreshes them before they expire.
//
// The client's order_no must be 1 to 32 characters of [A-Za-z0-9_-]. What the
// client sends for sign, nonce and version is discarded; an app_id other than
// the configured one is refused. Other parameters (get_file, get_native, …)
// pass through. Bad requests, other methods, and requests that cannot be
// signed because no ticket can be had are answered here with a JSON body
// {"code": "…", "msg": "…"} and are not forwarded.
//
// If WeBank answers a signed request with one of retry_codes, the ticket is
// dropped and the request is signed again with a new ticket and nonce and
// retried once; the client sees only the final answer.
type Handler struct {
	// The WeBank app ID (WBappid) requests are signed for. Required.
	// Accepts placeholders, expanded once at provision time.
	AppID string `json:"app_id,omitempty"`

	// The app secret, used only to obtain access tokens. Required. Give it as
	// a placeholder, such as {env.WEBANK_SECRET} or {file./run/secrets/webank},
	// so that it stays out of the config; it is expanded once, at provision
	// time, and never logged. A literal secret draws a warning.
	Secret string `json:"secret,omitempty"`

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

	creds      credentials // expanded; creds.secret is never logged
	version    string
	refresh    time.Duration
	timeout    time.Duration
	retryCodes map[string]bool
	key        string                 // the app's key in the ticket cache
	reg        *appConfig             // this handler's registration there
	entry      *atomic.Pointer[entry] // the app's cache entry, for the lock-free hot path
	cache      *ticketCache
	logger     *zap.Logger
	signed     prometheus.Counter // requests_total for this app's signed requests
	orderKey   []byte             // keys the order_no hashes in debug logs
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webank_sign",
		New: func() caddy.Module { return new(Handler) },
	}
}

var (
	appIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
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
	var err error
	if h.creds.appID, err = expand("app_id", h.AppID, ""); err != nil {
		return err
	}
	if h.creds.secret, err = expand("secret", h.Secret, ""); err != nil {
		if !isPlaceholder(h.Secret) {
			// A literal secret with braces in it: the replacer's error would
			// quote part of it.
			return errors.New("secret: it has braces but is not one {…} placeholder; the value is not shown")
		}
		return err
	}
	if h.Secret != "" && !isPlaceholder(h.Secret) {
		h.logger.Warn("secret is written into the config, where the admin API, `caddy adapt` and Caddy's debug log of the config show it; give it as a placeholder such as {env.WEBANK_SECRET} or {file./run/secrets/webank}")
	}
	base, err := expand("base_url", h.BaseURL, defaultBaseURL)
	if err != nil {
		return err
	}
	if h.creds.baseURL, err = parseBaseURL(base); err != nil {
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
	if u, _ := url.Parse(h.creds.baseURL); u != nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		h.logger.Warn("base_url uses plain http: the secret and the access token cross the network unencrypted",
			zap.String("base_url", h.creds.baseURL))
	}

	val, _, err := tickets.LoadOrNew(ticketsPoolKey, func() (caddy.Destructor, error) {
		return newTicketCache(defaultCacheSize), nil
	})
	if err != nil {
		return err
	}
	h.cache = val.(*ticketCache)
	h.key = appKey(h.creds)
	h.entry = new(atomic.Pointer[entry])
	store, err := newTicketStore(ctx.Storage(), h.creds)
	if err != nil {
		return fmt.Errorf("setting up ticket storage: %w", err)
	}
	if others := h.cache.otherBaseURLs(h.creds.appID, h.creds.baseURL); len(others) > 0 {
		h.logger.Warn("this app_id is also configured with another base_url; each base_url fetches its own token, and WeBank may invalidate one with the other",
			zap.String("app_id", h.creds.appID), zap.String("base_url", h.creds.baseURL), zap.Strings("other_base_urls", others))
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	h.signed = metrics.requests.WithLabelValues(h.creds.appID, "signed", "")
	if h.orderKey, err = hkdf.Key(sha256.New, []byte(h.creds.secret), nil, "webank_sign order_no log hash", 32); err != nil {
		return err
	}
	var emit func(string, map[string]any)
	if app, err := ctx.App("events"); err == nil {
		events := app.(*caddyevents.App)
		emit = func(name string, data map[string]any) { events.Emit(ctx, name, data) }
	}
	h.reg = h.cache.register(h.key, appConfig{
		creds:   h.creds,
		refresh: h.refresh,
		timeout: h.timeout,
		store:   store,
		poll:    min(maxStoragePoll, h.refresh/4),
		logger:  h.logger.Named("tickets"),
		emit:    emit,
	})
	return nil
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

// Validate checks that h is complete and sane.
func (h *Handler) Validate() error {
	switch {
	case h.AppID == "":
		return errors.New("app_id is required")
	case !appIDPattern.MatchString(h.creds.appID):
		return fmt.Errorf("app_id: %q is not 1 to 64 characters of [A-Za-z0-9_.-]", h.creds.appID)
	case h.Secret == "":
		return errors.New("secret is required")
	case h.creds.secret == "":
		return errors.New("secret: is empty")
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

// Cleanup releases h's hold on the ticket cache.
func (h *Handler) Cleanup() error {
	if h.cache == nil {
		return nil
	}
	h.cache.unregister(h.key, h.reg)
	h.cache = nil // a second Cleanup must not release another handler's hold
	_, err := tickets.Delete(ticketsPoolKey)
	return err
}

// ServeHTTP signs r and passes it to next, or answers it with a JSON error.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return h.reject(w, http.StatusMethodNotAllowed, "method_not_allowed", "only GET and HEAD requests are signed")
	}
	if r.ContentLength != 0 { // -1: chunked
		return h.reject(w, http.StatusBadRequest, "body_not_allowed", "GET and HEAD requests to WeBank's query APIs carry no body")
	}
	q, err := clientQuery(r.URL.RawQuery, h.creds.appID)
	if err != nil {
		var qe *queryError
		errors.As(err, &qe)
		return h.reject(w, qe.Status, qe.Code, qe.Msg)
	}
	t := h.cachedTicket()
	if t == nil {
		if t, err = h.cache.ticket(r.Context(), h.key); err != nil {
			return h.unavailable(w, err)
		}
	}
	facts := &signFacts{h: h, t: t}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(facts.placeholder)
	}
	h.signed.Inc()

	// r.URL carries the signed query to the next handler; r.RequestURI stays
	// as the client sent it, since reverse_proxy logs it. Restore the client's
	// query afterwards, so that nothing later (logs, placeholders) sees sign.
	clientRaw := r.URL.RawQuery
	defer func() { r.URL.RawQuery = clientRaw }()
	r.URL.RawQuery = signQuery(&q, h.creds.appID, h.version, t.value)
	if ce := h.logger.Check(zapcore.DebugLevel, "request signed"); ce != nil {
		ce.Write(zap.String("app_id", h.creds.appID), zap.String("order_no_hash", h.orderHash(q.orderNo)),
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
		return h.upstreamFailed(w, r, errors.New("the upstream broke off its answer"))
	}
	if err != nil {
		if probe.committed {
			return err // the answer is under way: Caddy can only end it
		}
		return h.upstreamFailed(w, r, err)
	}
	code := probe.retryCode(h.retryCodes)
	if code == "" {
		return probe.commit()
	}
	if !h.cache.invalidate(h.key, t) {
		metrics.retries.WithLabelValues(h.creds.appID, "not_retried").Inc()
		return probe.commit()
	}
	h.logger.Info("WeBank rejected the ticket; retrying with another one",
		zap.String("app_id", h.creds.appID), zap.String("code", code))
	t, err = h.cache.ticket(r.Context(), h.key)
	if err != nil {
		// No other ticket: WeBank's own answer says more than a 502 would.
		metrics.retries.WithLabelValues(h.creds.appID, "no_ticket").Inc()
		h.logger.Warn("no other ticket for the retry", zap.String("app_id", h.creds.appID), zap.Error(err))
		return probe.commit()
	}
	metrics.retries.WithLabelValues(h.creds.appID, "retried").Inc()
	facts.t, facts.retried = t, true
	r.URL.RawQuery = signQuery(&q, h.creds.appID, h.version, t.value)
	return next.ServeHTTP(w, r)
}

// cachedTicket returns the app's ticket without taking a lock: an atomic
// load of the handler's cache entry and one of its ticket. It returns nil
// when the request must go the slow way: no entry yet, the entry left the
// cache, or no usable ticket.
func (h *Handler) cachedTicket() *ticket {
	e := h.entry.Load()
	if e == nil || e.gone.Load() {
		if e = h.cache.peek(h.key); e == nil {
			return nil
		}
		h.entry.Store(e)
	}
	if t := e.cur.Load(); t != nil && h.cache.now().Before(t.expires) {
		return t
	}
	return nil
}

// signFacts are a request's placeholders: facts about its signing, never a
// secret. They are looked up only if something uses them.
type signFacts struct {
	h       *Handler
	t       *ticket
	retried bool
}

func (f *signFacts) placeholder(key string) (any, bool) {
	switch key {
	case "http.webank_sign.app_id":
		return f.h.creds.appID, true
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
func (h *Handler) orderHash(orderNo string) string {
	m := hmac.New(sha256.New, h.orderKey)
	m.Write([]byte(orderNo))
	return hex.EncodeToString(m.Sum(nil)[:6])
}

// reject answers a request the module refuses by itself.
func (h *Handler) reject(w http.ResponseWriter, status int, code, msg string) error {
	metrics.requests.WithLabelValues(h.creds.appID, "rejected", strconv.Itoa(status)).Inc()
	return writeError(w, status, code, msg)
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
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) error {
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
	h.logger.Warn("the upstream failed", zap.String("app_id", h.creds.appID), zap.Int("status", status), zap.Error(err))
	metrics.requests.WithLabelValues(h.creds.appID, "upstream_failed", strconv.Itoa(status)).Inc()
	msg := "WeBank did not answer (the connection failed)"
	if status == http.StatusGatewayTimeout {
		msg = "WeBank did not answer in time"
	}
	return writeError(w, status, "upstream_failed", msg)
}

// unavailable answers a request that cannot be signed because no ticket can
// be had. err says why, without secrets.
func (h *Handler) unavailable(w http.ResponseWriter, err error) error {
	metrics.requests.WithLabelValues(h.creds.appID, "unavailable", "502").Inc()
	return writeError(w, http.StatusBadGateway, "ticket_unavailable",
		fmt.Sprintf("no SIGN ticket for app_id %s: %v", h.creds.appID, err))
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
