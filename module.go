// Package webanksign is a Caddy HTTP handler that signs requests to WeBank's
// (Tencent Cloud FaceID) server APIs, so that legacy applications can call
// them without ever holding the app secret. See README.md, and
// docs/protocol.md for the protocol it speaks.
package webanksign

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("webank_sign", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("webank_sign", httpcaddyfile.Before, "reverse_proxy")
}

// Handler signs requests to WeBank's server APIs that are signed with the
// SIGN ticket, so that a following reverse_proxy can forward them. It adds
// app_id, version, a fresh 32-character nonce and the SHA1 sign, computed
// by default over app_id, order_no, version, the SIGN ticket and the nonce
// (see ValueSet for the faceId APIs' and geth5faceid's, the latter without
// a nonce). It obtains the access token and the SIGN ticket itself, caches
// them per app, and refreshes them before they expire.
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
//     nonce, version and sign, and orderNo is also put in the URL. The
//     values signed are those of value_set: the five above, or those of the
//     faceId APIs (userId instead of orderNo) or of geth5faceid (seven,
//     without a nonce).
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
	// The app or apps signed for, and how their tokens and tickets are
	// fetched: app_id, secret, apps, base_url, version, refresh,
	// fetch_timeout and retry_codes (see AppOptions).
	AppOptions

	// The shape of the requests signed: "query" (GET or HEAD, parameters in
	// the query string) or "json" (POST, a JSON object body). Default: json for
	// the paths of WeBank's JSON APIs (/api/v2/base/queryfacerecord,
	// /api/v2/base/queryphotoinfo, /api/server/getOcrCertId,
	// /api/paas/easyface, /api/paas/idcardocrapp, /api/paas/bankcardocrapp,
	// /api/server/getAdvFaceId, /api/server/getfaceid,
	// /api/server/getPlusFaceId, /api/server/getWillFaceId and
	// /api/server/h5/geth5faceid), and wherever value_set is user_id or
	// h5_face_id; query for every other path. A request of the other shape
	// gets 405 wrong_shape. Placeholders are not expanded.
	Mode string `json:"mode,omitempty"`

	// The values a JSON body's sign is computed over (json mode):
	//   - "order_no": appId, orderNo, version, the SIGN ticket and a fresh
	//     nonce, as the result queries and the OCR uploads sign.
	//   - "user_id": appId, userId, version, the SIGN ticket and a fresh
	//     nonce, as the faceId APIs sign. The body must also hold orderNo,
	//     name and idNo, which are checked but not signed.
	//   - "h5_face_id": appId, orderNo, name, idNo, userId, version and the
	//     SIGN ticket, and no nonce: the client's is dropped and none is
	//     added, as geth5faceid signs.
	// userId is 1 to 32 characters of [A-Za-z0-9_-], name 1 to 64
	// characters without control characters, idNo 1 to 32 of [A-Za-z0-9];
	// a body without them, or with a field whose name reads as one of them
	// to a lenient server (UserId, user_id), gets 400. Default: the API's
	// on the paths listed under mode (user_id for the four faceId APIs,
	// h5_face_id for geth5faceid), order_no elsewhere. user_id and
	// h5_face_id imply mode json, and cannot be combined with mode query.
	// Placeholders are not expanded.
	ValueSet string `json:"value_set,omitempty"`

	// Whether clients may ask for photos and videos: "allow" (the default)
	// or "deny". With deny, a request with a get_file (getFile in a JSON
	// body; in any spelling a lenient server may bind to it, such as
	// GetFile or get_file[]) other than 0 is refused with 403
	// photos_denied, not forwarded:
	// it is refused rather than stripped, so that an app never takes a
	// missing photo for a result without one. Placeholders are not
	// expanded.
	Photos string `json:"photos,omitempty"`

	// The largest JSON body accepted, in bytes; a larger one gets 413.
	// Default: 8 MiB on the paths of the APIs that upload images
	// (idcardocrapp, bankcardocrapp, the four faceId APIs and geth5faceid)
	// and wherever value_set is user_id or h5_face_id; 1 MiB elsewhere,
	// ample for the result queries. A value given applies whatever the
	// path. Bodies are never logged. In the Caddyfile, a size such as
	// 8MiB; placeholders are not expanded.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// The longest a JSON body may take to arrive, from the moment the
	// handler starts reading it, as a duration string; a body still
	// incomplete then gets 408 body_timeout, and is not forwarded. It
	// caps, for that read, the server's own read timeouts (Caddy's
	// timeouts read_body and read_body_idle). Default: 10s. Accepts
	// placeholders.
	BodyTimeout string `json:"body_timeout,omitempty"`

	// The hosts for which absolute-form requests, as clients that use the
	// sidecar as an HTTP proxy send them (GET http://idasc.webank.com/...),
	// are signed, as host or host:port. Others get 403. Default: the host
	// of base_url. Accepts placeholders.
	ProxyHosts []string `json:"proxy_hosts,omitempty"`

	// Where the handler is defined, such as "Caddyfile:12": set by the
	// Caddyfile adapter, and used only to name places in config errors.
	Source string `json:"source,omitempty"`

	place    string // Source, or the handler's number in its config: names it in config errors
	appSet          // the apps signed for (apps.go)
	settings        // the options, parsed (config.go)
	logger   *zap.Logger
}

// AppCredentials is one app of a handler that signs for several.
type AppCredentials struct {
	// The WeBank app ID. Accepts placeholders.
	AppID string `json:"app_id"`
	// The app secret; see AppOptions.Secret. Accepts placeholders.
	Secret string `json:"secret"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webank_sign",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up h: it expands placeholders, applies defaults, parses
// values (config.go) and registers h's apps in the process's ticket cache.
// It does not talk to WeBank. Its errors name h's place in the config.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	return provisionHandler(ctx, h.Source, "webank_sign", &h.place, func(app *App) error { return h.provision(ctx, app) })
}

func (h *Handler) provision(ctx caddy.Context, app *App) error {
	creds, err := h.settings.parse(h)
	if err != nil {
		return err
	}
	h.appSet, err = registerApps(ctx, app, h.place, len(h.Apps) > 0, creds, &h.appSettings, h.logger)
	return err
}

// Validate checks the values Provision parsed against their limits. The
// credentials are checked as they are expanded, by Provision.
func (h *Handler) Validate() error {
	if err := h.settings.validate(); err != nil {
		return fmt.Errorf("%s: %w", h.place, err)
	}
	return nil
}

// Cleanup releases h's registrations in the ticket cache.
func (h *Handler) Cleanup() error {
	h.appSet.release()
	return nil
}

// ServeHTTP signs r and passes it to next, or answers it with a JSON error;
// see serve.go.
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
	api, isJSONAPI := jsonAPIs[r.URL.Path]
	if h.mode == modeJSON || h.mode == "" && isJSONAPI {
		return h.serveJSON(w, r, next, api)
	}
	return h.serveQuery(w, r, next)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
