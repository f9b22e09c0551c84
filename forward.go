package webanksign

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// This file is a signed request's way out: get the app's ticket, sign,
// pass the request to next (reverse_proxy), read WeBank's code from the
// start of its answer and, if WeBank rejected the ticket, sign again with
// another and retry once; and the answers for a request that cannot be
// signed or whose upstream failed.

// forward signs r for tn with sign, passes it to next, and, if WeBank
// rejects the ticket, signs it again with another one and retries once. It
// counts the request once, by how it ended (see metrics.go).
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, tn *tenant, orderNo string, sign func(*tickets.Ticket)) error {
	t, err := tn.tickets.Ticket(r.Context())
	if err != nil {
		return tn.unavailable(w, r, err)
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
				tn.brokeOff(r)
			}
			panic(v)
		}
	}()
	if h.retryCodes == nil || r.Method == http.MethodHead { // a HEAD answer has no code to read
		return h.pass(w, r, next, tn)
	}

	// The probe can read WeBank's code only in an answer it can decode.
	// The client's own values are put back afterwards, for what runs later.
	if ae := r.Header["Accept-Encoding"]; len(ae) > 0 && ae[0] != "" {
		defer func() { r.Header["Accept-Encoding"] = ae }()
		r.Header["Accept-Encoding"] = []string{probeAcceptEncoding(ae[0])}
	}
	probe := newRetryProbe(w)
	aborted, err := serveProbed(next, probe, r)
	if aborted { // the probe is not reused: what next left running may hold it
		probe.discard()
		return tn.upstreamFailed(w, r, errors.New("the upstream broke off its answer"))
	}
	defer probe.release()
	switch {
	case err != nil && probe.committed:
		tn.brokeOff(r)
		return err // the answer is under way: Caddy can only end it
	case err != nil:
		probe.discard() // none of the failed attempt's headers go with the error answer
		return tn.upstreamFailed(w, r, err)
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
	probe.discard()
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
		return tn.upstreamFailed(w, r, err)
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
func (tn *tenant) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) error {
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
	tn.logger.Warn("the upstream failed", zap.String("app_id", tn.creds.AppID), zap.Int("status", status), zap.Error(err))
	msg := "WeBank did not answer (the connection failed)"
	if status == http.StatusGatewayTimeout {
		msg = "WeBank did not answer in time"
	}
	return writeError(w, status, "upstream_failed", msg)
}

// brokeOff counts a request whose answer broke off after it had begun
// reaching the client.
func (tn *tenant) brokeOff(r *http.Request) {
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
func (tn *tenant) unavailable(w http.ResponseWriter, r *http.Request, err error) error {
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
