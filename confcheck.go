package webanksign

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/intercept"
	caddylogging "github.com/caddyserver/caddy/v2/modules/caddyhttp/logging"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"
)

// This file is the load-time check that no handler a signed request can
// reach after webank_sign shows sign and nonce. webank_sign puts the
// signed query into r.URL (or the signed body into r.Body) for the
// handlers after it, and ordinary Caddy features would copy it where it
// may not go: a rewrite (uri, rewrite, or reverse_proxy's) into the
// request URI that Caddy and reverse_proxy log, and {http.request.uri*} or
// {http.request.body} placeholders into headers that are logged or sent
// to the client. The module cannot keep those features from reading r.URL,
// so a config that uses them there is refused, naming the directive.

// checkExposure walks the routes of every server of app in the order a
// request takes them, and returns an error naming the first handler that
// a request signed by webank_sign can reach and that would expose the
// signed query. app must be provisioned.
//
// The walk is conservative where it cannot know which way a request goes:
// a route with matchers may or may not run, and routes of one group are
// walked one after the other, as if all could run. It relies on what
// handlers do with next: webank_sign, and any handler not named below,
// calls it; reverse_proxy without handle_response routes, and respond, do
// not, so a signed request goes no further than them.
func checkExposure(app *caddyhttp.App) error {
	for _, name := range slices.Sorted(maps.Keys(app.Servers)) {
		srv := app.Servers[name]
		w := &walker{named: srv.NamedRoutes, invoking: make(map[string]bool)}
		if _, err := w.routes(srv.Routes, nil); err != nil {
			return err
		}
		// A server's error routes run after the handler chain has returned,
		// and webank_sign has put the client's query back by then.
		if srv.Errors != nil {
			if _, err := w.routes(srv.Errors.Routes, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// walker follows a request through one server's routes.
type walker struct {
	named    map[string]*caddyhttp.Route // the server's named routes, for invoke
	invoking map[string]bool             // named routes being walked, against invoke loops
}

// routes walks list for a request that signer has signed, or an unsigned
// one if signer is nil. It returns the signer of the request that may go
// on past list (to the handler after the list), or nil if none can.
func (w *walker) routes(list caddyhttp.RouteList, signer *Handler) (*Handler, error) {
	for i := range list {
		r := &list[i]
		out, err := w.handlers(r.Handlers, signer)
		if err != nil {
			return nil, err
		}
		// A route whose matchers fail is skipped: the request goes on as it came.
		if out == nil && len(r.MatcherSets) > 0 {
			out = signer
		}
		signer = out
	}
	return signer, nil
}

// handlers walks one route's handlers, as routes does a route list.
func (w *walker) handlers(hs []caddyhttp.MiddlewareHandler, signer *Handler) (*Handler, error) {
	for _, mh := range hs {
		if signer != nil {
			if err := exposes(mh, signer); err != nil {
				return nil, err
			}
		}
		switch h := mh.(type) {
		case *Handler:
			signer = h
		case *caddyhttp.Subroute:
			out, err := w.routes(h.Routes, signer)
			if err != nil {
				return nil, err
			}
			// The subroute's error routes run inside it, so inside any
			// webank_sign before it, before its query is put back.
			if h.Errors != nil {
				if _, err := w.routes(h.Errors.Routes, signer); err != nil {
					return nil, err
				}
			}
			signer = out
		case *reverseproxy.Handler:
			// handle_response routes run with the request reverse_proxy
			// got, and may call next; without them, reverse_proxy answers.
			out := (*Handler)(nil)
			for _, rh := range h.HandleResponse {
				o, err := w.routes(rh.Routes, signer)
				if err != nil {
					return nil, err
				}
				if o != nil {
					out = o
				}
			}
			if len(h.HandleResponse) > 0 && out == nil {
				out = signer // a response no handle_response matches goes through as it came
			}
			signer = out
		case *intercept.Intercept:
			// Its handle_response routes run with the signed request, after
			// next answered; a response none matches goes through as it came.
			for _, rh := range h.HandleResponse {
				if _, err := w.routes(rh.Routes, signer); err != nil {
					return nil, err
				}
			}
		case *caddyhttp.StaticResponse:
			signer = nil
		case *caddyhttp.Invoke:
			route, ok := w.named[h.Name]
			if !ok || w.invoking[h.Name] {
				continue
			}
			w.invoking[h.Name] = true
			out, err := w.routes(caddyhttp.RouteList{*route}, signer)
			delete(w.invoking, h.Name)
			if err != nil {
				return nil, err
			}
			signer = out
		}
	}
	return signer, nil
}

// exposes returns an error if h, reached by a request signer signed, would
// expose the signed query or body. A signer in json mode signs the body
// only (it adds orderNo alone to the URL), one in query mode the query
// only, and one without a mode either, by path.
func exposes(h caddyhttp.MiddlewareHandler, signer *Handler) error {
	s := signs{query: signer.mode != modeJSON, body: signer.mode != modeQuery}
	switch h := h.(type) {
	case *rewrite.Rewrite:
		if !s.query {
			return nil
		}
		return exposed(signer, "a rewrite or uri directive after it puts sign and nonce into the request URI, which Caddy's logs show",
			"rewrite before webank_sign instead")
	case *reverseproxy.Handler:
		if h.Rewrite != nil && s.query {
			return exposed(signer, "reverse_proxy's rewrite after it puts sign and nonce into the upstream request URI, which reverse_proxy logs",
				"rewrite before webank_sign instead")
		}
		if h.Headers != nil {
			if p := s.placeholder(h.Headers.Request); p != "" {
				return exposed(signer, "reverse_proxy's header_up uses "+p+", which holds sign and nonce there", movePlaceholder)
			}
			if h.Headers.Response != nil {
				if p := s.placeholder(h.Headers.Response.HeaderOps); p != "" {
					return exposed(signer, "reverse_proxy's header_down uses "+p+", which holds sign and nonce there", movePlaceholder)
				}
			}
		}
	case *caddyhttp.StaticResponse:
		p := s.exposingPlaceholder(h.Body)
		if p == "" {
			p = s.placeholder(&headers.HeaderOps{Set: h.Headers})
		}
		if p != "" {
			return exposed(signer, "a respond or redir directive after it uses "+p+", which holds sign and nonce there, in its answer to the client", movePlaceholder)
		}
	case *caddylogging.LogAppend:
		// Its value is read for the access log while the request is signed:
		// early, or once next has answered, before the query is put back.
		if p := s.exposingPlaceholder(h.Value); p != "" {
			return exposed(signer, "a log_append directive after it uses "+p+", which holds sign and nonce there, in the access log", movePlaceholder)
		}
	case *caddyhttp.StaticError:
		if p := s.exposingPlaceholder(h.Error); p != "" {
			return exposed(signer, "an error directive after it uses "+p+", which holds sign and nonce there, in an error that Caddy logs", movePlaceholder)
		}
	case *headers.Handler:
		p := s.placeholder(h.Request)
		if p == "" && h.Response != nil {
			p = s.placeholder(h.Response.HeaderOps)
		}
		if p != "" {
			return exposed(signer, "a header or request_header directive after it uses "+p+", which holds sign and nonce there", movePlaceholder)
		}
	}
	return nil
}

const movePlaceholder = "use {http.request.orig_uri}, {http.request.orig_uri.query} and the like, which hold what the client sent, or move it before webank_sign"

// exposed is the error that what h signed would be exposed by what.
func exposed(h *Handler, what, remedy string) error {
	name := "webank_sign"
	switch {
	case h.Source != "":
		name += " (" + h.Source + ")"
	case h.place != "":
		name = h.place
	}
	return fmt.Errorf("%s: sign and nonce would be exposed: %s; %s", name, what, remedy)
}

// signs says what a webank_sign handler signs: the query, the body, or
// either, depending on the request's path.
type signs struct{ query, body bool }

// exposingPlaceholder returns the first placeholder in text that, after
// webank_sign, holds what it signed. For the query: {http.request.uri},
// {http.request.uri_escaped}, {http.request.uri.query} and its parameters,
// {http.request.uri.prefixed_query}. For the JSON body:
// {http.request.body} and its base64. The path placeholders,
// {http.request.uri.path...}, are fine, since the path is never signed; so
// is {http.request.orig_uri...}, the URI the client sent.
func (s signs) exposingPlaceholder(text string) string {
	for i := 0; i < len(text); i++ {
		rest := text[i:]
		query := strings.HasPrefix(rest, "{http.request.uri") && !strings.HasPrefix(rest, "{http.request.uri.path")
		body := strings.HasPrefix(rest, "{http.request.body")
		if !(query && s.query) && !(body && s.body) {
			continue
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return rest
		}
		return rest[:end+1]
	}
	return ""
}

// placeholder returns the first placeholder in ops that exposes what was
// signed, or "" if there is none.
func (s signs) placeholder(ops *headers.HeaderOps) string {
	if ops == nil {
		return ""
	}
	var texts []string
	for _, hdr := range []map[string][]string{ops.Add, ops.Set} {
		for k, vs := range hdr {
			texts = append(texts, k)
			texts = append(texts, vs...)
		}
	}
	for k, rs := range ops.Replace {
		texts = append(texts, k)
		for _, r := range rs {
			texts = append(texts, r.Search, r.Replace)
		}
	}
	slices.Sort(texts) // the same config names the same placeholder
	for _, text := range texts {
		if p := s.exposingPlaceholder(text); p != "" {
			return p
		}
	}
	return ""
}
