package webanksign

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// The module's Prometheus metrics, prefixed caddy_webank_sign_. Like Caddy's
// own reverse_proxy metrics, the collectors are made once per process and
// registered into each config's registry, so their values survive reloads.
// No label ever holds a secret or an order number.
var metrics = struct {
	requests        *prometheus.CounterVec
	retries         *prometheus.CounterVec
	refreshes       *prometheus.CounterVec
	refreshDuration *prometheus.HistogramVec
	storageErrors   prometheus.Counter
	evictions       prometheus.Counter
	lockWait        prometheus.Histogram
}{
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "requests_total",
		Help: "Requests seen by webank_sign, by outcome: signed (passed on), rejected (answered here for bad input, with its status), unavailable (no ticket) or upstream_failed (signed, but WeBank could not be reached).",
	}, []string{"app_id", "outcome", "status"}),
	retries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "retries_total",
		Help: "Answers from WeBank with a retry code, by what followed: retried, not_retried (ticket dropped too recently) or no_ticket.",
	}, []string{"app_id", "result"}),
	refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "refreshes_total",
		Help: "Ticket refreshes, by kind (scheduled, on_demand, forced), result (fetched, adopted, failed) and, for failures, the error class.",
	}, []string{"app_id", "kind", "result", "reason"}),
	refreshDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "refresh_duration_seconds",
		Help:    "How long ticket refreshes took, storage lock included, by kind.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
	}, []string{"kind"}),
	storageErrors: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "storage_errors_total",
		Help: "Failed reads and writes of the ticket record and its lock in Caddy's storage.",
	}),
	evictions: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "evictions_total",
		Help: "Apps pushed out of the ticket cache by more recently used ones (see the global option cache_size); an evicted app gets its ticket back from storage on its next request.",
	}),
	lockWait: prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "webank_sign", Name: "lock_wait_seconds",
		Help:    "How long refreshes waited for the storage lock.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}),
}

// ticketLifeDesc describes the remaining life of each app's ticket, read
// from the cache when Prometheus scrapes.
var ticketLifeDesc = prometheus.NewDesc("caddy_webank_sign_ticket_remaining_seconds",
	"Seconds until the app's current SIGN ticket stops being used; 0 if it has none.",
	[]string{"app_id", "base_url"}, nil)

// lifeCollector reports ticketLifeDesc from the process's ticket cache.
type lifeCollector struct{}

func (lifeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ticketLifeDesc }

func (lifeCollector) Collect(ch chan<- prometheus.Metric) {
	tickets.Range(func(_, v any) bool {
		for _, st := range v.(*ticketCache).status() {
			ch <- prometheus.MustNewConstMetric(ticketLifeDesc, prometheus.GaugeValue, st.RemainingLife, st.AppID, st.BaseURL)
		}
		return true
	})
}

// registerMetrics registers the module's collectors into a config's
// registry; registering them again into the same one is fine.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		metrics.requests, metrics.retries, metrics.refreshes, metrics.refreshDuration,
		metrics.storageErrors, metrics.evictions, metrics.lockWait, lifeCollector{},
	} {
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return err
		}
	}
	return nil
}
