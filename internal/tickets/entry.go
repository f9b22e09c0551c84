package tickets

import (
	"sync"
	"sync/atomic"
	"time"
)

const (
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
)

// entry is one app's ticket and the state of its fetching.
//
// cur is read without a lock on the request path. It changes only by
// compare-and-swap (install, invalidate, learnToken), so that a newer ticket
// is never replaced by an older one whoever holds mu.
type entry struct {
	cur  atomic.Pointer[Ticket] // nil until fetched, and after WeBank rejected it
	busy atomic.Bool            // the refresher has a refresh or poll under way
	gone atomic.Bool            // evicted or removed: its ticket is no longer kept current
	used atomic.Int64           // when a request last marked it used in the LRU, in Unix nanoseconds

	app *appState // shared by every entry the app has had
}

// appState is what the cache knows about fetching one app's tickets. The
// cache keeps it for as long as the app is registered, whether or not the
// app's entry is in the LRU, and every entry of the app shares it: so a
// fetch that ends after its entry was evicted records its outcome where the
// next entry reads it, and eviction never resets the limits on fetching.
// The ticket itself is the entry's: an app that comes back gets the current
// one from storage.
type appState struct {
	mu       sync.Mutex // protects st, nextPoll, replaced, older and alive
	st       fetchState
	nextPoll time.Time // when the refresher next polls storage
	replaced replaced  // the ticket the current one replaced
	older    replaced  // the one replaced before it: two replacements may fall within a minute
	alive    probed    // the last probe that found a token alive (nonce.go)

	lastStoreCheck atomic.Int64 // when a callback check last read storage, in Unix nanoseconds
}

// probed is a token a probe found alive, and when.
type probed struct {
	token string
	at    time.Time
}

// replaced is a ticket that a newer one replaced, or that was dropped for
// one on WeBank's rejection, and when: WeBank may still sign a callback
// with it for a while (see SignedWith).
type replaced struct {
	t  *Ticket
	at time.Time
}

// fetchState is the part of an appState that a status shows and that
// fetches decide by.
type fetchState struct {
	token         *accessToken // the newest token known, which may have no ticket yet
	failures      int          // consecutive failed fetches
	retryAt       time.Time    // after a failed fetch, none before this
	lastErr       error
	lastFailure   failure   // the last failed fetch, kept after recovery for the status
	lastForced    time.Time // when WeBank's rejection, or an operator, last dropped the ticket
	rejected      string    // the ticket WeBank last rejected: never adopted again
	rejectedToken string    // and its token: never used for a ticket again
}

// failure is a failed fetch as the status shows it: no secret in it.
type failure struct {
	class, msg string
	at         time.Time
}

// state returns a copy of e's fetch state.
func (e *entry) state() fetchState {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	return e.app.st
}

// usable returns e's ticket if it may be used at now, and nil otherwise.
func (e *entry) usable(now time.Time) *Ticket {
	if t := e.cur.Load(); t != nil && now.Before(t.expires) {
		return t
	}
	return nil
}

// learnToken records tok as e's newest token unless e knows a newer one,
// and returns the newest. A ticket made with an older token is then usable
// only until WeBank retires that token, a minute after tok was issued.
func (e *entry) learnToken(tok *accessToken) *accessToken {
	e.app.mu.Lock()
	if e.app.st.token != nil && !tok.after(e.app.st.token) {
		tok = e.app.st.token
		e.app.mu.Unlock()
		return tok
	}
	e.app.st.token = tok
	e.app.mu.Unlock()
	retire := retireAt(tok)
	for {
		cur := e.cur.Load()
		if cur == nil || !tok.after(cur.token) || e.cur.CompareAndSwap(cur, cur.capped(retire)) {
			return tok
		}
	}
}

// install makes t e's ticket unless e already has a newer one, and returns
// the ticket e then has.
func (e *entry) install(t *Ticket) *Ticket {
	if newest := e.learnToken(t.token); newest.after(t.token) {
		t = t.capped(retireAt(newest)) // fetched outside the lock while a peer rotated
	}
	for {
		cur := e.cur.Load()
		if cur != nil && cur != t && cur.newer(t) {
			return cur
		}
		if e.cur.CompareAndSwap(cur, t) {
			if cur != nil && cur.value != t.value {
				e.app.mu.Lock()
				e.app.retire(cur, t.fetched)
				e.app.mu.Unlock()
			}
			return t
		}
	}
}

// reject drops t, which WeBank rejected, unless it was already replaced or
// a ticket was dropped less than minForcedInterval before now. It reports
// whether the next ticket will be another one, and whether it dropped t.
func (e *entry) reject(t *Ticket, now time.Time) (another, dropped bool) {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	cur := e.cur.Load()
	if cur == nil || cur.value != t.value {
		return true, false // already replaced (a capped copy of t is still t)
	}
	if tok := e.app.st.token; tok != nil && tok.after(t.token) {
		// A newer token is known (a peer's rotation, learned from storage
		// before its ticket): the next ticket is made with it, so dropping t
		// rotates nothing, and no limit applies.
		e.app.st.rejected = t.value
		e.drop(cur, now)
		return true, true
	}
	if e.forcedRecently(now) {
		return false, false
	}
	e.app.st.lastForced = now
	e.app.st.rejected, e.app.st.rejectedToken = t.value, t.token.value
	e.drop(cur, now)
	return true, true
}

// drop removes cur, e's ticket, at now, and keeps it as the replaced one:
// until WeBank answered the request that drew the rejection (a retry code
// that a client's own bad input can draw too), it was the app's latest,
// and WeBank may have signed a callback with it moments ago. Its minute
// runs from now, before its replacement is even fetched. Callers hold
// e.app.mu.
func (e *entry) drop(cur *Ticket, now time.Time) {
	if e.cur.CompareAndSwap(cur, nil) {
		e.app.retire(cur, now)
	}
}

// retire keeps t, replaced at at, as the replaced ticket, and the one it
// held before as the older one. Callers hold a.mu.
func (a *appState) retire(t *Ticket, at time.Time) {
	a.older, a.replaced = a.replaced, replaced{t, at}
}

// force marks a forced refresh at now, so that the next fetch gets a new
// token, and returns the newest token's generation; or, within
// minForcedInterval of the last, a *TooSoonError.
func (e *entry) force(now time.Time) (base uint64, err error) {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	if e.forcedRecently(now) {
		last := e.app.st.lastForced
		if tok := e.app.st.token; tok != nil && tok.forced && tok.fetched.After(last) {
			last = tok.fetched
		}
		return 0, &TooSoonError{RetryIn: minForcedInterval - now.Sub(last)}
	}
	e.app.st.lastForced = now
	if e.app.st.token != nil {
		base, e.app.st.rejectedToken = e.app.st.token.gen, e.app.st.token.value // fetch a new token, not just a ticket
	}
	return base, nil
}

// forcedRecently reports whether a ticket was dropped here, or a token was
// replaced for a rejection anywhere in the fleet, less than
// minForcedInterval before now. Callers hold e.app.mu.
func (e *entry) forcedRecently(now time.Time) bool {
	if !e.app.st.lastForced.IsZero() && now.Sub(e.app.st.lastForced) < minForcedInterval {
		return true
	}
	tok := e.app.st.token
	return tok != nil && tok.forcedWithin(minForcedInterval, now)
}

func (e *entry) isRejected(value string) bool {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	return e.app.st.rejected == value
}

// failed records a failed fetch and returns how long to back off.
func (e *entry) failed(err error, now time.Time, jitter func(time.Duration) time.Duration) time.Duration {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	e.app.st.failures++
	d := backoffMax
	if e.app.st.failures <= 6 { // 1s << 6 > backoffMax
		d = min(backoffMax, backoffBase<<(e.app.st.failures-1))
	}
	d = jitter(d)
	e.app.st.retryAt = now.Add(d)
	e.app.st.lastErr = err
	e.app.st.lastFailure = failure{errClass(err), err.Error(), now}
	return d
}

func (e *entry) succeeded() {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	e.app.st.failures, e.app.st.retryAt, e.app.st.lastErr = 0, time.Time{}, nil
}

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

// backingOff returns the error to answer with while the last fetch failed
// and its backoff has not passed, and nil otherwise.
func (e *entry) backingOff(now time.Time) error {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	if e.app.st.lastErr == nil || !now.Before(e.app.st.retryAt) {
		return nil
	}
	return &backoffError{e.app.st.lastErr, e.app.st.retryAt.Sub(now)}
}

// schedule returns when the refresher should next refresh e's ticket t, and
// when it should next poll storage (the zero time if it has never polled).
func (e *entry) schedule(t *Ticket) (refresh, poll time.Time) {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	refresh = t.refreshAt
	if e.app.st.retryAt.After(refresh) {
		refresh = e.app.st.retryAt
	}
	return refresh, e.app.nextPoll
}

func (e *entry) setNextPoll(at time.Time) {
	e.app.mu.Lock()
	defer e.app.mu.Unlock()
	e.app.nextPoll = at
}
