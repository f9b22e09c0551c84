package webanktest

import (
	"crypto/subtle"
	"strings"
	"time"
)

// maxNonceTickets is how many NONCE tickets are kept per app; older ones
// are forgotten and so no longer accepted. One is issued per launch, so
// this is more than a hundred launches a second for their whole lifetime.
const maxNonceTickets = 1 << 14

// nonceTicket is a NONCE ticket: bound to the user it was issued for, and
// good for one launch.
type nonceTicket struct {
	value   string
	userID  string
	expires time.Time
	token   *accessToken
	used    bool // guarded by credentials.mu
}

// issueNonceTicket makes a new NONCE ticket for userID of the known app
// appID from its access token token, valid for nonceTTL from now. ok is
// false, and no ticket is made, if token is not a valid token of appID.
func (c *credentials) issueNonceTicket(appID, userID, token string, now time.Time) (ticket string, ok bool) {
	value := randomAlnum(64)
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.apps[appID]
	from := a.validToken(token, now)
	if from == nil {
		return "", false
	}
	t := &nonceTicket{value: value, userID: userID, expires: now.Add(c.nonceTTL), token: from}
	a.nonces = appendBounded(a.nonces, t, maxNonceTickets)
	return value, true
}

// launchRefusal says why a launch signed with a NONCE ticket is refused.
type launchRefusal string

const (
	launchOK        launchRefusal = ""
	launchMismatch  launchRefusal = "signature mismatch"
	launchUsed      launchRefusal = "ticket already used"
	launchExpired   launchRefusal = "ticket expired or its access_token invalid"
	launchNoTickets launchRefusal = "no ticket for the user"
)

// useNonceTicket finds the NONCE ticket issued for userID of the known app
// appID that got, a sign in either case, was made with: the sign of
// values and the ticket. If that ticket is unused and valid at now, it is
// used up and launchOK returned; otherwise the refusal says why. Tickets
// of other users never match.
func (c *credentials) useNonceTicket(appID, userID string, values []string, got string, now time.Time) launchRefusal {
	gotSign := []byte(strings.ToUpper(got))
	signed := append(values[:len(values):len(values)], "") // the last is the ticket
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.apps[appID].nonces
	refusal := launchNoTickets
	for i := len(ts) - 1; i >= 0; i-- {
		t := ts[i]
		if t.userID != userID {
			continue
		}
		refusal = launchMismatch
		signed[len(signed)-1] = t.value
		if subtle.ConstantTimeCompare(gotSign, []byte(sign(signed...))) != 1 {
			continue
		}
		switch {
		case t.used:
			return launchUsed
		case !now.Before(t.expires) || !now.Before(t.token.deadline):
			return launchExpired
		}
		t.used = true
		return launchOK
	}
	return refusal
}
