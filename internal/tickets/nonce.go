package tickets

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
)

// This file is the app's NONCE tickets (docs/protocol.md §4): one per
// launch (an SDK start or an H5 login), fetched for one user with the
// app's shared access token. Unlike SIGN tickets they are never cached or
// shared, since each is good for one launch only; what is shared is the
// token, and a NONCE fetch gets a new token only the way a SIGN ticket
// does, through the app's one locked refresh.

// The default bounds on an app's NONCE fetches: how many are in flight at
// once, and how many launches may wait for one of them.
const (
	DefaultNonceLimit = 16
	DefaultNonceQueue = 256
)

// ErrNonceQueueFull is returned when an app has its limit of NONCE fetches
// in flight and its queue of launches waiting for one is full.
var ErrNonceQueueFull = errors.New("too many launches are waiting for a NONCE ticket")

// nonceGate bounds an app's NONCE fetches: limit in flight, and queue more
// waiting for a turn. Further ones are refused at once. It is safe for
// concurrent use.
type nonceGate struct {
	sem     *semaphore.Weighted
	queue   int64
	waiting atomic.Int64
	queued  func() // if set, called by each caller that starts to wait: tests know it waits
}

func newNonceGate(limit, queue int) *nonceGate {
	if limit <= 0 {
		limit = DefaultNonceLimit
	}
	if queue < 0 {
		queue = 0
	}
	return &nonceGate{sem: semaphore.NewWeighted(int64(limit)), queue: int64(queue)}
}

// enter takes a turn, waiting for one no longer than ctx allows, or
// returns ErrNonceQueueFull if the queue is full. A caller that entered
// calls leave.
func (g *nonceGate) enter(ctx context.Context) error {
	if g.sem.TryAcquire(1) {
		return nil
	}
	if g.waiting.Add(1) > g.queue {
		g.waiting.Add(-1)
		return ErrNonceQueueFull
	}
	defer g.waiting.Add(-1)
	if g.queued != nil {
		g.queued()
	}
	return g.sem.Acquire(ctx, 1)
}

func (g *nonceGate) leave() { g.sem.Release(1) }

// NonceTicket fetches a NONCE ticket for userID, made with the app's
// newest access token, getting the app a token first if it has none. If
// WeBank answers with one of the registration's own RetryCodes and a probe
// (see tokenDead) confirms that the token is dead, the token is replaced
// through the app's one locked refresh, within the limits Invalidate
// keeps, and the fetch is tried once more. The ticket is a secret: it must never be logged or
// handed to a client.
//
// At most the registration's NonceLimit fetches are in flight; up to its
// NonceQueue more callers wait their turn, no longer than ctx allows, and
// others get ErrNonceQueueFull at once. Each fetch is bounded by the
// registration's Timeout.
func (h *Handle) NonceTicket(ctx context.Context, userID string) (string, error) {
	cfg, ok := h.c.app(h.key)
	if !ok {
		return "", ErrNotRegistered
	}
	// The bounds, the timeout and the codes are this registration's own: another
	// handler of the app, registered later, that launches nothing does
	// not change them.
	own := h.reg
	if err := own.nonces.enter(ctx); err != nil {
		h.c.nonceFailed(cfg, err)
		return "", err
	}
	defer own.nonces.leave()
	for retried := false; ; retried = true {
		t, err := h.Ticket(ctx)
		if err != nil {
			h.c.nonceFailed(cfg, err)
			return "", err
		}
		token := h.launchToken(t)
		value, err := h.fetchNonce(ctx, cfg, own, token, userID)
		if err == nil {
			h.c.metrics.nonces.WithLabelValues(cfg.creds.AppID, "fetched", "").Inc()
			return value, nil
		}
		if fe, ok := errors.AsType[*FetchError](err); ok && fe.Class == "code" && own.retry[fe.Code] && !retried &&
			h.tokenDead(ctx, cfg, own, token) && h.Invalidate(t) {
			appLog(cfg).Warn("WeBank refused the access token for a NONCE ticket; getting another token",
				zap.Uint64("generation", t.token.gen))
			continue
		}
		h.c.nonceFailed(cfg, err)
		return "", err
	}
}

// fetchNonce fetches one NONCE ticket for userID with token, bounded by
// the registration's timeout.
func (h *Handle) fetchNonce(ctx context.Context, cfg appConfig, own *appConfig, token *accessToken, userID string) (string, error) {
	fctx, cancel := context.WithTimeout(ctx, own.timeout)
	defer cancel()
	value, _, err := h.c.fetcher.Nonce(fctx, cfg.creds, token.value, userID)
	if err != nil && ctx.Err() != nil {
		// The caller left (or its own deadline passed) mid-fetch: the
		// fetcher's error reads as a transport failure, but nothing failed.
		err = ctx.Err()
	}
	return value, err
}

// launchToken returns the token to fetch a NONCE ticket with: the newest
// the app knows, which may be newer than t's (a peer's rotation, learned
// from storage before its ticket). A NONCE ticket dies with its token, and
// one made with a token about to retire would not last the user's login.
func (h *Handle) launchToken(t *Ticket) *accessToken {
	e := h.c.peek(h.key)
	if e == nil {
		return t.token
	}
	st := e.state()
	if st.token != nil && st.token.after(t.token) && st.token.value != st.rejectedToken {
		return st.token
	}
	return t.token
}

// probeUser is the user a NONCE ticket is asked for when the sidecar must
// tell a dead token from a refused user. The ticket is never used.
const probeUser = "webanksign_probe"

// probeMemory is how long a probe that found a token alive is trusted: a
// stream of launches refused for their users costs one probe per period.
const probeMemory = 10 * time.Second

// tokenDead reports whether a NONCE fetch refused with a retry code means
// that token is dead, rather than that WeBank refused that user: it asks
// for a NONCE ticket for probeUser with the same token. Only a probe
// refused with a retry code says the token is dead; one that fails
// otherwise says nothing, and the token is kept. Without the probe, any
// caller could rotate the fleet's token once a minute with a user_id
// WeBank refuses.
func (h *Handle) tokenDead(ctx context.Context, cfg appConfig, own *appConfig, token *accessToken) bool {
	e := h.c.peek(h.key)
	if e == nil {
		return false
	}
	now := h.c.now()
	if e.app.aliveRecently(token.value, now) {
		return false
	}
	_, err := h.fetchNonce(ctx, cfg, own, token, probeUser)
	if err == nil {
		e.app.markAlive(token.value, now)
		return false
	}
	fe, ok := errors.AsType[*FetchError](err)
	return ok && fe.Class == "code" && own.retry[fe.Code]
}

// aliveRecently reports whether a probe found token alive less than
// probeMemory before now.
func (a *appState) aliveRecently(token string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.alive.token == token && now.Sub(a.alive.at) < probeMemory
}

func (a *appState) markAlive(token string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.alive.token, a.alive.at = token, now
}

// nonceFailed counts and reports a NONCE ticket that could not be had.
func (c *Cache) nonceFailed(cfg appConfig, err error) {
	class := errClass(err)
	switch {
	case errors.Is(err, ErrNonceQueueFull):
		class = "queue_full"
	case errors.Is(err, context.Canceled):
		class = "canceled"
	}
	c.metrics.nonces.WithLabelValues(cfg.creds.AppID, "failed", class).Inc()
	if class == "canceled" || class == "queue_full" {
		// The caller left, and nothing is wrong; or a burst beyond the
		// queue, which the metric shows: a line each would flood the log.
		return
	}
	c.emit(cfg, "nonce_ticket_failed", nil, map[string]any{"error_class": class, "error": err.Error()})
	appLog(cfg).Warn("no NONCE ticket for a launch", zap.String("error_class", class), zap.Error(err))
}
