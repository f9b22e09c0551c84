package webanksign

import (
	"bytes"
	"encoding/json"
	"io"
)

// This file is the JSON counterpart of signer.go's query rewrite, for the
// APIs that take a POST with a JSON body (queryfacerecord and others): it
// checks the client's body and writes the signed one. Like signer.go, it is
// pure.

// The body fields the module owns, spelled as WeBank's JSON APIs spell them.
const (
	fieldAppID   = "appId"
	fieldOrderNo = "orderNo"
	fieldNonce   = "nonce"
	fieldVersion = "version"
	fieldSign    = "sign"
)

// jsonOwned are the owned parameters as the JSON shape spells them.
var jsonOwned = ownedNames{fieldAppID, fieldOrderNo, fieldNonce, fieldVersion, fieldSign}

// urlOwned are the owned parameters a JSON request's URL may carry: orderNo
// alone, which WeBank asks for there. The others belong in the body, where
// they are signed.
var urlOwned = ownedNames{1: fieldOrderNo}

// field is one top-level member of a JSON object: its name, decoded, and its
// value as the client wrote it.
type field struct {
	key string
	raw json.RawMessage
}

// checkedBody is a client's JSON body that parseBody accepted.
type checkedBody struct {
	orderNo  string
	appID    string // the client's appId, if hasAppID
	hasAppID bool
	fields   []field // the client's members less appId, nonce, version and sign, in the client's order
}

// parseBody parses and checks a client's JSON body: one object, no key
// twice, no key that imitates one the module owns (see imitations), a
// usable orderNo, and an appId, if any, that is a string. It returns the
// checked body or a *refusal.
func parseBody(data []byte) (checkedBody, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return checkedBody{}, errBodyMissing
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return checkedBody{}, errBodyMalformed
	}
	var b checkedBody
	seen := make(map[string]bool)
	var orderNo json.RawMessage
	var imit imitations
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return checkedBody{}, errBodyMalformed
		}
		key := tok.(string) // inside an object, a token that is not an error is a key
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return checkedBody{}, errBodyMalformed
		}
		if seen[key] {
			return checkedBody{}, errBodyKeyRepeat
		}
		seen[key] = true
		switch key {
		case fieldAppID:
			if raw[0] != '"' || json.Unmarshal(raw, &b.appID) != nil {
				return checkedBody{}, errBodyAppIDType
			}
			b.hasAppID = true
			continue
		case fieldNonce, fieldVersion, fieldSign:
			continue // never the client's to choose
		case fieldOrderNo:
			orderNo = raw
		default:
			imit.add(key, &jsonOwned)
		}
		b.fields = append(b.fields, field{key, raw})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return checkedBody{}, errBodyMalformed
	}
	if _, err := dec.Token(); err != io.EOF { // nothing after the object
		return checkedBody{}, errBodyMalformed
	}
	if err := imit.err(&jsonOwned); err != nil {
		return checkedBody{}, err
	}
	if orderNo == nil {
		return checkedBody{}, errBodyOrderNo
	}
	var s string
	if orderNo[0] != '"' || json.Unmarshal(orderNo, &s) != nil { // null would decode as ""
		return checkedBody{}, errBodyOrderType
	}
	if _, err := checkOrderNo([]string{s}); err != nil {
		switch err {
		case errOrderNoEmpty:
			return checkedBody{}, errBodyOrderEmpty
		case errOrderNoLong:
			return checkedBody{}, errBodyOrderLong
		default:
			return checkedBody{}, errBodyOrderChars
		}
	}
	b.orderNo = s
	return b, nil
}

// filesRequested reports whether the body asks for photos or videos: a
// getFile (in any spelling, see isGetFile) other than 0 or "0". Anything
// else, null and "" included, counts as asking: the policy refuses what it
// cannot read as "no files".
func (b *checkedBody) filesRequested() bool {
	for _, f := range b.fields {
		if isGetFile(f.key) && string(f.raw) != "0" && string(f.raw) != `"0"` {
			return true
		}
	}
	return false
}

// signBody returns b as a JSON object with appId, version, a fresh nonce
// and sign first, then the client's other members in the client's order,
// their values as the client wrote them. Calling it again re-signs with a
// new nonce.
func signBody(b *checkedBody, appID, version, ticket string) []byte {
	nonce := newNonce()
	return encodeSignedBody(b, appID, version, nonce, sign(appID, b.orderNo, version, ticket, nonce))
}

func encodeSignedBody(b *checkedBody, appID, version, nonce, sig string) []byte {
	n := 96 + len(appID) + len(version) + len(nonce) + len(sig)
	for _, f := range b.fields {
		n += len(f.key) + len(f.raw) + 4
	}
	out := make([]byte, 0, n)
	// The four owned members, none of whose names or values needs escaping:
	// app IDs and versions are checked to be [A-Za-z0-9_.-], nonces and signs
	// are alphanumeric.
	for _, m := range [...][2]string{{fieldAppID, appID}, {fieldVersion, version}, {fieldNonce, nonce}, {fieldSign, sig}} {
		if len(out) == 0 {
			out = append(out, '{')
		} else {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, m[0]...)
		out = append(out, `":"`...)
		out = append(out, m[1]...)
		out = append(out, '"')
	}
	for _, f := range b.fields {
		out = append(out, ',')
		key, _ := json.Marshal(f.key) // never fails on a string
		out = append(out, key...)
		out = append(out, ':')
		out = append(out, f.raw...)
	}
	return append(out, '}')
}
