package tickets

import (
	"context"
	"errors"
	"sync/atomic"

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
// current access token, getting the app a token first if it has none. If
// WeBank answers that the token is no longer valid (one of the
// registration's own RetryCodes), the token is replaced through the app's one
// locked refresh, within the limits Invalidate keeps, and the fetch is
// tried once more. The ticket is a secret: it must never be logged or
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
		fctx, cancel := context.WithTimeout(ctx, own.timeout)
		value, _, err := h.c.fetcher.Nonce(fctx, cfg.creds, t.token.value, userID)
		cancel()
		if err == nil {
			h.c.metrics.nonces.WithLabelValues(cfg.creds.AppID, "fetched", "").Inc()
			return value, nil
		}
		if fe, ok := errors.AsType[*FetchError](err); ok && fe.Class == "code" && own.retry[fe.Code] && !retried && h.Invalidate(t) {
			appLog(cfg).Warn("WeBank refused the access token for a NONCE ticket; getting another token",
				zap.Uint64("generation", t.token.gen))
			continue
		}
		h.c.nonceFailed(cfg, err)
		return "", err
	}
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
	if class == "canceled" {
		return // the caller left: nothing is wrong
	}
	c.emit(cfg, "nonce_ticket_failed", nil, map[string]any{"error_class": class, "error": err.Error()})
	appLog(cfg).Warn("no NONCE ticket for a launch", zap.String("error_class", class), zap.Error(err))
}
