package webanksign

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the module's endpoints on Caddy's admin API:
//
//	GET  /webank_sign/status                per app: state, ticket age and remaining life,
//	                                        next refresh, last error, generation, who fetched it,
//	                                        and a short fingerprint of the ticket (never a value)
//	POST /webank_sign/refresh?app_id=<id>   replace the app's ticket with one made with a new
//	                                        token, through the usual single fetch and storage
//	                                        lock; refused (429) within a minute of the last
//
// Caddy loads it on its own: there is nothing to configure.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webank_sign",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/webank_sign/status", Handler: caddy.AdminHandlerFunc(a.handleStatus)},
		{Pattern: "/webank_sign/refresh", Handler: caddy.AdminHandlerFunc(a.handleRefresh)},
	}
}

// statusBody is the answer of both endpoints.
type statusBody struct {
	Apps []tickets.AppStatus `json:"apps"`
}

func (adminAPI) handleStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed: use GET")}
	}
	apps := []tickets.AppStatus{}
	if c := loadedCache(); c != nil {
		apps = c.Status()
	}
	return writeJSON(w, http.StatusOK, statusBody{apps})
}

func (adminAPI) handleRefresh(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed: use POST")}
	}
	appID := r.URL.Query().Get("app_id")
	if appID == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("app_id is required")}
	}
	c := loadedCache()
	if c == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no webank_sign handler signs for app_id %q", appID)}
	}
	found, err := c.ForceRefresh(r.Context(), appID)
	var tooSoon *tickets.TooSoonError
	switch {
	case !found:
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no webank_sign handler signs for app_id %q", appID)}
	case errors.As(err, &tooSoon):
		w.Header().Set("Retry-After", strconv.Itoa(int(tooSoon.RetryIn.Seconds())+1))
		return caddy.APIError{HTTPStatus: http.StatusTooManyRequests, Err: err}
	case errors.Is(err, context.Canceled):
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusBadGateway, Err: fmt.Errorf("refreshing: %w", err)}
	}
	var apps []tickets.AppStatus
	for _, st := range c.Status() {
		if st.AppID == appID {
			apps = append(apps, st)
		}
	}
	return writeJSON(w, http.StatusOK, statusBody{apps})
}

var (
	_ caddy.AdminRouter = adminAPI{}
)
