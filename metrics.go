package webanksign

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// The handler's Prometheus metrics, prefixed caddy_webank_sign_; the ticket
// cache has its own (internal/tickets/metrics.go). Like Caddy's own
// reverse_proxy metrics, these collectors are made once per process and
// registered into each config's registry, so their values survive reloads.
// No label ever holds a secret, an order number, or a value a client chose.
var metrics = struct {
	requests *prometheus.CounterVec
	retries  *prometheus.CounterVec
}{
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "requests_total",
		Help: "Requests seen by webank_sign, each counted once, by how it ended: signed (WeBank's answer passed on), rejected (answered here for bad input, with its status), unavailable (no ticket), upstream_failed (signed, but WeBank's answer did not get through: with the status answered, 502 or 504, or none if the answer broke off after it had begun) or client_gone (the client left before its answer: while the ticket was fetched or WeBank was asked).",
	}, []string{"app_id", "outcome", "status"}),
	retries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "retries_total",
		Help: "Answers from WeBank with a retry code, by what followed: retried, not_retried (ticket dropped too recently) or no_ticket.",
	}, []string{"app_id", "result"}),
}

// The outcomes of requests_total, besides signed (WeBank's answer was
// passed on; counted through tenant.signed). Each request is counted once,
// when it ends.
const (
	outcomeRejected       = "rejected"        // refused here (refusal.go)
	outcomeUnavailable    = "unavailable"     // no ticket could be had
	outcomeUpstreamFailed = "upstream_failed" // WeBank's answer did not get through
	outcomeClientGone     = "client_gone"     // no answer was owed: the client left first
)

// countRequest counts a request for tn's app by how it ended, and the status
// it was answered with ("" if none was answered here).
func countRequest(tn *tenant, outcome, status string) {
	metrics.requests.WithLabelValues(tn.creds.AppID, outcome, status).Inc()
}

// registerMetrics registers the handler's collectors and the ticket cache's
// into a config's registry; registering them again into the same one is
// fine.
func registerMetrics(reg *prometheus.Registry, cache *tickets.Cache) error {
	if reg == nil {
		return nil
	}
	for _, c := range append([]prometheus.Collector{metrics.requests, metrics.retries}, cache.Collectors()...) {
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return err
		}
	}
	return nil
}
