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
	local    *prometheus.CounterVec
}{
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "requests_total",
		Help: "Requests seen by webank_sign, each counted once, by how it ended: signed (WeBank's answer passed on), rejected (answered here for bad input, with its status), unavailable (no ticket), upstream_failed (signed, but WeBank's answer did not get through: with the status answered, 502 or 504, or none if the answer broke off after it had begun) or client_gone (the client left before its answer: while the ticket was fetched or WeBank was asked).",
	}, []string{"app_id", "outcome", "status"}),
	retries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "retries_total",
		Help: "Answers from WeBank with a retry code, by what followed: retried, not_retried (ticket dropped too recently) or no_ticket.",
	}, []string{"app_id", "result"}),
	local: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "local_requests_total",
		Help: "Requests answered by webank_sign_local, by endpoint (sdk_sign, h5_login_url, verify; \"\" for an unknown one) and how they ended: answered, rejected (bad input), unavailable (no ticket), busy (too many launches waiting) or client_gone.",
	}, []string{"app_id", "endpoint", "outcome"}),
}

// The outcomes of requests_total, besides signed (WeBank's answer was
// passed on; counted through tenant.signed). Each request is counted once,
// when it ends.
const (
	outcomeRejected       = "rejected"        // refused here (refusal.go)
	outcomeUnavailable    = "unavailable"     // no ticket could be had
	outcomeUpstreamFailed = "upstream_failed" // WeBank's answer did not get through
	outcomeClientGone     = "client_gone"     // no answer was owed: the client left first

	// webank_sign_local's own.
	outcomeAnswered = "answered" // answered: a launch signed, a signature checked
	outcomeBusy     = "busy"     // too many launches were waiting for a NONCE ticket
)

// countRequest counts a request for tn's app by how it ended, and the status
// it was answered with ("" if none was answered here).
func countRequest(tn *tenant, outcome, status string) {
	metrics.requests.WithLabelValues(tn.creds.AppID, outcome, status).Inc()
}

// countLocal counts a request to webank_sign_local.
func countLocal(appID, endpoint, outcome string) {
	metrics.local.WithLabelValues(appID, endpoint, outcome).Inc()
}

// registerMetrics registers the handler's collectors and the ticket cache's
// into a config's registry; registering them again into the same one is
// fine.
func registerMetrics(reg *prometheus.Registry, cache *tickets.Cache) error {
	if reg == nil {
		return nil
	}
	for _, c := range append([]prometheus.Collector{metrics.requests, metrics.retries, metrics.local}, cache.Collectors()...) {
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return err
		}
	}
	return nil
}
