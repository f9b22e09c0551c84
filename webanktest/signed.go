package webanktest

import (
	"crypto/subtle"
	"errors"
	"strings"
	"sync"
)

// notFoundPrefix starts the order numbers that have no result, on every
// signed endpoint.
const notFoundPrefix = "NOTFOUND"

// maxNonces is how many recent nonces are remembered to detect reuse.
const maxNonces = 1 << 16

// signedParams are the values of a request signed with a SIGN ticket: the
// sign is made over the other four and the ticket.
type signedParams struct {
	appID, orderNo, nonce, version, sign string
}

// answer is a fixed {"code","msg"} answer.
type answer struct{ code, msg string }

// authorize runs the checks that every signed endpoint shares, once the
// endpoint has parsed and checked its parameters into p. They run in this
// order, the first failing one deciding the answer: app_id (400103), a ticket
// of the app the sign was made with (400101), that ticket's validity (15),
// the nonce's novelty for the app across all signed endpoints (400101), an
// order number not starting with notFoundPrefix (notFound). authorize
// answers and returns false at the first check that fails; if all pass, it
// answers nothing and returns true.
func (f *Fake) authorize(x *exchange, p signedParams, notFound answer) bool {
	if !f.creds.known(p.appID) {
		x.reply(codeBadCredentials, "unknown app_id")
		return false
	}
	t := p.signedWith(f.creds.tickets(p.appID))
	switch {
	case t == nil:
		f.badSignatures.Add(1)
		x.reply(codeBadSignature, "signature mismatch")
	case !f.creds.valid(t, f.now()):
		f.staleTickets.Add(1)
		x.reply(codeInvalidToken, "ticket expired or its access_token invalid")
	case !f.nonces.add(p.appID, p.nonce):
		f.reusedNonces.Add(1)
		x.reply(codeBadSignature, "nonce already used")
	case strings.HasPrefix(p.orderNo, notFoundPrefix):
		x.reply(notFound.code, notFound.msg)
	default:
		return true
	}
	return false
}

// parseSignedQuery checks the query of a signed GET request: app_id,
// order_no, nonce, version and sign each exactly once and well formed (see
// checkShape), and each of optional at most once. Other parameters are
// ignored.
func parseSignedQuery(x *exchange, optional ...string) (signedParams, error) {
	if x.queryErr != nil {
		return signedParams{}, errMalformedQuery
	}
	var p signedParams
	for _, v := range []struct {
		key string
		dst *string
	}{
		{"app_id", &p.appID},
		{"order_no", &p.orderNo},
		{"nonce", &p.nonce},
		{"version", &p.version},
		{"sign", &p.sign},
	} {
		val, err := single(x.query, v.key)
		if err != nil {
			return signedParams{}, err
		}
		*v.dst = val
	}
	for _, key := range optional {
		if len(x.query[key]) > 1 {
			return signedParams{}, errors.New("repeated parameter " + key)
		}
	}
	return p, p.checkShape("order_no")
}

// checkShape checks the form of p's values, which must not be empty: the
// order number 1 to 32 of [A-Za-z0-9_-], the nonce 32 of [A-Za-z0-9], the
// sign 40 hex digits in either case. orderNoKey names the order number in
// the error.
func (p signedParams) checkShape(orderNoKey string) error {
	switch {
	case len(p.orderNo) > 32 || !allOf(p.orderNo, isAlnum, '_', '-'):
		return errors.New("invalid parameter " + orderNoKey)
	case len(p.nonce) != 32 || !allOf(p.nonce, isAlnum):
		return errors.New("invalid parameter nonce")
	case len(p.sign) != 40 || !allOf(p.sign, isHex):
		return errors.New("invalid parameter sign")
	}
	return nil
}

// signedWith returns the first of tickets that p's sign was made with, or
// nil. The sign is compared without regard to case.
func (p signedParams) signedWith(tickets []*signTicket) *signTicket {
	got := []byte(strings.ToUpper(p.sign))
	for _, t := range tickets {
		want := sign(p.appID, p.orderNo, p.version, t.value, p.nonce)
		if subtle.ConstantTimeCompare(got, []byte(want)) == 1 {
			return t
		}
	}
	return nil
}

// allOf reports whether every byte of s satisfies class or is one of extra.
func allOf(s string, class func(byte) bool, extra ...byte) bool {
	for i := 0; i < len(s); i++ {
		if !class(s[i]) && !strings.ContainsRune(string(extra), rune(s[i])) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f'
}

// nonceSet remembers the last nonces seen, per app, to detect reuse. It is
// safe for concurrent use.
type nonceSet struct {
	mu   sync.Mutex          // protects seen, ring and next
	seen map[string]struct{} // keys of ring's non-empty entries
	ring []string            // app_id + "\x00" + nonce; the oldest is overwritten
	next int                 // index in ring of the next entry to write
}

func newNonceSet(size int) *nonceSet {
	return &nonceSet{seen: make(map[string]struct{}, size), ring: make([]string, size)}
}

// add records nonce for appID and reports whether it was new.
func (s *nonceSet) add(appID, nonce string) bool {
	key := appID + "\x00" + nonce
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[key]; ok {
		return false
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.seen, old)
	}
	s.ring[s.next] = key
	s.seen[key] = struct{}{}
	s.next = (s.next + 1) % len(s.ring)
	return true
}
