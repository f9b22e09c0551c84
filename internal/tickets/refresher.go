package tickets

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// The refresher sleeps at most this long, so that a clock that jumps is
// noticed.
const maxLoopWait = time.Minute

// startRefresher starts the background refresher once, unless the cache is
// closing.
func (c *Cache) startRefresher() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running || !c.autoRefresh || c.ctx.Err() != nil {
		return
	}
	c.running = true
	c.wg.Add(1)
	go c.refresher()
}

// kick tells the refresher to look at the schedule again.
func (c *Cache) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// refresher refreshes tickets and polls storage as they fall due, until the
// cache is closed.
func (c *Cache) refresher() {
	defer c.wg.Done()
	timer := time.NewTimer(maxLoopWait)
	defer timer.Stop()
	for {
		refresh, poll, next := c.dueKeys(c.now())
		for _, key := range refresh {
			c.background(key, c.refreshScheduled)
		}
		for _, key := range poll {
			c.background(key, c.pollStored)
		}
		timer.Reset(max(0, next.Sub(c.now())))
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// background runs work(key) in a goroutine unless work for key is under way.
func (c *Cache) background(key string, work func(string)) {
	e, ok := c.entries.Peek(key)
	if !ok || !e.busy.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.kick()
		defer e.busy.Store(false)
		work(key)
	}()
}

// dueKeys returns the apps whose ticket the refresher should replace now,
// those whose storage it should poll for a peer's newer ticket, and when the
// next work falls due. Apps without a ticket are left to the next request
// that needs one.
func (c *Cache) dueKeys(now time.Time) (refresh, poll []string, next time.Time) {
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
func (c *Cache) refreshScheduled(key string) {
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
func (c *Cache) pollStored(key string) {
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
		c.kick()
	}
}

// restore stores t and its token for cfg's app, under the lock, if storage
// still holds no record that opens, or an older one.
func (c *Cache) restore(ctx context.Context, cfg appConfig, t *Ticket, log *zap.Logger) {
	if err := cfg.store.lock(ctx); err != nil {
		c.storageFailed(err, log)
		return
	}
	defer func() {
		if err := cfg.store.unlock(); err != nil {
			log.Warn("releasing the storage lock failed", zap.Error(err))
		}
	}()
	rec, err := cfg.store.load(ctx)
	if err == nil && !t.token.after(rec.token()) || err != nil && !errors.Is(err, errNoRecord) {
		return // a peer stored a newer one meanwhile, or storage failed
	}
	if err := cfg.store.save(ctx, record(t.token, t)); err != nil {
		c.storageFailed(err, log)
		return
	}
	c.storageOK(log)
	log.Info("stored the current ticket again", zap.Uint64("generation", t.token.gen))
}
