package tickets

import "time"

// This file holds the values the cache hands out and the arithmetic of
// their schedule: when a ticket is replaced, and when it stops being used.

const (
	// A ticket is not used in its last moments: a request signed with it must
	// still be valid when WeBank reads it. The skew is the smaller of this and
	// a tenth of the ticket's life.
	maxExpirySkew = 30 * time.Second

	// A ticket is refreshed at the earlier of the configured refresh period and
	// its life less a margin: the smaller of this and a quarter of its life.
	maxRefreshMargin = 5 * time.Minute

	// How long WeBank keeps a superseded access token, and the tickets made
	// with it, valid after a new token is issued (docs/protocol.md §2.3).
	tokenOverlap = time.Minute

	// WeBank's documented maximum lifetimes (docs/protocol.md §2.3, §3.3). A
	// longer life, from WeBank or from storage, is capped: the docs promise
	// no more, and a huge value would disable expiry.
	MaxTokenLife  = 7200 * time.Second
	MaxTicketLife = 3600 * time.Second
)

// accessToken is an access token, fetched here or by a peer. It is never
// modified.
type accessToken struct {
	value   string // never logged
	gen     uint64 // the app's token count in the fleet: a higher one is newer
	by      string // the instance that fetched it
	fetched time.Time
	life    time.Duration // as WeBank gave it
	forced  bool          // fetched to replace a token WeBank rejected, or by an operator
}

// after reports whether a is a newer token than b: of a higher generation,
// or of the same generation and fetched later. Two replicas fetch tokens of
// one generation only when one of them could not use storage; WeBank keeps
// the one fetched later, so the fleet settles on it. A last tie, between
// tokens fetched at the same instant, is broken by value so that every
// replica breaks it alike.
func (a *accessToken) after(b *accessToken) bool {
	switch {
	case a.gen != b.gen:
		return a.gen > b.gen
	case !a.fetched.Equal(b.fetched):
		return a.fetched.After(b.fetched)
	default:
		return a.value > b.value
	}
}

// forcedWithin reports whether a was fetched to replace a rejected (or
// force-refreshed) token less than d before now: anywhere in the fleet,
// since the fact travels with the token through storage.
func (a *accessToken) forcedWithin(d time.Duration, now time.Time) bool {
	return a.forced && now.Sub(a.fetched) < d
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

// retireAt returns when tickets made with tokens older than tok stop being
// used: WeBank retires a superseded token a minute after the new one.
func retireAt(tok *accessToken) time.Time {
	return tok.fetched.Add(tokenOverlap - min(maxExpirySkew, tokenOverlap/10))
}

// Ticket is a SIGN ticket, the token it was made with, and its schedule. It
// is never modified, so it may be shared freely; its value is a secret.
type Ticket struct {
	value     string // never logged
	token     *accessToken
	fetched   time.Time
	life      time.Duration // as WeBank gave it
	refreshAt time.Time     // when the refresher replaces it (and its token)
	expires   time.Time     // when requests stop using it
}

// Value returns the ticket itself, to sign with. It is a secret: never log
// it or send it to a client.
func (t *Ticket) Value() string { return t.value }

// Generation returns the fleet-wide count of the token t was made with.
func (t *Ticket) Generation() uint64 { return t.token.gen }

// Fetched returns when t was fetched from WeBank.
func (t *Ticket) Fetched() time.Time { return t.fetched }

func newTicket(value string, fetched time.Time, life time.Duration, tok *accessToken, refresh time.Duration) *Ticket {
	t := &Ticket{value: value, token: tok, fetched: fetched, life: life}
	t.expires = earliest(fetched.Add(life-min(maxExpirySkew, life/10)), tok.expires())
	t.refreshAt = earliest(tok.dueAt(refresh), fetched.Add(life-min(maxRefreshMargin, life/4)))
	return t
}

// newer reports whether t is newer than u: made with a newer token (see
// after), or later with the same one.
func (t *Ticket) newer(u *Ticket) bool {
	if t.token.value != u.token.value {
		return t.token.after(u.token)
	}
	return t.fetched.After(u.fetched)
}

// capped returns t usable until at at the latest.
func (t *Ticket) capped(at time.Time) *Ticket {
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
