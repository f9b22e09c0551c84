package webanksign

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// evictionFixture is a cache of two apps' room, without storage, in front
// of a fake WeBank that knows three apps.
type evictionFixture struct {
	clock *testClock
	fake  *webanktest.Server
	cache *ticketCache
	keys  []string
}

func newEvictionFixture(t *testing.T) *evictionFixture {
	t.Helper()
	clock := newTestClock()
	apps := map[string]string{"IDAEV1": "s1", "IDAEV2": "s2", "IDAEV3": "s3"}
	fake := webanktest.NewServer(webanktest.Options{Apps: apps, Now: clock.Now})
	t.Cleanup(fake.Close)
	c := newTicketCache(2)
	c.now = clock.Now
	c.jitter = func(d time.Duration) time.Duration { return d }
	c.autoRefresh = false
	t.Cleanup(func() { _ = c.Destruct() })
	f := &evictionFixture{clock: clock, fake: fake, cache: c}
	for i := 1; i <= 3; i++ {
		creds := credentials{appID: fmt.Sprintf("IDAEV%d", i), secret: fmt.Sprintf("s%d", i), baseURL: fake.URL}
		key := appKey(creds)
		c.register(key, appConfig{creds: creds, refresh: defaultRefresh, timeout: 5 * time.Second, logger: zaptest.NewLogger(t)})
		f.keys = append(f.keys, key)
	}
	return f
}

// TestEvictionFollowsRequests checks that the apps requests use stay in
// the cache and idle ones leave first, although requests read tickets
// without the LRU's lock.
func TestEvictionFollowsRequests(t *testing.T) {
	f := newEvictionFixture(t)
	busy, idle, third := f.keys[0], f.keys[1], f.keys[2]
	for _, k := range []string{busy, idle} {
		if _, err := f.cache.ticket(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	// Requests for busy, as the handler's hot path serves them.
	h := &Handler{cache: f.cache}
	tn := &tenant{key: busy}
	for range 3 {
		f.clock.Advance(2 * time.Second)
		if h.cachedTicket(tn) == nil {
			t.Fatal("no cached ticket for the busy app")
		}
	}
	evicted0 := counterValue(t, metrics.evictions)
	if _, err := f.cache.ticket(context.Background(), third); err != nil {
		t.Fatal(err)
	}
	if f.cache.peek(busy) == nil || f.cache.peek(idle) != nil {
		t.Errorf("after a third app: busy in cache %v, idle in cache %v; want the idle one evicted",
			f.cache.peek(busy) != nil, f.cache.peek(idle) != nil)
	}
	if got := counterValue(t, metrics.evictions) - evicted0; got != 1 {
		t.Errorf("evictions counted: %v, want 1", got)
	}
}

// TestEvictionKeepsBackoff checks that an app evicted while its fetches
// fail is still backed off from when it comes back: eviction never resets
// the limits on fetching.
func TestEvictionKeepsBackoff(t *testing.T) {
	f := newEvictionFixture(t)
	failing := f.keys[0]
	f.fake.SetFault(webanktest.TokenEndpoint, webanktest.Fault{Status: http.StatusInternalServerError})
	if _, err := f.cache.ticket(context.Background(), failing); err == nil {
		t.Fatal("a fetch against a failing endpoint succeeded")
	}
	f.fake.ClearFaults()
	calls := f.fake.TokenCalls()
	for _, k := range f.keys[1:] { // two other apps fill the cache: the failing one is evicted
		if _, err := f.cache.ticket(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	if f.cache.peek(failing) != nil {
		t.Fatal("the failing app was not evicted")
	}
	_, err := f.cache.ticket(context.Background(), failing)
	var be *backoffError
	if !errors.As(err, &be) {
		t.Errorf("the evicted app's next request: %v, want its backoff to hold", err)
	}
	if got := f.fake.TokenCalls() - calls; got != 2 {
		t.Errorf("token calls = %d, want 2 (the other apps' only)", got)
	}
	f.clock.Advance(backoffBase) // the backoff is over
	if _, err := f.cache.ticket(context.Background(), failing); err != nil {
		t.Errorf("after the backoff: %v", err)
	}
}

// counterValue reads a Prometheus counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
