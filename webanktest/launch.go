package webanktest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"unicode/utf8"
)

// serveFaceID answers the faceId APIs getAdvFaceId, getfaceid,
// getPlusFaceId and getWillFaceId, which start a verification: the request
// (400102; see parseLaunch), then the checks of authorize with the sign of
// the userId type, over the app id, user id, version, SIGN ticket and
// nonce. It issues the order's faceId.
func (f *Fake) serveFaceID(x *exchange) {
	p, err := parseLaunch(x, true)
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.authorize(x, p.signedParams, answer{}) {
		return
	}
	faceID := f.issueFaceID(p.appID, p.orderNo)
	x.writeBody(http.StatusOK, codeOK, marshal(f.launchAnswer(x, p, launchResult{FaceID: faceID})))
}

// serveH5FaceID answers geth5faceid, the older H5 launch: the request
// (400102; see parseLaunch, here with no nonce), then the checks of
// authorize with the sign over the app id, order number, name, ID number,
// user id, version and SIGN ticket. It issues the order's faceId, answered
// as h5faceId.
func (f *Fake) serveH5FaceID(x *exchange) {
	p, err := parseLaunch(x, false)
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.authorize(x, p.signedParams, answer{}) {
		return
	}
	faceID := f.issueFaceID(p.appID, p.orderNo)
	x.writeBody(http.StatusOK, codeOK, marshal(f.launchAnswer(x, p, launchResult{H5FaceID: faceID})))
}

// FaceID returns the faceId (or h5faceId) the fake issues for appID and
// orderNo: 32 characters, "wb" and 30 lowercase hex digits, a function of
// the two alone. It is not a secret; the login page accepts it only once
// a launch API has issued it.
func FaceID(appID, orderNo string) string {
	sum := sha256.Sum256([]byte("webanktest face id\x00" + appID + "\x00" + orderNo))
	return "wb" + hex.EncodeToString(sum[:15])
}

// issueFaceID returns the faceId of appID and orderNo, and remembers that
// it was issued, for the login page.
func (f *Fake) issueFaceID(appID, orderNo string) string {
	faceID := FaceID(appID, orderNo)
	f.faceIDs.add(faceIDKey(appID, orderNo, faceID))
	return faceID
}

// issuedFaceID reports whether faceID was issued for appID and orderNo.
func (f *Fake) issuedFaceID(appID, orderNo, faceID string) bool {
	return f.faceIDs.has(faceIDKey(appID, orderNo, faceID))
}

func faceIDKey(appID, orderNo, faceID string) string {
	return appID + "\x00" + orderNo + "\x00" + faceID
}

// launchParams are the values of a launch request.
type launchParams struct {
	signedParams
	name, idNo, userID string
}

// parseLaunch checks a launch request, in this order: what jsonRequest
// checks, appId (webankAppId for geth5faceid), orderNo, name, idNo, userId, version, sign and, if
// withNonce, nonce (non-empty JSON strings), sourcePhotoStr (absent or a
// string) and sourcePhotoType (absent, or 1 or 2 as a string or a number),
// the URL's orderNo if present being the body's, then the form of the
// values: orderNo and userId 1 to 32 of [A-Za-z0-9_-], idNo 1 to 32 of
// [A-Za-z0-9], name valid UTF-8, the nonce 32 of [A-Za-z0-9], the sign 40
// hex digits. Other members are ignored. The values signed are those of
// the userId type with a nonce, of geth5faceid without.
func parseLaunch(x *exchange, withNonce bool) (launchParams, error) {
	var p launchParams
	b, err := jsonRequest(x)
	if err != nil {
		return p, err
	}
	appField := "appId"
	if !withNonce { // geth5faceid names the app webankAppId (docs/protocol.md §8.3)
		appField = "webankAppId"
	}
	fields := []stringField{
		{appField, &p.appID}, {"orderNo", &p.orderNo}, {"name", &p.name}, {"idNo", &p.idNo},
		{"userId", &p.userID}, {"version", &p.version}, {"sign", &p.sign},
	}
	if withNonce {
		fields = append(fields, stringField{"nonce", &p.nonce})
	}
	if err := b.requiredStrings(fields...); err != nil {
		return p, err
	}
	if _, err := b.optionalString("sourcePhotoStr"); err != nil {
		return p, err
	}
	if raw, ok := b.fieldsByKey["sourcePhotoType"]; ok {
		v, isString := b.str("sourcePhotoType")
		if !isString {
			v = string(raw)
		}
		if v != "1" && v != "2" {
			return p, errors.New("invalid parameter sourcePhotoType")
		}
	}
	if err := checkURLOrderNo(x, p.orderNo); err != nil {
		return p, err
	}
	if err := p.checkLaunchShape(withNonce); err != nil {
		return p, err
	}
	if withNonce {
		p.signed = []string{p.appID, p.userID, p.version, p.nonce}
	} else {
		p.signed = []string{p.appID, p.orderNo, p.name, p.idNo, p.userID, p.version}
	}
	return p, nil
}

// checkLaunchShape checks the form of p's values; see parseLaunch.
func (p launchParams) checkLaunchShape(withNonce bool) error {
	if err := checkID(p.orderNo, "orderNo"); err != nil {
		return err
	}
	if err := checkID(p.userID, "userId"); err != nil {
		return err
	}
	switch {
	case len(p.idNo) > 32 || !allOf(p.idNo, isAlnum):
		return errors.New("invalid parameter idNo")
	case !utf8.ValidString(p.name):
		return errors.New("invalid parameter name")
	case withNonce && (len(p.nonce) != 32 || !allOf(p.nonce, isAlnum)):
		return errors.New("invalid parameter nonce")
	case len(p.sign) != 40 || !allOf(p.sign, isHex):
		return errors.New("invalid parameter sign")
	}
	return nil
}

// launchAnswer returns the answer to the launch request x with params p
// whose result, res, has its faceId or h5faceId set.
func (f *Fake) launchAnswer(x *exchange, p launchParams, res launchResult) launchResponse {
	now := f.now()
	rng := rand.NewChaCha8(resultSeed("launch", p.appID, p.orderNo))
	seq := bizSeqNo(rng, now)
	res.BizSeqNo, res.TransactionTime = seq, wbTime(now)
	res.OrderNo = p.orderNo
	res.OptimalDomain = f.optimalDomainFor(x)
	res.Success = true
	return launchResponse{Code: codeOK, Msg: msgOK, BizSeqNo: seq, TransactionTime: wbTime(now), Result: res}
}

// optimalDomainFor returns the optimalDomain to answer x with:
// Options.OptimalDomain, or the listener's address, or the local address
// of x's connection. Never x's Host header.
func (f *Fake) optimalDomainFor(x *exchange) string {
	if f.optimalDomain != "" {
		return f.optimalDomain
	}
	if addr, ok := x.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return addr.String()
	}
	return ""
}

type launchResponse struct {
	Code            string       `json:"code"`
	Msg             string       `json:"msg"`
	BizSeqNo        string       `json:"bizSeqNo"`
	TransactionTime string       `json:"transactionTime"`
	Result          launchResult `json:"result"`
}

type launchResult struct {
	BizSeqNo        string `json:"bizSeqNo"`
	TransactionTime string `json:"transactionTime"`
	OrderNo         string `json:"orderNo"`
	FaceID          string `json:"faceId,omitempty"`
	H5FaceID        string `json:"h5faceId,omitempty"`
	OptimalDomain   string `json:"optimalDomain"`
	Success         bool   `json:"success"`
}
