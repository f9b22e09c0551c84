package webanktest

import "net/url"

// Calls reports how many requests with an allowed method reached the
// endpoint at path, one of the Path constants, however they were answered,
// faults included. A request is counted on arrival, before it is answered.
// RotateToken is not counted. A request for a NONCE ticket (type=NONCE)
// is counted in NonceCalls, not in Calls(PathTicket). Calls of any other
// path is 0.
func (f *Fake) Calls(path string) int64 {
	if rt, ok := f.routes[path]; ok {
		return f.calls[rt.ep].Load()
	}
	return 0
}

// Requests returns copies of what the last 1000 requests counted in Calls
// sent to the endpoint at path, oldest first, faults included, for every
// Path constant but PathToken and PathTicket: those requests carry the
// secret and access token and are not kept. The caller may modify the
// result, which is nil if there are none, or for any other path.
//
// For the GET endpoints, each element is the request's query as parsed.
// For the POST endpoints, it holds each top-level member of the JSON body
// under its own key, as the string for a JSON string and as compact JSON
// text otherwise (so getFile 1 and "1" are both "1", but null is "null" and
// {"a":1} is `{"a":1}`); a repeated member gives several values. A value
// longer than 64 KiB, such as a photo, is kept as its length and SHA-256
// instead, "sha256:" + 64 hex digits + ",bytes=" + its length in bytes. A
// body that is not a well-formed JSON object adds nothing. Besides, each URL
// query parameter appears as "url:" + its name (so the URL's orderNo is
// "url:orderNo"), and the Content-Length and Content-Type headers the
// request carried as "header:Content-Length" and "header:Content-Type"
// (absent if not sent; Go's server drops Content-Length from a chunked
// request).
func (f *Fake) Requests(path string) []url.Values {
	f.requestsMu.Lock()
	defer f.requestsMu.Unlock()
	kept := f.requests[path]
	if kept == nil {
		return nil
	}
	out := make([]url.Values, len(kept))
	for i, q := range kept {
		out[i] = copyValues(q)
	}
	return out
}

// TokenCalls is Calls(PathToken).
func (f *Fake) TokenCalls() int64 { return f.Calls(PathToken) }

// TicketCalls is Calls(PathTicket).
func (f *Fake) TicketCalls() int64 { return f.Calls(PathTicket) }

// OCRCalls is Calls(PathOCR).
func (f *Fake) OCRCalls() int64 { return f.Calls(PathOCR) }

// OCRQueries is Requests(PathOCR), but never nil.
func (f *Fake) OCRQueries() []url.Values {
	if q := f.Requests(PathOCR); q != nil {
		return q
	}
	return []url.Values{}
}

// NonceCalls reports how many requests for a NONCE ticket (to PathTicket
// with type=NONCE) arrived, however they were answered, faults included.
func (f *Fake) NonceCalls() int64 { return f.calls[NonceEndpoint].Load() }

// NonceTickets reports how many NONCE tickets were issued.
func (f *Fake) NonceTickets() int64 { return f.nonceTickets.Load() }

// Logins reports how many logins the H5 login page let through: each used
// up a NONCE ticket and was redirected to its callback.
func (f *Fake) Logins() int64 { return f.logins.Load() }

// SDKLogins reports how many logins the SDK login endpoint let through,
// each using up a NONCE ticket.
func (f *Fake) SDKLogins() int64 { return f.sdkLogins.Load() }

// BadSignatures reports how many requests to the signed endpoints, all
// together, were answered "400101" because their sign matched no ticket
// issued for the app.
func (f *Fake) BadSignatures() int64 { return f.badSignatures.Load() }

// StaleTickets reports how many requests to the signed endpoints, all
// together, were answered "15" because they were signed with a ticket that
// had expired, or whose access token had expired or been superseded past
// grace.
func (f *Fake) StaleTickets() int64 { return f.staleTickets.Load() }

// ReusedNonces reports how many requests to the signed endpoints, all
// together, were answered "400101" because their nonce had already come
// with a valid signature, to any signed endpoint, for the same app.
func (f *Fake) ReusedNonces() int64 { return f.reusedNonces.Load() }

// BadRequests reports how many requests, on any endpoint, were answered
// "400102" for a missing, repeated or malformed parameter or body.
func (f *Fake) BadRequests() int64 { return f.badRequests.Load() }

// recordRequest keeps q, which the caller no longer modifies, for Requests.
func (f *Fake) recordRequest(path string, q url.Values) {
	f.requestsMu.Lock()
	defer f.requestsMu.Unlock()
	f.requests[path] = appendBounded(f.requests[path], q, maxRequests)
}

// recorded returns what Requests shows of x's request, a new url.Values.
func (x *exchange) recorded() url.Values {
	if x.body == nil {
		return copyValues(x.query)
	}
	out := x.body.values()
	for k, vs := range x.query {
		out["url:"+k] = append([]string(nil), vs...)
	}
	for _, h := range []string{"Content-Length", "Content-Type"} {
		if vs := x.r.Header.Values(h); len(vs) > 0 {
			out["header:"+h] = append([]string(nil), vs...)
		}
	}
	return out
}

func copyValues(q url.Values) url.Values {
	c := make(url.Values, len(q))
	for k, vs := range q {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// appendBounded appends v to s and drops the oldest elements so that at most
// limit remain.
func appendBounded[T any](s []T, v T, limit int) []T {
	s = append(s, v)
	if over := len(s) - limit; over > 0 {
		s = append(s[:0], s[over:]...)
	}
	return s
}
