package webanksign

import (
	"bytes"
	"errors"
	"io"
	"iter"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// This file is the JSON counterpart of signer.go's query rewrite, for the
// APIs that take a POST with a JSON body (queryfacerecord, the faceId APIs
// and others): it checks the client's body and writes the signed one. Like
// signer.go, it is pure.

// The body fields the module owns in every value set, spelled as WeBank's
// JSON APIs spell them.
const (
	fieldAppID   = "appId"
	fieldOrderNo = "orderNo"
	fieldNonce   = "nonce"
	fieldVersion = "version"
	fieldSign    = "sign"

	// fieldWebankAppID is how geth5faceid's body names the app
	// (docs/protocol.md §8.3), in place of appId.
	fieldWebankAppID = "webankAppId"
)

// appField returns the name the app goes by in a body of set.
func appField(set valueSet) string {
	if set == setH5FaceID {
		return fieldWebankAppID
	}
	return fieldAppID
}

// field is one top-level member of a JSON object that is passed on: its
// name and its value, both exactly as the client wrote them (the name
// quoted, escapes and all), as slices of the client's body.
type field struct {
	key []byte
	raw []byte
}

// checkedBody is a client's JSON body that parseBody accepted. Its slices
// point into the client's body, which must not change while it is used.
type checkedBody struct {
	set      valueSet
	orderNo  []byte // decoded: 1 to 32 of [A-Za-z0-9_-]
	userID   string // the userId-type and H5 sets only
	name     string // the userId-type and H5 sets only
	idNo     string // the userId-type and H5 sets only
	appID    string // the client's appId, if hasAppID
	hasAppID bool
	files    bool // it asks for photos or videos; see filesRequested

	// The client's members less appId, nonce, version and sign, in the
	// client's order (see kept): the first ones inline, so that a usual
	// body needs no allocation for them.
	inline [8]field
	more   []field
	n      int
}

// keep adds f to the members passed on.
func (b *checkedBody) keep(f field) {
	if b.n < len(b.inline) {
		b.inline[b.n] = f
	} else {
		b.more = append(b.more, f)
	}
	b.n++
}

// kept yields the members passed on, in the client's order.
func (b *checkedBody) kept() iter.Seq[field] {
	return func(yield func(field) bool) {
		for _, f := range b.inline[:min(b.n, len(b.inline))] {
			if !yield(f) {
				return
			}
		}
		for _, f := range b.more {
			if !yield(f) {
				return
			}
		}
	}
}

// bodyDecoder is a reusable tokenizer for client bodies: jsontext's
// Decoder, which refuses a name given twice (compared decoded) and a string
// that is not valid UTF-8, a lone surrogate escape such as \ud800
// included, so that every JSON reader decodes what is accepted alike.
type bodyDecoder struct {
	in  bytes.Buffer // the body; jsontext reads a bytes.Buffer in place
	dec jsontext.Decoder
}

var (
	// decoderOptions spell out what the checks rely on, though they are
	// jsontext's defaults.
	decoderOptions = []jsontext.Options{jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false)}
	// bodyDecoders spares each request a decoder and its state.
	bodyDecoders = sync.Pool{New: func() any { return new(bodyDecoder) }}
)

// parseBody parses and checks a client's JSON body for the value set set
// into b: one object, no name twice, no name that imitates one the set owns
// (see imitations), a usable orderNo, for the userId-type and H5 sets a
// usable userId, name and idNo, and an appId, if any, that is a string. Its
// errors are a *refusal. The values are checked, and signed, decoded, as
// WeBank reads them; b keeps the members as the client wrote them.
func parseBody(data []byte, set valueSet, b *checkedBody) error {
	*b = checkedBody{set: set}
	if len(bytes.TrimSpace(data)) == 0 {
		return errBodyMissing
	}
	d := bodyDecoders.Get().(*bodyDecoder)
	defer func() {
		d.in = bytes.Buffer{} // keep nothing of the body in the pool
		d.dec.Reset(&d.in)
		bodyDecoders.Put(d)
	}()
	d.in = *bytes.NewBuffer(data)
	d.dec.Reset(&d.in, decoderOptions...)
	if d.dec.PeekKind() != '{' {
		return errBodyMalformed
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return errBodyMalformed
	}
	var orderNo, userID, name, idNo []byte // as written, quoted
	var imit imitations
	var keyBuf [64]byte
	// Refused once the object is known to be whole: an app ID that is not
	// a string, the app named twice (appId and webankAppId), and
	// webankAppId where the set does not name the app so.
	appIDBad, appIDTwice, webankAppID := false, false, false
	for d.dec.PeekKind() != '}' {
		key, err := readRaw(&d.dec, data)
		if err != nil {
			return err
		}
		raw, err := readRaw(&d.dec, data)
		if err != nil {
			return err
		}
		k, _ := stringValue(key, keyBuf[:0])
		switch string(k) {
		case fieldAppID, fieldWebankAppID: // either names the client's app; the signed body names it as its set does
			if string(k) == fieldWebankAppID && set != setH5FaceID {
				webankAppID = true
				continue
			}
			v, ok := stringValue(raw, nil)
			appIDBad = appIDBad || !ok
			appIDTwice = appIDTwice || b.hasAppID
			b.appID, b.hasAppID = string(v), true
			continue
		case fieldNonce, fieldVersion, fieldSign:
			continue // never the client's to choose
		case fieldOrderNo:
			orderNo = raw
		case fieldUserID:
			userID = raw
		case fieldName:
			name = raw
		case fieldIDNo:
			idNo = raw
		default:
			imit.add(string(k), &jsonOwned[set])
			webankAppID = webankAppID || isWebankAppID(string(k))
			if isGetFile(string(k)) && string(raw) != "0" && string(raw) != `"0"` {
				b.files = true
			}
		}
		b.keep(field{key, raw})
	}
	if _, err := d.dec.ReadToken(); err != nil { // the closing '}'
		return errBodyMalformed
	}
	if _, err := d.dec.ReadToken(); err != io.EOF { // nothing after the object
		return errBodyMalformed
	}
	if appIDBad {
		return errBodyAppIDType
	}
	if appIDTwice {
		return errBodyAppIDTwice
	}
	if err := imit.err(&jsonOwned[set]); err != nil {
		return err
	}
	if webankAppID {
		return errWebankAppID
	}
	return b.checkValues(orderNo, userID, name, idNo)
}

// readRaw reads the next name or value, and returns it as the slice of
// data the client wrote.
func readRaw(dec *jsontext.Decoder, data []byte) ([]byte, error) {
	v, err := dec.ReadValue()
	if err != nil {
		// The decoder stops at a name given twice; the refusal waits, as
		// every other one does, until the body is known whole.
		if errors.Is(err, jsontext.ErrDuplicateName) && jsontext.Value(data).IsValid(jsontext.AllowDuplicateNames(true)) {
			return nil, errBodyKeyRepeat
		}
		return nil, errBodyMalformed
	}
	end := int(dec.InputOffset())
	return data[end-len(v) : end], nil
}

// stringValue returns the decoded contents of raw, a JSON value, appended
// to buf if it needs unescaping, and whether it is a string.
func stringValue(raw, buf []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], true
	}
	out, err := jsontext.AppendUnquote(buf, raw)
	return out, err == nil // the decoder has validated raw: no error
}

// checkValues checks the values the body's set signs or requires, given as
// written (nil if absent), and keeps their decoded strings in b.
func (b *checkedBody) checkValues(orderNo, userID, name, idNo []byte) error {
	if orderNo == nil {
		return errBodyOrderNo
	}
	v, ok := stringValue(orderNo, nil)
	if !ok { // null, which would decode as ""
		return errBodyOrderType
	}
	if err := idLikeRefusal(idLikeError(v, maxOrderNoLen, isOrderNoByte), errBodyOrderEmpty, errBodyOrderLong, errBodyOrderChars); err != nil {
		return err
	}
	b.orderNo = v
	if b.set == setOrderNo {
		return nil
	}
	if userID == nil {
		return errBodyUserID
	}
	if v, ok = stringValue(userID, nil); !ok {
		return errBodyUserIDType
	}
	if err := idLikeRefusal(idLikeError(v, maxUserIDLen, isOrderNoByte), errBodyUserIDEmpty, errBodyUserIDLong, errBodyUserIDChars); err != nil {
		return err
	}
	b.userID = string(v)
	if name == nil {
		return errBodyName
	}
	if v, ok = stringValue(name, nil); !ok {
		return errBodyNameInvalid
	}
	if err := checkName(v); err != nil {
		return err
	}
	b.name = string(v)
	if idNo == nil {
		return errBodyIDNo
	}
	if v, ok = stringValue(idNo, nil); !ok {
		return errBodyIDNoInvalid
	}
	if err := idLikeRefusal(idLikeError(v, maxIDNoLen, isIDNoByte), errBodyIDNoInvalid, errBodyIDNoLong, errBodyIDNoInvalid); err != nil {
		return err
	}
	b.idNo = string(v)
	return nil
}

// filesRequested reports whether the body asks for photos or videos: a
// getFile (in any spelling, see isGetFile) other than 0 or "0". Anything
// else, null and "" included, counts as asking: the policy refuses what it
// cannot read as "no files".
func (b *checkedBody) filesRequested() bool { return b.files }

// signBody returns b as a JSON object with appId, version, a fresh nonce
// (unless b's set signs none) and sign first, then the client's other
// members in the client's order, as the client wrote them. Calling it
// again re-signs with a new nonce.
func signBody(b *checkedBody, appID, version, ticket string) []byte {
	var nonce [nonceLen]byte
	if b.set.hasNonce() {
		newNonceTo(&nonce)
	}
	vals, n := b.set.signedValues(b, string(b.orderNo), appID, version, ticket, string(nonce[:]))
	var sig [signLen]byte
	signValuesTo(&sig, vals[:n])
	if !b.set.hasNonce() {
		return encodeSignedBody(b, appID, version, nil, sig[:])
	}
	return encodeSignedBody(b, appID, version, nonce[:], sig[:])
}

// encodeSignedBody writes b signed with nonce and sig; see signBody. A nil
// nonce is left out.
func encodeSignedBody(b *checkedBody, appID, version string, nonce, sig []byte) []byte {
	n := 64 + len(appID) + len(version) + len(nonce) + len(sig)
	for f := range b.kept() {
		n += len(f.key) + len(f.raw) + 2
	}
	out := make([]byte, 0, n)
	// The owned members, none of whose names or values needs escaping: app
	// IDs and versions are checked to be [A-Za-z0-9_.-], nonces and signs
	// are alphanumeric.
	out = append(out, `{"`...)
	out = append(out, appField(b.set)...)
	out = append(out, `":"`...)
	out = append(out, appID...)
	out = append(out, `","`+fieldVersion+`":"`...)
	out = append(out, version...)
	if nonce != nil {
		out = append(out, `","`+fieldNonce+`":"`...)
		out = append(out, nonce...)
	}
	out = append(out, `","`+fieldSign+`":"`...)
	out = append(out, sig...)
	out = append(out, '"')
	// The client's names go on as it wrote them: the decoder has checked
	// that they are well-formed, valid UTF-8 strings, which every reader
	// decodes alike.
	for f := range b.kept() {
		out = append(out, ',')
		out = append(out, f.key...)
		out = append(out, ':')
		out = append(out, f.raw...)
	}
	return append(out, '}')
}
