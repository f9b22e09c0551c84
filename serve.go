package webanksign

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// This file is a request's way through the handler: the checks of its
// shape (query or JSON body), the choice of its app, then forward: get the
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

// serveJSON signs a request whose parameters are in a JSON body.
func (h *Handler) serveJSON(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
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
	if r.ContentLength > h.maxBody {
		return h.reject(w, nil, errBodyTooLarge)
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
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.bodyWait))
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) { // first: a read timeout also cancels the context
			return h.reject(w, nil, errBodyTimeout)
		}
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok { // Caddy's request_body max_size
			return h.reject(w, nil, errBodyTooLarge)
		}
		if r.Context().Err() != nil {
			return caddyhttp.Error(http.StatusBadRequest, err) // the client went away
		}
		return h.reject(w, nil, errBodyUnreadable)
	}
	if int64(len(data)) > h.maxBody {
		return h.reject(w, nil, errBodyTooLarge)
	}
	b, err := parseBody(data)
	if err != nil {
		return h.reject(w, nil, err)
	}
	tn, err := h.pick(appIDs{value: b.appID, given: b.hasAppID})
	if err != nil {
		return h.reject(w, nil, err)
	}
	// WeBank wants orderNo in the URL too, to track latency.
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return h.reject(w, tn, errQueryMalformed)
	}
	var imit imitations
	for k := range vals {
		imit.add(k, &urlOwned)
	}
	if err := imit.err(&jsonOwned); err != nil {
		return h.reject(w, tn, err)
	}
	clientRaw := r.URL.RawQuery
	switch orderNos := vals[fieldOrderNo]; {
	case len(orderNos) > 1:
		return h.reject(w, tn, errOrderNoURLRep)
	case len(orderNos) == 1 && orderNos[0] != b.orderNo:
		return h.reject(w, tn, errOrderNoURL)
	case len(orderNos) == 0:
		if r.URL.RawQuery != "" {
			r.URL.RawQuery += "&"
		}
		r.URL.RawQuery += fieldOrderNo + "=" + b.orderNo // an order number needs no escaping
	}
	defer func() { r.URL.RawQuery = clientRaw }()
	if h.denyFiles && (b.filesRequested() || urlFilesRequested(vals)) {
		return h.reject(w, tn, errFilesDenied)
	}
	// The body is read: it goes on whole, with its length, as JSON (UTF-8,
	// not compressed), and the client's Expect: 100-continue has been
	// answered already.
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	r.Header.Del("Expect")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Del("Content-Encoding")
	return h.forward(w, r, next, tn, b.orderNo, func(t *tickets.Ticket) {
		body := signBody(&b, tn.creds.AppID, h.version, t.Value())
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	})
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
	mt, params, err := mime.ParseMediaType(hdr.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errContentType
	}
	for k, v := range params { // ParseMediaType lowercases k
		if k != "charset" || !strings.EqualFold(v, "utf-8") && !strings.EqualFold(v, "utf8") {
			return errContentType
		}
	}
	if ce := hdr.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return errContentEnc
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

// pick returns the app a request is signed for, from the app_id it gave.
func (h *Handler) pick(ids appIDs) (*tenant, error) {
	if h.byID == nil {
		tn := h.tenants[0]
		if ids.mismatch(tn.creds.AppID) {
			return nil, errAppIDMismatch
		}
		return tn, nil
	}
	switch {
	case !ids.given:
		return nil, errAppIDMissing
	case ids.conflict:
		return nil, errAppIDRepeated
	}
	tn := h.byID[ids.value]
	if tn == nil {
		return nil, errAppIDUnknown
	}
	return tn, nil
}

// forward signs r for tn with sign, passes it to next, and, if WeBank
// rejects the ticket, signs it again with another one and retries once. It
// counts the request once, by how it ended (see metrics.go).
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, tn *tenant, orderNo string, sign func(*tickets.Ticket)) error {
	t, err := tn.tickets.Ticket(r.Context())
	if err != nil {
		return h.unavailable(w, r, tn, err)
	}
	facts := &signFacts{tn: tn, t: t}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(facts.placeholder)
	}
	sign(t)
	if ce := h.logger.Check(zapcore.DebugLevel, "request signed"); ce != nil {
		ce.Write(zap.String("app_id", tn.creds.AppID), zap.String("order_no_hash", tn.orderHash(orderNo)),
			zap.Uint64("generation", t.Generation()), zap.Duration("ticket_age", time.Since(t.Fetched())))
	}
	// reverse_proxy aborts an answer whose upstream breaks off once it is
	// under way (see serveProbed): Caddy can only end it, but it is counted.
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				h.brokeOff(r, tn)
			}
			panic(v)
		}
	}()
	if h.retryCodes == nil || r.Method == http.MethodHead { // a HEAD answer has no code to read
		return h.pass(w, r, next, tn)
	}

	// The probe can read WeBank's code only in an answer it can decode.
	if ae := r.Header.Get("Accept-Encoding"); ae != "" {
		defer r.Header.Set("Accept-Encoding", ae)
		r.Header.Set("Accept-Encoding", probeAcceptEncoding(ae))
	}
	probe := newRetryProbe(w)
	aborted, err := serveProbed(next, probe, r)
	switch {
	case aborted:
		return h.upstreamFailed(w, r, tn, errors.New("the upstream broke off its answer"))
	case err != nil && probe.committed:
		h.brokeOff(r, tn)
		return err // the answer is under way: Caddy can only end it
	case err != nil:
		return h.upstreamFailed(w, r, tn, err)
	}
	code := probe.retryCode(h.retryCodes)
	if code == "" {
		return h.send(tn, probe)
	}
	appID := tn.creds.AppID
	if !tn.tickets.Invalidate(t) {
		metrics.retries.WithLabelValues(appID, "not_retried").Inc()
		return h.send(tn, probe)
	}
	h.logger.Info("WeBank rejected the ticket; retrying with another one",
		zap.String("app_id", appID), zap.String("code", code))
	t, err = tn.tickets.Ticket(r.Context())
	if err != nil {
		// No other ticket: WeBank's own answer says more than a 502 would.
		metrics.retries.WithLabelValues(appID, "no_ticket").Inc()
		h.logger.Warn("no other ticket for the retry", zap.String("app_id", appID), zap.Error(err))
		return h.send(tn, probe)
	}
	metrics.retries.WithLabelValues(appID, "retried").Inc()
	facts.t, facts.retried = t, true
	sign(t)
	return h.pass(w, r, next, tn)
}

// send passes on WeBank's answer, which probe held back, and counts the
// request as signed.
func (h *Handler) send(tn *tenant, probe *retryProbe) error {
	tn.signed.Inc()
	return probe.commit()
}

// pass hands r to next for its last attempt, which goes straight to the
// client, and counts it. Like Caddy's server, which writes the status of a
// handler's error itself, it takes an error from next to mean that nothing
// was written: reverse_proxy returns one when the round trip fails before
// the answer begins, and aborts (panics) once it has begun.
func (h *Handler) pass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, tn *tenant) error {
	if err := next.ServeHTTP(w, r); err != nil {
		return h.upstreamFailed(w, r, tn, err)
	}
	tn.signed.Inc()
	return nil
}

// signFacts are a request's placeholders: facts about its signing, never a
// secret. They are looked up only if something uses them.
type signFacts struct {
	tn      *tenant
	t       *tickets.Ticket
	retried bool
}

func (f *signFacts) placeholder(key string) (any, bool) {
	switch key {
	case "http.webank_sign.app_id":
		return f.tn.creds.AppID, true
	case "http.webank_sign.retried":
		return f.retried, true
	case "http.webank_sign.generation":
		return f.t.Generation(), true
	case "http.webank_sign.ticket_age":
		return int(time.Since(f.t.Fetched()).Seconds()), true
	}
	return nil, false
}

// orderHash returns a short keyed hash of an order number, so that logs can
// correlate requests without holding the number itself (order numbers are
// guessable, so the hash is keyed with a key derived from the secret).
func (tn *tenant) orderHash(orderNo string) string {
	m := hmac.New(sha256.New, tn.orderKey)
	m.Write([]byte(orderNo))
	return hex.EncodeToString(m.Sum(nil)[:6])
}

// reject answers a request the module refuses by itself, with err, a
// *refusal. tn is the app the request was for, if known.
func (h *Handler) reject(w http.ResponseWriter, tn *tenant, err error) error {
	qe := err.(*refusal)
	metrics.requests.WithLabelValues(h.appLabel(tn), outcomeRejected, strconv.Itoa(qe.Status)).Inc()
	return writeError(w, qe.Status, qe.Code, qe.Msg)
}

// appLabel is the app_id label of a request's metrics: its app's, if known;
// for a handler of several apps, "" until the request's app is known (the
// label never holds an app_id a client made up).
func (h *Handler) appLabel(tn *tenant) string {
	if tn == nil {
		if h.byID != nil {
			return ""
		}
		tn = h.tenants[0]
	}
	return tn.creds.AppID
}

// serveProbed runs next into probe. reverse_proxy aborts an answer whose
// upstream breaks off mid-body by panicking with http.ErrAbortHandler; if
// none of the answer has reached the client yet, serveProbed reports that
// instead, so that the client gets an error answer rather than a dropped
// connection. Once the answer is under way, the abort goes on.
func serveProbed(next caddyhttp.Handler, probe *retryProbe, r *http.Request) (aborted bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler || probe.committed {
				panic(v)
			}
			aborted = true
		}
	}()
	return false, next.ServeHTTP(probe, r)
}

// upstreamFailed answers a signed request whose upstream failed before
// sending anything (connection refused or reset, timeout), with the status
// the next handler chose and a JSON body like every other error here. The
// error is logged, not sent: it names internal addresses.
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, tn *tenant, err error) error {
	var he caddyhttp.HandlerError
	hasStatus := errors.As(err, &he) && he.StatusCode != 0
	if r.Context().Err() != nil || hasStatus && he.StatusCode == statusClientGone {
		countRequest(tn, outcomeClientGone, "")
		return err // the client went away: nobody to answer, nothing WeBank did
	}
	status := http.StatusBadGateway
	if hasStatus {
		status = he.StatusCode
	}
	countRequest(tn, outcomeUpstreamFailed, strconv.Itoa(status))
	if status < 500 {
		return err // a later handler's own client error: Caddy's error routes answer it
	}
	h.logger.Warn("the upstream failed", zap.String("app_id", tn.creds.AppID), zap.Int("status", status), zap.Error(err))
	msg := "WeBank did not answer (the connection failed)"
	if status == http.StatusGatewayTimeout {
		msg = "WeBank did not answer in time"
	}
	return writeError(w, status, "upstream_failed", msg)
}

// brokeOff counts a request whose answer broke off after it had begun
// reaching the client.
func (h *Handler) brokeOff(r *http.Request, tn *tenant) {
	if r.Context().Err() != nil {
		countRequest(tn, outcomeClientGone, "")
		return
	}
	countRequest(tn, outcomeUpstreamFailed, "")
}

// statusClientGone is the status reverse_proxy gives a request whose client
// went away, and Caddy logs for it: no answer is sent.
const statusClientGone = 499

// unavailable answers a request that cannot be signed because no ticket can
// be had, err being why. A client that gave up while the ticket was being
// fetched is owed no answer, and gets none.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, tn *tenant, err error) error {
	if r.Context().Err() != nil {
		countRequest(tn, outcomeClientGone, "")
		return caddyhttp.Error(statusClientGone, err)
	}
	countRequest(tn, outcomeUnavailable, "502")
	return writeError(w, http.StatusBadGateway, "ticket_unavailable",
		"no SIGN ticket for app_id "+tn.creds.AppID+": "+noTicketReason(err))
}

// noTicketReason says, for a client, why no ticket could be had: the step
// that failed and the class of the failure, never the error's own text,
// which may name internal addresses or quote WeBank (the admin status shows
// it to operators).
func noTicketReason(err error) string {
	var fe *tickets.FetchError
	switch {
	case errors.As(err, &fe): // also through the error of a backoff, which wraps the failure
		return "fetching the " + fe.Step + " failed (" + fe.Class + "); retrying shortly"
	case errors.Is(err, tickets.ErrNotRegistered):
		return "the app's configuration was unloaded by a reload; send the request again"
	case errors.Is(err, context.DeadlineExceeded):
		return "fetching it took too long (timeout); retrying shortly"
	case errors.Is(err, context.Canceled):
		return "fetching it was cancelled (the sidecar is stopping)"
	default: // the cache's only other error (unexported): a peer held the storage lock for all of fetch_timeout
		return "waiting for another instance's fetch took too long (lock_timeout); retrying shortly"
	}
}
