package webanksign

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Health{})
	httpcaddyfile.RegisterHandlerDirective("webank_sign_health", parseHealthCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("webank_sign_health", httpcaddyfile.Before, "respond")
}

const defaultHealthMargin = time.Minute

// Health answers whether every app a webank_sign handler of the loaded
// config signs for can sign now: 200 if each has a ticket with more than
// margin of life left, 503 with the reason for each app otherwise. An app
// that has no ticket yet gets one fetched (once, shared with requests), so
// that a readiness probe also warms the sidecar up, unless the ticket cache
// is full (more apps than cache_size): then an app not in it counts as
// ready, and is loaded when a request needs it, so that probes never evict.
// Mount it on a path of your choice, outside the proxied namespace:
//
//	handle /healthz {
//	    webank_sign_health
//	}
type Health struct {
	// How much life a ticket must have left for its app to count as able to
	// sign, as a duration string. Default: 1m.
	Margin string `json:"margin,omitempty"`

	margin time.Duration
}

// CaddyModule returns the Caddy module information.
func (Health) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webank_sign_health",
		New: func() caddy.Module { return new(Health) },
	}
}

// Provision sets up h.
func (h *Health) Provision(caddy.Context) error {
	h.margin = defaultHealthMargin
	if h.Margin != "" {
		d, err := caddy.ParseDuration(h.Margin)
		if err != nil || d < 0 {
			return fmt.Errorf("margin: %q is not a duration", h.Margin)
		}
		h.margin = d
	}
	return nil
}

// appHealth is one app's line in the answer.
type appHealth struct {
	AppID         string  `json:"app_id"`
	BaseURL       string  `json:"base_url"`
	Ready         bool    `json:"ready"`
	RemainingLife float64 `json:"remaining_life_seconds"`
	Reason        string  `json:"reason,omitempty"`
}

// ServeHTTP answers the health check; it never calls next.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	c := currentCache()
	if c == nil {
		return writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"status": "unavailable", "reason": "no webank_sign handler is configured", "apps": []appHealth{}})
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	apps := []appHealth{}
	ready := true
	for _, key := range c.keys() {
		cfg, ok := c.app(key)
		if !ok {
			continue
		}
		a := appHealth{AppID: cfg.creds.appID, BaseURL: cfg.creds.baseURL}
		e := c.peek(key)
		if e == nil && !c.hasRoom() {
			// Evicted, or never used, with the cache full: loading it here
			// would evict another app, on every probe. It is loaded, from
			// storage first, when a request needs it.
			a.Ready, a.Reason = true, "not kept in memory (see cache_size): its ticket is loaded when a request needs it"
			apps = append(apps, a)
			continue
		}
		var t *ticket
		var err error
		if e != nil {
			if cur := e.cur.Load(); cur != nil && c.now().Before(cur.expires) {
				t = cur // read without marking the app used: probes do not keep apps in memory
			}
		}
		if t == nil {
			t, err = c.ticket(ctx, key)
		}
		switch {
		case err != nil:
			a.Reason = "no ticket: " + err.Error()
		case t.expires.Sub(c.now()) <= h.margin:
			a.RemainingLife = t.expires.Sub(c.now()).Seconds()
			a.Reason = fmt.Sprintf("the ticket has %v left, not more than the margin %v",
				t.expires.Sub(c.now()).Round(time.Second), h.margin)
		default:
			a.Ready, a.RemainingLife = true, t.expires.Sub(c.now()).Seconds()
		}
		ready = ready && a.Ready
		apps = append(apps, a)
	}
	if !ready {
		return writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "apps": apps})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "apps": apps})
}

// parseHealthCaddyfile sets up the health handler. Syntax:
//
//	webank_sign_health [<matcher>] {
//	    margin <duration>
//	}
func parseHealthCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Health)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up h from Caddyfile tokens.
func (h *Health) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "margin":
			if h.Margin != "" {
				return d.Err("margin already specified")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Margin = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			if dur, err := caddy.ParseDuration(h.Margin); err != nil || dur < 0 {
				return d.Errf("margin: %q is not a duration", h.Margin)
			}
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Health)(nil)
	_ caddyhttp.MiddlewareHandler = (*Health)(nil)
	_ caddyfile.Unmarshaler       = (*Health)(nil)
)
