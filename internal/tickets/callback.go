package tickets

import (
	"context"
	"time"
)

// This file checks the signature on WeBank's result callbacks
// (docs/protocol.md §11). WeBank signs a callback with the app's latest
// SIGN ticket as WeBank knows it; the check therefore accepts the current
// ticket, the last two it replaced for the minute after each replacement
// (a callback signed just before a refresh arrives just after it, and a
// rejection may follow a refresh within that minute), and, in a fleet, a
// newer ticket a peer stored that this sidecar has not polled yet. It
// never fetches: a check that fetched a token would rotate the token it
// checks against.

// storeCheckInterval is how often, at most, failed callback checks read
// storage for a peer's newer ticket: a stream of forged callbacks costs
// storage no more than the refresher's polls do.
const storeCheckInterval = time.Second

// SignedWith reports whether check accepts one of the SIGN tickets WeBank
// may have signed a callback with, trying the current ticket first. It
// gets the app a ticket first if it has none, through the app's one
// fetch, as any request would; if none can be had, the tickets it
// replaced are still tried before the error is returned. check must
// compare in constant time; it is given each ticket's value, a secret.
func (h *Handle) SignedWith(ctx context.Context, check func(ticket string) bool) (bool, error) {
	t, err := h.Ticket(ctx)
	cfg, ok := h.c.app(h.key)
	if !ok {
		return false, ErrNotRegistered
	}
	count := func(result string) { h.c.metrics.callbacks.WithLabelValues(cfg.creds.AppID, result).Inc() }
	e := h.c.peek(h.key)
	if e == nil {
		e = h.entry.Load()
	}
	now := h.c.now()
	if err != nil {
		// No current ticket: the one just dropped (a rejection) may be
		// what WeBank signed with moments ago.
		if e != nil && e.app.replacedMatch("", now, check) {
			count("previous")
			return true, nil
		}
		return false, err
	}
	if check(t.value) {
		count("current")
		return true, nil
	}
	if e != nil {
		if e.app.replacedMatch(t.value, now, check) {
			count("previous")
			return true, nil
		}
		if cfg.store != nil && e.app.storeCheckDue(now) {
			if s, _, _ := h.c.loadStored(ctx, cfg, e, appLog(cfg)); s != nil && s.newer(t) && now.Before(s.expires) && !e.isRejected(s.value) {
				e.install(s)
				if check(s.value) {
					count("stored")
					return true, nil
				}
			}
		}
	}
	count("invalid")
	h.c.emit(cfg, "callback_signature_invalid", nil, map[string]any{})
	return false, nil
}

// replacedMatch reports whether check accepts one of the tickets a
// replaced, other than current, within the minute after its replacement.
func (a *appState) replacedMatch(current string, now time.Time, check func(string) bool) bool {
	a.mu.Lock()
	prevs := [...]replaced{a.replaced, a.older}
	a.mu.Unlock()
	for _, prev := range prevs {
		if prev.t != nil && prev.t.value != current && now.Sub(prev.at) < tokenOverlap && check(prev.t.value) {
			return true
		}
	}
	return false
}

// storeCheckDue reports whether a failed callback check may read storage
// at now, and if so records that it does.
func (a *appState) storeCheckDue(now time.Time) bool {
	last := a.lastStoreCheck.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < storeCheckInterval {
		return false
	}
	return a.lastStoreCheck.CompareAndSwap(last, now.UnixNano())
}
