package tickets

import "github.com/prometheus/client_golang/prometheus"

// cacheMetrics are the cache's Prometheus collectors, prefixed
// caddy_webank_sign_. They belong to the cache, which outlives config
// reloads, so their values do too. No label ever holds a secret.
type cacheMetrics struct {
	refreshes       *prometheus.CounterVec
	refreshDuration *prometheus.HistogramVec
	storageErrors   prometheus.Counter
	evictions       prometheus.Counter
	lockWait        prometheus.Histogram
	nonces          *prometheus.CounterVec
	callbacks       *prometheus.CounterVec
}

func newCacheMetrics() *cacheMetrics {
	return &cacheMetrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "webank_sign", Name: "refreshes_total",
			Help: "Ticket refreshes, by kind (scheduled, on_demand, forced, poll), result (fetched, adopted, failed) and, for failures, the error class.",
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
		nonces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "webank_sign", Name: "nonce_tickets_total",
			Help: "NONCE tickets asked for launches, by result (fetched, failed) and, for failures, the error class (queue_full when too many launches were waiting).",
		}, []string{"app_id", "result", "reason"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "webank_sign", Name: "callback_checks_total",
			Help: "Signatures of WeBank's result callbacks checked, by result: current (signed with the current SIGN ticket), previous (with the one it replaced, within the minute's overlap), stored (with a newer one a peer stored) or invalid.",
		}, []string{"app_id", "result"}),
	}
}

// ticketLifeDesc describes the remaining life of each app's ticket, read
// from the cache when Prometheus scrapes.
var ticketLifeDesc = prometheus.NewDesc("caddy_webank_sign_ticket_remaining_seconds",
	"Seconds until the app's current SIGN ticket stops being used; 0 if it has none.",
	[]string{"app_id", "base_url"}, nil)

// lifeCollector reports ticketLifeDesc from a cache's status: one sample
// per app_id and base_url. Registrations of one app with different secrets
// (the old and the new config during a reload that changes the secret) are
// different cache keys with the same labels, and a registry refuses two
// samples with the same labels, failing the whole gather; they are reported
// as one, with the longest remaining life among them.
type lifeCollector struct{ c *Cache }

func (lifeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ticketLifeDesc }

func (l lifeCollector) Collect(ch chan<- prometheus.Metric) {
	type labels struct{ appID, baseURL string }
	life := make(map[labels]float64)
	for _, st := range l.c.Status() {
		k := labels{st.AppID, st.BaseURL}
		life[k] = max(life[k], st.RemainingLife)
	}
	for k, v := range life {
		ch <- prometheus.MustNewConstMetric(ticketLifeDesc, prometheus.GaugeValue, v, k.appID, k.baseURL)
	}
}

// Collectors returns the cache's metrics, for a Prometheus registry.
func (c *Cache) Collectors() []prometheus.Collector {
	m := c.metrics
	return []prometheus.Collector{m.refreshes, m.refreshDuration, m.storageErrors, m.evictions, m.lockWait, m.nonces, m.callbacks, lifeCollector{c}}
}
