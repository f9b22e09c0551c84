package webanktest

import "errors"

// serveSDKLogin answers /api/sdk/login, which stands in for the mobile SDK
// starting a verification with what the partner's server handed it, in
// this order: the request (400102; see parseSDKLogin), the app id
// (400103), then the sign: of the userId type, over the app id, user id,
// version, NONCE ticket and nonce, made with a NONCE ticket issued for
// that user of the app, unused and valid (400101). A login that passes
// uses the NONCE ticket up and is answered {"code":"0","msg":"ok"}.
func (f *Fake) serveSDKLogin(x *exchange) {
	p, err := parseSDKLogin(x)
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.creds.known(p.appID) {
		x.reply(codeBadCredentials, "unknown app_id")
		return
	}
	values := []string{p.appID, p.userID, p.version, p.nonce}
	if refusal := f.creds.useNonceTicket(p.appID, p.userID, values, p.sign, f.now()); refusal != launchOK {
		x.reply(codeBadSignature, string(refusal))
		return
	}
	f.sdkLogins.Add(1)
	x.reply(codeOK, "ok")
}

// sdkLoginParams are the values of an SDK login.
type sdkLoginParams struct {
	appID, userID, nonce, version, sign, orderNo string
}

// parseSDKLogin checks an SDK login, in this order: what jsonRequest
// checks, appId, userId, nonce, version and sign (non-empty JSON strings),
// orderNo (absent or a string), the URL's orderNo if present being the
// body's, then the form of the values: userId, and orderNo if present, 1
// to 32 of [A-Za-z0-9_-], the nonce 32 of [A-Za-z0-9], the sign 40 hex
// digits. Other members are ignored.
func parseSDKLogin(x *exchange) (sdkLoginParams, error) {
	var p sdkLoginParams
	b, err := jsonRequest(x)
	if err != nil {
		return p, err
	}
	err = b.requiredStrings(
		stringField{"appId", &p.appID}, stringField{"userId", &p.userID}, stringField{"nonce", &p.nonce},
		stringField{"version", &p.version}, stringField{"sign", &p.sign},
	)
	if err != nil {
		return p, err
	}
	if p.orderNo, err = b.optionalString("orderNo"); err != nil {
		return p, err
	}
	if _, inURL := x.query["orderNo"]; inURL || p.orderNo != "" {
		if err := checkURLOrderNo(x, p.orderNo); err != nil {
			return p, err
		}
		if err := checkID(p.orderNo, "orderNo"); err != nil {
			return p, err
		}
	}
	if err := checkID(p.userID, "userId"); err != nil {
		return p, err
	}
	switch {
	case len(p.nonce) != 32 || !allOf(p.nonce, isAlnum):
		return p, errors.New("invalid parameter nonce")
	case len(p.sign) != 40 || !allOf(p.sign, isHex):
		return p, errors.New("invalid parameter sign")
	}
	return p, nil
}
