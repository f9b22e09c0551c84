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

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

func init() {
	caddy.RegisterModule(Health{})
	httpcaddyfile.RegisterHandlerDirective("webank_sign_health", parseHealthCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("webank_sign_health", httpcaddyfile.Before, "respond")
}

const defaultHealthMargin = time.Minute

// Health answers whether every app a webank_sign or webank_sign_local
// handler of the loaded config signs for can sign now: 200 if each has a
// ticket with more than margin of life left, 503 with the reason for each
// app otherwise (and 503 if no handler signs for any app). An app that has
// no ticket yet gets one fetched (once, shared with requests, waited for at
// most 15s), so that a readiness probe also warms the sidecar up, unless
// the ticket cache is full (more apps than cache_size): then an app not in
// it counts as ready, and is loaded when a request needs it, so that
// probes never evict.
// Mount it on a path of your choice, outside the proxied namespace:
//
//	handle /healthz {
//	    webank_sign_health
//	}
type Health struct {
	// How much life a ticket must have left for its app to count as able to
	// sign, as a duration string. Default: 1m. Placeholders are not
	// expanded.
	Margin string `json:"margin,omitempty"`

	margin time.Duration
	cache  *tickets.Cache
}

// CaddyModule returns the Caddy module information.
func (Health) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webank_sign_health",
		New: func() caddy.Module { return new(Health) },
	}
}

// Provision sets up h.
func (h *Health) Provision(ctx caddy.Context) error {
	h.margin = defaultHealthMargin
	if h.Margin != "" {
		d, err := caddy.ParseDuration(h.Margin)
		if err != nil || d < 0 {
			return fmt.Errorf("margin: %q is not a duration", h.Margin)
		}
		h.margin = d
	}
	app, err := ctx.App("webank_sign")
	if err != nil {
		return fmt.Errorf("loading the webank_sign app: %w", err)
	}
	h.cache = app.(*App).cache
	return nil
}

// ServeHTTP answers the health check; it never calls next.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	apps := h.cache.Readiness(ctx, h.margin)
	if len(apps) == 0 {
		return writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"status": "unavailable", "reason": "no webank_sign handler is configured", "apps": apps})
	}
	for _, a := range apps {
		if !a.Ready {
			return writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "apps": apps})
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "apps": apps})
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Health)(nil)
	_ caddyhttp.MiddlewareHandler = (*Health)(nil)
	_ caddyfile.Unmarshaler       = (*Health)(nil)
)
