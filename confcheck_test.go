package webanksign

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/intercept"
	caddylogging "github.com/caddyserver/caddy/v2/modules/caddyhttp/logging"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"
)

// Builders of provisioned routes, as checkExposure sees them.

func route(hs ...caddyhttp.MiddlewareHandler) caddyhttp.Route {
	return caddyhttp.Route{Handlers: hs}
}

// matched is a route with a matcher: it may not run.
func matched(hs ...caddyhttp.MiddlewareHandler) caddyhttp.Route {
	r := route(hs...)
	r.MatcherSets = caddyhttp.MatcherSets{{caddyhttp.MatchPath{"/x"}}}
	return r
}

func subroute(rs ...caddyhttp.Route) *caddyhttp.Subroute {
	return &caddyhttp.Subroute{Routes: rs}
}

func signer(source, mode string) *Handler {
	return &Handler{Source: source, settings: settings{mode: mode}}
}

func setOp(value string) *headers.HeaderOps {
	return &headers.HeaderOps{Set: http.Header{"X-Test": {value}}}
}

func proxy() *reverseproxy.Handler { return &reverseproxy.Handler{} }

func uriRewrite() *rewrite.Rewrite { return &rewrite.Rewrite{StripPathPrefix: "/v1"} }

func TestCheckExposure(t *testing.T) {
	cases := []struct {
		name   string
		routes caddyhttp.RouteList
		named  map[string]*caddyhttp.Route
		want   string // a part of the error; "" for none
	}{
		{
			name:   "sign then proxy",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), proxy())},
		},
		{
			name:   "redir with the uri",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), &caddyhttp.StaticResponse{Headers: http.Header{"Location": {"/new{http.request.uri}"}}})},
			want:   "respond or redir directive after it uses {http.request.uri},",
		},
		{
			name:   "respond with the query",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), &caddyhttp.StaticResponse{Body: "you sent {http.request.uri.query}"})},
			want:   "respond or redir directive after it uses {http.request.uri.query},",
		},
		{
			name:   "error with the uri",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), &caddyhttp.StaticError{Error: "bad {http.request.uri}"})},
			want:   "error directive after it uses {http.request.uri},",
		},
		{
			name:   "log_append with the uri",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), &caddylogging.LogAppend{Key: "u", Value: "{http.request.uri}"}, proxy())},
			want:   "log_append directive after it uses {http.request.uri},",
		},
		{
			name: "intercept answering with the uri",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), &intercept.Intercept{HandleResponse: []caddyhttp.ResponseHandler{
				{Routes: caddyhttp.RouteList{route(&caddyhttp.StaticResponse{Body: "{http.request.uri}"})}},
			}}, proxy())},
			want: "respond or redir directive after it uses {http.request.uri},",
		},
		{
			name:   "rewrite before sign",
			routes: caddyhttp.RouteList{route(uriRewrite(), signer("Caddyfile:3", ""), proxy())},
		},
		{
			name:   "rewrite after sign",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), uriRewrite(), proxy())},
			want:   "webank_sign (Caddyfile:3): sign and nonce would be exposed: a rewrite or uri directive after it",
		},
		{
			// The Handler's number names it when the Caddyfile gave no Source.
			name:   "no source",
			routes: caddyhttp.RouteList{route(&Handler{place: "webank_sign handler #2 of the config"}, uriRewrite())},
			want:   "webank_sign handler #2 of the config: sign and nonce would be exposed",
		},
		{
			name:   "reverse_proxy rewrite",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), &reverseproxy.Handler{Rewrite: &rewrite.Rewrite{URI: "/y"}})},
			want:   "reverse_proxy's rewrite",
		},
		{
			name: "header_up with the query",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""),
				&reverseproxy.Handler{Headers: &headers.Handler{Request: setOp("q={http.request.uri.query}")}})},
			want: "reverse_proxy's header_up uses {http.request.uri.query},",
		},
		{
			name: "header_down with a parameter",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""),
				&reverseproxy.Handler{Headers: &headers.Handler{Response: &headers.RespHeaderOps{HeaderOps: setOp("{http.request.uri.query.sign}")}}})},
			want: "reverse_proxy's header_down uses {http.request.uri.query.sign},",
		},
		{
			name: "header replace with the escaped uri",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""),
				&headers.Handler{Request: &headers.HeaderOps{Replace: map[string][]headers.Replacement{"X-A": {{Search: "a", Replace: "{http.request.uri_escaped}"}}}}},
				proxy())},
			want: "header directive after it uses {http.request.uri_escaped},",
		},
		{
			name: "orig_uri and path are fine",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""),
				&headers.Handler{Request: setOp("{http.request.orig_uri} {http.request.orig_uri.query} {http.request.uri.path} {http.request.uri.path.file}")},
				proxy())},
		},
		{
			// json mode adds only orderNo to the URL: a rewrite shows no sign.
			name:   "json mode rewrite",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", modeJSON), uriRewrite(), proxy())},
		},
		{
			name: "json mode body placeholder",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", modeJSON),
				&reverseproxy.Handler{Headers: &headers.Handler{Request: setOp("{http.request.body}")}})},
			want: "header_up uses {http.request.body},",
		},
		{
			name: "query mode body placeholder",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", modeQuery),
				&reverseproxy.Handler{Headers: &headers.Handler{Request: setOp("{http.request.body}")}})},
		},
		{
			// webank_sign calls next: the routes after its subroute follow it.
			name: "rewrite in a later route",
			routes: caddyhttp.RouteList{
				matched(subroute(route(signer("Caddyfile:3", "")))),
				route(subroute(route(uriRewrite()), route(proxy()))),
			},
			want: "webank_sign (Caddyfile:3)",
		},
		{
			// reverse_proxy answers: a later handle block is not reached signed.
			name: "later handle block",
			routes: caddyhttp.RouteList{
				matched(subroute(route(signer("Caddyfile:3", "")), route(proxy()))),
				route(subroute(route(uriRewrite()), route(&caddyhttp.StaticResponse{}))),
			},
		},
		{
			// A proxy with a matcher may be skipped, and the rewrite reached.
			name:   "proxy that may not match",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", "")), matched(proxy()), route(uriRewrite())},
			want:   "rewrite or uri directive",
		},
		{
			name: "handle_response route",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), &reverseproxy.Handler{HandleResponse: []caddyhttp.ResponseHandler{{
				Routes: caddyhttp.RouteList{route(&headers.Handler{Response: &headers.RespHeaderOps{HeaderOps: setOp("{http.request.uri}")}})},
			}}})},
			want: "header directive after it uses {http.request.uri},",
		},
		{
			name: "subroute error routes",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), &caddyhttp.Subroute{
				Routes: caddyhttp.RouteList{route(proxy())},
				Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{route(uriRewrite())}},
			})},
			want: "rewrite or uri directive",
		},
		{
			name:   "invoked named route",
			routes: caddyhttp.RouteList{route(signer("Caddyfile:3", ""), &caddyhttp.Invoke{Name: "up"})},
			named:  map[string]*caddyhttp.Route{"up": {Handlers: []caddyhttp.MiddlewareHandler{uriRewrite(), proxy()}}},
			want:   "rewrite or uri directive",
		},
		{
			name:   "named route invoking itself",
			routes: caddyhttp.RouteList{route(&caddyhttp.Invoke{Name: "loop"})},
			named:  map[string]*caddyhttp.Route{"loop": {Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Invoke{Name: "loop"}}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := &caddyhttp.App{Servers: map[string]*caddyhttp.Server{
				"srv0": {Routes: c.routes, NamedRoutes: c.named},
			}}
			err := checkExposure(app)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("checkExposure = %v, want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("checkExposure = %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestExposingPlaceholder(t *testing.T) {
	both := signs{query: true, body: true}
	cases := []struct {
		text string
		s    signs
		want string
	}{
		{"{http.request.uri}", both, "{http.request.uri}"},
		{"a {http.request.uri.prefixed_query} b", both, "{http.request.uri.prefixed_query}"},
		{"{http.request.uri.query.nonce}", both, "{http.request.uri.query.nonce}"},
		{"{http.request.body_base64}", both, "{http.request.body_base64}"},
		{"{http.request.uri.path.dir}", both, ""},
		{"{http.request.orig_uri.query}", both, ""},
		{"{http.request.host}{http.request.uri", both, "{http.request.uri"}, // unclosed: named as written
		{"{http.request.uri.query}", signs{body: true}, ""},
		{"{http.request.body}", signs{query: true}, ""},
	}
	for _, c := range cases {
		if got := c.s.exposingPlaceholder(c.text); got != c.want {
			t.Errorf("%+v.exposingPlaceholder(%q) = %q, want %q", c.s, c.text, got, c.want)
		}
	}
}
