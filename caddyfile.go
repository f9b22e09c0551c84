package webanksign

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// parseCaddyfile sets up a handler from Caddyfile tokens. Syntax:
//
//	webank_sign [<matcher>] {
//	    app_id        <wbappid>
//	    secret        <secret>
//	    base_url      <url>
//	    version       <version>
//	    refresh       <duration>
//	    fetch_timeout <duration>
//	    retry_codes   <code...> | off
//	}
//
// app_id and secret are required; every value accepts placeholders.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up h from Caddyfile tokens; see parseCaddyfile.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if seen[key] {
			return d.Errf("%s already specified", key)
		}
		seen[key] = true
		args := d.RemainingArgs()
		if key == "retry_codes" {
			if len(args) == 0 {
				return d.Errf("retry_codes needs at least one code, or off")
			}
			h.RetryCodes = args
			continue
		}
		if len(args) != 1 {
			return d.Errf("%s takes exactly one value, got %d", key, len(args))
		}
		val := args[0]
		switch key {
		case "app_id":
			h.AppID = val
		case "secret":
			h.Secret = val
		case "base_url":
			h.BaseURL = val
		case "version":
			h.Version = val
		case "refresh", "fetch_timeout":
			// Check a literal now, for an error with a line number; a
			// placeholder is checked once expanded, at provision time.
			if !strings.Contains(val, "{") {
				if dur, err := caddy.ParseDuration(val); err != nil || dur <= 0 {
					return d.Errf("%s: %q is not a positive duration", key, val)
				}
			}
			if key == "refresh" {
				h.Refresh = val
			} else {
				h.FetchTimeout = val
			}
		default:
			return d.Errf("unrecognized subdirective %q", key)
		}
	}
	return nil
}
