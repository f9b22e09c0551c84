package webanksign

import (
	"maps"
	"net/url"
	"slices"
	"strings"
)

// This file checks a client's query string and writes the signed one, for
// the APIs whose parameters are in the query (getOcrResult and the others of
// docs/protocol.md §8.1). Like signer.go, it is pure.

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

// clientQuery parses the client's raw query and checks that it has a
// usable order_no and no name that imitates one the module owns (see
// imitations). It returns the checked query, with the client's app_id
// values for the caller to check, or a *refusal for the client.
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
	var imit imitations
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
		default:
			imit.add(key, &queryOwned)
		}
		q.inline[q.n] = param{key, value}
		q.n++
	}
	// Errors in the order url.ParseQuery and the checks below find them: a
	// malformed query first, then a name that imitates an owned one, then
	// order_no.
	if err := imit.err(&queryOwned); err != nil {
		return checkedQuery{}, err
	}
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
	var imit imitations
	for k := range vals {
		imit.add(k, &queryOwned)
	}
	if err := imit.err(&queryOwned); err != nil {
		return checkedQuery{}, err
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
// exactly what was signed. Calling it again re-signs with a new nonce. The
// nonce and the sign are made in place: the signed query is its only
// allocation, unless a value needs escaping.
func signQuery(q *checkedQuery, appID, version, ticket string) string {
	var nonce [nonceLen]byte
	newNonceTo(&nonce)
	var sig [signLen]byte
	vals := [...]string{appID, q.orderNo, version, ticket, string(nonce[:])} // the conversion stays on the stack
	signValuesTo(&sig, vals[:])
	return encodeSigned(q, appID, version, nonce[:], sig[:])
}

// ownedQuery are the names of the four parameters signQuery adds, sorted.
var ownedQuery = [...]string{paramAppID, paramNonce, paramSign, paramVersion}

// encodeSigned encodes q's parameters and the four the module owns, merged
// in name order. None of the client's parameters has one of those four names.
func encodeSigned(q *checkedQuery, appID, version string, nonce, sig []byte) string {
	appID, version = url.QueryEscape(appID), url.QueryEscape(version) // allocate only if they need escaping
	ps := q.params()
	n := len(ownedQuery) * 2 // '=' and '&'
	for _, k := range ownedQuery {
		n += len(k)
	}
	n += len(appID) + len(nonce) + len(sig) + len(version)
	for _, p := range ps {
		n += len(p.key) + len(p.value) + 2
	}
	var b strings.Builder
	b.Grow(n) // enough unless a client's parameter needs escaping
	for i, k := range ownedQuery {
		for len(ps) > 0 && ps[0].key < k {
			writeParam(&b, url.QueryEscape(ps[0].key), url.QueryEscape(ps[0].value))
			ps = ps[1:]
		}
		switch i { // the names, the nonce and the sign need no escaping
		case 0:
			writeParam(&b, k, appID)
		case 1:
			writeParam(&b, k, "")
			b.Write(nonce)
		case 2:
			writeParam(&b, k, "")
			b.Write(sig)
		case 3:
			writeParam(&b, k, version)
		}
	}
	for _, p := range ps {
		writeParam(&b, url.QueryEscape(p.key), url.QueryEscape(p.value))
	}
	return b.String()
}

// writeParam appends name=value to b, after a '&' if b has a parameter
// already. Both are escaped already.
func writeParam(b *strings.Builder, name, value string) {
	if b.Len() > 0 {
		b.WriteByte('&')
	}
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(value)
}
