package webanksign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// appSet is the apps a handler signs for, and how a request's app is
// picked among them.
type appSet struct {
	tenants []*tenant          // the apps signed for; one unless Apps is used
	byID    map[string]*tenant // with Apps: the tenants by app_id
}

// release releases the apps' registrations in the ticket cache; a second
// call releases nothing twice.
func (a *appSet) release() {
	for _, tn := range a.tenants {
		tn.tickets.Release()
	}
}

// pick returns the app a request is signed for, from the app_id it gave.
func (a *appSet) pick(ids appIDs) (*tenant, error) {
	if a.byID == nil {
		tn := a.tenants[0]
		if ids.mismatch(tn.creds.AppID) {
			return nil, errAppIDMismatch
		}
		return tn, nil
	}
	switch {
	case !ids.given:
		return nil, errAppIDMissing
	case ids.conflict:
		return nil, errAppIDRepeated
	}
	tn := a.byID[ids.value]
	if tn == nil {
		return nil, errAppIDUnknown
	}
	return tn, nil
}

// label is the app_id label of a request's metrics: its app's, if known;
// for a handler of several apps, "" until the request's app is known (the
// label never holds an app_id a client made up).
func (a *appSet) label(tn *tenant) string {
	if tn == nil {
		if a.byID != nil {
			return ""
		}
		tn = a.tenants[0]
	}
	return tn.creds.AppID
}

// tenant is one app a handler signs for, with its registration in the
// process's ticket cache.
type tenant struct {
	creds    tickets.Credentials // expanded; creds.Secret is never logged
	tickets  *tickets.Handle
	signed   prometheus.Counter // requests_total for this app's signed requests
	orderKey []byte             // keys the order_no hashes in debug logs
	logger   *zap.Logger        // the handler's
}

// String describes tn without its secret: fmt prints unexported fields raw,
// so the Credentials' own redaction does not cover tn.
func (tn tenant) String() string { return "webanksign.tenant{" + tn.creds.String() + "}" }

// GoString is String, for %#v.
func (tn tenant) GoString() string { return tn.String() }

// orderHash returns a short keyed hash of an order number, so that logs can
// correlate requests without holding the number itself (order numbers are
// guessable, so the hash is keyed with a key derived from the secret).
func (tn *tenant) orderHash(orderNo string) string {
	m := hmac.New(sha256.New, tn.orderKey)
	m.Write([]byte(orderNo))
	return hex.EncodeToString(m.Sum(nil)[:6])
}
