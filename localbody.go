package webanksign

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
)

// This file reads the bodies of requests to webank_sign_local: one JSON
// object of string members, each named once, none the endpoint does not
// take; and checks the values that go into a launch or a check.

// localBody is a request body that parseLocalBody accepted: its members,
// decoded.
type localBody map[string]string

// localFields are the members each endpoint takes.
var localFields = map[string]map[string]bool{
	endpointSDKSign:    {"app_id": true, "user_id": true},
	endpointH5LoginURL: {"app_id": true, "order_no": true, "user_id": true, "face_id": true, "callback_url": true, "optimal_domain": true, "from": true, "redirect_type": true},
	endpointVerify:     {"app_id": true, "kind": true, "order_no": true, "code": true, "sign": true},
}

// parseLocalBody parses data as one JSON object whose members are strings
// named in fields, each once. A member is refused only once the object is
// known whole: a body cut short is malformed, whatever its members.
func parseLocalBody(data []byte, fields map[string]bool) (localBody, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errBodyMissing
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errBodyMalformed
	}
	b := make(localBody)
	var refused error // the first member refused, once the object is known whole
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errBodyMalformed
		}
		key := tok.(string) // inside an object, a token that is not an error is a key
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errBodyMalformed
		}
		if refused == nil {
			refused = b.add(key, raw, fields)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, errBodyMalformed
	}
	if _, err := dec.Token(); err != io.EOF { // nothing after the object
		return nil, errBodyMalformed
	}
	if refused != nil {
		return nil, refused
	}
	return b, nil
}

// add adds the member key, raw to b, or returns its refusal: a name given
// twice, one the endpoint does not take (fields), or a value that is not a
// string.
func (b localBody) add(key string, raw json.RawMessage, fields map[string]bool) error {
	if _, ok := b[key]; ok {
		return errBodyKeyRepeat
	}
	if !fields[key] {
		return errLocalField
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return errLocalFieldType
	}
	b[key] = s
	return nil
}

// idRule checks a value that WeBank takes as 1 to 32 of [A-Za-z0-9_-]:
// order_no and user_id. Each has its refusals for a missing value and an
// invalid one.
type idRule struct {
	field            string
	missing, invalid *refusal
}

var (
	orderNoRule = idRule{"order_no", errOrderNoMissing, errLocalOrderNo}
	userIDRule  = idRule{"user_id", errUserIDMissing, errUserIDInvalid}
)

// check returns b's value for r's field, or r's refusal.
func (r idRule) check(b localBody) (string, error) {
	v, ok := b[r.field]
	if !ok {
		return "", r.missing
	}
	if _, err := checkOrderNo([]string{v}); err != nil {
		return "", r.invalid
	}
	return v, nil
}

// isFaceID reports whether v may be a faceId or h5faceId as WeBank hands
// them out: 1 to 64 of [A-Za-z0-9_-].
func isFaceID(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !isOrderNoByte(v[i]) {
			return false
		}
	}
	return true
}

// isResultCode reports whether v may be the code of a result callback: 1
// to 16 letters and digits ("0" for a pass), after a minus sign if any
// (WeBank's codes include -1304).
func isResultCode(v string) bool {
	v = strings.TrimPrefix(v, "-")
	if v == "" || len(v) > 16 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// loginHost returns v, a host or host:port, in lowercase, and whether it is
// one: a DNS name or an IP address, and a port if any.
func loginHost(v string) (string, bool) {
	v = strings.ToLower(v)
	name, port, err := net.SplitHostPort(v)
	if err != nil {
		if strings.Contains(v, ":") { // an IPv6 address goes in brackets
			return "", false
		}
		name, port = v, ""
	} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", false
	}
	if name == "" || len(name) > 253 {
		return "", false
	}
	if net.ParseIP(name) != nil {
		return v, true
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	return v, true
}

// hostAllowed reports whether host (lowercase) is one of allowed: a host
// exactly, or under a "*.domain" entry.
func hostAllowed(host string, allowed []string) bool {
	name := host
	if n, _, err := net.SplitHostPort(host); err == nil {
		name = n
	}
	for _, a := range allowed {
		if d, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(name, "."+d) && !strings.Contains(host, ":") {
				return true
			}
		} else if host == a {
			return true
		}
	}
	return false
}
