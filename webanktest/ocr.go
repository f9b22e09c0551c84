package webanktest

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"sync"
)

// notFoundPrefix starts the order numbers that have no OCR result.
const notFoundPrefix = "NOTFOUND"

// maxNonces is how many recent nonces are remembered to detect reuse.
const maxNonces = 1 << 16

// serveOCR answers the getOcrResult endpoint. Checks run in this order, the
// first failing one deciding the answer: parameters (400102), app_id
// (400103), a ticket of the app the sign was made with (400101), that
// ticket's validity (15), the nonce's novelty (400101), the order's
// existence (66660020).
func (f *Fake) serveOCR(x *exchange) {
	p, err := parseOCRParams(x)
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.creds.known(p.appID) {
		x.reply(codeBadCredentials, "unknown app_id")
		return
	}
	now := f.now()
	t := p.signedWith(f.creds.tickets(p.appID))
	switch {
	case t == nil:
		f.badSignatures.Add(1)
		x.reply(codeBadSignature, "signature mismatch")
	case !f.creds.valid(t, now):
		f.staleTickets.Add(1)
		x.reply(codeInvalidToken, "ticket expired or its access_token invalid")
	case !f.nonces.add(p.appID, p.nonce):
		f.reusedNonces.Add(1)
		x.reply(codeBadSignature, "nonce already used")
	case strings.HasPrefix(p.orderNo, notFoundPrefix):
		x.reply(codeNotFound, "ocr result not found")
	default:
		x.writeBody(http.StatusOK, codeOK, f.OCRResultBody(p.appID, p.orderNo, p.getFile, p.getNative))
	}
}

// ocrParams are the parameters of a getOcrResult request.
type ocrParams struct {
	appID, orderNo, nonce, version, sign string
	getFile, getNative                   bool
}

// parseOCRParams checks the parameters of a getOcrResult request: app_id,
// order_no, nonce, version and sign each exactly once, get_file and
// get_native at most once, order_no 1 to 32 of [A-Za-z0-9_-], nonce 32 of
// [A-Za-z0-9], sign 40 hex digits in either case. Other parameters are
// ignored.
func parseOCRParams(x *exchange) (ocrParams, error) {
	if x.queryErr != nil {
		return ocrParams{}, errMalformedQuery
	}
	var p ocrParams
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
			return ocrParams{}, err
		}
		*v.dst = val
	}
	for _, key := range []string{"get_file", "get_native"} {
		if len(x.query[key]) > 1 {
			return ocrParams{}, errors.New("repeated parameter " + key)
		}
	}
	p.getFile = x.query.Get("get_file") == "1"
	p.getNative = x.query.Get("get_native") == "1"

	switch {
	case len(p.orderNo) > 32 || !allOf(p.orderNo, isAlnum, '_', '-'):
		return ocrParams{}, errors.New("invalid parameter order_no")
	case len(p.nonce) != 32 || !allOf(p.nonce, isAlnum):
		return ocrParams{}, errors.New("invalid parameter nonce")
	case len(p.sign) != 40 || !allOf(p.sign, isHex):
		return ocrParams{}, errors.New("invalid parameter sign")
	}
	return p, nil
}

// signedWith returns the first of tickets that p's sign was made with, or
// nil. The sign is compared without regard to case.
func (p ocrParams) signedWith(tickets []*signTicket) *signTicket {
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
