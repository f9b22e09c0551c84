package webanksign

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// This file is a request's way in: the checks of its shape (query or JSON
// body) and the choice of its app, then forward (forward.go): get the
// app's ticket, sign, pass on to next (reverse_proxy), and, if WeBank
// rejects the ticket, sign again with another and retry once.

// serveQuery signs a request whose parameters are in the query string.
func (h *Handler) serveQuery(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		if r.Method == http.MethodPost {
			return h.reject(w, nil, errQueryShape) // 405 too, with a code that says why
		}
		return h.reject(w, nil, errQueryMethod)
	}
	if r.ContentLength != 0 { // -1: chunked
		return h.reject(w, nil, errBodyNotAllowed)
	}
	q, err := clientQuery(r.URL.RawQuery)
	if err != nil {
		return h.reject(w, nil, err)
	}
	tn, err := h.pick(q.appID)
	if err != nil {
		return h.reject(w, nil, err)
	}
	if h.denyFiles && q.filesRequested() {
		return h.reject(w, tn, errFilesDenied)
	}
	// r.URL carries the signed query to the next handler; r.RequestURI stays
	// as the client sent it, since reverse_proxy logs it. Restore the client's
	// query afterwards, so that nothing later (logs, placeholders) sees sign.
	clientRaw := r.URL.RawQuery
	defer func() { r.URL.RawQuery = clientRaw }()
	return h.forward(w, r, next, tn, q.orderNo, func(t *tickets.Ticket) {
		r.URL.RawQuery = signQuery(&q, tn.creds.AppID, h.version, t.Value())
	})
}

// serveJSON signs a request whose parameters are in a JSON body. api is
// the entry of its path in jsonAPIs, if any.
func (h *Handler) serveJSON(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, api jsonAPI) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return h.reject(w, nil, errJSONShape) // 405 too, with a code that says why
		}
		return h.reject(w, nil, errJSONMethod)
	}
	if err := checkJSONHeaders(r.Header); err != nil {
		return h.reject(w, nil, err)
	}
	set, limit := h.jsonRequest(api)
	data, err := readBody(w, r, limit, h.bodyWait)
	if rf, ok := err.(*refusal); ok {
		return h.reject(w, nil, rf)
	} else if err != nil {
		return err // the client went away
	}
	var b checkedBody
	if err := parseBody(data, set, &b); err != nil {
		return h.reject(w, nil, err)
	}
	tn, err := h.pick(appIDs{value: b.appID, given: b.hasAppID})
	if err != nil {
		return h.reject(w, nil, err)
	}
	// WeBank wants orderNo in the URL too, to track latency.
	clientRaw := r.URL.RawQuery
	urlFiles := false
	if clientRaw == "" {
		r.URL.RawQuery = fieldOrderNo + "=" + string(b.orderNo) // an order number needs no escaping
	} else {
		vals, err := url.ParseQuery(clientRaw)
		if err != nil {
			return h.reject(w, tn, errQueryMalformed)
		}
		var imit imitations
		webankAppID := false
		for k := range vals {
			imit.add(k, &urlOwned[set])
			webankAppID = webankAppID || isWebankAppID(k)
		}
		if err := imit.err(&jsonOwned[set]); err != nil {
			return h.reject(w, tn, err)
		}
		if webankAppID {
			return h.reject(w, tn, errWebankAppID)
		}
		switch orderNos := vals[fieldOrderNo]; {
		case len(orderNos) > 1:
			return h.reject(w, tn, errOrderNoURLRep)
		case len(orderNos) == 1 && orderNos[0] != string(b.orderNo):
			return h.reject(w, tn, errOrderNoURL)
		case len(orderNos) == 0:
			r.URL.RawQuery += "&" + fieldOrderNo + "=" + string(b.orderNo)
		}
		urlFiles = urlFilesRequested(vals)
	}
	// Afterwards nothing later (logs, placeholders) sees the signed query or
	// body: the client's query is put back, and the body, which was read,
	// is the client's again.
	rd := new(jsonBodies)
	clientCL, clientCL0 := r.Header["Content-Length"], "" // the one value is replaced in place
	if len(clientCL) == 1 {
		clientCL0 = clientCL[0]
	}
	defer func() {
		r.URL.RawQuery = clientRaw
		rd.client.Reset(data)
		r.Body, r.GetBody, r.ContentLength = &rd.client, nil, int64(len(data))
		if len(clientCL) == 1 {
			clientCL[0] = clientCL0
		}
		if clientCL == nil {
			delete(r.Header, "Content-Length")
		} else {
			r.Header["Content-Length"] = clientCL
		}
	}()
	if h.denyFiles && api.photo {
		return h.reject(w, tn, errPhotoAPIDenied)
	}
	if h.denyFiles && (b.filesRequested() || urlFiles) {
		return h.reject(w, tn, errFilesDenied)
	}
	// The body is read: it goes on whole, with its length, as JSON (UTF-8,
	// not compressed), and the client's Expect: 100-continue has been
	// answered already.
	r.TransferEncoding = nil
	hdr := r.Header
	hdr.Del("Transfer-Encoding")
	hdr.Del("Expect")
	if ct := hdr["Content-Type"]; len(ct) != 1 || ct[0] != "application/json" {
		hdr.Set("Content-Type", "application/json")
	}
	hdr.Del("Content-Encoding")
	return h.forward(w, r, next, tn, string(b.orderNo), func(t *tickets.Ticket) {
		body := signBody(&b, tn.creds.AppID, h.version, t.Value())
		r.Body = rd.next(body)
		r.GetBody = func() (io.ReadCloser, error) { return newBodyReader(body), nil }
		r.ContentLength = int64(len(body))
		if cl := hdr["Content-Length"]; len(cl) == 1 {
			cl[0] = strconv.Itoa(len(body)) // the client's, replaced in place
		} else {
			hdr.Set("Content-Length", strconv.Itoa(len(body)))
		}
	})
}

// bodyReader is a request body read from memory.
type bodyReader struct{ bytes.Reader }

// jsonBodies are the readers of a JSON request's bodies, allocated
// together: the first signed one, and the client's, which the request
// carries again once it has been passed on.
type jsonBodies struct {
	signed bodyReader
	client bodyReader
	used   bool // signed has been handed out
}

// next returns a reader of body: the first time, signed; after that (a
// retry, while the transport may still hold the first), a new one.
func (j *jsonBodies) next(body []byte) io.ReadCloser {
	if j.used {
		return newBodyReader(body)
	}
	j.used = true
	j.signed.Reset(body)
	return &j.signed
}

func newBodyReader(b []byte) *bodyReader {
	br := new(bodyReader)
	br.Reset(b)
	return br
}

// Close does nothing: there is nothing to release.
func (*bodyReader) Close() error { return nil }

// readBody reads a JSON request's body, at most maxBody bytes of it and
// for no longer than wait. Its errors are a *refusal for the client, or
// the error to return when the client went away.
func readBody(w http.ResponseWriter, r *http.Request, maxBody int64, wait time.Duration) ([]byte, error) {
	if r.ContentLength > maxBody {
		return nil, errBodyTooLarge
	}
	// The read is bounded by body_timeout, so that a client trickling its
	// body cannot hold the request. A writer without read deadlines (a
	// test recorder, a wrapper that hides them) leaves the server's own.
	// The deadline is not lifted here: net/http lifts it itself once the
	// body is read to its end (its background read of the connection starts
	// without one), and so does Caddy, whereas lifting it through Caddy's
	// controller would put back the server's read_body deadline, and the
	// background read would then cancel a request still being answered. A
	// body refused before its end keeps the deadline, which then bounds
	// net/http's draining of the rest.
	if r.ContentLength != 0 { // 0: no body, and a background read already under way
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(wait))
	}
	data, err := readAtMost(r.Body, r.ContentLength, maxBody+1)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) { // first: a read timeout also cancels the context
			return nil, errBodyTimeout
		}
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok { // Caddy's request_body max_size
			return nil, errBodyTooLarge
		}
		if r.Context().Err() != nil {
			return nil, caddyhttp.Error(http.StatusBadRequest, err) // the client went away
		}
		return nil, errBodyUnreadable
	}
	if int64(len(data)) > maxBody {
		return nil, errBodyTooLarge
	}
	return data, nil
}

// maxPrealloc is the most readAtMost allocates before any of a body has
// arrived: beyond it, what is allocated follows what arrives, so that a
// client announcing a large body and sending none costs no more than this.
const maxPrealloc = 64 << 10

// readAtMost reads body to its end, as io.ReadAll does, but no more than
// limit bytes, into one buffer sized for the length the client gave, if
// any (size, or -1), up to maxPrealloc, so that a body of the length
// announced is read with one allocation unless it is larger than that.
// Past it, the buffer doubles as the body arrives, up to the length
// announced.
func readAtMost(body io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 || size >= limit {
		size = 511 // as io.ReadAll starts
	}
	lr := io.LimitedReader{R: body, N: limit}
	b := make([]byte, 0, min(size, maxPrealloc)+1) // +1: the read that finds the end has room
	for {
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		} else if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			grow := len(b) // doubling
			if rest := size + 1 - int64(len(b)); rest > 0 && rest < int64(grow) {
				grow = int(rest) // the announced length, reached
			}
			b = slices.Grow(b, grow)
		}
	}
}

// checkJSONHeaders checks the headers that describe a JSON request's body:
// one Content-Type, application/json with at most a UTF-8 charset, and at
// most one Content-Encoding, identity. A repeated one is refused, not read
// first-wins: a server behind may read another one.
func checkJSONHeaders(hdr http.Header) error {
	switch {
	case len(hdr.Values("Content-Type")) > 1:
		return errContentTypeRep
	case len(hdr.Values("Content-Encoding")) > 1:
		return errContentEncRep
	}
	if ct := hdr["Content-Type"]; len(ct) == 1 && (ct[0] == "application/json" || strings.EqualFold(ct[0], "application/json; charset=utf-8")) {
		// The usual spellings, accepted without the parser's allocations.
	} else if err := checkContentType(hdr.Get("Content-Type")); err != nil {
		return err
	}
	if ce := hdr.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return errContentEnc
	}
	return nil
}

// checkContentType checks a Content-Type: application/json, with at most a
// UTF-8 charset.
func checkContentType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errContentType
	}
	for k, v := range params { // ParseMediaType lowercases k
		if k != "charset" || !strings.EqualFold(v, "utf-8") && !strings.EqualFold(v, "utf8") {
			return errContentType
		}
	}
	return nil
}

// urlFilesRequested reports whether a JSON request's URL query asks for
// photos or videos too.
func urlFilesRequested(vals url.Values) bool {
	for k, vs := range vals {
		if isGetFile(k) && slices.ContainsFunc(vs, func(v string) bool { return v != "0" }) {
			return true
		}
	}
	return false
}

// reject answers a request the module refuses by itself, with err, a
// *refusal. tn is the app the request was for, if known.
func (h *Handler) reject(w http.ResponseWriter, tn *tenant, err error) error {
	qe := err.(*refusal)
	metrics.requests.WithLabelValues(h.label(tn), outcomeRejected, strconv.Itoa(qe.Status)).Inc()
	return writeError(w, qe.Status, qe.Code, qe.Msg)
}
