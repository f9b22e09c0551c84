package webanksign

import (
	"unicode"
	"unicode/utf8"
)

// This file holds the value sets a JSON body is signed with (docs/protocol.md
// §6): which API signs which set, which values each one signs, which fields
// it owns, and the checks of the fields it signs or requires. Like
// jsonbody.go, it is pure.

// valueSet is the set of values a JSON body's sign is computed over; see
// Handler.ValueSet.
type valueSet uint8

const (
	setByPath   valueSet = iota // not configured: chosen by the request's path (jsonAPIs)
	setOrderNo                  // {appId, orderNo, version, SIGN ticket, nonce}
	setUserID                   // {appId, userId, version, SIGN ticket, nonce}
	setH5FaceID                 // {appId, orderNo, name, idNo, userId, version, SIGN ticket}, no nonce
)

// The value sets' names, as value_set spells them.
var valueSetNames = map[string]valueSet{
	"order_no":   setOrderNo,
	"user_id":    setUserID,
	"h5_face_id": setH5FaceID,
}

// jsonAPI is what the module knows of one of WeBank's JSON APIs: the
// values it signs, and whether its requests carry images.
type jsonAPI struct {
	set    valueSet
	images bool // max_body_size defaults to defaultImageBodySize
	photo  bool // its answer is the face photo, whatever the request asks: photos deny refuses it
}

// jsonAPIs are the paths of WeBank's APIs signed over a JSON body
// (docs/protocol.md §6, §8): on these, mode defaults to json, and
// value_set and max_body_size default to the API's.
var jsonAPIs = map[string]jsonAPI{
	"/api/v2/base/queryfacerecord": {set: setOrderNo},
	"/api/v2/base/queryphotoinfo":  {set: setOrderNo, photo: true},
	"/api/server/getOcrCertId":     {set: setOrderNo},
	"/api/paas/easyface":           {set: setOrderNo, images: true}, // uploads a selfie
	"/api/paas/idcardocrapp":       {set: setOrderNo, images: true},
	"/api/paas/bankcardocrapp":     {set: setOrderNo, images: true},
	"/api/server/getAdvFaceId":     {set: setUserID, images: true},
	"/api/server/getfaceid":        {set: setUserID, images: true},
	"/api/server/getPlusFaceId":    {set: setUserID, images: true},
	"/api/server/getWillFaceId":    {set: setUserID, images: true},
	"/api/server/h5/geth5faceid":   {set: setH5FaceID, images: true},
}

// The body fields of the userId-type and H5 value sets, spelled as WeBank's
// JSON APIs spell them.
const (
	fieldUserID = "userId"
	fieldName   = "name"
	fieldIDNo   = "idNo"
)

const (
	maxUserIDLen = 32 // as order_no (docs/protocol.md §7)
	maxIDNoLen   = 32
	maxNameLen   = 64 // in characters
)

// jsonNames are the owned fields as the JSON shape spells them, in the
// order of foldedOwned.
var jsonNames = [len(foldedOwned)]string{fieldAppID, fieldOrderNo, fieldNonce, fieldVersion, fieldSign, fieldUserID, fieldName, fieldIDNo}

// jsonOwned are the fields each value set owns in a JSON body: the five
// every set owns, and for the userId-type and H5 sets also userId, name
// and idNo, which they sign or check. A field that imitates one of them
// is refused.
var jsonOwned = [...]ownedNames{
	setOrderNo:  {names: jsonNames, owned: ownedFive},
	setUserID:   {names: jsonNames, owned: 0xff},
	setH5FaceID: {names: jsonNames, owned: 0xff},
}

// urlOwned are the owned parameters a JSON request's URL may carry, by
// value set: orderNo alone, which WeBank asks for there. The others belong
// in the body, where they are signed or checked.
var urlOwned = [...]ownedNames{
	setOrderNo:  {names: [len(foldedOwned)]string{1: fieldOrderNo}, owned: ownedFive},
	setUserID:   {names: [len(foldedOwned)]string{1: fieldOrderNo}, owned: 0xff},
	setH5FaceID: {names: [len(foldedOwned)]string{1: fieldOrderNo}, owned: 0xff},
}

// hasNonce reports whether the set signs a nonce, and so whether the signed
// body carries one.
func (s valueSet) hasNonce() bool { return s != setH5FaceID }

// signedValues returns the values the set signs for b (whose orderNo is
// given as a string), appID, version, ticket and nonce (unused by the H5
// set), in no particular order: the first n of vals. (An array returned,
// not a slice appended to, and no conversion here: nothing goes to the
// heap.)
func (s valueSet) signedValues(b *checkedBody, orderNo, appID, version, ticket, nonce string) (vals [7]string, n int) {
	switch s {
	case setUserID:
		return [7]string{appID, b.userID, version, ticket, nonce}, 5
	case setH5FaceID:
		return [7]string{appID, orderNo, b.name, b.idNo, b.userID, version, ticket}, 7
	default:
		return [7]string{appID, orderNo, version, ticket, nonce}, 5
	}
}

// idLikeError classifies v against a rule like order_no's: 1 to max bytes
// of allowed. It returns 0 if v is usable, else 'e' (empty), 'l' (too
// long) or 'c' (a character outside allowed).
func idLikeError(v []byte, max int, allowed func(byte) bool) byte {
	switch {
	case len(v) == 0:
		return 'e'
	case len(v) > max:
		return 'l'
	}
	for _, c := range v {
		if !allowed(c) {
			return 'c'
		}
	}
	return 0
}

func isIDNoByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// checkName reports whether a decoded name is usable: at least one and at
// most maxNameLen characters of UTF-8, none of them a control character.
func checkName(v []byte) error {
	if len(v) == 0 || !utf8.Valid(v) {
		return errBodyNameInvalid
	}
	n := 0
	for _, r := range string(v) {
		if unicode.IsControl(r) {
			return errBodyNameInvalid
		}
		n++
	}
	if n > maxNameLen {
		return errBodyNameLong
	}
	return nil
}

// idLikeRefusal maps idLikeError's verdict to the field's refusals.
func idLikeRefusal(kind byte, empty, long, chars *refusal) error {
	switch kind {
	case 0:
		return nil
	case 'e':
		return empty
	case 'l':
		return long
	default:
		return chars
	}
}

// isWebankAppID reports whether a name reads as webankAppId to a lenient
// server (see foldName): WeBank may read it as the app, instead of the
// appId signed.
func isWebankAppID(name string) bool {
	if len(name) < len("webankappid") { // foldName only drops characters
		return false
	}
	var buf [32]byte
	return string(foldName(buf[:0], name)) == "webankappid"
}
