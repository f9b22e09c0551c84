package webanktest

import (
	"crypto/rand"
	"crypto/subtle"
	"sync"
	"time"
)

// maxHistory is how many access tokens, and how many SIGN tickets, are kept
// per app; older ones are forgotten and so no longer accepted.
const maxHistory = 1024

// credentials holds the apps' secrets and the access tokens, SIGN tickets
// and NONCE tickets issued for them, and decides which are still valid. It
// is safe for concurrent use.
//
// An access token is valid until the earlier of its expiry and grace after
// it is superseded by the app's next token. A ticket is valid until its own
// expiry, and only while its token is valid; a NONCE ticket, besides, only
// until it is used.
type credentials struct {
	tokenTTL  time.Duration
	ticketTTL time.Duration
	nonceTTL  time.Duration
	grace     time.Duration     // >= 0
	secrets   map[string]string // app_id -> secret; never modified

	mu   sync.Mutex // protects apps, the appTokens in it and every accessToken.deadline
	apps map[string]*appTokens
}

// appTokens is what has been issued for one app.
type appTokens struct {
	current *accessToken   // nil until the first token
	tokens  []*accessToken // oldest first, at most maxHistory
	tickets []*signTicket  // oldest first, at most maxHistory
	nonces  []*nonceTicket // oldest first, at most maxNonceTickets
}

type accessToken struct {
	value    string
	deadline time.Time // when it stops being valid; only moves earlier, when superseded
}

type signTicket struct {
	value   string
	expires time.Time
	token   *accessToken
}

func newCredentials(secrets map[string]string, tokenTTL, ticketTTL, nonceTTL, grace time.Duration) *credentials {
	apps := make(map[string]*appTokens, len(secrets))
	for id := range secrets {
		apps[id] = &appTokens{}
	}
	return &credentials{
		tokenTTL:  tokenTTL,
		ticketTTL: ticketTTL,
		nonceTTL:  nonceTTL,
		grace:     grace,
		secrets:   secrets,
		apps:      apps,
	}
}

// known reports whether appID is a configured app.
func (c *credentials) known(appID string) bool {
	_, ok := c.secrets[appID]
	return ok
}

// authenticate reports whether appID is known and secret is its secret.
func (c *credentials) authenticate(appID, secret string) bool {
	want, ok := c.secrets[appID]
	return ok && subtle.ConstantTimeCompare([]byte(secret), []byte(want)) == 1
}

// issueToken makes a new access token for the known app appID, valid for
// tokenTTL from now, and supersedes the app's current token.
func (c *credentials) issueToken(appID string, now time.Time) string {
	t := &accessToken{value: randomAlnum(64), deadline: now.Add(c.tokenTTL)}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.apps[appID]
	if prev := a.current; prev != nil {
		if end := now.Add(c.grace); end.Before(prev.deadline) {
			prev.deadline = end
		}
	}
	a.current = t
	a.tokens = appendBounded(a.tokens, t, maxHistory)
	return t.value
}

// issueTicket makes a new SIGN ticket for the known app appID from its
// access token token, valid for ticketTTL from now. ok is false, and no
// ticket is made, if token is not a valid token of appID.
func (c *credentials) issueTicket(appID, token string, now time.Time) (ticket string, ok bool) {
	value := randomAlnum(64)
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.apps[appID]
	from := a.validToken(token, now)
	if from == nil {
		return "", false
	}
	a.tickets = appendBounded(a.tickets, &signTicket{value: value, expires: now.Add(c.ticketTTL), token: from}, maxHistory)
	return value, true
}

// validToken returns the token of a whose value is token if it is valid at
// now, else nil. The caller holds credentials.mu.
func (a *appTokens) validToken(token string, now time.Time) *accessToken {
	var from *accessToken
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare([]byte(token), []byte(t.value)) == 1 {
			from = t
		}
	}
	if from == nil || !now.Before(from.deadline) {
		return nil
	}
	return from
}

// latestTicket returns the SIGN ticket last issued for the known app appID,
// valid or not, and false if none was.
func (c *credentials) latestTicket(appID string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.apps[appID].tickets
	if len(ts) == 0 {
		return "", false
	}
	return ts[len(ts)-1].value, true
}

// tickets returns the tickets kept for the known app appID, newest first,
// valid or not.
func (c *credentials) tickets(appID string) []*signTicket {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.apps[appID].tickets
	out := make([]*signTicket, len(ts))
	for i, t := range ts {
		out[len(ts)-1-i] = t
	}
	return out
}

// issued returns every access token and ticket value kept, for all apps.
func (c *credentials) issued() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, a := range c.apps {
		for _, t := range a.tokens {
			out = append(out, t.value)
		}
		for _, t := range a.tickets {
			out = append(out, t.value)
		}
		for _, t := range a.nonces {
			out = append(out, t.value)
		}
	}
	return out
}

// valid reports whether ticket t can still be used at now.
func (c *credentials) valid(t *signTicket, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Before(t.expires) && now.Before(t.token.deadline)
}

// randomAlnum returns n random characters from [0-9A-Za-z], drawn from
// crypto/rand.
func randomAlnum(n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		rand.Read(buf) // never fails
		for _, b := range buf {
			// 248 is the largest multiple of 62 below 256; rejecting the
			// rest keeps every character equally likely.
			if b < 248 && len(out) < n {
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out)
}
