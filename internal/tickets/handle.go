package tickets

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// How often, at most, a sidecar looks in storage for a ticket a peer
// fetched: well inside the minute for which WeBank keeps the previous token
// valid. It is also at most a quarter of the refresh period.
const maxStoragePoll = 15 * time.Second

// Config is how an app's tickets are to be fetched.
type Config struct {
	Credentials

	// How often the token and ticket are replaced ahead of expiry.
	Refresh time.Duration

	// The longest one fetch may take, storage lock included.
	Timeout time.Duration

	// Where the app's token and ticket are shared with a fleet; nil keeps
	// them in memory only.
	Storage certmagic.Storage

	// Where the cache logs about this app.
	Logger *zap.Logger

	// Receives events about the app's ticket (ticket_refreshed,
	// ticket_refresh_failed, ticket_adopted, nonce_ticket_failed,
	// callback_signature_invalid); nil sends none. Their data never holds
	// a secret.
	Emit func(event string, data map[string]any)

	// WeBank answer codes that mean an access token is no longer valid: a
	// NONCE fetch through this registration answered with one gets the app
	// a new token and is tried once more (see NonceTicket). Nil: none.
	RetryCodes map[string]bool

	// How many NONCE fetches through this registration may be in flight at
	// once, and how many launches may wait for one; zero means
	// DefaultNonceLimit and DefaultNonceQueue. Unlike the options above,
	// these are the registration's own: the last registration of the app
	// does not decide them for the others.
	NonceLimit, NonceQueue int
}

// Handle is one registration of an app: what a handler holds to get the
// app's ticket for each request. It is safe for concurrent use.
type Handle struct {
	c        *Cache
	key      string
	reg      *appConfig
	once     sync.Once
	released atomic.Bool

	entry atomic.Pointer[entry] // the app's entry as last looked up, for the lock-free path
}

// Register adds an app, or another registration of an app already known
// (same app_id, base_url and secret: they share one ticket), and returns its
// handle. The registration made last decides how the app's tickets are
// fetched. Nothing is fetched until a ticket is asked for, so a caller may
// register before it has checked cfg, and release the handle if the check
// fails; Refresh and Timeout must be positive, and Logger set, by the time
// a ticket is asked for.
func (c *Cache) Register(cfg Config) (*Handle, error) {
	var store *ticketStore
	if cfg.Storage != nil {
		var err error
		if store, err = newTicketStore(cfg.Storage, cfg.Credentials); err != nil {
			return nil, fmt.Errorf("setting up ticket storage: %w", err)
		}
	}
	key := appKey(cfg.Credentials)
	reg := c.register(key, appConfig{
		creds:   cfg.Credentials,
		refresh: cfg.Refresh,
		timeout: cfg.Timeout,
		store:   store,
		poll:    min(maxStoragePoll, cfg.Refresh/4),
		logger:  cfg.Logger,
		emit:    cfg.Emit,
		retry:   cfg.RetryCodes,
		nonces:  newNonceGate(cfg.NonceLimit, nonceQueue(cfg.NonceQueue)),
	})
	return &Handle{c: c, key: key, reg: reg}, nil
}

func nonceQueue(n int) int {
	if n == 0 {
		return DefaultNonceQueue
	}
	return n
}

// Ticket returns a usable ticket for the app, fetching one if there is
// none. While the cached ticket is usable it takes no lock and does no I/O.
// Otherwise it waits for the app's one fetch no longer than ctx allows; the
// fetch goes on for the other callers, bounded by the app's timeout.
func (h *Handle) Ticket(ctx context.Context) (*Ticket, error) {
	if t := h.cached(); t != nil {
		return t, nil
	}
	t, err := h.c.ticket(ctx, h.key)
	if e := h.c.peek(h.key); e != nil && err == nil {
		h.entry.Store(e)
	}
	return t, err
}

// cached returns the app's ticket with two atomic loads (its entry, then
// the entry's ticket), or nil when the caller must go the slow way: no
// entry yet, the entry left the cache, or no usable ticket.
//
// A request still in flight on a released handle, whose config was
// unloaded while it ran, signs with the last ticket the handle knew while
// that ticket is usable: it must finish normally, although nothing keeps
// the ticket current any more.
func (h *Handle) cached() *Ticket {
	e := h.entry.Load()
	if e == nil || e.gone.Load() {
		n := h.c.peek(h.key)
		if n == nil {
			if e != nil && h.released.Load() {
				return e.usable(h.c.now())
			}
			return nil
		}
		e = n
		h.entry.Store(e)
	}
	now := h.c.now()
	if t := e.usable(now); t != nil {
		h.c.touch(h.key, e, now)
		return t
	}
	return nil
}

// Invalidate tells the cache that WeBank rejected t as stale. It drops t,
// so that the next call to Ticket gets another one, and reports whether
// that will be a different ticket: false if a ticket was dropped too
// recently (within a minute) to drop another, so that a client whose
// requests WeBank refuses for another reason cannot rotate the token in a
// loop.
func (h *Handle) Invalidate(t *Ticket) bool {
	c := h.c
	e := c.peek(h.key)
	if e == nil {
		// Evicted, or released in a reload: the rejection is recorded in
		// the app's state all the same (through the entry this handle
		// knew), so that neither the released handle's fallback nor a
		// ticket from storage brings t back.
		if e = h.entry.Load(); e == nil {
			return true
		}
	}
	now := c.now()
	another, dropped := e.reject(t, now)
	if !dropped {
		return another
	}
	if cfg, ok := c.app(h.key); ok {
		appLog(cfg).Warn("WeBank rejected the ticket; getting another one",
			zap.Uint64("generation", t.token.gen), zap.Duration("ticket_age", now.Sub(t.fetched)))
	}
	return true
}

// Release ends the registration. An app whose last registration is
// released is forgotten, ticket and all. A second Release does nothing.
func (h *Handle) Release() {
	h.once.Do(func() {
		h.released.Store(true)
		h.c.unregister(h.key, h.reg)
	})
}
