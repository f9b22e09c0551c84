package webanksign

import (
	"crypto/rand"
	"crypto/sha1"
	"maps"
	"net/url"
	"slices"
	"strings"
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
	errAppIDUnknown   = &queryError{403, "app_id_unknown", "app_id is not one of the apps this route signs for"}
	errAppIDMissing   = &queryError{400, "app_id_missing", "app_id is required: this route signs for several apps and picks one by app_id"}
	errAppIDRepeated  = &queryError{400, "app_id_repeated", "app_id is given more than once, with different values"}
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

// maxInlineParams is how many parameters a query may have to be checked and
// signed without allocating: getOcrResult takes four. A longer query takes
// the general path, through url.ParseQuery and url.Values.
const maxInlineParams = 16

// param is one query parameter, its name and value decoded.
type param struct{ key, value string }

// checkedQuery is a client's query that clientQuery accepted: everything
// signQuery needs to sign it, as many times as it takes.
type checkedQuery struct {
	orderNo string
	appID   appIDs                 // the client's app_id values
	n       int                    // inline[:n] are the parameters, if extra is nil
	inline  [maxInlineParams]param // the client's parameters less app_id, sign, nonce and version, decoded, stably sorted by name
	extra   []param                // the same, for a query of more than maxInlineParams parameters
}

// params returns the client's parameters that are passed on, sorted by name,
// a name's values in the client's order.
func (q *checkedQuery) params() []param {
	if q.extra != nil {
		return q.extra
	}
	return q.inline[:q.n]
}

// appIDs is what a client said its app is: nothing, one app_id (perhaps
// repeated), or several that differ.
type appIDs struct {
	value    string // the first one given
	given    bool
	conflict bool // another one differs from value
}

func (a *appIDs) add(v string) {
	if !a.given {
		a.value, a.given = v, true
	} else if v != a.value {
		a.conflict = true
	}
}

// mismatch reports whether a client that gave these app_ids may not be
// signed for appID: it named another app.
func (a appIDs) mismatch(appID string) bool {
	return a.given && (a.conflict || a.value != appID)
}

// filesRequested reports whether the query asks for photos or videos: a
// get_file (in any spelling, see isGetFile) other than 0.
func (q *checkedQuery) filesRequested() bool {
	for _, p := range q.params() {
		if isGetFile(p.key) && p.value != "0" {
			return true
		}
	}
	return false
}

// isGetFile reports whether a parameter's name is get_file as a lenient
// parser may read it: get_file, getFile, GetFile, get-file, … . The photo
// policy must not be side-stepped by a spelling WeBank might accept.
func isGetFile(name string) bool {
	const want = "getfile"
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '_' || c == '-' {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if n == len(want) || c != want[n] {
			return false
		}
		n++
	}
	return n == len(want)
}

// clientQuery parses the client's raw query and checks that it has a
// usable order_no. It returns the checked query, with the client's app_id
// values for the caller to check, or a *queryError for the client.
//
// It parses exactly as url.ParseQuery does, and fails wherever it fails: a
// ';' in a parameter (which an upstream may read as a separator), a bad '%'
// escape. A query of up to maxInlineParams parameters is split here without
// allocating, each name and value decoded with url.QueryUnescape; a longer
// one is left to url.ParseQuery itself, which also enforces its limit on the
// number of parameters (10000; only a GODEBUG urlmaxqueryparams of 16 or
// less would reach the short queries, and it is not honoured for them).
func clientQuery(rawQuery string) (checkedQuery, error) {
	if strings.Count(rawQuery, "&") >= maxInlineParams {
		return clientQueryValues(rawQuery)
	}
	var q checkedQuery
	var orderNos [2]string // enough to tell one from several
	nOrderNos := 0
	for rest := rawQuery; rest != ""; {
		var kv string
		kv, rest, _ = strings.Cut(rest, "&")
		if strings.Contains(kv, ";") {
			return checkedQuery{}, errQueryMalformed
		}
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return checkedQuery{}, errQueryMalformed
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return checkedQuery{}, errQueryMalformed
		}
		switch key {
		case paramAppID:
			q.appID.add(value)
			continue // replaced by the one app_id signed
		case paramSign, paramNonce, paramVersion:
			continue // never the client's to choose
		case paramOrderNo:
			if nOrderNos < len(orderNos) {
				orderNos[nOrderNos] = value
			}
			nOrderNos++
		}
		q.inline[q.n] = param{key, value}
		q.n++
	}
	// Errors in the order url.ParseQuery and the checks below find them: a
	// malformed query first, then order_no.
	orderNo, err := checkOrderNo(orderNos[:min(nOrderNos, len(orderNos))])
	if err != nil {
		return checkedQuery{}, err
	}
	q.orderNo = orderNo
	// Sort by name as url.Values.Encode does, keeping each name's values in
	// the client's order: an insertion sort, stable and at most 16 long.
	ps := q.inline[:q.n]
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].key < ps[j-1].key; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
	return q, nil
}

// clientQueryValues is clientQuery for a query of more than maxInlineParams
// parameters, with url.ParseQuery.
func clientQueryValues(rawQuery string) (checkedQuery, error) {
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return checkedQuery{}, errQueryMalformed
	}
	orderNo, err := checkOrderNo(vals[paramOrderNo])
	if err != nil {
		return checkedQuery{}, err
	}
	var ids appIDs
	for _, v := range vals[paramAppID] {
		ids.add(v)
	}
	for _, k := range []string{paramAppID, paramSign, paramNonce, paramVersion} {
		delete(vals, k)
	}
	q := checkedQuery{orderNo: orderNo, appID: ids, extra: make([]param, 0, len(vals))} // not nil: order_no is there
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		for _, v := range vals[k] {
			q.extra = append(q.extra, param{k, v})
		}
	}
	return q, nil
}

// signQuery returns q with app_id, a fresh nonce, version and sign added, in
// the form url.Values.Encode gives it: parameters sorted by name, each name
// and value escaped with url.QueryEscape. What the upstream parses is then
// exactly what was signed. Calling it again re-signs with a new nonce.
func signQuery(q *checkedQuery, appID, version, ticket string) string {
	nonce := newNonce()
	return encodeSigned(q, appID, version, nonce, sign(appID, q.orderNo, version, ticket, nonce))
}

// encodeSigned encodes q's parameters and the four the module owns, merged
// in name order. None of the client's parameters has one of those four names.
func encodeSigned(q *checkedQuery, appID, version, nonce, sig string) string {
	owned := [...]param{ // sorted by name, and encoded: the names, the nonce and the sign need no escaping
		{paramAppID, url.QueryEscape(appID)}, // allocates only if appID needs escaping
		{paramNonce, nonce},
		{paramSign, sig},
		{paramVersion, url.QueryEscape(version)},
	}
	ps := q.params()
	n := 0
	for _, p := range owned {
		n += len(p.key) + len(p.value) + 2
	}
	for _, p := range ps {
		n += len(p.key) + len(p.value) + 2
	}
	var b strings.Builder
	b.Grow(n) // enough unless a client's parameter needs escaping
	own := owned[:]
	for len(own) > 0 || len(ps) > 0 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		if len(ps) == 0 || len(own) > 0 && own[0].key < ps[0].key {
			b.WriteString(own[0].key)
			b.WriteByte('=')
			b.WriteString(own[0].value)
			own = own[1:]
			continue
		}
		b.WriteString(url.QueryEscape(ps[0].key)) // allocates only if the name needs escaping
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(ps[0].value))
		ps = ps[1:]
	}
	return b.String()
}

// sign returns WeBank's signature of the five values: the uppercase hex SHA1
// of their concatenation after sorting them in byte order. The order of the
// arguments does not matter.
func sign(appID, orderNo, version, ticket, nonce string) string {
	vals := [5]string{appID, orderNo, version, ticket, nonce}
	slices.Sort(vals[:])
	buf := make([]byte, 0, 256) // on the stack; real values total about 190 bytes
	for _, v := range vals {
		buf = append(buf, v...)
	}
	sum := sha1.Sum(buf)
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
