package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Credentials identify an app at WeBank.
type Credentials struct {
	AppID   string
	Secret  string // never logged
	BaseURL string // scheme and host of WeBank's oauth2 endpoints, without a trailing slash
}

// String describes c without its secret.
func (c Credentials) String() string { return "app_id " + c.AppID + " at " + c.BaseURL }

// GoString describes c without its secret, for %#v.
func (c Credentials) GoString() string {
	return `tickets.Credentials{AppID: "` + c.AppID + `", BaseURL: "` + c.BaseURL + `", Secret: (redacted)}`
}

// MarshalJSON describes c without its secret: a safety net, since nothing
// should marshal credentials.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		AppID   string `json:"app_id"`
		BaseURL string `json:"base_url"`
		Secret  string `json:"secret"`
	}{c.AppID, c.BaseURL, "(redacted)"})
}

// Fetcher talks to WeBank's oauth2 endpoints for the cache. Each call must
// honour ctx. Errors should be *FetchError, and must never hold the secret,
// a token or a ticket: they are shown in logs, statuses and client answers.
type Fetcher interface {
	// Token fetches a new access token and its life. WeBank retires the
	// app's previous token, and every ticket made with it, about a minute
	// later.
	Token(ctx context.Context, c Credentials) (value string, life time.Duration, err error)

	// Ticket fetches a SIGN ticket made with token, and its life.
	Ticket(ctx context.Context, c Credentials, token string) (value string, life time.Duration, err error)

	// Nonce fetches a NONCE ticket made with token for the user userID,
	// and its life: good for one launch by that user (docs/protocol.md §4).
	Nonce(ctx context.Context, c Credentials, token, userID string) (value string, life time.Duration, err error)
}

// FetchError says why a Fetcher could not get a token or ticket. Its text is
// safe to show.
type FetchError struct {
	Step  string // "access token", "SIGN ticket" or "NONCE ticket"
	Class string // transport, timeout, http_status, code or malformed
	Code  string // with Class "code": the code WeBank answered
	Msg   string
}

func (e *FetchError) Error() string { return "fetching " + e.Step + ": " + e.Msg }

// errClass names the kind of a fetch error for statuses, events and metrics.
func errClass(err error) string {
	var fe *FetchError
	switch {
	case errors.As(err, &fe):
		return fe.Class
	case errors.Is(err, errLockTimeout):
		return "lock_timeout"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "other"
	}
}
