package webanksign

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(LocalHandler{})
	httpcaddyfile.RegisterHandlerDirective("webank_sign_local", parseLocalCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("webank_sign_local", httpcaddyfile.Before, "reverse_proxy")
}

// LocalHandler answers, by itself, what an app needs from its token to
// start a face verification and to check its result, so that the app
// never holds the secret and never fetches a token of its own (which would
// rotate the sidecar's out). It never calls the next handler. Mounted on a
// path of the operator's choice, it answers POST requests with a JSON
// object by the last element of their path:
//
//   - …/sdk_sign {"user_id"}: what the mobile SDK needs to launch, signed
//     with a fresh NONCE ticket for that user: {"app_id", "user_id",
//     "nonce", "version", "sign"}.
//   - …/h5_login_url {"order_no", "user_id", "face_id", "callback_url"}
//     and optionally "optimal_domain", "from" and "redirect_type": the URL
//     of WeBank's H5 login page, signed with a fresh NONCE ticket:
//     {"url"}.
//   - …/verify {"order_no", "code", "sign"} (a face or H5 result
//     callback), or {"kind": "ocr", "order_no", "sign"} (an OCR SDK
//     result): whether WeBank signed it, {"valid": true|false}.
//
// With several apps, the request names its app with "app_id". It shares
// each app's token and tickets with webank_sign handlers of the same app,
// through the same cache and storage. Errors are answered as
// webank_sign's are, {"code", "msg"}. The NONCE and SIGN tickets and the
// token never leave the sidecar. Whoever reaches these endpoints can launch
// a verification signed for any user: mount them where only the app's
// backend can.
type LocalHandler struct {
	// The app or apps answered for, as for webank_sign (see AppOptions).
	AppOptions

	// How many NONCE tickets per app may be fetched at once (default 16),
	// and how many launches beyond those may wait for a turn (default
	// 256). A launch that finds the queue full is answered 503
	// launches_busy at once; one that waits longer than the client does
	// is dropped with it. Numbers, without placeholders.
	NonceLimit int `json:"nonce_limit,omitempty"`
	NonceQueue int `json:"nonce_queue,omitempty"`

	// Where H5 login URLs point when the request gives no optimal_domain:
	// a scheme and host. Default: https://kyc1.qcloud.com. Accepts
	// placeholders.
	LoginURL string `json:"login_url,omitempty"`

	// The hosts an optimal_domain may name: a host (host:port) exactly, or
	// "*.example.com" for any host under example.com. Default:
	// *.webank.com, *.qcloud.com, *.tencentcloudapi.com and the host of
	// login_url. Another is refused with 400 login_host_not_allowed: the
	// URL carries a launch signed for the user. Accepts placeholders.
	LoginHosts []string `json:"login_hosts,omitempty"`

	// The hosts a callback_url may name, as login_hosts are written; none
	// (the default) allows any. A callback_url elsewhere is refused with
	// 400 callback_host_not_allowed. Accepts placeholders.
	CallbackHosts []string `json:"callback_hosts,omitempty"`

	// Where the handler is defined, such as "Caddyfile:12", to name it in
	// config errors; set by the Caddyfile adapter.
	Source string `json:"source,omitempty"`

	place         string   // Source, or the handler's number in its config: names it in config errors
	callbackHosts []string // lowercase; "*.x" for the hosts under x
	appSet                 // the apps answered for (apps.go)
	appSettings            // the shared options, parsed (options.go)
	loginScheme   string
	loginHost     string   // the default host of login URLs
	loginHosts    []string // lowercase; "*.x" for the hosts under x
	logger        *zap.Logger
}

// defaultLoginURL is where WeBank serves its H5 login page
// (docs/protocol.md §11); getAdvFaceId's optimalDomain names a nearer one.
const defaultLoginURL = "https://kyc1.qcloud.com"

var defaultLoginHosts = []string{"*.webank.com", "*.qcloud.com", "*.tencentcloudapi.com"}

// CaddyModule returns the Caddy module information.
func (LocalHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webank_sign_local",
		New: func() caddy.Module { return new(LocalHandler) },
	}
}

// Provision sets up h as Handler.Provision does a webank_sign handler: it
// registers h's apps in the process's ticket cache, and talks to no one.
func (h *LocalHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	return provisionHandler(ctx, h.Source, "webank_sign_local", &h.place, func(app *App) error { return h.provision(ctx, app) })
}

func (h *LocalHandler) provision(ctx caddy.Context, app *App) error {
	expand := newExpander()
	creds, err := h.appSettings.parse(&h.AppOptions, h.logger, expand)
	if err != nil {
		return err
	}
	h.nonceLimit, h.nonceQueue = h.NonceLimit, h.NonceQueue
	if err := h.parseLogin(expand); err != nil {
		return err
	}
	h.appSet, err = registerApps(ctx, app, h.place, len(h.Apps) > 0, creds, &h.appSettings, h.logger)
	return err
}

// parseLogin sets up where H5 login URLs may point.
func (h *LocalHandler) parseLogin(expand expandFunc) error {
	v, err := expand("login_url", h.LoginURL, defaultLoginURL)
	if err != nil {
		return err
	}
	base, err := parseBaseURL(v)
	if err != nil {
		return fmt.Errorf("login_url: %w", err)
	}
	u, _ := url.Parse(base)
	if u.Path != "" {
		return fmt.Errorf("login_url: %q must be a scheme and host only: the path is WeBank's /api/web/login", base)
	}
	h.loginScheme, h.loginHost = u.Scheme, u.Host
	hosts := h.LoginHosts
	if len(hosts) == 0 {
		hosts = defaultLoginHosts
	}
	more, err := hostList("login_hosts", hosts, expand)
	if err != nil {
		return err
	}
	h.loginHosts = append([]string{h.loginHost}, more...)
	h.callbackHosts, err = hostList("callback_hosts", h.CallbackHosts, expand)
	return err
}

// hostList expands and checks the hosts of option: each a host, host:port
// or *.domain, returned in lowercase.
func hostList(option string, hosts []string, expand expandFunc) ([]string, error) {
	var out []string
	for _, v := range hosts {
		host, err := expand(option, v, "")
		if err != nil {
			return nil, err
		}
		host = strings.ToLower(host)
		if _, ok := loginHost(strings.TrimPrefix(host, "*.")); !ok {
			return nil, fmt.Errorf("%s: %q is not a host, host:port or *.domain", option, v)
		}
		out = append(out, host)
	}
	return out, nil
}

// Validate checks the values Provision parsed against their limits.
func (h *LocalHandler) Validate() error {
	if err := h.appSettings.validate(); err != nil {
		return fmt.Errorf("%s: %w", h.place, err)
	}
	return nil
}

// Cleanup releases h's registrations in the ticket cache.
func (h *LocalHandler) Cleanup() error {
	h.appSet.release()
	return nil
}

// The endpoints, by the last element of the request's path.
const (
	endpointSDKSign    = "sdk_sign"
	endpointH5LoginURL = "h5_login_url"
	endpointVerify     = "verify"
)

// maxLocalBody bounds the body of a request to h: its members are a few
// short strings.
const maxLocalBody = 16 << 10

// ServeHTTP answers r by the last element of its path; it never calls
// next.
func (h *LocalHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	endpoint := path.Base(r.URL.Path)
	var serve func(http.ResponseWriter, *http.Request, localBody) error
	switch endpoint {
	case endpointSDKSign:
		serve = h.serveSDKSign
	case endpointH5LoginURL:
		serve = h.serveH5LoginURL
	case endpointVerify:
		serve = h.serveVerify
	default:
		return h.reject(w, "", nil, errLocalEndpoint)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return h.reject(w, endpoint, nil, errLocalMethod)
	}
	if err := checkJSONHeaders(r.Header); err != nil {
		return h.reject(w, endpoint, nil, err)
	}
	data, err := readBody(w, r, maxLocalBody, defaultBodyTimeout)
	if rf, ok := err.(*refusal); ok {
		return h.reject(w, endpoint, nil, rf)
	} else if err != nil {
		return err // the client went away
	}
	b, err := parseLocalBody(data, localFields[endpoint])
	if err != nil {
		return h.reject(w, endpoint, nil, err)
	}
	return serve(w, r, b)
}

// tenantFor returns the app a request to h is for, from its app_id.
func (h *LocalHandler) tenantFor(b localBody) (*tenant, error) {
	id, given := b["app_id"]
	return h.pick(appIDs{value: id, given: given})
}

// reject answers a request h refuses, with err, a *refusal.
func (h *LocalHandler) reject(w http.ResponseWriter, endpoint string, tn *tenant, err error) error {
	var rf *refusal
	if !errors.As(err, &rf) {
		return err
	}
	countLocal(h.label(tn), endpoint, outcomeRejected)
	return writeError(w, rf.Status, rf.Code, rf.Msg)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*LocalHandler)(nil)
	_ caddy.Validator             = (*LocalHandler)(nil)
	_ caddy.CleanerUpper          = (*LocalHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*LocalHandler)(nil)
	_ caddyfile.Unmarshaler       = (*LocalHandler)(nil)
)
