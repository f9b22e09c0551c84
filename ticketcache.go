package webanksign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
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
	// the token in a loop. It matches the token overlap: a token fetched after
	// a rejection has not even superseded the previous one before another may
	// be fetched.
	minForcedInterval = time.Minute

	// How long WeBank keeps a superseded access token, and the tickets made
	// with it, valid after a new token is issued.
	tokenOverlap = time.Minute

	// How often, at most, a sidecar looks in storage for a ticket a peer
	// fetched: well inside the minute for which WeBank keeps the previous
	// token valid. It is also at most a quarter of the refresh period.
	maxStoragePoll = 15 * time.Second

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
//
// With storage (see storage.go), a fetch first looks for a ticket a peer
// stored, and fetches only under the storage lock and only if, the lock
// taken, storage still holds none that will do; the refresher also polls
// storage for a newer ticket. Requests never touch storage while the cached
// ticket is usable. If storage fails, tickets are kept in memory only, with
// one warning, until it works again.
type ticketCache struct {
	client   *http.Client
	now      func() time.Time
	jitter   func(d time.Duration) time.Duration // a duration in [d/2, d]
	instance string                              // host/pid, recorded with the tokens it fetches

	// autoRefresh starts the background refresher after the first fetch.
	// Tests that move an injected clock turn it off and call dueKeys,
	// refreshScheduled and pollStored themselves.
	autoRefresh bool

	flight      singleflight.Group
	entries     *lru.Cache[string, *entry] // safe for concurrent use on its own
	size        atomic.Int64               // the entries' bound
	storageDown atomic.Bool                // the last storage operation failed

	carryMu sync.Mutex
	carried map[string]carry // what evicted entries knew, for their next entry

	ctx    context.Context // done once Destruct is called; parent of every fetch
	cancel context.CancelFunc
	wg     sync.WaitGroup // the refresher and the work it started
	wake   chan struct{}  // tells the refresher to look at the schedule again

	mu      sync.Mutex              // protects apps and running
	apps    map[string][]*appConfig // registrations per app, the latest last
	running bool                    // the refresher goroutine has been started
}

// appConfig is how one handler wants its app's tickets fetched. When several
// handlers register one app, the one provisioned last is followed.
type appConfig struct {
	creds   credentials
	refresh time.Duration
	timeout time.Duration // bounds one fetch, storage lock included
	store   *ticketStore  // nil: memory only
	poll    time.Duration // how often the refresher looks in store for a peer's ticket
	logger  *zap.Logger
	emit    func(event string, data map[string]any) // Caddy events; nil: none
}

// entry is one app's ticket and the state of its fetching.
//
// cur is read without a lock on the request path. It changes only by
// compare-and-swap (install, invalidate, learnToken), so that a newer ticket
// is never replaced by an older one whoever holds mu.
type entry struct {
	cur  atomic.Pointer[ticket] // nil until fetched, and after WeBank rejected it
	busy atomic.Bool            // the refresher has a refresh or poll under way
	gone atomic.Bool            // evicted or removed: its ticket is no longer kept current
	used atomic.Int64           // when a request last marked it used in the LRU, in Unix nanoseconds

	mu            sync.Mutex   // protects the fields below
	token         *accessToken // the newest token known, which may have no ticket yet
	failures      int          // consecutive failed fetches
	retryAt       time.Time    // after a failed fetch, none before this
	lastErr       error
	lastForced    time.Time // when WeBank's rejection last dropped the ticket
	rejected      string    // the ticket WeBank last rejected: never adopted again
	rejectedToken string    // and its token: never used for a ticket again
	nextPoll      time.Time // when the refresher next polls storage
	lastFailure   failure   // the last failed fetch, kept after recovery for the status
}

// failure is a failed fetch as the status shows it: no secret in it.
type failure struct {
	class, msg string
	at         time.Time
}

// accessToken is an access token, fetched here or by a peer. It is never
// modified.
type accessToken struct {
	value   string // never logged
	gen     uint64 // the app's token count in the fleet: a higher one is newer
	by      string // the instance that fetched it
	fetched time.Time
	life    time.Duration // as WeBank gave it
}

// expires returns when tickets made with a stop being used.
func (a *accessToken) expires() time.Time {
	return a.fetched.Add(a.life - min(maxExpirySkew, a.life/10))
}

// dueAt returns when a should be replaced: WeBank asks for a new token about
// every 20 minutes (refresh), and at the latest some margin before it ends.
func (a *accessToken) dueAt(refresh time.Duration) time.Time {
	return a.fetched.Add(min(refresh, a.life-min(maxRefreshMargin, a.life/4)))
}

// ticket is a SIGN ticket, the token it was made with, and its schedule. It
// is never modified.
type ticket struct {
	value     string // never logged
	token     *accessToken
	fetched   time.Time
	life      time.Duration // as WeBank gave it
	refreshAt time.Time     // when the refresher replaces it (and its token)
	expires   time.Time     // when requests stop using it
}

func newTicket(value string, fetched time.Time, life time.Duration, tok *accessToken, refresh time.Duration) *ticket {
	t := &ticket{value: value, token: tok, fetched: fetched, life: life}
	t.expires = earliest(fetched.Add(life-min(maxExpirySkew, life/10)), tok.expires())
	t.refreshAt = earliest(tok.dueAt(refresh), fetched.Add(life-min(maxRefreshMargin, life/4)))
	return t
}

// newer reports whether t is newer than u: made with a newer token, or later
// with the same one.
func (t *ticket) newer(u *ticket) bool {
	if t.token.gen != u.token.gen {
		return t.token.gen > u.token.gen
	}
	return t.fetched.After(u.fetched)
}

// capped returns t usable until at at the latest.
func (t *ticket) capped(at time.Time) *ticket {
	if t.expires.Before(at) {
		return t
	}
	c := *t
	c.expires = at
	c.refreshAt = earliest(c.refreshAt, at)
	return &c
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// record is t's token and t as they are kept in storage; with t nil, the
// token alone.
func record(tok *accessToken, t *ticket) storedRecord {
	r := storedRecord{Token: tok.value, TokenFetched: tok.fetched, TokenLifeMS: tok.life.Milliseconds(), Gen: tok.gen, By: tok.by}
	if t != nil {
		r.Ticket, r.TicketFetched, r.TicketLifeMS = t.value, t.fetched, t.life.Milliseconds()
	}
	return r
}

func newTicketCache(size int) *ticketCache {
	c := new(ticketCache)
	entries, err := lru.NewWithEvict(size, func(key string, e *entry) {
		if !e.gone.Swap(true) { // not removed by unregister: pushed out by other apps
			metrics.evictions.Inc()
			c.carryOver(key, e)
		}
	})
	if err != nil {
		panic(err) // only for size <= 0, which callers never pass
	}
	ctx, cancel := context.WithCancel(context.Background())
	host, _ := os.Hostname()
	*c = ticketCache{
		client:      newOAuthClient(),
		now:         time.Now,
		jitter:      func(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) },
		instance:    host + "/" + strconv.Itoa(os.Getpid()),
		autoRefresh: true,
		entries:     entries,
		ctx:         ctx,
		cancel:      cancel,
		wake:        make(chan struct{}, 1),
		apps:        make(map[string][]*appConfig),
		carried:     make(map[string]carry),
	}
	c.size.Store(int64(size))
	return c
}

// carry is what an evicted entry knew that its app's next entry must know
// too: the newest token (so that a token from storage is told newer or
// older), the backoff, and the rejections (so that eviction never resets the
// limits on fetching). The ticket is not carried: the next entry gets the
// current one from storage.
type carry struct {
	token                   *accessToken
	failures                int
	retryAt                 time.Time
	lastErr                 error
	lastForced              time.Time
	rejected, rejectedToken string
	lastFailure             failure
}

// carryOver keeps what evicted entry e of key knew, while key is registered.
func (c *ticketCache) carryOver(key string, e *entry) {
	e.mu.Lock()
	cr := carry{e.token, e.failures, e.retryAt, e.lastErr, e.lastForced, e.rejected, e.rejectedToken, e.lastFailure}
	e.mu.Unlock()
	c.carryMu.Lock()
	defer c.carryMu.Unlock()
	c.carried[key] = cr
}

// appKey names an app in the cache. Two handlers with the same app_id,
// base_url and secret share one ticket, whatever block they are in; the
// secret takes part through a hash, so that a reload that changes it starts
// afresh instead of reusing tickets the old secret obtained.
func appKey(c credentials) string {
	sum := sha256.Sum256([]byte("webank_sign app key\x00" + c.secret))
	return c.appID + "\x00" + c.baseURL + "\x00" + hex.EncodeToString(sum[:8])
}

// register records that a handler signs for key with cfg, and returns the
// registration for unregister. An app whose last handler is gone is
// forgotten, ticket and all.
func (c *ticketCache) register(key string, cfg appConfig) *appConfig {
	c.mu.Lock()
	defer c.mu.Unlock()
	reg := &cfg
	c.apps[key] = append(c.apps[key], reg)
	return reg
}

func (c *ticketCache) unregister(key string, reg *appConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	regs := slices.DeleteFunc(c.apps[key], func(r *appConfig) bool { return r == reg })
	if len(regs) > 0 {
		c.apps[key] = regs
		return
	}
	delete(c.apps, key)
	if e, ok := c.entries.Peek(key); ok {
		e.gone.Store(true) // removed, not evicted
	}
	c.entries.Remove(key)
	c.carryMu.Lock()
	delete(c.carried, key)
	c.carryMu.Unlock()
}

// resize sets how many apps' entries the cache keeps, and returns how many
// it evicted to get there, least recently used first.
func (c *ticketCache) resize(size int) (evicted int) {
	c.size.Store(int64(size))
	return c.entries.Resize(size)
}

// hasRoom reports whether an app not in the cache can be added without
// evicting another.
func (c *ticketCache) hasRoom() bool {
	return int64(c.entries.Len()) < c.size.Load()
}

// touch marks key's entry e used in the LRU, at most once a second: the
// request path, which reads e without the LRU's lock, keeps busy apps from
// being evicted before idle ones without taking that lock every time.
func (c *ticketCache) touch(key string, e *entry, now time.Time) {
	if last := e.used.Load(); now.UnixNano()-last < int64(time.Second) {
		return
	}
	e.used.Store(now.UnixNano())
	c.entries.Get(key)
}

// keys returns the registered apps' keys, sorted.
func (c *ticketCache) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.apps))
	for k := range c.apps {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// app returns how key's tickets are fetched now.
func (c *ticketCache) app(key string) (appConfig, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	regs := c.apps[key]
	if len(regs) == 0 {
		return appConfig{}, false
	}
	return *regs[len(regs)-1], true
}

// otherBaseURLs returns the base URLs, other than baseURL, that appID is
// registered with.
func (c *ticketCache) otherBaseURLs(appID, baseURL string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, regs := range c.apps {
		for _, r := range regs {
			if r.creds.appID == appID && r.creds.baseURL != baseURL && !slices.Contains(out, r.creds.baseURL) {
				out = append(out, r.creds.baseURL)
			}
		}
	}
	return out
}

func (c *ticketCache) appLog(cfg appConfig) *zap.Logger {
	return cfg.logger.With(zap.String("app_id", cfg.creds.appID), zap.String("base_url", cfg.creds.baseURL))
}

// errNotRegistered is returned for an app no handler registered: a bug, or a
// request that raced the Cleanup of its handler.
var errNotRegistered = errors.New("app is not configured")

// errLockTimeout is returned when a peer held the storage lock for the whole
// fetch timeout.
var errLockTimeout = errors.New("waiting for the storage lock: a peer's fetch took longer than fetch_timeout")

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
		return c.refresh(key, kindOnDemand, func(t *ticket, now time.Time) bool {
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

// peek returns key's entry, or nil, without touching its recency.
func (c *ticketCache) peek(key string) *entry {
	e, _ := c.entries.Peek(key)
	return e
}

// entry returns key's entry, adding one if there is none: empty, or with
// what the app's evicted entry knew.
func (c *ticketCache) entry(key string) *entry {
	if e, ok := c.entries.Peek(key); ok {
		return e
	}
	n := new(entry)
	c.carryMu.Lock()
	cr, carried := c.carried[key]
	c.carryMu.Unlock()
	if carried {
		n.token, n.failures, n.retryAt, n.lastErr = cr.token, cr.failures, cr.retryAt, cr.lastErr
		n.lastForced, n.rejected, n.rejectedToken, n.lastFailure = cr.lastForced, cr.rejected, cr.rejectedToken, cr.lastFailure
	}
	if prev, found, _ := c.entries.PeekOrAdd(key, n); found {
		return prev
	}
	if carried {
		c.carryMu.Lock()
		delete(c.carried, key)
		c.carryMu.Unlock()
	}
	return n
}

// Kinds of refresh, for logs, metrics and events.
const (
	kindOnDemand  = "on_demand" // a request found no usable ticket
	kindScheduled = "scheduled" // the refresher, ahead of expiry
	kindForced    = "forced"    // POST /webank_sign/refresh
	kindPoll      = "poll"      // the refresher found a peer's newer ticket
)

// refresh gets a new ticket for key unless, by now, the current one is good
// enough: from storage if a peer stored one that is, else from WeBank.
// Callers hold key's flight.
func (c *ticketCache) refresh(key, kind string, goodEnough func(*ticket, time.Time) bool) (*ticket, error) {
	if _, ok := c.app(key); !ok {
		return nil, errNotRegistered // e.g. a request still in flight on a config just unloaded
	}
	e := c.entry(key)
	if t := e.cur.Load(); t != nil && goodEnough(t, c.now()) {
		return t, nil // replaced while we waited for the flight
	}
	if err := e.backingOff(c.now()); err != nil {
		return nil, err
	}
	cfg, ok := c.app(key)
	if !ok {
		return nil, errNotRegistered
	}
	log := c.appLog(cfg)
	ctx, cancel := context.WithTimeout(c.ctx, cfg.timeout)
	defer cancel()
	usable := func(t *ticket) bool {
		return goodEnough(t, c.now()) && !e.isRejected(t.value)
	}
	began := time.Now()
	t, adopted, err := c.obtain(ctx, cfg, e, usable, log)
	metrics.refreshDuration.WithLabelValues(kind).Observe(time.Since(began).Seconds())
	if err != nil {
		if c.ctx.Err() != nil {
			return nil, err // shutting down
		}
		retryIn := e.failed(err, c.now(), c.jitter)
		metrics.refreshes.WithLabelValues(cfg.creds.appID, kind, "failed", errClass(err)).Inc()
		c.emit(cfg, "ticket_refresh_failed", nil, map[string]any{
			"kind": kind, "error_class": errClass(err), "error": err.Error(), "retry_in": retryIn.String()})
		if t := e.cur.Load(); t != nil && c.now().Before(t.expires) {
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
	metrics.refreshes.WithLabelValues(cfg.creds.appID, kind, result, "").Inc()
	c.emit(cfg, event, t, map[string]any{"kind": kind})
	log.Info(msg, zap.String("kind", kind), zap.Uint64("generation", t.token.gen), zap.String("fetched_by", t.token.by),
		zap.Duration("expires_in", t.expires.Sub(c.now())), zap.Duration("refresh_in", t.refreshAt.Sub(c.now())))
	c.startRefresher()
	c.kick()
	return t, nil
}

// emit sends a Caddy event about cfg's app, if the config has the events
// app. Its data never holds a secret: the ticket only as a fingerprint.
func (c *ticketCache) emit(cfg appConfig, event string, t *ticket, data map[string]any) {
	if cfg.emit == nil {
		return
	}
	data["app_id"], data["base_url"] = cfg.creds.appID, cfg.creds.baseURL
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

// obtain returns a ticket for cfg's app that usable accepts: one a peer
// stored (adopted is true), or else a new one made under the storage lock
// and stored, as certmagic coordinates certificate issuance: lock, load
// again, fetch only what is still needed, store, unlock. A new token is
// fetched only if the newest one known is due, rejected or expired;
// otherwise only a ticket is. Without storage, or when it fails, it fetches
// without the lock.
func (c *ticketCache) obtain(ctx context.Context, cfg appConfig, e *entry, usable func(*ticket) bool, log *zap.Logger) (t *ticket, adopted bool, err error) {
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

	tok := e.newestToken()
	if now := c.now(); tok == nil || !now.Before(tok.expires()) || !now.Before(tok.dueAt(cfg.refresh)) || e.isRejectedToken(tok) {
		var gen uint64
		if tok != nil {
			gen = tok.gen
		}
		start := c.now()
		value, life, err := fetchToken(ctx, c.client, cfg.creds)
		if err != nil {
			return nil, false, err
		}
		tok = &accessToken{value: value, gen: gen + 1, by: c.instance, fetched: start, life: life}
		e.learnToken(tok)
		if st != nil { // peers learn now that their ticket dies within a minute
			c.save(ctx, st, record(tok, nil), log)
		}
	}
	start := c.now()
	value, life, err := fetchSignTicket(ctx, c.client, cfg.creds, tok.value)
	if err != nil {
		return nil, false, err
	}
	t = newTicket(value, start, life, tok, cfg.refresh)
	if st != nil {
		c.save(ctx, st, record(tok, t), log)
	}
	return t, false, nil
}

// lock takes cfg's storage lock and returns nil, nil. While a peer holds
// it, storage is read again every poll interval: if the peer stored a ticket
// that usable accepts, lock returns it, without the lock. Otherwise err says
// why there is no lock: ctx ended, or storage failed.
func (c *ticketCache) lock(ctx context.Context, cfg appConfig, e *entry, usable func(*ticket) bool, log *zap.Logger) (*ticket, error) {
	began := time.Now()
	defer func() { metrics.lockWait.Observe(time.Since(began).Seconds()) }()
	for {
		wait, cancel := context.WithTimeout(ctx, cfg.poll)
		err := cfg.store.lock(wait)
		expired := wait.Err() != nil
		cancel()
		if err == nil || !expired || ctx.Err() != nil {
			return nil, err
		}
		if t, _, _ := c.loadStored(ctx, cfg, e, log); t != nil && usable(t) {
			return t, nil
		}
	}
}

func (c *ticketCache) save(ctx context.Context, st *ticketStore, rec storedRecord, log *zap.Logger) {
	if err := st.save(ctx, rec); err != nil {
		c.storageFailed(err, log)
		return
	}
	c.storageOK(log)
}

// loadStored reads cfg's record, makes e learn its token, and returns its
// ticket and its token. The ticket is nil when the record has none, the
// token too when there is no record or it does not open (logged: it will be
// replaced); ok is false when storage failed (logged once until it works
// again).
func (c *ticketCache) loadStored(ctx context.Context, cfg appConfig, e *entry, log *zap.Logger) (t *ticket, tok *accessToken, ok bool) {
	rec, err := cfg.store.load(ctx)
	switch {
	case err == nil:
		c.storageOK(log)
	case errors.Is(err, errNoRecord):
		c.storageOK(log)
		if err != errNoRecord {
			log.Warn("ignoring the stored ticket record; it will be replaced", zap.String("why", err.Error()))
		}
		return nil, nil, true
	default:
		c.storageFailed(err, log)
		return nil, nil, false
	}
	tok = &accessToken{
		value: rec.Token, gen: rec.Gen, by: rec.By, fetched: rec.TokenFetched,
		life: min(time.Duration(rec.TokenLifeMS)*time.Millisecond, maxTokenLife),
	}
	newest := e.learnToken(tok)
	if rec.Ticket == "" || newest.value != rec.Token {
		return nil, tok, true
	}
	life := min(time.Duration(rec.TicketLifeMS)*time.Millisecond, maxTicketLife)
	return newTicket(rec.Ticket, rec.TicketFetched, life, newest, cfg.refresh), tok, true
}

// learnToken records tok as e's newest token unless e knows a newer one,
// and returns the newest. A ticket made with an older token is then usable
// only until WeBank retires that token, a minute after tok was issued.
func (e *entry) learnToken(tok *accessToken) *accessToken {
	e.mu.Lock()
	if e.token != nil && e.token.gen >= tok.gen {
		tok = e.token
		e.mu.Unlock()
		return tok
	}
	e.token = tok
	e.mu.Unlock()
	retire := retireAt(tok)
	for {
		cur := e.cur.Load()
		if cur == nil || cur.token.gen >= tok.gen || e.cur.CompareAndSwap(cur, cur.capped(retire)) {
			return tok
		}
	}
}

// retireAt returns when tickets made with tokens older than tok stop being
// used: WeBank retires a superseded token a minute after the new one.
func retireAt(tok *accessToken) time.Time {
	return tok.fetched.Add(tokenOverlap - min(maxExpirySkew, tokenOverlap/10))
}

func (e *entry) newestToken() *accessToken {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.token
}

func (e *entry) isRejectedToken(tok *accessToken) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rejectedToken == tok.value
}

// storageFailed notes that storage failed; the first failure after it
// worked is logged.
func (c *ticketCache) storageFailed(err error, log *zap.Logger) {
	metrics.storageErrors.Inc()
	if c.storageDown.CompareAndSwap(false, true) {
		log.Warn("storage unavailable; tickets are kept in memory only until it works again", zap.Error(err))
	}
}

func (c *ticketCache) storageOK(log *zap.Logger) {
	if c.storageDown.CompareAndSwap(true, false) {
		log.Info("storage available again")
	}
}

// install makes t e's ticket unless e already has a newer one, and returns
// the ticket e then has.
func (e *entry) install(t *ticket) *ticket {
	if newest := e.learnToken(t.token); newest.gen > t.token.gen {
		t = t.capped(retireAt(newest)) // fetched outside the lock while a peer rotated
	}
	for {
		cur := e.cur.Load()
		if cur != nil && cur != t && cur.newer(t) {
			return cur
		}
		if e.cur.CompareAndSwap(cur, t) {
			return t
		}
	}
}

// invalidate tells the cache that WeBank rejected t as stale. It drops t, so
// the next request gets another ticket, and reports whether a retry will use
// a different ticket: false if t was dropped too recently to drop it again.
func (c *ticketCache) invalidate(key string, t *ticket) bool {
	e, ok := c.entries.Peek(key)
	if !ok {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.cur.Load()
	if cur == nil || cur.value != t.value {
		return true // already replaced (a capped copy of t is still t)
	}
	now := c.now()
	if !e.lastForced.IsZero() && now.Sub(e.lastForced) < minForcedInterval {
		return false
	}
	e.lastForced = now
	e.rejected, e.rejectedToken = t.value, t.token.value
	e.cur.CompareAndSwap(cur, nil)
	if cfg, ok := c.app(key); ok {
		c.appLog(cfg).Warn("WeBank rejected the ticket; getting another one",
			zap.Uint64("generation", t.token.gen), zap.Duration("ticket_age", now.Sub(t.fetched)))
	}
	return true
}

func (e *entry) isRejected(value string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rejected == value
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
	e.lastFailure = failure{errClass(err), err.Error(), now}
	return d
}

// errClass names the kind of a fetch error for statuses, events and metrics.
func errClass(err error) string {
	var fe *fetchError
	switch {
	case errors.As(err, &fe):
		return fe.Class
	case errors.Is(err, errLockTimeout):
		return "lock_timeout"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "other"
	}
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

// schedule returns when the refresher should next refresh e's ticket t, and
// when it should next poll storage (the zero time if it has never polled).
func (e *entry) schedule(t *ticket) (refresh, poll time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	refresh = t.refreshAt
	if e.retryAt.After(refresh) {
		refresh = e.retryAt
	}
	return refresh, e.nextPoll
}

func (e *entry) setNextPoll(at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nextPoll = at
}

// dueKeys returns the apps whose ticket the refresher should replace now,
// those whose storage it should poll for a peer's newer ticket, and when the
// next work falls due. Apps without a ticket are left to the next request
// that needs one.
func (c *ticketCache) dueKeys(now time.Time) (refresh, poll []string, next time.Time) {
	c.mu.Lock()
	keys := make([]string, 0, len(c.apps))
	polled := make(map[string]bool, len(c.apps))
	for k, regs := range c.apps {
		keys = append(keys, k)
		polled[k] = regs[len(regs)-1].store != nil
	}
	c.mu.Unlock()
	next = now.Add(maxLoopWait)
	earlier := func(at time.Time) {
		if at.Before(next) {
			next = at
		}
	}
	for _, key := range keys {
		e, ok := c.entries.Peek(key)
		if !ok || e.busy.Load() {
			continue
		}
		t := e.cur.Load()
		if t == nil {
			continue
		}
		refreshAt, pollAt := e.schedule(t)
		switch {
		case !now.Before(refreshAt):
			refresh = append(refresh, key)
		case polled[key] && !now.Before(pollAt):
			poll = append(poll, key)
		default:
			earlier(refreshAt)
			if polled[key] {
				earlier(pollAt)
			}
		}
	}
	return refresh, poll, next
}

// refreshScheduled replaces key's ticket if it is still due for refresh.
func (c *ticketCache) refreshScheduled(key string) {
	_, _, _ = c.flight.Do(key, func() (any, error) {
		return c.refresh(key, kindScheduled, func(t *ticket, now time.Time) bool {
			return now.Before(t.refreshAt)
		})
	})
}

// pollStored adopts a newer ticket a peer stored for key (or learns of a
// newer token, which retires the current ticket a minute on), and puts key's
// token and ticket back into storage if the record there is older, missing
// or does not open: after storage came back, say.
func (c *ticketCache) pollStored(key string) {
	e, ok := c.entries.Peek(key)
	cfg, registered := c.app(key)
	if !ok || !registered || cfg.store == nil {
		return
	}
	e.setNextPoll(c.now().Add(cfg.poll))
	log := c.appLog(cfg)
	ctx, cancel := context.WithTimeout(c.ctx, cfg.timeout)
	defer cancel()
	t, stored, ok := c.loadStored(ctx, cfg, e, log)
	if !ok {
		return
	}
	cur := e.cur.Load()
	if cur != nil && c.now().Before(cur.expires) && (stored == nil || stored.gen < cur.token.gen) {
		c.restore(ctx, cfg, cur, log)
		return
	}
	if t == nil || e.isRejected(t.value) || !c.now().Before(t.expires) || (cur != nil && !t.newer(cur)) {
		return
	}
	if e.install(t) == t {
		metrics.refreshes.WithLabelValues(cfg.creds.appID, kindPoll, "adopted", "").Inc()
		c.emit(cfg, "ticket_adopted", t, map[string]any{"kind": kindPoll})
		log.Info("ticket adopted from a peer", zap.Uint64("generation", t.token.gen), zap.String("fetched_by", t.token.by),
			zap.Duration("expires_in", t.expires.Sub(c.now())))
		c.kick()
	}
}

// restore stores t and its token for cfg's app, under the lock, if storage
// still holds no record that opens, or an older one.
func (c *ticketCache) restore(ctx context.Context, cfg appConfig, t *ticket, log *zap.Logger) {
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
	if err == nil && rec.Gen >= t.token.gen || err != nil && !errors.Is(err, errNoRecord) {
		return // a peer stored a newer one meanwhile, or storage failed
	}
	if err := cfg.store.save(ctx, record(t.token, t)); err != nil {
		c.storageFailed(err, log)
		return
	}
	c.storageOK(log)
	log.Info("stored the current ticket again", zap.Uint64("generation", t.token.gen))
}

// appStatus is what the admin API shows of one app. It holds no secret: the
// ticket appears only as a short fingerprint.
type appStatus struct {
	AppID           string       `json:"app_id"`
	BaseURL         string       `json:"base_url"`
	State           string       `json:"state"` // valid, refreshing, refresh_failing, no_ticket, storage_degraded
	Generation      uint64       `json:"generation,omitempty"`
	FetchedBy       string       `json:"fetched_by,omitempty"`
	TicketAge       float64      `json:"ticket_age_seconds"`
	RemainingLife   float64      `json:"remaining_life_seconds"`
	NextRefresh     *time.Time   `json:"next_refresh,omitempty"`
	Fingerprint     string       `json:"ticket_fingerprint,omitempty"`
	LastError       *errorStatus `json:"last_error,omitempty"`
	StorageDegraded bool         `json:"storage_degraded"`
}

type errorStatus struct {
	Class   string    `json:"class"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// status returns the state of every registered app, in app_id order.
func (c *ticketCache) status() []appStatus {
	now := c.now()
	c.mu.Lock()
	cfgs := make(map[string]appConfig, len(c.apps))
	for k, regs := range c.apps {
		cfgs[k] = *regs[len(regs)-1]
	}
	c.mu.Unlock()
	out := make([]appStatus, 0, len(cfgs))
	for key, cfg := range cfgs {
		st := appStatus{AppID: cfg.creds.appID, BaseURL: cfg.creds.baseURL, State: "no_ticket",
			StorageDegraded: cfg.store != nil && c.storageDown.Load()}
		if e, ok := c.entries.Peek(key); ok {
			c.fillStatus(&st, e, now)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b appStatus) int {
		if a.AppID != b.AppID {
			return strings.Compare(a.AppID, b.AppID)
		}
		return strings.Compare(a.BaseURL, b.BaseURL)
	})
	return out
}

func (c *ticketCache) fillStatus(st *appStatus, e *entry, now time.Time) {
	t := e.cur.Load()
	e.mu.Lock()
	fail, failing, retryAt := e.lastFailure, e.failures > 0, e.retryAt
	e.mu.Unlock()
	if !fail.at.IsZero() {
		st.LastError = &errorStatus{fail.class, fail.msg, fail.at}
	}
	if t != nil {
		next := t.refreshAt
		if failing {
			next = retryAt
		}
		st.Generation, st.FetchedBy, st.Fingerprint = t.token.gen, t.token.by, fingerprint(t.value)
		st.TicketAge = now.Sub(t.fetched).Seconds()
		st.RemainingLife = max(0, t.expires.Sub(now).Seconds())
		st.NextRefresh = &next
	}
	switch {
	case t == nil || !now.Before(t.expires):
		st.State = "no_ticket"
	case failing:
		st.State = "refresh_failing"
	case st.StorageDegraded:
		st.State = "storage_degraded"
	case e.busy.Load():
		st.State = "refreshing"
	default:
		st.State = "valid"
	}
}

// tooSoonError refuses a forced refresh that comes too soon after the last.
type tooSoonError struct{ retryIn time.Duration }

func (e *tooSoonError) Error() string {
	return "the ticket was replaced by force less than " + minForcedInterval.String() +
		" ago; try again in " + e.retryIn.Round(time.Second).String()
}

// forceRefresh replaces the ticket of every registered app with appID by one
// made with a new token, through the usual single flight and storage lock
// (so a peer's fresher ticket is adopted instead of fetching). It refuses
// with a *tooSoonError within minForcedInterval of the last forced or
// rejection-driven replacement, so that it cannot rotate the token in a
// loop. found is false if no handler signs for appID.
func (c *ticketCache) forceRefresh(ctx context.Context, appID string) (found bool, err error) {
	c.mu.Lock()
	var keys []string
	for k, regs := range c.apps {
		if regs[len(regs)-1].creds.appID == appID {
			keys = append(keys, k)
		}
	}
	c.mu.Unlock()
	if len(keys) == 0 {
		return false, nil
	}
	for _, key := range keys {
		e := c.entry(key)
		now := c.now()
		e.mu.Lock()
		if !e.lastForced.IsZero() && now.Sub(e.lastForced) < minForcedInterval {
			retryIn := minForcedInterval - now.Sub(e.lastForced)
			e.mu.Unlock()
			return true, &tooSoonError{retryIn}
		}
		e.lastForced = now
		var base uint64
		if e.token != nil {
			base, e.rejectedToken = e.token.gen, e.token.value // fetch a new token, not just a ticket
		}
		e.mu.Unlock()
		// A forced refresh may join a flight already under way for another
		// reason, whose ticket need not be newer: then it runs again.
		for attempt := 0; attempt < 2; attempt++ {
			ch := c.flight.DoChan(key, func() (any, error) {
				return c.refresh(key, kindForced, func(t *ticket, _ time.Time) bool { return t.token.gen > base })
			})
			select {
			case res := <-ch:
				if res.Err != nil {
					return true, res.Err
				}
				if res.Val.(*ticket).token.gen > base {
					attempt = 2
				}
			case <-ctx.Done():
				return true, ctx.Err()
			}
		}
	}
	return true, nil
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

// refresher refreshes tickets and polls storage as they fall due, until the
// cache is destructed.
func (c *ticketCache) refresher() {
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
func (c *ticketCache) background(key string, work func(string)) {
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
