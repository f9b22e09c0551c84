package webanksign

import (
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

// parseCaddyfile sets up a handler from Caddyfile tokens. Syntax:
//
//	webank_sign [<matcher>] {
//	    app_id        <wbappid>
//	    secret        <secret>
//	    app           <wbappid> <secret>   # instead of app_id and secret; repeatable
//	    base_url      <url>
//	    version       <version>
//	    refresh       <duration>
//	    fetch_timeout <duration>
//	    retry_codes   <code...> | off
//	    mode          query | json
//	    photos        allow | deny
//	    max_body_size <size>
//	    proxy_hosts   <host...>
//	}
//
// Either app_id and secret, or one or more app lines, are required. Every
// value but those of mode, photos and max_body_size accepts placeholders.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up h from Caddyfile tokens; see parseCaddyfile.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	h.Source = d.File() + ":" + strconv.Itoa(d.Line())
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		args := d.RemainingArgs()
		if key == "app" {
			if len(args) != 2 {
				return d.Errf("app takes an app_id and a secret, got %d values", len(args))
			}
			for _, a := range h.Apps {
				if a.AppID == args[0] {
					return d.Errf("app %s already specified", args[0])
				}
			}
			h.Apps = append(h.Apps, AppCredentials{AppID: args[0], Secret: args[1]})
			continue
		}
		if seen[key] {
			return d.Errf("%s already specified", key)
		}
		seen[key] = true
		switch key {
		case "retry_codes":
			if len(args) == 0 {
				return d.Errf("retry_codes needs at least one code, or off")
			}
			h.RetryCodes = args
			continue
		case "proxy_hosts":
			if len(args) == 0 {
				return d.Errf("proxy_hosts needs at least one host")
			}
			h.ProxyHosts = args
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
		case "mode":
			if val != modeQuery && val != modeJSON {
				return d.Errf("mode: %q is not query or json", val)
			}
			h.Mode = val
		case "photos":
			if val != "allow" && val != "deny" {
				return d.Errf("photos: %q is not allow or deny", val)
			}
			h.Photos = val
		case "max_body_size":
			size, err := humanize.ParseBytes(val)
			if err != nil || size == 0 || size > math.MaxInt64/2 {
				return d.Errf("max_body_size: %q is not a size such as 1MiB", val)
			}
			h.MaxBodySize = int64(size)
		default:
			return d.Errf("unrecognized subdirective %q", key)
		}
	}
	if len(h.Apps) > 0 && (h.AppID != "" || h.Secret != "") {
		return d.Errf("app cannot be combined with app_id and secret: give every app with an app line")
	}
	return nil
}
