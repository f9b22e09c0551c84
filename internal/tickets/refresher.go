package tickets

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The refresher sleeps at most this long, so that a clock that jumps is
// noticed.
const maxLoopWait = time.Minute

// refresher is a cache's background work: it replaces tickets ahead of
// their expiry, and polls storage for tickets peers stored, as each falls
// due. It runs in one goroutine, started with the first fetch, plus one
// per piece of work, and stops when the cache is closed. It is safe for
// concurrent use.
type refresher struct {
	c    *Cache
	wake chan struct{} // tells the loop to look at the schedule again

	mu      sync.Mutex // protects running, and orders start against Close
	running bool
}

// startRefresher starts the background refresher once, unless the cache is
// closing.
func (r *refresher) startRefresher() {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.c
	if r.running || !c.autoRefresh || c.ctx.Err() != nil {
		return
	}
	r.running = true
	c.wg.Add(1)
	go r.run()
}

// kick tells the refresher to look at the schedule again.
func (r *refresher) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run refreshes tickets and polls storage as they fall due, until the
// cache is closed.
func (r *refresher) run() {
	c := r.c
	defer c.wg.Done()
	timer := time.NewTimer(maxLoopWait)
	defer timer.Stop()
	for {
		refresh, poll, next := r.dueKeys(c.now())
		for _, key := range refresh {
			r.background(key, r.refreshScheduled)
		}
		for _, key := range poll {
			r.background(key, r.pollStored)
		}
		timer.Reset(max(0, next.Sub(c.now())))
		select {
		case <-c.ctx.Done():
			return
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// background runs work(key) in a goroutine unless work for key is under way.
func (r *refresher) background(key string, work func(string)) {
	c := r.c
	e, ok := c.entries.Peek(key)
	if !ok || !e.busy.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer r.kick()
		defer e.busy.Store(false)
		work(key)
	}()
}

// dueKeys returns the apps whose ticket the refresher should replace now,
// those whose storage it should poll for a peer's newer ticket, and when the
// next work falls due. Apps without a ticket are left to the next request
// that needs one.
func (r *refresher) dueKeys(now time.Time) (refresh, poll []string, next time.Time) {
	c := r.c
	next = now.Add(maxLoopWait)
	earlier := func(at time.Time) {
		if at.Before(next) {
			next = at
		}
	}
	for key, cfg := range c.current() {
		e, ok := c.entries.Peek(key)
		if !ok || e.busy.Load() {
			continue
		}
		t := e.cur.Load()
		if t == nil {
			continue
		}
		polled := cfg.store != nil
		refreshAt, pollAt := e.schedule(t)
		switch {
		case !now.Before(refreshAt):
			refresh = append(refresh, key)
		case polled && !now.Before(pollAt):
			poll = append(poll, key)
		default:
			earlier(refreshAt)
			if polled {
				earlier(pollAt)
			}
		}
	}
	return refresh, poll, next
}

// refreshScheduled replaces key's ticket if it is still due for refresh.
func (r *refresher) refreshScheduled(key string) {
	c := r.c
	_, _, _ = c.flight.Do(key, func() (any, error) {
		return c.refresh(key, kindScheduled, func(t *Ticket, now time.Time) bool {
			return now.Before(t.refreshAt)
		})
	})
}

// pollStored adopts a newer ticket a peer stored for key (or learns of a
// newer token, which retires the current ticket a minute on), and puts key's
// token and ticket back into storage if the record there is older, missing
// or does not open: after storage came back, say.
func (r *refresher) pollStored(key string) {
	c := r.c
	e, ok := c.entries.Peek(key)
	cfg, registered := c.app(key)
	if !ok || !registered || cfg.store == nil {
		return
	}
	e.setNextPoll(c.now().Add(cfg.poll))
	log := appLog(cfg)
	ctx, cancel := context.WithTimeout(c.ctx, cfg.timeout)
	defer cancel()
	t, stored, ok := c.loadStored(ctx, cfg, e, log)
	if !ok {
		return
	}
	cur := e.usable(c.now())
	if cur != nil && (stored == nil || cur.token.after(stored)) {
		c.restore(ctx, cfg, cur, log)
		return
	}
	cur = e.cur.Load()
	if t == nil || e.isRejected(t.value) || !c.now().Before(t.expires) || (cur != nil && !t.newer(cur)) {
		return
	}
	if e.install(t) == t {
		c.metrics.refreshes.WithLabelValues(cfg.creds.AppID, kindPoll, "adopted", "").Inc()
		c.emit(cfg, "ticket_adopted", t, map[string]any{"kind": kindPoll})
		log.Info("ticket adopted from a peer", zap.Uint64("generation", t.token.gen), zap.String("fetched_by", t.token.by),
			zap.Duration("expires_in", t.expires.Sub(c.now())))
		r.kick()
	}
}
