package tickets

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// TestTicketLifeOneSamplePerLabelSet checks the ticket life gauge while a
// reload that changes an app's secret has the old and the new registration
// side by side: two cache keys with the same app_id and base_url. The gauge
// gives one sample for them, the longest remaining life, so that gathering
// the registry (the whole of /metrics) does not fail.
func TestTicketLifeOneSamplePerLabelSet(t *testing.T) {
	clock := newTestClock()
	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret}, Now: clock.Now})
	t.Cleanup(fake.Close)
	c := newTestCache(t, 10, clock)
	register := func(secret string) *Handle {
		t.Helper()
		h, err := c.Register(Config{
			Credentials: Credentials{AppID: testAppID, Secret: secret, BaseURL: fake.URL},
			Refresh:     testRefresh, Timeout: 5 * time.Second, Logger: zaptest.NewLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Release)
		return h
	}
	current := register(testSecret)
	register("the-secret-before-the-reload") // no ticket: 0 left
	tk, err := current.Ticket(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantLife := tk.expires.Sub(clock.Now()).Seconds()

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v, want no error", err)
	}
	var lives []float64
	for _, mf := range families {
		if mf.GetName() != "caddy_webank_sign_ticket_remaining_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			lives = append(lives, m.GetGauge().GetValue())
		}
	}
	if len(lives) != 1 || lives[0] != wantLife {
		t.Errorf("ticket_remaining_seconds samples = %v, want one, %v (the longer life)", lives, wantLife)
	}
}
