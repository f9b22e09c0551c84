package tickets

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// This file is the slow path: getting an app a ticket when it has none that
// will do, once per app at a time, from storage if a peer stored one, else
// from WeBank under the storage lock.

// ErrNotRegistered is returned for an app with no registration: a bug, or
// a request that raced the release of its handle.
var ErrNotRegistered = errors.New("app is not configured")

// errLockTimeout is returned when a peer held the storage lock for the whole
// fetch timeout.
var errLockTimeout = errors.New("waiting for the storage lock: a peer's fetch took longer than fetch_timeout")

// Kinds of refresh, for logs, metrics and events.
const (
	kindOnDemand  = "on_demand" // a request found no usable ticket
	kindScheduled = "scheduled" // the refresher, ahead of expiry
	kindForced    = "forced"    // an operator asked (ForceRefresh)
	kindPoll      = "poll"      // the refresher found a peer's newer ticket
)

// ticket returns a usable ticket for key, fetching one if there is none. It
// waits for the fetch no longer than ctx allows; the fetch itself goes on for
// the other waiters, bounded by the app's timeout.
func (c *Cache) ticket(ctx context.Context, key string) (*Ticket, error) {
	if e, ok := c.entries.Get(key); ok {
		if t := e.usable(c.now()); t != nil {
			return t, nil
		}
		if err := e.backingOff(c.now()); err != nil {
			return nil, err
		}
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		return c.refresh(key, kindOnDemand, func(t *Ticket, now time.Time) bool {
			return now.Before(t.expires)
		})
	})
	if c.joined != nil {
		c.joined()
	}
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Ticket), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refresh gets a new ticket for key unless, by now, the current one is good
// enough: from storage if a peer stored one that is, else from WeBank.
// Callers hold key's flight.
func (c *Cache) refresh(key, kind string, goodEnough func(*Ticket, time.Time) bool) (*Ticket, error) {
	cfg, ok := c.app(key)
	if !ok {
		return nil, ErrNotRegistered // e.g. a request still in flight on a config just unloaded
	}
	e := c.entry(key)
	if t := e.cur.Load(); t != nil && goodEnough(t, c.now()) {
		return t, nil // replaced while we waited for the flight
	}
	if err := e.backingOff(c.now()); err != nil {
		return nil, err
	}
	log := appLog(cfg)
	ctx, cancel := context.WithTimeout(c.ctx, cfg.timeout)
	defer cancel()
	usable := func(t *Ticket) bool {
		return goodEnough(t, c.now()) && !e.isRejected(t.value)
	}
	began := time.Now()
	t, adopted, err := c.obtain(ctx, cfg, e, usable, log)
	c.metrics.refreshDuration.WithLabelValues(kind).Observe(time.Since(began).Seconds())
	if err != nil {
		if c.ctx.Err() != nil {
			return nil, err // shutting down
		}
		retryIn := e.failed(err, c.now(), c.jitter)
		c.metrics.refreshes.WithLabelValues(cfg.creds.AppID, kind, "failed", errClass(err)).Inc()
		c.emit(cfg, "ticket_refresh_failed", nil, map[string]any{
			"kind": kind, "error_class": errClass(err), "error": err.Error(), "retry_in": retryIn.String()})
		if t := e.usable(c.now()); t != nil {
			log.Warn("ticket refresh failed; serving the current ticket until it expires",
				zap.String("kind", kind), zap.Error(err), zap.Duration("retry_in", retryIn),
				zap.Duration("ticket_expires_in", t.expires.Sub(c.now())))
		} else {
			log.Error("ticket fetch failed; requests cannot be signed",
				zap.String("kind", kind), zap.Error(err), zap.Duration("retry_in", retryIn))
		}
		c.kick()
		return nil, err
	}
	e.succeeded()
	if _, ok := c.app(key); !ok {
		return t, nil // unregistered while we fetched: keep nothing
	}
	// Install into the entry that is in the cache now: it may have been
	// evicted and replaced while we fetched.
	t = c.entry(key).install(t)
	c.entries.Get(key) // in use: most recently
	result, msg, event := "fetched", "ticket fetched", "ticket_refreshed"
	if adopted {
		result, msg, event = "adopted", "ticket adopted from storage", "ticket_adopted"
	}
	c.metrics.refreshes.WithLabelValues(cfg.creds.AppID, kind, result, "").Inc()
	c.emit(cfg, event, t, map[string]any{"kind": kind})
	log.Info(msg, zap.String("kind", kind), zap.Uint64("generation", t.token.gen), zap.String("fetched_by", t.token.by),
		zap.Duration("expires_in", t.expires.Sub(c.now())), zap.Duration("refresh_in", t.refreshAt.Sub(c.now())))
	c.startRefresher()
	c.kick()
	return t, nil
}

// obtain returns a ticket for cfg's app that usable accepts: one a peer
// stored (adopted is true), or else a new one made under the storage lock
// and stored, as certmagic coordinates certificate issuance: lock, load
// again, fetch only what is still needed, store, unlock. A new token is
// fetched only if the newest one known is due, rejected or expired;
// otherwise only a ticket is. Without storage, or when it fails, it fetches
// without the lock.
func (c *Cache) obtain(ctx context.Context, cfg appConfig, e *entry, usable func(*Ticket) bool, log *zap.Logger) (t *Ticket, adopted bool, err error) {
	st := cfg.store
	if st != nil {
		t, _, ok := c.loadStored(ctx, cfg, e, log)
		if t != nil && usable(t) {
			return t, true, nil
		}
		if !ok {
			st = nil // storage failing (or hanging): do without its lock this time
		}
	}
	if st != nil {
		t, err := c.lock(ctx, cfg, e, usable, log)
		switch {
		case t != nil:
			return t, true, nil
		case err == nil: // locked
			defer func() {
				if err := st.unlock(); err != nil {
					log.Warn("releasing the storage lock failed", zap.Error(err))
				}
			}()
			// A peer may have fetched while we waited for the lock.
			if t, _, _ := c.loadStored(ctx, cfg, e, log); t != nil && usable(t) {
				return t, true, nil
			}
		case ctx.Err() != nil:
			return nil, false, errLockTimeout
		default:
			c.storageFailed(err, log)
			st = nil
		}
	}

	known := e.state()
	tok := known.token
	if now := c.now(); tok == nil || !now.Before(tok.expires()) || !now.Before(tok.dueAt(cfg.refresh)) || known.rejectedToken == tok.value {
		var gen uint64
		forced := false
		if tok != nil {
			gen, forced = tok.gen, known.rejectedToken == tok.value
		}
		start := c.now()
		value, life, err := c.fetcher.Token(ctx, cfg.creds)
		if err != nil {
			return nil, false, err
		}
		tok = &accessToken{value: value, gen: gen + 1, by: c.instance, fetched: start, life: min(life, MaxTokenLife), forced: forced}
		e.learnToken(tok)
		if st != nil { // peers learn now that their ticket dies within a minute
			c.save(ctx, st, record(tok, nil), log)
		}
	}
	start := c.now()
	value, life, err := c.fetcher.Ticket(ctx, cfg.creds, tok.value)
	if err != nil {
		return nil, false, err
	}
	t = newTicket(value, start, min(life, MaxTicketLife), tok, cfg.refresh)
	if st != nil {
		c.save(ctx, st, record(tok, t), log)
	}
	return t, false, nil
}
