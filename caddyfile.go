package webanksign

import (
	"math"
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

// This file holds every Caddyfile parser of the module: the webank_sign,
// webank_sign_local and webank_sign_health directives and the webank_sign
// global option.
// They check syntax only (how many values, repeats, unknown names) and
// convert what the JSON holds in another type (a size to bytes); the
// values themselves are checked once, at provision time (config.go), for
// JSON configs alike, and those errors name the Caddyfile line too.

func init() {
	httpcaddyfile.RegisterGlobalOption("webank_sign", parseGlobalOption)
}

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
//	    value_set     order_no | user_id | h5_face_id
//	    photos        allow | deny
//	    max_body_size <size>
//	    body_timeout  <duration>
//	    proxy_hosts   <host...>
//	}
//
// Either app_id and secret, or one or more app lines, are required. Every
// value but those of mode, value_set, photos and max_body_size accepts
// placeholders. A literal duration, mode, value_set or photos value that
// is wrong is reported at provision time, with this block's file and line.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up h from Caddyfile tokens; see parseCaddyfile.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalBlock(d, &h.Source, &h.AppOptions, func(key string, args []string) error {
		switch key {
		case "proxy_hosts":
			if len(args) == 0 {
				return d.Errf("proxy_hosts needs at least one host")
			}
			h.ProxyHosts = args
			return nil
		}
		if len(args) != 1 {
			return d.Errf("%s takes exactly one value, got %d", key, len(args))
		}
		val := args[0]
		switch key {
		case "mode":
			h.Mode = val
		case "value_set":
			h.ValueSet = val
		case "photos":
			h.Photos = val
		case "max_body_size": // zero would mean the default in JSON: refused here
			size, err := humanize.ParseBytes(val)
			if err != nil || size == 0 || size > math.MaxInt64/2 {
				return d.Errf("max_body_size: %q is not a size such as 1MiB", val)
			}
			h.MaxBodySize = int64(size)
		case "body_timeout":
			h.BodyTimeout = val
		default:
			return d.Errf("unrecognized subdirective %q", key)
		}
		return nil
	})
}

// parseLocalCaddyfile sets up a webank_sign_local handler from Caddyfile
// tokens. Syntax:
//
//	webank_sign_local [<matcher>] {
//	    app_id        <wbappid>            # app_id to retry_codes: as for webank_sign
//	    secret        <secret>
//	    app           <wbappid> <secret>
//	    base_url      <url>
//	    version       <version>
//	    refresh       <duration>
//	    fetch_timeout <duration>
//	    retry_codes   <code...> | off
//	    nonce_limit   <n>
//	    nonce_queue   <n>
//	    login_url     <url>
//	    login_hosts   <host...>
//	    callback_hosts <host...>
//	}
func parseLocalCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(LocalHandler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up h from Caddyfile tokens; see
// parseLocalCaddyfile.
func (h *LocalHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalBlock(d, &h.Source, &h.AppOptions, func(key string, args []string) error {
		switch key {
		case "login_hosts", "callback_hosts":
			if len(args) == 0 {
				return d.Errf("%s needs at least one host", key)
			}
			if key == "login_hosts" {
				h.LoginHosts = args
			} else {
				h.CallbackHosts = args
			}
			return nil
		}
		if len(args) != 1 {
			return d.Errf("%s takes exactly one value, got %d", key, len(args))
		}
		val := args[0]
		switch key {
		case "login_url":
			h.LoginURL = val
		case "nonce_limit", "nonce_queue": // zero would mean the default in JSON: refused here
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return d.Errf("%s: %q is not a positive number", key, val)
			}
			if key == "nonce_limit" {
				h.NonceLimit = n
			} else {
				h.NonceQueue = n
			}
		default:
			return d.Errf("unrecognized subdirective %q", key)
		}
		return nil
	})
}

// unmarshalBlock reads a handler's block: the options both handlers share
// into o, each other subdirective through other. It records the block's
// place in source.
func unmarshalBlock(d *caddyfile.Dispenser, source *string, o *AppOptions, other func(key string, args []string) error) error {
	d.Next() // consume directive name
	*source = d.File() + ":" + strconv.Itoa(d.Line())
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
			for _, a := range o.Apps {
				if a.AppID == args[0] {
					return d.Errf("app %s already specified", args[0])
				}
			}
			o.Apps = append(o.Apps, AppCredentials{AppID: args[0], Secret: args[1]})
			continue
		}
		if seen[key] {
			return d.Errf("%s already specified", key)
		}
		seen[key] = true
		if key == "retry_codes" {
			if len(args) == 0 {
				return d.Errf("retry_codes needs at least one code, or off")
			}
			o.RetryCodes = args
			continue
		}
		field := map[string]*string{"app_id": &o.AppID, "secret": &o.Secret, "base_url": &o.BaseURL,
			"version": &o.Version, "refresh": &o.Refresh, "fetch_timeout": &o.FetchTimeout}[key]
		if field == nil {
			if err := other(key, args); err != nil {
				return err
			}
			continue
		}
		if len(args) != 1 {
			return d.Errf("%s takes exactly one value, got %d", key, len(args))
		}
		*field = args[0]
	}
	if len(o.Apps) > 0 && (o.AppID != "" || o.Secret != "") {
		return d.Errf("app cannot be combined with app_id and secret: give every app with an app line")
	}
	return nil
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
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

// parseGlobalOption sets up the app from the Caddyfile's global options:
//
//	webank_sign {
//	    cache_size <n>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // the option's name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "cache_size":
			if app.CacheSize != 0 {
				return nil, d.Errf("cache_size already specified")
			}
			var arg string
			if !d.Args(&arg) || d.NextArg() {
				return nil, d.Errf("cache_size takes exactly one value")
			}
			n, err := strconv.Atoi(arg)
			if err != nil || n <= 0 { // zero would mean the default in JSON
				return nil, d.Errf("cache_size: %q is not a positive number", arg)
			}
			app.CacheSize = n
		default:
			return nil, d.Errf("unrecognized webank_sign global option %q", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "webank_sign", Value: caddyconfig.JSON(app, nil)}, nil
}
