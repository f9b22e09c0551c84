package webanktest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// jsonBody is the body of a request to a JSON endpoint, read before any fault
// is injected so that faulted requests are recorded too. It is not checked
// until the endpoint serves the request.
type jsonBody struct {
	contentType string // the Content-Type header
	hasLength   bool   // whether the request carried Content-Length; Go drops it from chunked requests
	fields      []jsonField
	fieldsByKey map[string]json.RawMessage // the last value of each key
	err         error                      // why the body cannot be used; a fixed, client-safe message
}

// jsonField is one top-level member of a JSON object, in body order.
type jsonField struct {
	key   string
	value json.RawMessage
}

// readJSONBody reads and parses the body of r, at most limit bytes (a
// whole number of MiB). A
// body that is too long, unreadable, not a single JSON object, or that
// repeats a key is remembered in the result's err; its fields are kept if
// it is a well-formed object, repeated keys included.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) *jsonBody {
	b := &jsonBody{contentType: r.Header.Get("Content-Type")}
	_, b.hasLength = r.Header["Content-Length"]
	errTooLarge := fmt.Errorf("body larger than %d MiB", limit>>20)
	if r.ContentLength > limit {
		b.err = errTooLarge
		return b
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		b.err = errTooLarge
		return b
	case err != nil:
		b.err = errors.New("reading body failed")
		return b
	}
	b.fields, b.err = parseObject(raw)
	b.fieldsByKey = make(map[string]json.RawMessage, len(b.fields))
	for _, fl := range b.fields {
		b.fieldsByKey[fl.key] = fl.value
	}
	return b
}

// check returns the first reason b cannot be served: a Content-Type other
// than application/json with at most a UTF-8 charset, no Content-Length, or
// b.err.
func (b *jsonBody) check() error {
	mt, params, err := mime.ParseMediaType(b.contentType)
	if err != nil || mt != "application/json" {
		return errors.New("Content-Type must be application/json")
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return errors.New("Content-Type must be application/json, with no parameter but charset=UTF-8")
		}
	}
	if !b.hasLength {
		return errors.New("Content-Length required")
	}
	return b.err
}

// jsonRequest returns the body of x, a request to a JSON endpoint, once
// the checks every such request shares have passed, in this order: the
// headers and body (see jsonBody.check), the URL's query (well formed,
// orderNo at most once).
func jsonRequest(x *exchange) (*jsonBody, error) {
	if err := x.body.check(); err != nil {
		return nil, err
	}
	if x.queryErr != nil {
		return nil, errMalformedQuery
	}
	if len(x.query["orderNo"]) > 1 {
		return nil, errors.New("repeated parameter orderNo in URL")
	}
	return x.body, nil
}

// checkURLOrderNo checks that the orderNo of x's URL, if any, is orderNo.
func checkURLOrderNo(x *exchange, orderNo string) error {
	if urlNo, ok := x.query["orderNo"]; ok && urlNo[0] != orderNo {
		return errors.New("orderNo in URL differs from orderNo in body")
	}
	return nil
}

// parseObject parses raw as exactly one JSON object and returns its
// top-level members in order. If a key repeats, it returns every member and
// an error; if raw is not one well-formed JSON object, no members.
func parseObject(raw []byte) ([]jsonField, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err != nil && err != io.EOF {
			return nil, errMalformedJSON
		}
		return nil, errNotObject
	}
	var fields []jsonField
	seen := make(map[string]bool)
	var dup string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errMalformedJSON
		}
		key, _ := tok.(string) // the decoder allows only strings here
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, errMalformedJSON
		}
		if seen[key] && dup == "" {
			dup = key
		}
		seen[key] = true
		fields = append(fields, jsonField{key, value})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errMalformedJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, errNotObject // a second value follows
		}
		return nil, errMalformedJSON
	}
	if dup != "" {
		return fields, errRepeatedKey(dup)
	}
	return fields, nil
}

// errRepeatedKey returns the error for a key that repeats in a body. It
// names the key only if it is short enough to be a parameter name, as
// WeBank's are, and not a nonce, sign or secret pasted as a key: those
// are 32 or more characters long.
func errRepeatedKey(key string) error {
	if len(key) > 16 || !allOf(key, isAlnum, '_') {
		return errors.New("repeated key in JSON body")
	}
	return errors.New("repeated parameter " + key)
}

var (
	errMalformedJSON = errors.New("malformed JSON body")
	errNotObject     = errors.New("body must be one JSON object")
)

// str returns the value of key if it is a JSON string, and whether it is.
func (b *jsonBody) str(key string) (string, bool) {
	raw, ok := b.fieldsByKey[key]
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// requiredString returns the value of key, which must be a non-empty JSON
// string.
func (b *jsonBody) requiredString(key string) (string, error) {
	if _, ok := b.fieldsByKey[key]; !ok {
		return "", errors.New("missing parameter " + key)
	}
	s, ok := b.str(key)
	switch {
	case !ok:
		return "", errors.New("parameter " + key + " must be a string")
	case s == "":
		return "", errors.New("missing parameter " + key)
	}
	return s, nil
}

// stringField is a member of a JSON body and where its value goes.
type stringField struct {
	key string
	dst *string
}

// requiredStrings sets each field's dst to the value of its key, which
// must be a non-empty JSON string; the first that is not is the error.
func (b *jsonBody) requiredStrings(fields ...stringField) error {
	for _, fl := range fields {
		v, err := b.requiredString(fl.key)
		if err != nil {
			return err
		}
		*fl.dst = v
	}
	return nil
}

// optionalString returns the value of key, which must be absent or a
// JSON string.
func (b *jsonBody) optionalString(key string) (string, error) {
	if _, ok := b.fieldsByKey[key]; !ok {
		return "", nil
	}
	s, ok := b.str(key)
	if !ok {
		return "", errors.New("parameter " + key + " must be a string")
	}
	return s, nil
}

// values returns the fields as url.Values, each value a string's content or
// other JSON in compact form; see Fake.Requests.
func (b *jsonBody) values() url.Values {
	out := make(url.Values, len(b.fields))
	for _, fl := range b.fields {
		out[fl.key] = append(out[fl.key], rawText(fl.value))
	}
	return out
}

// maxRecordedValue is the longest value Requests keeps as it is; longer
// ones, photos and images, are kept as their length and hash.
const maxRecordedValue = 64 << 10

// rawText returns the content of a JSON string, or other JSON compacted,
// or, if that is longer than maxRecordedValue, its SHA-256 and length.
func rawText(raw json.RawMessage) string {
	s := rawValue(raw)
	if len(s) > maxRecordedValue {
		sum := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(sum[:]) + ",bytes=" + strconv.Itoa(len(s))
	}
	return s
}

// rawValue returns the content of a JSON string, or other JSON compacted.
func rawValue(raw json.RawMessage) string {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}
