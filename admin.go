package webanksign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
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
	Apps []appStatus `json:"apps"`
}

func (adminAPI) handleStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed: use GET")}
	}
	apps := []appStatus{}
	if c := currentCache(); c != nil {
		apps = c.status()
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
	c := currentCache()
	if c == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no webank_sign handler signs for app_id %q", appID)}
	}
	found, err := c.forceRefresh(r.Context(), appID)
	var tooSoon *tooSoonError
	switch {
	case !found:
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no webank_sign handler signs for app_id %q", appID)}
	case errors.As(err, &tooSoon):
		w.Header().Set("Retry-After", strconv.Itoa(int(tooSoon.retryIn.Seconds())+1))
		return caddy.APIError{HTTPStatus: http.StatusTooManyRequests, Err: err}
	case errors.Is(err, context.Canceled):
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusBadGateway, Err: fmt.Errorf("refreshing: %w", err)}
	}
	var apps []appStatus
	for _, st := range c.status() {
		if st.AppID == appID {
			apps = append(apps, st)
		}
	}
	return writeJSON(w, http.StatusOK, statusBody{apps})
}

// currentCache returns the process's ticket cache, or nil if no loaded
// config uses webank_sign.
func currentCache() *ticketCache {
	var c *ticketCache
	tickets.Range(func(_, v any) bool {
		c = v.(*ticketCache)
		return false
	})
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

var (
	_ caddy.AdminRouter = adminAPI{}
)
