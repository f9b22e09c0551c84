package webanksign

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// This file is webank_sign_local's two launch endpoints (docs/protocol.md
// §4, §6, §11): each fetches a NONCE ticket for the user, signs the launch
// with it and a fresh nonce, and answers what the SDK or the browser must
// have. The ticket itself never leaves the sidecar.

// sdkSignAnswer is what the mobile SDK needs to launch.
type sdkSignAnswer struct {
	AppID   string `json:"app_id"`
	UserID  string `json:"user_id"`
	Nonce   string `json:"nonce"`
	Version string `json:"version"`
	Sign    string `json:"sign"`
}

// serveSDKSign answers {"user_id"} with the userId-type sign over a fresh
// NONCE ticket for that user: sorted {appId, userId, version, ticket,
// nonce}.
func (h *LocalHandler) serveSDKSign(w http.ResponseWriter, r *http.Request, b localBody) error {
	userID, err := userIDRule.check(b)
	if err != nil {
		return h.reject(w, endpointSDKSign, nil, err)
	}
	tn, err := h.tenantFor(b)
	if err != nil {
		return h.reject(w, endpointSDKSign, nil, err)
	}
	ticket, err := tn.tickets.NonceTicket(r.Context(), userID)
	if err != nil {
		return h.noNonce(w, r, endpointSDKSign, tn, err)
	}
	nonce := newNonce()
	vals := [...]string{tn.creds.AppID, userID, h.version, ticket, nonce}
	countLocal(tn.creds.AppID, endpointSDKSign, outcomeAnswered)
	return writeJSON(w, http.StatusOK, sdkSignAnswer{tn.creds.AppID, userID, nonce, h.version, signValues(vals[:])})
}

// serveH5LoginURL answers with the URL of WeBank's H5 login page for one
// verification, signed over the seven values {appId, orderNo, userId,
// version, faceId, ticket, nonce} with a fresh NONCE ticket for the user.
func (h *LocalHandler) serveH5LoginURL(w http.ResponseWriter, r *http.Request, b localBody) error {
	reject := func(err error) error { return h.reject(w, endpointH5LoginURL, nil, err) }
	orderNo, err := orderNoRule.check(b)
	if err != nil {
		return reject(err)
	}
	userID, err := userIDRule.check(b)
	if err != nil {
		return reject(err)
	}
	faceID, ok := b["face_id"]
	switch {
	case !ok:
		return reject(errFaceIDMissing)
	case !isFaceID(faceID):
		return reject(errFaceIDInvalid)
	}
	callback, err := checkCallbackURL(b, h.callbackHosts)
	if err != nil {
		return reject(err)
	}
	host := h.loginHost
	if v := b["optimal_domain"]; v != "" { // empty: as absent, since apps pass getAdvFaceId's on as it is
		if host, ok = loginHost(v); !ok {
			return reject(errLoginHostInvalid)
		}
		if !hostAllowed(host, h.loginHosts) {
			return reject(errLoginHostDenied)
		}
	}
	from := "browser"
	if v, ok := b["from"]; ok {
		if v != "browser" && v != "app" {
			return reject(errFromInvalid)
		}
		from = v
	}
	redirectType := "1" // as in WeBank's template of the URL (docs/protocol.md §11)
	if v, ok := b["redirect_type"]; ok {
		if v == "" || len(v) > 2 || strings.Trim(v, "0123456789") != "" {
			return reject(errRedirectTypeInvalid)
		}
		redirectType = v
	}
	tn, err := h.tenantFor(b)
	if err != nil {
		return reject(err)
	}
	ticket, err := tn.tickets.NonceTicket(r.Context(), userID)
	if err != nil {
		return h.noNonce(w, r, endpointH5LoginURL, tn, err)
	}
	nonce := newNonce()
	vals := [...]string{tn.creds.AppID, orderNo, userID, h.version, faceID, ticket, nonce}
	q := url.Values{
		"appId":        {tn.creds.AppID},
		"version":      {h.version},
		"nonce":        {nonce},
		"orderNo":      {orderNo},
		"faceId":       {faceID},
		"url":          {callback},
		"from":         {from},
		"userId":       {userID},
		"sign":         {signValues(vals[:])},
		"redirectType": {redirectType},
	}
	login := url.URL{Scheme: h.loginScheme, Host: host, Path: "/api/web/login", RawQuery: q.Encode()}
	countLocal(tn.creds.AppID, endpointH5LoginURL, outcomeAnswered)
	return writeJSON(w, http.StatusOK, struct {
		URL string `json:"url"`
	}{login.String()})
}

// maxCallbackURL bounds callback_url: WeBank's login URL carries it
// whole, and browsers and proxies cut long URLs.
const maxCallbackURL = 1024

// checkCallbackURL returns the body's callback_url: an absolute http or
// https URL with a host and no user information, whose host is one of
// allowed if any are given. A fragment is kept: apps with a router in the
// fragment (https://app/#/result) come back to it.
func checkCallbackURL(b localBody, allowed []string) (string, error) {
	v, ok := b["callback_url"]
	if !ok {
		return "", errCallbackMissing
	}
	u, err := url.Parse(v)
	if err != nil || len(v) > maxCallbackURL || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil {
		return "", errCallbackInvalid
	}
	if len(allowed) > 0 && !hostAllowed(strings.ToLower(u.Host), allowed) {
		return "", errCallbackDenied
	}
	return v, nil
}

// noNonce answers a launch for which no NONCE ticket could be had: 503
// launches_busy with Retry-After when too many were waiting, 502 otherwise
// with the step and class of the failure (never WeBank's text, nor a
// ticket). A client that left is owed no answer.
func (h *LocalHandler) noNonce(w http.ResponseWriter, r *http.Request, endpoint string, tn *tenant, err error) error {
	appID := tn.creds.AppID
	if r.Context().Err() != nil {
		countLocal(appID, endpoint, outcomeClientGone)
		return caddyhttp.Error(statusClientGone, err)
	}
	if errors.Is(err, tickets.ErrNonceQueueFull) {
		countLocal(appID, endpoint, outcomeBusy)
		w.Header().Set("Retry-After", "1")
		return writeError(w, errLaunchesBusy.Status, errLaunchesBusy.Code, errLaunchesBusy.Msg)
	}
	countLocal(appID, endpoint, outcomeUnavailable)
	return writeError(w, http.StatusBadGateway, "ticket_unavailable",
		"no NONCE ticket for app_id "+appID+": "+noNonceReason(err))
}

// noNonceReason says, for a client, why no NONCE ticket could be had. A
// NONCE fetch is the launch's own, not retried by anyone: the client may
// try again. WeBank's code, when it refused, is given (it may name a
// user_id WeBank does not accept); its message is not.
func noNonceReason(err error) string {
	fe, ok := errors.AsType[*tickets.FetchError](err)
	switch {
	case ok && fe.Step == "NONCE ticket" && fe.Class == "code":
		return "WeBank refused it with code " + strconv.Quote(fe.Code) + "; the launch may be tried again"
	case ok && fe.Step == "NONCE ticket":
		return "fetching it failed (" + fe.Class + "); the launch may be tried again"
	default: // the app's token or SIGN ticket could not be had
		return noTicketReason(err)
	}
}
