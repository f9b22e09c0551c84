package webanksign

import (
	"crypto/rand"
	"crypto/sha1"
	"net/url"
	"slices"
)

// This file holds the pure part of the protocol: checking the client's query,
// the nonce, the five-value signature and the signed query. Nothing here
// knows about Caddy, tickets or HTTP state, so it is tested with plain values.

const (
	nonceLen      = 32 // WeBank rejects nonces of any other length
	maxOrderNoLen = 32 // WeBank answers 66660000 for longer order numbers
	signLen       = 40 // SHA1 in hex
)

// Query parameters the module owns. A client never supplies sign, nonce or
// version: whatever it sends for them is dropped and replaced.
const (
	paramAppID   = "app_id"
	paramOrderNo = "order_no"
	paramNonce   = "nonce"
	paramVersion = "version"
	paramSign    = "sign"
)

// queryError is a client mistake in the query. Code is stable and meant for
// machines, Msg for people; neither ever holds a secret.
type queryError struct {
	Status int
	Code   string
	Msg    string
}

func (e *queryError) Error() string { return e.Msg }

// The client errors a query can have. Their codes are part of the module's
// interface: operators alert on them.
var (
	errQueryMalformed = &queryError{400, "query_malformed", "the query string cannot be parsed (use & between parameters and percent-encode reserved characters)"}
	errOrderNoMissing = &queryError{400, "order_no_missing", "order_no is required"}
	errOrderNoEmpty   = &queryError{400, "order_no_empty", "order_no is empty"}
	errOrderNoRepeat  = &queryError{400, "order_no_repeated", "order_no is given more than once"}
	errOrderNoLong    = &queryError{400, "order_no_too_long", "order_no is longer than 32 characters"}
	errOrderNoChars   = &queryError{400, "order_no_invalid", "order_no may only contain letters, digits, '_' and '-'"}
	errAppIDMismatch  = &queryError{403, "app_id_mismatch", "app_id does not match the app this route signs for"}
)

// checkOrderNo reports whether the order_no values of a query are usable: one
// value, 1 to 32 characters of [A-Za-z0-9_-].
func checkOrderNo(values []string) (string, error) {
	switch {
	case len(values) == 0:
		return "", errOrderNoMissing
	case len(values) > 1:
		return "", errOrderNoRepeat
	}
	v := values[0]
	switch {
	case v == "":
		return "", errOrderNoEmpty
	case len(v) > maxOrderNoLen:
		return "", errOrderNoLong
	}
	for i := 0; i < len(v); i++ {
		if !isOrderNoByte(v[i]) {
			return "", errOrderNoChars
		}
	}
	return v, nil
}

func isOrderNoByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// clientQuery parses the client's raw query and checks it: a usable
// order_no, and no app_id other than appID. It returns the parsed query and
// the order_no, or a *queryError for the client.
func clientQuery(rawQuery, appID string) (url.Values, string, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, "", errQueryMalformed // e.g. ';' separators, which an upstream may read differently
	}
	orderNo, err := checkOrderNo(q[paramOrderNo])
	if err != nil {
		return nil, "", err
	}
	for _, v := range q[paramAppID] {
		if v != appID {
			return nil, "", errAppIDMismatch
		}
	}
	return q, orderNo, nil
}

// signQuery sets app_id, a fresh nonce, version and sign in q, replacing
// whatever the client sent for them, and returns q encoded. Encoding with
// url.Values.Encode normalises the query, so that what the upstream parses
// is exactly what was signed. Calling it again re-signs with a new nonce.
func signQuery(q url.Values, appID, orderNo, version, ticket string) string {
	nonce := newNonce()
	q[paramAppID] = []string{appID}
	q[paramNonce] = []string{nonce}
	q[paramVersion] = []string{version}
	q[paramSign] = []string{sign(appID, orderNo, version, ticket, nonce)}
	return q.Encode()
}

// sign returns WeBank's signature of the five values: the uppercase hex SHA1
// of their concatenation after sorting them in byte order. The order of the
// arguments does not matter.
func sign(appID, orderNo, version, ticket, nonce string) string {
	vals := [5]string{appID, orderNo, version, ticket, nonce}
	slices.Sort(vals[:])
	h := sha1.New()
	for _, v := range vals {
		h.Write([]byte(v))
	}
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	var out [signLen]byte
	const hexUpper = "0123456789ABCDEF"
	for i, b := range sum {
		out[2*i] = hexUpper[b>>4]
		out[2*i+1] = hexUpper[b&0x0f]
	}
	return string(out[:])
}

const nonceAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newNonce returns 32 characters drawn uniformly from [A-Za-z0-9] with
// crypto/rand. Bytes at or above 248 (the largest multiple of 62 that fits in
// a byte) are rejected, so that every character is equally likely.
func newNonce() string {
	const limit = 256 - 256%len(nonceAlphabet) // 248
	var out [nonceLen]byte
	var buf [nonceLen + 8]byte // about 3% of bytes are rejected: one read nearly always suffices
	n := 0
	for n < nonceLen {
		rand.Read(buf[:]) // never returns an error; crashes the program if the OS has no randomness
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out[n] = nonceAlphabet[int(b)%len(nonceAlphabet)]
			if n++; n == nonceLen {
				break
			}
		}
	}
	return string(out[:])
}
