package webanksign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// tickets holds the process's one *ticketCache. Handlers reference-count it,
// so the cache and every ticket in it survive a config reload; it is
// destructed when no loaded config uses webank_sign any more.
var tickets = caddy.NewUsagePool()

const ticketsPoolKey = "tickets"

const (
	defaultCacheSize = 1024 // apps whose tickets are kept; more are refetched on use

	// A ticket is not used in its last moments: a request signed with it must
	// still be valid when WeBank reads it. The skew is the smaller of this and
	// a tenth of the ticket's life.
	maxExpirySkew = 30 * time.Second

	// A ticket is refreshed at the earlier of the configured refresh period and
	// its life less a margin: the smaller of this and a quarter of its life.
	maxRefreshMargin = 5 * time.Minute

	// After a failed fetch, no other is made for a backoff that starts at
	// backoffBase and doubles to backoffMax, each drawn in [d/2, d]. Requests
	// that need a ticket meanwhile are answered at once: the token endpoint is
	// never hammered, whatever the request rate.
	backoffBase = time.Second
	backoffMax  = time.Minute

	// WeBank rejecting a ticket drops it at most once per app in this period:
	// a client whose requests WeBank refuses for another reason must not rotate
	// the token in a loop.
	minForcedInterval = 10 * time.Second

	// The refresher sleeps at most this long, so that a clock that jumps is
	// noticed.
	maxLoopWait = time.Minute
)

// ticketCache keeps one SIGN ticket per app (app_id, base_url and secret) and
// refreshes it before it expires. It is safe for concurrent use.
//
// Nothing is fetched until a request asks for a ticket: provisioning and
// `caddy validate` never talk to WeBank. One fetch per app is in flight at a
// time; requests that need the same ticket wait for it, each no longer than
// its own context. Once an app has a ticket, a background refresher replaces
// it ahead of expiry, so requests do not wait on refreshes; if a refresh
// fails, the current ticket is served until it expires while the refresh is
// retried with backoff.
type ticketCache struct {
	client *http.Client
	now    func() time.Time
	jitter func(d time.Duration) time.Duration // a duration in [d/2, d]
	logger atomic.Pointer[zap.Logger]          // from the latest config

	// autoRefresh starts the background refresher after the first fetch.
	// Tests that move an injected clock turn it off and call dueKeys and
	// refreshScheduled themselves.
	autoRefresh bool

	flight  singleflight.Group
	entries *lru.Cache[string, *entry] // safe for concurrent use on its own

	ctx    context.Context // done once Destruct is called; parent of every fetch
	cancel context.CancelFunc
	wg     sync.WaitGroup // the refresher and the refreshes it started
	wake   chan struct{}  // tells the refresher to look at the schedule again

	mu      sync.Mutex // protects apps and running
	apps    map[string]*appConfig
	running bool // the refresher goroutine has been started
}

// appConfig is how one app's tickets are fetched, as the most recently
// provisioned handler for it says.
type appConfig struct {
	creds   credentials
	refresh time.Duration
	timeout time.Duration // bounds one token+ticket fetch
	refs    int           // handlers that registered it
}

// entry is one app's ticket and the state of its fetching.
type entry struct {
	cur        atomic.Pointer[ticket] // nil until fetched, and after WeBank rejected it
	refreshing atomic.Bool            // a background refresh is under way

	mu         sync.Mutex // protects the fields below
	failures   int        // consecutive failed fetches
	retryAt    time.Time  // after a failed fetch, none before this
	lastErr    error
	lastForced time.Time // when WeBank's rejection last dropped the ticket
}

// ticket is a SIGN ticket and its schedule. It is never modified.
type ticket struct {
	value     string // never logged
	fetched   time.Time
	refreshAt time.Time // when the refresher replaces it
	expires   time.Time // when requests stop using it
}

func newTicket(value string, fetched time.Time, life, refresh time.Duration) *ticket {
	skew := min(maxExpirySkew, life/10)
	margin := min(maxRefreshMargin, life/4)
	return &ticket{
		value:     value,
		fetched:   fetched,
		refreshAt: fetched.Add(min(refresh, life-margin)),
		expires:   fetched.Add(life - skew),
	}
}

func newTicketCache(size int, logger *zap.Logger) *ticketCache {
	entries, err := lru.New[string, *entry](size)
	if err != nil {
		panic(err) // only for size <= 0, which callers never pass
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &ticketCache{
		client:      newOAuthClient(),
		now:         time.Now,
		jitter:      func(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) },
		entries:     entries,
		autoRefresh: true,
		ctx:         ctx,
		cancel:      cancel,
		wake:        make(chan struct{}, 1),
		apps:        make(map[string]*appConfig),
	}
	c.logger.Store(logger)
	return c
}

// appKey names an app in the cache. Two handlers with the same app_id,
// base_url and secret share one ticket, whatever block they are in; the
// secret takes part through a hash, so that a reload that changes it starts
// afresh instead of reusing tickets the old secret obtained.
func appKey(c credentials) string {
	sum := sha256.Sum256([]byte("webank_sign app key\x00" + c.secret))
	return c.appID + "\x00" + c.baseURL + "\x00" + hex.EncodeToString(sum[:8])
}

// register records that a handler signs for key with cfg; unregister undoes
// it. An app whose last handler is gone is forgotten, ticket and all.
func (c *ticketCache) register(key string, cfg appConfig, logger *zap.Logger) {
	c.logger.Store(logger)
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg.refs = 1
	if old, ok := c.apps[key]; ok {
		cfg.refs += old.refs
	}
	c.apps[key] = &cfg
}

func (c *ticketCache) unregister(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.apps[key]
	if !ok {
		return
	}
	if a.refs--; a.refs == 0 {
		delete(c.apps, key)
		c.entries.Remove(key)
	}
}

func (c *ticketCache) app(key string) (appConfig, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.apps[key]
	if !ok {
		return appConfig{}, false
	}
	return *a, true
}

func (c *ticketCache) log() *zap.Logger { return c.logger.Load() }

// errNotRegistered is returned for an app no handler registered: a bug, or a
// request that raced the Cleanup of its handler.
var errNotRegistered = errors.New("app is not configured")

// backoffError is returned instead of fetching while a failed fetch is being
// backed off from.
type backoffError struct {
	err     error
	retryIn time.Duration
}

func (e *backoffError) Error() string {
	return e.err.Error() + " (next attempt in " + e.retryIn.Round(time.Millisecond).String() + ")"
}

func (e *backoffError) Unwrap() error { return e.err }

// ticket returns a usable ticket for key, fetching one if there is none. It
// waits for the fetch no longer than ctx allows; the fetch itself goes on for
// the other waiters, bounded by the app's timeout.
func (c *ticketCache) ticket(ctx context.Context, key string) (*ticket, error) {
	if e, ok := c.entries.Get(key); ok {
		if t := e.cur.Load(); t != nil && c.now().Before(t.expires) {
			return t, nil
		}
		if err := e.backingOff(c.now()); err != nil {
			return nil, err
		}
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		return c.refresh(key, "no usable ticket", func(t *ticket, now time.Time) bool {
			return now.Before(t.expires)
		})
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*ticket), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// entry returns key's entry, adding an empty one if there is none.
func (c *ticketCache) entry(key string) *entry {
	n := new(entry)
	if prev, found, _ := c.entries.PeekOrAdd(key, n); found {
		return prev
	}
	return n
}

// refresh fetches a new ticket for key unless, by now, the current one is
// good enough. Callers hold key's flight.
func (c *ticketCache) refresh(key, reason string, goodEnough func(*ticket, time.Time) bool) (*ticket, error) {
	e := c.entry(key)
	now := c.now()
	if t := e.cur.Load(); t != nil && goodEnough(t, now) {
		return t, nil // replaced while we waited for the flight
	}
	if err := e.backingOff(now); err != nil {
		return nil, err
	}
	cfg, ok := c.app(key)
	if !ok {
		return nil, errNotRegistered
	}
	log := c.log().With(zap.String("app_id", cfg.creds.appID), zap.String("base_url", cfg.creds.baseURL))

	ctx, cancel := context.WithTimeout(c.ctx, cfg.timeout)
	defer cancel()
	value, life, err := fetchTicket(ctx, c.client, cfg.creds)
	if err != nil {
		if c.ctx.Err() != nil {
			return nil, err // shutting down
		}
		retryIn := e.failed(err, c.now(), c.jitter)
		if t := e.cur.Load(); t != nil && c.now().Before(t.expires) {
			log.Warn("ticket refresh failed; serving the current ticket until it expires",
				zap.String("reason", reason), zap.Error(err), zap.Duration("retry_in", retryIn),
				zap.Duration("ticket_expires_in", t.expires.Sub(c.now())))
		} else {
			log.Error("ticket fetch failed; requests cannot be signed",
				zap.String("reason", reason), zap.Error(err), zap.Duration("retry_in", retryIn))
		}
		c.kick()
		return nil, err
	}
	t := newTicket(value, now, life, cfg.refresh)
	// Store into the entry that is in the cache now: it may have been evicted
	// and replaced while we fetched.
	c.entry(key).cur.Store(t)
	e.succeeded()
	log.Info("ticket refreshed", zap.String("reason", reason),
		zap.Duration("expires_in", t.expires.Sub(now)), zap.Duration("refresh_in", t.refreshAt.Sub(now)))
	c.startRefresher()
	c.kick()
	return t, nil
}

// invalidate tells the cache that WeBank rejected t as stale. It drops t, so
// the next request fetches a new ticket, and reports whether a retry will use
// a different ticket: false if t was dropped too recently to drop it again.
func (c *ticketCache) invalidate(key string, t *ticket) bool {
	e, ok := c.entries.Peek(key)
	if !ok {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur.Load() != t {
		return true // already replaced
	}
	now := c.now()
	if !e.lastForced.IsZero() && now.Sub(e.lastForced) < minForcedInterval {
		return false
	}
	e.lastForced = now
	e.cur.CompareAndSwap(t, nil)
	if cfg, ok := c.app(key); ok {
		c.log().Warn("WeBank rejected the ticket; fetching a new one",
			zap.String("app_id", cfg.creds.appID), zap.Duration("ticket_age", now.Sub(t.fetched)))
	}
	return true
}

// failed records a failed fetch and returns how long to back off.
func (e *entry) failed(err error, now time.Time, jitter func(time.Duration) time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures++
	d := backoffMax
	if e.failures <= 6 { // 1s << 6 > backoffMax
		d = min(backoffMax, backoffBase<<(e.failures-1))
	}
	d = jitter(d)
	e.retryAt = now.Add(d)
	e.lastErr = err
	return d
}

func (e *entry) succeeded() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures, e.retryAt, e.lastErr = 0, time.Time{}, nil
}

// backingOff returns the error to answer with while the last fetch failed
// and its backoff has not passed, and nil otherwise.
func (e *entry) backingOff(now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lastErr == nil || !now.Before(e.retryAt) {
		return nil
	}
	return &backoffError{e.lastErr, e.retryAt.Sub(now)}
}

// dueAt returns when the background refresher should next fetch for e.
func (e *entry) dueAt(t *ticket) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.retryAt.After(t.refreshAt) {
		return e.retryAt
	}
	return t.refreshAt
}

// dueKeys returns the apps whose ticket the refresher should replace now,
// and when the next one falls due. Apps without a ticket are left to the
// next request that needs one.
func (c *ticketCache) dueKeys(now time.Time) (due []string, next time.Time) {
	c.mu.Lock()
	keys := make([]string, 0, len(c.apps))
	for k := range c.apps {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	next = now.Add(maxLoopWait)
	for _, key := range keys {
		e, ok := c.entries.Peek(key)
		if !ok || e.refreshing.Load() {
			continue
		}
		t := e.cur.Load()
		if t == nil {
			continue
		}
		if at := e.dueAt(t); now.Before(at) {
			if at.Before(next) {
				next = at
			}
			continue
		}
		due = append(due, key)
	}
	return due, next
}

// refreshScheduled replaces key's ticket if it is still due for refresh.
func (c *ticketCache) refreshScheduled(key string) {
	_, _, _ = c.flight.Do(key, func() (any, error) {
		return c.refresh(key, "scheduled", func(t *ticket, now time.Time) bool {
			return now.Before(t.refreshAt)
		})
	})
}

// startRefresher starts the background refresher once, unless the cache is
// being destructed.
func (c *ticketCache) startRefresher() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running || !c.autoRefresh || c.ctx.Err() != nil {
		return
	}
	c.running = true
	c.wg.Add(1)
	go c.refresher()
}

func (c *ticketCache) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// refresher refreshes tickets as they fall due until the cache is destructed.
func (c *ticketCache) refresher() {
	defer c.wg.Done()
	timer := time.NewTimer(maxLoopWait)
	defer timer.Stop()
	for {
		due, next := c.dueKeys(c.now())
		for _, key := range due {
			e, ok := c.entries.Peek(key)
			if !ok || !e.refreshing.CompareAndSwap(false, true) {
				continue
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer c.kick()
				defer e.refreshing.Store(false)
				c.refreshScheduled(key)
			}()
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

// Destruct stops the refresher and any fetch under way. It implements
// caddy.Destructor: the pool calls it when the last handler is cleaned up.
func (c *ticketCache) Destruct() error {
	c.mu.Lock()
	c.cancel()
	c.mu.Unlock()
	c.wg.Wait()
	c.client.CloseIdleConnections()
	return nil
}

var _ caddy.Destructor = (*ticketCache)(nil)
