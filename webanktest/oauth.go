package webanktest

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// wbTimeLayout is WeBank's yyyyMMddHHmmss, in Beijing time.
const wbTimeLayout = "20060102150405"

// beijing is the zone WeBank's times are written in. Never modified.
var beijing = time.FixedZone("CST", 8*60*60)

func wbTime(t time.Time) string { return t.In(beijing).Format(wbTimeLayout) }

// serveToken answers the access_token endpoint: it checks the app's secret
// and issues a new token, superseding the app's current one.
func (f *Fake) serveToken(x *exchange) {
	appID, err := oauthParams(x, "secret", "grant_type", "version")
	if err == nil {
		err = expect(x.query, "grant_type", "client_credential")
	}
	if err == nil {
		err = expect(x.query, "version", "1.0.0")
	}
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.creds.authenticate(appID, x.query.Get("secret")) {
		x.reply(codeBadCredentials, "unknown app_id or wrong secret")
		return
	}
	now := f.now()
	token := f.creds.issueToken(appID, now)
	x.writeBody(http.StatusOK, codeOK, marshal(tokenBody{
		Code:            codeOK,
		Msg:             msgOK,
		TransactionTime: wbTime(now),
		AccessToken:     token,
		ExpireTime:      wbTime(now.Add(f.creds.tokenTTL)),
		ExpireIn:        int64(f.creds.tokenTTL / time.Second),
	}))
}

// serveTicket answers the api_ticket endpoint for a SIGN ticket (any type
// but NONCE, which serveNonceTicket answers, is refused): it checks the
// access token and issues a new SIGN ticket made from it.
func (f *Fake) serveTicket(x *exchange) {
	appID, err := oauthParams(x, "access_token", "type", "version")
	if err == nil && x.query.Get("type") != "SIGN" {
		err = errors.New("parameter type must be SIGN or NONCE")
	}
	if err == nil {
		err = expect(x.query, "version", "1.0.0")
	}
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.creds.known(appID) {
		x.reply(codeBadCredentials, "unknown app_id")
		return
	}
	now := f.now()
	ticket, ok := f.creds.issueTicket(appID, x.query.Get("access_token"), now)
	if !ok {
		x.reply(codeInvalidToken, "access_token invalid or expired")
		return
	}
	x.writeTicket(ticket, now, f.creds.ticketTTL)
}

// serveNonceTicket answers the api_ticket endpoint for a NONCE ticket
// (type=NONCE): it checks user_id and the access token and issues a new
// NONCE ticket made from it, bound to user_id.
func (f *Fake) serveNonceTicket(x *exchange) {
	appID, err := oauthParams(x, "access_token", "type", "version", "user_id")
	if err == nil {
		err = expect(x.query, "version", "1.0.0")
	}
	if err == nil {
		err = checkID(x.query.Get("user_id"), "user_id")
	}
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.creds.known(appID) {
		x.reply(codeBadCredentials, "unknown app_id")
		return
	}
	now := f.now()
	ticket, ok := f.creds.issueNonceTicket(appID, x.query.Get("user_id"), x.query.Get("access_token"), now)
	if !ok {
		x.reply(codeInvalidToken, "access_token invalid or expired")
		return
	}
	f.nonceTickets.Add(1)
	x.writeTicket(ticket, now, f.creds.nonceTTL)
}

// writeTicket answers a ticket issued at now that lives for ttl.
func (x *exchange) writeTicket(ticket string, now time.Time, ttl time.Duration) {
	x.writeBody(http.StatusOK, codeOK, marshal(ticketBody{
		Code:            codeOK,
		Msg:             msgOK,
		TransactionTime: wbTime(now),
		Tickets: []ticketEntry{{
			Value:      ticket,
			ExpireIn:   strconv.FormatInt(int64(ttl/time.Second), 10),
			ExpireTime: wbTime(now.Add(ttl)),
		}},
	}))
}

// checkID checks that v, the value of key, is a user id or order number:
// 1 to 32 of [A-Za-z0-9_-].
func checkID(v, key string) error {
	if v == "" || len(v) > 32 || !allOf(v, isAlnum, '_', '-') {
		return errors.New("invalid parameter " + key)
	}
	return nil
}

// badRequest answers "400102" and counts it.
func (f *Fake) badRequest(x *exchange, err error) {
	f.badRequests.Add(1)
	x.reply(codeBadParameter, err.Error())
}

// oauthParams checks that the query of an oauth2 request is well formed and
// holds the app id, spelt app_id or appId, and each of keys exactly once, and
// returns the app id.
func oauthParams(x *exchange, keys ...string) (appID string, err error) {
	if x.queryErr != nil {
		return "", errMalformedQuery
	}
	switch n := len(x.query["app_id"]) + len(x.query["appId"]); {
	case n == 0:
		return "", errors.New("missing parameter app_id")
	case n > 1:
		return "", errors.New("repeated parameter app_id")
	}
	appID = firstOf(x.query, "app_id", "appId")
	if appID == "" {
		return "", errors.New("missing parameter app_id")
	}
	for _, k := range keys {
		if _, err := single(x.query, k); err != nil {
			return "", err
		}
	}
	return appID, nil
}

var errMalformedQuery = errors.New("malformed query string")

// single returns the value of key in q, which must be present exactly once
// and not empty.
func single(q url.Values, key string) (string, error) {
	switch vs := q[key]; {
	case len(vs) == 0 || vs[0] == "":
		return "", errors.New("missing parameter " + key)
	case len(vs) > 1:
		return "", errors.New("repeated parameter " + key)
	default:
		return vs[0], nil
	}
}

// expect checks that the single value of key in q is want.
func expect(q url.Values, key, want string) error {
	if q.Get(key) != want {
		return errors.New("parameter " + key + " must be " + want)
	}
	return nil
}

type tokenBody struct {
	Code            string `json:"code"`
	Msg             string `json:"msg"`
	TransactionTime string `json:"transactionTime"`
	AccessToken     string `json:"access_token"`
	ExpireTime      string `json:"expire_time"`
	ExpireIn        int64  `json:"expire_in"` // a number here, a string for tickets, as WeBank's docs wobble
}

type ticketBody struct {
	Code            string        `json:"code"`
	Msg             string        `json:"msg"`
	TransactionTime string        `json:"transactionTime"`
	Tickets         []ticketEntry `json:"tickets"`
}

type ticketEntry struct {
	Value      string `json:"value"`
	ExpireIn   string `json:"expire_in"`
	ExpireTime string `json:"expire_time"`
}
