package webanksign

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// This file turns a Handler's options into the values it runs with. The
// rule for where a check lives: the Caddyfile parser checks only syntax
// (how many values, repeats, unknown names); Provision expands placeholders
// and parses each value here, failing on one it cannot read; Validate then
// checks the parsed values against their limits. Each rule is written once.

const (
	defaultBaseURL      = "https://idasc.webank.com"
	defaultVersion      = "1.0.0"
	defaultRefresh      = 20 * time.Minute // WeBank asks for a new token about every 20 minutes
	defaultFetchTimeout = 10 * time.Second
)

// WeBank's answers taken to mean "this ticket (or its access token) is no
// longer valid": Tencent's FAQ gives 400101 for a used or expired ticket,
// and public clients treat 15 so; neither is documented for a stale SIGN
// ticket as such (docs/protocol.md §10).
var defaultRetryCodes = []string{"15", "400101"}

// The request shapes; see Handler.Mode.
const (
	modeQuery = "query"
	modeJSON  = "json"
)

const (
	defaultMaxBodySize   = 1 << 20 // a result query's body is a few hundred bytes
	defaultImageBodySize = 8 << 20 // a photo or two, base64-encoded
	defaultBodyTimeout   = 10 * time.Second
)

var (
	// WeBank's app IDs are short (IDA + 5 digits, TIDA + 4); secrets are 64
	// characters. An app_id that long is a secret in the wrong place. One
	// of dots only is refused as well (see credentials).
	appIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
	versionPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
)

// expandFunc expands the placeholders of an option's value, or returns def
// for an empty one. Its errors name the option, never the value.
type expandFunc func(option, val, def string) (string, error)

// settings are the values a Handler runs with, parsed once, at provision
// time, from its options. The Handler embeds them.
type settings struct {
	appSettings               // the options webank_sign_local shares (options.go)
	bodyWait    time.Duration // body_timeout: how long a body is waited for
	mode        string        // "", modeQuery or modeJSON
	valueSet    valueSet      // setByPath unless value_set is given
	denyFiles   bool
	maxBody     int64           // 0: by path and value set; see jsonRequest
	proxyHosts  map[string]bool // normalized by normalHost
}

// parse expands and parses h's options into s, and returns the
// credentials of the apps h signs for.
func (s *settings) parse(h *Handler) ([]tickets.Credentials, error) {
	expand := newExpander()
	creds, err := s.appSettings.parse(&h.AppOptions, h.logger, expand)
	if err != nil {
		return nil, err
	}
	if err := s.parseRequestOptions(h, expand); err != nil {
		return nil, err
	}
	return creds, nil
}

// validate checks the parsed values against their limits.
func (s *settings) validate() error {
	if err := s.appSettings.validate(); err != nil {
		return err
	}
	switch {
	case s.maxBody < 0:
		return fmt.Errorf("max_body_size: must be positive, not %d", s.maxBody)
	case s.bodyWait <= 0:
		return fmt.Errorf("body_timeout: must be positive, not %v", s.bodyWait)
	}
	return nil
}

// parseRequestOptions sets up the options about the requests accepted: mode,
// value_set, photos, max_body_size, body_timeout and proxy_hosts.
func (s *settings) parseRequestOptions(h *Handler, expand expandFunc) error {
	switch h.Mode {
	case "", modeQuery, modeJSON:
		s.mode = h.Mode
	default:
		return fmt.Errorf("mode: %q is not query or json", h.Mode)
	}
	switch h.Photos {
	case "", "allow":
	case "deny":
		s.denyFiles = true
	default:
		return fmt.Errorf("photos: %q is not allow or deny", h.Photos)
	}
	if h.ValueSet != "" {
		set, ok := valueSetNames[h.ValueSet]
		if !ok {
			return fmt.Errorf("value_set: %q is not order_no, user_id or h5_face_id", h.ValueSet)
		}
		s.valueSet = set
		if set != setOrderNo {
			// These sets sign JSON bodies only: json is implied, and
			// query contradicts them.
			if s.mode == modeQuery {
				return fmt.Errorf("value_set: %s signs a JSON body, and needs mode json, not query", h.ValueSet)
			}
			s.mode = modeJSON
		}
	}
	s.maxBody = h.MaxBodySize
	var err error
	if s.bodyWait, err = parseDuration("body_timeout", h.BodyTimeout, defaultBodyTimeout, expand); err != nil {
		return err
	}
	hosts := h.ProxyHosts
	if len(hosts) == 0 {
		hosts = []string{s.baseURL}
	}
	s.proxyHosts = make(map[string]bool, len(hosts))
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
			s.proxyHosts[n] = true
		}
	}
	return nil
}

// jsonRequest returns the value set and the largest body of a JSON request
// for api, the entry of its path in jsonAPIs (zero if none): the
// configured ones, else the API's, else order_no and 1 MiB. The value sets
// other than order_no carry images wherever they are used.
func (s *settings) jsonRequest(api jsonAPI) (valueSet, int64) {
	set := s.valueSet
	if set == setByPath {
		set = api.set
	}
	if set == setByPath {
		set = setOrderNo
	}
	limit := s.maxBody
	if limit == 0 {
		limit = defaultMaxBodySize
		if api.images || set != setOrderNo {
			limit = defaultImageBodySize
		}
	}
	return set, limit
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
func parseDuration(option, val string, def time.Duration, expand expandFunc) (time.Duration, error) {
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
