package webanksign

import (
	"crypto/subtle"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// This file is webank_sign_local's check of a result's signature
// (docs/protocol.md §6, §11): WeBank's redirect after an H5 or face
// verification carries code, orderNo and newSignature, the SHA1 over
// {appId, orderNo, SIGN ticket, code}; an OCR SDK result is signed over
// {app_id, order_no, SIGN ticket}. The check uses the app's SIGN tickets
// as the cache has them, and never fetches a token of its own.

// The kinds of result a check is for.
const (
	kindFace = "face" // a face or H5 verification's callback: four values, with code
	kindOCR  = "ocr"  // an OCR SDK result: three values, no code
)

// serveVerify answers {"valid": true} when the sign was made with one of
// the app's SIGN tickets that WeBank may have used, and {"valid": false}
// for a well-formed sign that was not.
func (h *LocalHandler) serveVerify(w http.ResponseWriter, r *http.Request, b localBody) error {
	reject := func(err error) error { return h.reject(w, endpointVerify, nil, err) }
	kind := kindFace
	if v, ok := b["kind"]; ok {
		if v != kindFace && v != kindOCR {
			return reject(errKindInvalid)
		}
		kind = v
	}
	orderNo, err := orderNoRule.check(b)
	if err != nil {
		return reject(err)
	}
	code, hasCode := b["code"]
	switch {
	case kind == kindFace && !hasCode:
		return reject(errCodeMissing)
	case kind == kindFace && !isResultCode(code):
		return reject(errCodeInvalid)
	case kind == kindOCR && hasCode:
		return reject(errCodeNotTaken)
	}
	given, ok := b["sign"]
	switch {
	case !ok:
		return reject(errSignMissing)
	case !isHexSign(given):
		return reject(errSignInvalid)
	}
	tn, err := h.tenantFor(b)
	if err != nil {
		return reject(err)
	}
	want := []byte(upperHex(given))
	valid, err := tn.tickets.SignedWith(r.Context(), func(ticket string) bool {
		var got string
		if kind == kindOCR {
			vals := [...]string{tn.creds.AppID, orderNo, ticket}
			got = signValues(vals[:])
		} else {
			vals := [...]string{tn.creds.AppID, orderNo, ticket, code}
			got = signValues(vals[:])
		}
		return subtle.ConstantTimeCompare([]byte(got), want) == 1
	})
	if err != nil {
		if r.Context().Err() != nil {
			countLocal(tn.creds.AppID, endpointVerify, outcomeClientGone)
			return caddyhttp.Error(statusClientGone, err)
		}
		countLocal(tn.creds.AppID, endpointVerify, outcomeUnavailable)
		return writeError(w, http.StatusBadGateway, "ticket_unavailable",
			"no SIGN ticket for app_id "+tn.creds.AppID+": "+noTicketReason(err))
	}
	countLocal(tn.creds.AppID, endpointVerify, outcomeAnswered)
	return writeJSON(w, http.StatusOK, struct {
		Valid bool `json:"valid"`
	}{valid})
}

// isHexSign reports whether s is a sign as WeBank writes it: 40 hex digits,
// in either case.
func isHexSign(s string) bool {
	if len(s) != signLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// upperHex returns s, hex digits, in upper case: signs are compared
// regardless of case, as WeBank declares them.
func upperHex(s string) string {
	out := []byte(s)
	for i, c := range out {
		if 'a' <= c && c <= 'f' {
			out[i] = c - 'a' + 'A'
		}
	}
	return string(out)
}
