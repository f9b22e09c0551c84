// Package tickets keeps WeBank access tokens and SIGN tickets for the apps
// a process signs for: it fetches them on first use through a Fetcher,
// refreshes them ahead of expiry, shares them with a fleet through
// certmagic storage, and backs off when WeBank fails. It knows nothing of
// Caddy or HTTP requests; the plugin registers each app it signs for and
// asks its Handle for a ticket per request.
//
// The protocol facts it relies on (lifetimes, the one-minute overlap of a
// superseded token) are in docs/protocol.md §2.3 and §3.3.
package tickets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// Cache keeps one SIGN ticket per app (app_id, base_url and secret) and
// refreshes it before it expires. It is safe for concurrent use.
//
// Nothing is fetched until a request asks for a ticket: registering an app
// never talks to WeBank. One fetch per app is in flight at a time; callers
// that need the same ticket wait for it, each no longer than its own
// context. Once an app has a ticket, a background refresher replaces it
// ahead of expiry, so requests do not wait on refreshes; if a refresh
// fails, the current ticket is served until it expires while the refresh
// is retried with backoff.
//
// With storage (see store.go), a fetch first looks for a ticket a peer
// stored, and fetches only under the storage lock and only if, the lock
// taken, storage still holds none that will do; the refresher also polls
// storage for a newer ticket. Requests never touch storage while the cached
// ticket is usable. If storage fails, tickets are kept in memory only, with
// one warning, until it works again.
type Cache struct {
	fetcher  Fetcher
	now      func() time.Time
	jitter   func(d time.Duration) time.Duration // a duration in [d/2, d]
	instance string                              // host/pid, recorded with the tokens it fetches
	metrics  *cacheMetrics

	// autoRefresh starts the background refresher after the first fetch.
	// Tests that move an injected clock turn it off and call dueKeys,
	// refreshScheduled and pollStored themselves.
	autoRefresh bool

	// joined, if set, is called by each caller that has joined an app's
	// flight and is about to wait for it: tests hold a fetch open until
	// every caller has met in one flight.
	joined func()

	flight  singleflight.Group
	entries *lru.Cache[string, *entry] // safe for concurrent use on its own
	size    atomic.Int64               // the entries' bound

	ctx    context.Context // done once Close is called; parent of every fetch
	cancel context.CancelFunc
	wg     sync.WaitGroup // the refresher and the work it started

	registry   // the registered apps
	*refresher // the background work
	*sharing   // the fleet, through storage
}

// New returns a cache that keeps the tickets of at most size apps (more are
// fetched again, from storage first, when next used) and fetches them with
// f. Close stops it.
func New(size int, f Fetcher) *Cache {
	c := new(Cache)
	entries, err := lru.NewWithEvict(max(size, 1), func(key string, e *entry) {
		if !e.gone.Swap(true) { // not removed by unregister: pushed out by other apps
			c.metrics.evictions.Inc()
		}
	})
	if err != nil {
		panic(err) // only for size <= 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	host, _ := os.Hostname()
	*c = Cache{
		fetcher:     f,
		now:         time.Now,
		jitter:      func(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) },
		instance:    host + "/" + strconv.Itoa(os.Getpid()),
		metrics:     newCacheMetrics(),
		autoRefresh: true,
		entries:     entries,
		ctx:         ctx,
		cancel:      cancel,
		registry:    registry{apps: make(map[string]*registered)},
	}
	c.refresher = &refresher{c: c, wake: make(chan struct{}, 1)}
	c.sharing = &sharing{metrics: c.metrics}
	c.size.Store(int64(max(size, 1)))
	return c
}

// appConfig is how one registration wants its app's tickets fetched. When
// several register one app, the one registered last is followed.
type appConfig struct {
	creds   Credentials
	refresh time.Duration
	timeout time.Duration // bounds one fetch, storage lock included
	store   *ticketStore  // nil: memory only
	poll    time.Duration // how often the refresher looks in store for a peer's ticket
	logger  *zap.Logger
	emit    func(event string, data map[string]any) // nil: none
	retry   map[string]bool                         // codes that mean the token is no longer valid
	nonces  *nonceGate                              // bounds the app's NONCE fetches
}

// String describes cfg without its secret: fmt prints a struct's
// unexported fields without their String methods, so the Credentials'
// redaction alone would not cover cfg.
func (cfg appConfig) String() string { return "tickets.appConfig{" + cfg.creds.String() + "}" }

// GoString is String, for %#v.
func (cfg appConfig) GoString() string { return cfg.String() }

// appKey names an app in the cache. Registrations with the same app_id,
// base_url and secret share one ticket; the secret takes part through a
// hash, so that a reload that changes it starts afresh instead of reusing
// tickets the old secret obtained.
func appKey(c Credentials) string {
	sum := sha256.Sum256([]byte("webank_sign app key\x00" + c.Secret))
	return c.AppID + "\x00" + c.BaseURL + "\x00" + hex.EncodeToString(sum[:8])
}

// unregister ends registration reg of key; an app whose last registration
// ends is forgotten, ticket and all.
func (c *Cache) unregister(key string, reg *appConfig) {
	if !c.drop(key, reg) {
		return
	}
	if e, ok := c.entries.Peek(key); ok {
		e.gone.Store(true) // removed, not evicted
	}
	c.entries.Remove(key)
}

// Resize sets how many apps' entries the cache keeps, and returns how many
// it evicted to get there, least recently used first.
func (c *Cache) Resize(size int) (evicted int) {
	size = max(size, 1)
	c.size.Store(int64(size))
	return c.entries.Resize(size)
}

// hasRoom reports whether an app not in the cache can be added without
// evicting another.
func (c *Cache) hasRoom() bool {
	return int64(c.entries.Len()) < c.size.Load()
}

// peek returns key's entry, or nil, without touching its recency.
func (c *Cache) peek(key string) *entry {
	e, _ := c.entries.Peek(key)
	return e
}

// entry returns key's entry, adding one if there is none, which shares the
// app's state with every entry the app had before.
func (c *Cache) entry(key string) *entry {
	if e, ok := c.entries.Peek(key); ok {
		return e
	}
	n := &entry{app: c.state(key)}
	if prev, found, _ := c.entries.PeekOrAdd(key, n); found {
		return prev
	}
	return n
}

// touch marks key's entry e used in the LRU, at most once a second: the
// request path, which reads e without the LRU's lock, keeps busy apps from
// being evicted before idle ones without taking that lock every time.
func (c *Cache) touch(key string, e *entry, now time.Time) {
	if last := e.used.Load(); now.UnixNano()-last < int64(time.Second) {
		return
	}
	e.used.Store(now.UnixNano())
	c.entries.Get(key)
}

func appLog(cfg appConfig) *zap.Logger {
	return cfg.logger.With(zap.String("app_id", cfg.creds.AppID), zap.String("base_url", cfg.creds.BaseURL))
}

// emit sends an event about cfg's app, if the registration asked for
// events. Its data never holds a secret: the ticket only as a fingerprint.
func (c *Cache) emit(cfg appConfig, event string, t *Ticket, data map[string]any) {
	if cfg.emit == nil {
		return
	}
	data["app_id"], data["base_url"] = cfg.creds.AppID, cfg.creds.BaseURL
	if t != nil {
		data["generation"], data["fetched_by"] = t.token.gen, t.token.by
		data["ticket_fingerprint"] = fingerprint(t.value)
		data["expires_in"] = t.expires.Sub(c.now()).Round(time.Second).String()
	}
	cfg.emit(event, data)
}

// fingerprint is a short hash that tells tickets apart without revealing
// anything usable of them.
func fingerprint(ticket string) string {
	sum := sha256.Sum256([]byte("webank_sign fingerprint\x00" + ticket))
	return hex.EncodeToString(sum[:4])
}

// Close stops the refresher and any fetch under way. The cache must not be
// used afterwards.
func (c *Cache) Close() {
	c.refresher.mu.Lock()
	c.cancel()
	c.refresher.mu.Unlock()
	c.wg.Wait()
	if cl, ok := c.fetcher.(interface{ CloseIdleConnections() }); ok {
		cl.CloseIdleConnections()
	}
}
