package webanktest

import (
	"errors"
	"net/http"
	"net/url"
)

// serveLogin answers the H5 login page /api/web/login, where the browser
// starts the user's verification, in this order: parameters (400102; see
// parseLogin), the app id (400103), a faceId issued for the app and order
// (400102), a SIGN ticket of the app to sign the callback with (15), then
// the sign: over the app id, order number, user id, version, faceId, NONCE
// ticket and nonce, made with a NONCE ticket issued for that user of the
// app, unused and valid (400101). Every refusal is HTTP 400 with
// {"code","msg"}. A login that passes uses the NONCE ticket up and is
// redirected to the callback url, with code 0, orderNo, h5faceId and
// newSignature (see CallbackSignature) added to its query.
func (f *Fake) serveLogin(x *exchange) {
	p, err := parseLogin(x)
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.creds.known(p.appID) {
		x.reply(codeBadCredentials, "unknown app_id")
		return
	}
	if !f.issuedFaceID(p.appID, p.orderNo, p.faceID) {
		f.badRequest(x, errors.New("faceId not issued for this order"))
		return
	}
	newSignature, err := f.CallbackSignature(p.appID, p.orderNo, codeOK)
	if err != nil {
		x.reply(codeInvalidToken, err.Error())
		return
	}
	values := []string{p.appID, p.orderNo, p.userID, p.version, p.faceID, p.nonce}
	if refusal := f.creds.useNonceTicket(p.appID, p.userID, values, p.sign, f.now()); refusal != launchOK {
		x.reply(codeBadSignature, string(refusal))
		return
	}
	f.logins.Add(1)
	q := p.callback.Query() // parseLogin made sure it parses
	q.Set("code", codeOK)
	q.Set("orderNo", p.orderNo)
	q.Set("h5faceId", p.faceID)
	q.Set("newSignature", newSignature)
	to := *p.callback
	to.RawQuery = q.Encode()
	x.w.Header().Set("Location", to.String())
	x.w.Header().Set("Content-Length", "0")
	x.w.WriteHeader(http.StatusFound)
	x.outcome = "redirect code 0"
}

// CallbackSignature returns the newSignature the login page adds to the
// callback for appID, orderNo and code: the sign over the four values app
// id, order number, code and the SIGN ticket last issued for the app, as
// WeBank signs with the partner's latest ticket. It fails if appID is not
// one of Options.Apps or no SIGN ticket was issued for it. It is safe for
// concurrent use.
func (f *Fake) CallbackSignature(appID, orderNo, code string) (string, error) {
	if !f.creds.known(appID) {
		return "", errors.New("unknown app_id")
	}
	ticket, ok := f.creds.latestTicket(appID)
	if !ok {
		return "", errors.New("no SIGN ticket issued for the app")
	}
	return sign(appID, orderNo, code, ticket), nil
}

// loginParams are the parameters of a login page request.
type loginParams struct {
	appID, version, nonce, orderNo, faceID, from, userID, sign string
	callback                                                   *url.URL
}

// parseLogin checks the query of a login page request: appId, version,
// nonce, orderNo, faceId, url, from, userId, sign and redirectType each
// exactly once and not empty, in this order; then their form: orderNo and
// userId 1 to 32 of [A-Za-z0-9_-], faceId at most 64 of them, the nonce 32
// of [A-Za-z0-9], the sign 40 hex digits, from "browser" or "app", and url
// an absolute http or https URL with a host and a well-formed query. Other
// parameters are ignored.
func parseLogin(x *exchange) (loginParams, error) {
	var p loginParams
	if x.queryErr != nil {
		return p, errMalformedQuery
	}
	var rawURL string
	for _, v := range []struct {
		key string
		dst *string
	}{
		{"appId", &p.appID}, {"version", &p.version}, {"nonce", &p.nonce}, {"orderNo", &p.orderNo},
		{"faceId", &p.faceID}, {"url", &rawURL}, {"from", &p.from}, {"userId", &p.userID},
		{"sign", &p.sign}, {"redirectType", new(string)},
	} {
		val, err := single(x.query, v.key)
		if err != nil {
			return p, err
		}
		*v.dst = val
	}
	for _, id := range []struct{ v, key string }{{p.orderNo, "orderNo"}, {p.userID, "userId"}} {
		if err := checkID(id.v, id.key); err != nil {
			return p, err
		}
	}
	switch {
	case len(p.faceID) > 64 || !allOf(p.faceID, isAlnum, '_', '-'):
		return p, errors.New("invalid parameter faceId")
	case len(p.nonce) != 32 || !allOf(p.nonce, isAlnum):
		return p, errors.New("invalid parameter nonce")
	case len(p.sign) != 40 || !allOf(p.sign, isHex):
		return p, errors.New("invalid parameter sign")
	case p.from != "browser" && p.from != "app":
		return p, errors.New("invalid parameter from: want browser or app")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return p, errors.New("invalid parameter url: want an absolute http or https URL")
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return p, errors.New("invalid parameter url: malformed query")
	}
	p.callback = u
	return p, nil
}
