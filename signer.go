package webanksign

import (
	"crypto/rand"
	"crypto/sha1"
	"slices"
	"unicode"
	"unicode/utf8"
)

// This file holds the pure core of the protocol (docs/protocol.md §5, §7):
// the order number check, the app the client named, how a lenient server
// reads a parameter's name (foldName, imitations), the nonce, and the
// signature over any flow's values (sign for the five-value scheme).
// Nothing here knows about Caddy, tickets or HTTP state, so it is tested
// with plain values.

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

// foldName appends name to dst as a lenient server may read it: its
// letters and digits only (a binder may strip "[]", "!", ".", a trailing
// space or NUL), each letter that Java's String.equalsIgnoreCase takes for
// an ASCII letter as that letter in lower case, other letters as they are.
// A letter is taken for an ASCII letter if its upper or its lower case is
// that letter in upper or lower case: so i for ı (U+0131) and İ (U+0130), s
// for ſ (U+017F), k for the Kelvin sign (U+212A). Names that fold alike
// are one parameter to such a server: get_file, GetFile, get_file[] and
// getfıle all fold to getfile.
func foldName(dst []byte, name string) []byte {
	for _, r := range name { // a byte that is not UTF-8 is utf8.RuneError, no letter
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
		case 'A' <= r && r <= 'Z':
			r += 'a' - 'A'
		case r < utf8.RuneSelf || !unicode.IsLetter(r) && !unicode.IsDigit(r):
			continue
		default:
			if l := unicode.ToLower(r); 'a' <= l && l <= 'z' {
				r = l
			} else if u := unicode.ToUpper(r); 'A' <= u && u <= 'Z' {
				r = u + 'a' - 'A'
			}
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

// ownedNames are the parameters the module owns in one shape, or one
// value set of it: which entries of foldedOwned it owns, and how the shape
// spells each one it accepts.
type ownedNames struct {
	names [len(foldedOwned)]string // the accepted spelling; "" accepts none
	owned uint8                    // bit i: foldedOwned[i] is owned
}

// foldedOwned are the owned parameters as foldName folds them, which is the
// same in both shapes (app_id and appId fold alike), in the order in which
// imitations of them are reported. The last three are owned only by the
// JSON value sets that sign or check them (see valueSet).
var foldedOwned = [...]string{"appid", "orderno", "nonce", "version", "sign", "userid", "name", "idno"}

// ownedFive are the bits of the five parameters every shape owns.
const ownedFive uint8 = 1<<5 - 1

// queryOwned are the owned parameters as the query shape spells them.
var queryOwned = ownedNames{names: [len(foldedOwned)]string{paramAppID, paramOrderNo, paramNonce, paramVersion, paramSign}, owned: ownedFive}

// imitations is a set of owned parameters (bit i for foldedOwned[i]) whose
// names other names of a request imitate: they fold alike (see foldName)
// without being the name itself. A server that reads names regardless of
// case, the last one winning, would read the imitation's value instead of
// the signed one, and WeBank would reject the sign.
type imitations uint8

// add adds the owned parameter that name imitates, if any: one that
// accepted owns, whose name it folds alike with, while not being exactly
// its accepted spelling.
func (m *imitations) add(name string, accepted *ownedNames) {
	var buf [32]byte
	folded := foldName(buf[:0], name)
	for i, f := range foldedOwned {
		if string(folded) == f {
			if accepted.owned&(1<<i) != 0 && name != accepted.names[i] {
				*m |= 1 << i
			}
			return
		}
	}
}

// err returns the refusal for the first owned parameter imitated, as
// spelled names it, or nil if none is.
func (m imitations) err(spelled *ownedNames) error {
	for i := range foldedOwned {
		if m&(1<<i) != 0 {
			return errNameConfusable[spelled.names[i]]
		}
	}
	return nil
}

// isGetFile reports whether a parameter's name is get_file as a lenient
// server may read it (see foldName): get_file, getFile, GET-FILE,
// get_file[], getfıle, … . The photo policy must not be side-stepped by a
// spelling WeBank might accept.
func isGetFile(name string) bool {
	var buf [32]byte
	return string(foldName(buf[:0], name)) == "getfile"
}

// sign returns WeBank's signature of the five values of the SIGN scheme
// (docs/protocol.md §5): see signValues. The order of the arguments does
// not matter.
func sign(appID, orderNo, version, ticket, nonce string) string {
	vals := [5]string{appID, orderNo, version, ticket, nonce}
	return signValues(vals[:])
}

// signValues returns WeBank's signature of vals, whatever the flow's value
// set (docs/protocol.md §6): the uppercase hex SHA1 of their concatenation
// after sorting them in byte order. It sorts vals in place.
func signValues(vals []string) string {
	var out [signLen]byte
	signValuesTo(&out, vals)
	return string(out[:])
}

// signValuesTo is signValues writing into out, for a caller that has a
// place for the sign already.
func signValuesTo(out *[signLen]byte, vals []string) {
	slices.Sort(vals)
	buf := make([]byte, 0, 512) // on the stack; real values total about 190 bytes
	for _, v := range vals {
		buf = append(buf, v...)
	}
	sum := sha1.Sum(buf)
	const hexUpper = "0123456789ABCDEF"
	for i, b := range sum {
		out[2*i] = hexUpper[b>>4]
		out[2*i+1] = hexUpper[b&0x0f]
	}
}

const nonceAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newNonce returns 32 characters drawn uniformly from [A-Za-z0-9] with
// crypto/rand; see newNonceTo.
func newNonce() string {
	var out [nonceLen]byte
	newNonceTo(&out)
	return string(out[:])
}

// newNonceTo writes 32 characters drawn uniformly from [A-Za-z0-9] with
// crypto/rand into out. Bytes at or above 248 (the largest multiple of 62
// that fits in a byte) are rejected, so that every character is equally
// likely.
func newNonceTo(out *[nonceLen]byte) {
	const limit = 256 - 256%len(nonceAlphabet) // 248
	var buf [nonceLen + 8]byte                 // about 3% of bytes are rejected: one read nearly always suffices
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
}
