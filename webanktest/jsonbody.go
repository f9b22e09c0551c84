package webanktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// maxJSONBody is the largest JSON request body the fake reads.
const maxJSONBody = 1 << 20

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

// readJSONBody reads and parses the body of r, at most maxJSONBody bytes. A
// body that is too long, unreadable, not a single JSON object, or that
// repeats a key is remembered in the result's err; its fields are kept if
// it is a well-formed object, repeated keys included.
func readJSONBody(w http.ResponseWriter, r *http.Request) *jsonBody {
	b := &jsonBody{contentType: r.Header.Get("Content-Type")}
	_, b.hasLength = r.Header["Content-Length"]
	if r.ContentLength > maxJSONBody {
		b.err = errBodyTooLarge
		return b
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		b.err = errBodyTooLarge
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

var errBodyTooLarge = errors.New("body larger than 1 MiB")

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

// values returns the fields as url.Values, each value a string's content or
// other JSON in compact form; see Fake.Requests.
func (b *jsonBody) values() url.Values {
	out := make(url.Values, len(b.fields))
	for _, fl := range b.fields {
		out[fl.key] = append(out[fl.key], rawText(fl.value))
	}
	return out
}

// rawText returns the content of a JSON string, or other JSON compacted.
func rawText(raw json.RawMessage) string {
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
