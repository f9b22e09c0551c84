package webanktest

import (
	"crypto/subtle"
	"errors"
	"slices"
	"strings"
)

// notFoundPrefix starts the order numbers that have no result, on every
// signed endpoint.
const notFoundPrefix = "NOTFOUND"

// signedParams are the values of a request signed with a SIGN ticket.
type signedParams struct {
	appID, orderNo, nonce, version, sign string // nonce is empty for geth5faceid, which signs none

	// signed are the values the sign is made over besides the ticket, if
	// not those of the orderNo type: app id, order number, version and
	// nonce.
	signed []string
}

// signedValues returns the values p's sign is made over, besides the
// ticket.
func (p signedParams) signedValues() []string {
	if p.signed != nil {
		return p.signed
	}
	return []string{p.appID, p.orderNo, p.version, p.nonce}
}

// answer is a fixed {"code","msg"} answer.
type answer struct{ code, msg string }

// authorize runs the checks that every signed endpoint shares, once the
// endpoint has parsed and checked its parameters into p. They run in this
// order, the first failing one deciding the answer: app_id (400103), a ticket
// of the app the sign was made with (400101), that ticket's validity (15),
// the nonce's novelty for the app across all signed endpoints (400101; not
// for a request without a nonce), and, if notFound has a code, an order
// number not starting with notFoundPrefix (notFound). authorize
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
	case p.nonce != "" && !f.nonces.add(p.appID+"\x00"+p.nonce):
		f.reusedNonces.Add(1)
		x.reply(codeBadSignature, "nonce already used")
	case notFound.code != "" && strings.HasPrefix(p.orderNo, notFoundPrefix):
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

// parseSignedBody checks a JSON request signed as the orderNo type, in
// this order: what jsonRequest checks, appId, orderNo, nonce, version and
// sign (non-empty JSON strings), the URL's orderNo if present being the
// body's, and the form of the values (see checkShape). Other members are
// ignored.
func parseSignedBody(x *exchange) (signedParams, error) {
	var p signedParams
	b, err := jsonRequest(x)
	if err != nil {
		return p, err
	}
	if err := b.requiredStrings(p.commonFields()...); err != nil {
		return p, err
	}
	if err := checkURLOrderNo(x, p.orderNo); err != nil {
		return p, err
	}
	return p, p.checkShape("orderNo")
}

// commonFields are the members of a JSON body signed as the orderNo type,
// and where they go in p.
func (p *signedParams) commonFields() []stringField {
	return []stringField{
		{"appId", &p.appID},
		{"orderNo", &p.orderNo},
		{"nonce", &p.nonce},
		{"version", &p.version},
		{"sign", &p.sign},
	}
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
	values := p.signedValues()
	for _, t := range tickets {
		want := sign(slices.Concat(values, []string{t.value})...)
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
