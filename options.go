package webanksign

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// This file holds the options both handlers share, webank_sign and
// webank_sign_local: which apps they sign for, and how those apps' tokens
// and tickets are fetched. Two handlers configured with one app share its
// token and tickets through the process's ticket cache (and a fleet's,
// through storage), whichever handler asks.

// AppOptions are the options both handlers share: the apps they sign for
// and how those apps' tokens and tickets are fetched. Handler and
// LocalHandler embed them, so in JSON they sit beside each handler's own
// options, and in the Caddyfile both read them alike (unmarshalBlock).
type AppOptions struct {
	// The WeBank app ID (WBappid) the handler signs for. Required unless
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

	// Where access tokens and SIGN and NONCE tickets are fetched from: the
	// scheme and host of WeBank's oauth2 endpoints, and a path prefix if
	// any (no query or fragment); /api/oauth2/... is appended. Use the host
	// the signed requests go to. Default: https://idasc.webank.com. Accepts
	// placeholders.
	BaseURL string `json:"base_url,omitempty"`

	// The API version sent and signed. Default: 1.0.0. Accepts placeholders.
	Version string `json:"version,omitempty"`

	// How often the access token and SIGN ticket are replaced, ahead of their
	// expiry, as a duration string such as "20m". They are also replaced
	// earlier if WeBank's expire_in says so. At least 1s. Default: 20m.
	// Accepts placeholders.
	Refresh string `json:"refresh,omitempty"`

	// The longest a token+ticket fetch, or a NONCE ticket fetch, may take
	// before the requests waiting on it are answered 502, as a duration
	// string. Default: 10s. Accepts placeholders.
	FetchTimeout string `json:"fetch_timeout,omitempty"`

	// WeBank answer codes that mean a ticket or token is no longer valid.
	// For webank_sign, a signed request answered with one is signed again
	// with a new ticket and retried once. For webank_sign_local, a NONCE
	// fetch answered with one gets the app a new token (through its one
	// locked refresh, at most once a minute) and is tried again once.
	// Default: ["15", "400101"]. ["off"] disables the retry. Accepts
	// placeholders.
	RetryCodes []string `json:"retry_codes,omitempty"`
}

// appSettings are the shared options, parsed.
type appSettings struct {
	baseURL    string
	version    string
	refresh    time.Duration
	timeout    time.Duration
	retryCodes map[string]bool // nil: no retry
	nonceLimit int             // 0: tickets.DefaultNonceLimit; webank_sign_local's nonce_limit
	nonceQueue int             // 0: tickets.DefaultNonceQueue; webank_sign_local's nonce_queue
}

// newExpander returns the expandFunc of a handler's provisioning: it
// expands the placeholders available at provision time ({env.*},
// {file.*}, …).
func newExpander() expandFunc {
	repl := caddy.NewReplacer()
	return func(option, val, def string) (string, error) {
		if val == "" {
			return def, nil
		}
		out, err := repl.ReplaceOrErr(val, true, true)
		if err != nil {
			return "", fmt.Errorf("%s: expanding placeholders: %w", option, err)
		}
		return out, nil
	}
}

// parse expands and parses o into s, and returns the credentials of the
// apps o names.
func (s *appSettings) parse(o *AppOptions, logger *zap.Logger, expand expandFunc) ([]tickets.Credentials, error) {
	base, err := expand("base_url", o.BaseURL, defaultBaseURL)
	if err != nil {
		return nil, err
	}
	if s.baseURL, err = parseBaseURL(base); err != nil {
		return nil, fmt.Errorf("base_url: %w", err)
	}
	if u, _ := url.Parse(s.baseURL); u != nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		logger.Warn("base_url uses plain http: the secret and the access token cross the network unencrypted",
			zap.String("base_url", s.baseURL))
	}
	if s.version, err = expand("version", o.Version, defaultVersion); err != nil {
		return nil, err
	}
	if s.refresh, err = parseDuration("refresh", o.Refresh, defaultRefresh, expand); err != nil {
		return nil, err
	}
	if s.timeout, err = parseDuration("fetch_timeout", o.FetchTimeout, defaultFetchTimeout, expand); err != nil {
		return nil, err
	}
	if s.retryCodes, err = parseRetryCodes(o.RetryCodes, expand); err != nil {
		return nil, err
	}
	return credentials(o, logger, s.baseURL, expand)
}

// validate checks the parsed values against their limits.
func (s *appSettings) validate() error {
	switch {
	case !versionPattern.MatchString(s.version):
		return fmt.Errorf("version: %q is not 1 to 32 characters of [A-Za-z0-9_.-]", s.version)
	case s.refresh < time.Second:
		return fmt.Errorf("refresh: must be at least 1s, not %v", s.refresh)
	case s.timeout <= 0:
		return fmt.Errorf("fetch_timeout: must be positive, not %v", s.timeout)
	case s.nonceLimit < 0:
		return fmt.Errorf("nonce_limit: must be positive, not %d", s.nonceLimit)
	case s.nonceQueue < 0:
		return fmt.Errorf("nonce_queue: must not be negative, not %d", s.nonceQueue)
	}
	for code := range s.retryCodes {
		if code == "" || code == "0" {
			return fmt.Errorf("retry_codes: %q is not an error code", code)
		}
	}
	return nil
}

// parseRetryCodes expands retry_codes; nil means no retry ("off").
func parseRetryCodes(codes []string, expand expandFunc) (map[string]bool, error) {
	if len(codes) == 0 {
		codes = defaultRetryCodes
	}
	out := make(map[string]bool, len(codes))
	for _, c := range codes {
		code, err := expand("retry_codes", c, "")
		if err != nil {
			return nil, err
		}
		out[code] = true
	}
	if out["off"] {
		if len(out) > 1 {
			return nil, errors.New("retry_codes: 'off' cannot be combined with codes")
		}
		return nil, nil
	}
	return out, nil
}

// credentials expands the apps' credentials and checks them.
func credentials(h *AppOptions, logger *zap.Logger, baseURL string, expand expandFunc) ([]tickets.Credentials, error) {
	one := func(option string, appID, secret string) (tickets.Credentials, error) {
		c := tickets.Credentials{BaseURL: baseURL}
		var err error
		if appID == "" {
			return c, fmt.Errorf("%sapp_id is required", option)
		}
		if c.AppID, err = expand(option+"app_id", appID, ""); err != nil {
			return c, err
		}
		if !appIDPattern.MatchString(c.AppID) {
			if len(c.AppID) > 16 { // perhaps the secret, given in its place: not shown
				return c, fmt.Errorf("%sapp_id: a value of %d characters is not 1 to 32 characters of [A-Za-z0-9_.-]; the value is not shown, in case it is the secret in the wrong place", option, len(c.AppID))
			}
			return c, fmt.Errorf("%sapp_id: %q is not 1 to 32 characters of [A-Za-z0-9_.-]", option, c.AppID)
		}
		if strings.Trim(c.AppID, ".") == "" { // a path element of the storage key: . or .. would leave webank_sign/
			return c, fmt.Errorf("%sapp_id: %q is only dots", option, c.AppID)
		}
		if secret == "" {
			return c, fmt.Errorf("%ssecret is required", option)
		}
		if c.Secret, err = expand(option+"secret", secret, ""); err != nil {
			if !isPlaceholder(secret) {
				// A literal secret with braces in it: the replacer's error
				// would quote part of it.
				return c, fmt.Errorf("%ssecret: it has braces but is not one {…} placeholder; the value is not shown", option)
			}
			return c, err
		}
		if c.Secret == "" {
			return c, fmt.Errorf("%ssecret: is empty", option)
		}
		if !isPlaceholder(secret) {
			logger.Warn("secret is written into the config, where the admin API, `caddy adapt` and Caddy's debug log of the config show it; give it as a placeholder such as {env.WEBANK_SECRET} or {file./run/secrets/webank}",
				zap.String("app_id", c.AppID))
		}
		return c, nil
	}
	if len(h.Apps) == 0 {
		c, err := one("", h.AppID, h.Secret)
		if err != nil {
			return nil, err
		}
		return []tickets.Credentials{c}, nil
	}
	if h.AppID != "" || h.Secret != "" {
		return nil, errors.New("app_id and secret cannot be combined with apps: give every app in apps")
	}
	out := make([]tickets.Credentials, 0, len(h.Apps))
	for i, a := range h.Apps {
		c, err := one(fmt.Sprintf("apps[%d].", i), a.AppID, a.Secret)
		if err != nil {
			return nil, err
		}
		for _, prev := range out {
			if prev.AppID == c.AppID {
				return nil, fmt.Errorf("apps[%d]: app_id %s is listed more than once", i, c.AppID)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// registerApps registers the apps of creds in app's ticket cache, for the
// handler at place, and returns them as the handler's appSet: with multi,
// a request names its app (see appSet.pick). On an error, the apps
// registered so far are in the set returned, for the handler's Cleanup to
// release.
func registerApps(ctx caddy.Context, app *App, place string, multi bool, creds []tickets.Credentials, s *appSettings, logger *zap.Logger) (appSet, error) {
	var set appSet
	if err := registerMetrics(ctx.GetMetricsRegistry(), app.cache); err != nil {
		return set, fmt.Errorf("registering metrics: %w", err)
	}
	var emit func(string, map[string]any)
	if events, err := ctx.App("events"); err == nil {
		emit = func(name string, data map[string]any) { events.(*caddyevents.App).Emit(ctx, name, data) }
	}
	for _, c := range creds {
		if err := app.claim(c.AppID, c.Secret, place); err != nil {
			return set, err
		}
		if others := app.cache.OtherBaseURLs(c.AppID, c.BaseURL); len(others) > 0 {
			logger.Warn("this app_id is also configured with another base_url; each base_url fetches its own token, and WeBank may invalidate one with the other",
				zap.String("app_id", c.AppID), zap.String("base_url", c.BaseURL), zap.Strings("other_base_urls", others))
		}
		orderKey, err := hkdf.Key(sha256.New, []byte(c.Secret), nil, "webank_sign order_no log hash", 32)
		if err != nil {
			return set, err
		}
		handle, err := app.cache.Register(tickets.Config{
			Credentials: c,
			Refresh:     s.refresh,
			Timeout:     s.timeout,
			Storage:     ctx.Storage(),
			Logger:      logger.Named("tickets"),
			Emit:        emit,
			RetryCodes:  s.retryCodes,
			NonceLimit:  s.nonceLimit,
			NonceQueue:  s.nonceQueue,
		})
		if err != nil {
			return set, err
		}
		set.tenants = append(set.tenants, &tenant{
			creds:    c,
			tickets:  handle,
			signed:   metrics.requests.WithLabelValues(c.AppID, "signed", ""),
			orderKey: orderKey,
			logger:   logger,
		})
	}
	if multi {
		set.byID = make(map[string]*tenant, len(set.tenants))
		for _, tn := range set.tenants {
			set.byID[tn.creds.AppID] = tn
		}
	}
	return set, nil
}
