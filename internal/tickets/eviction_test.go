package tickets

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

// evictionFixture is a cache of two apps' room (or size), without storage, in front
// of a fake WeBank that knows three apps.
type evictionFixture struct {
	clock   *testClock
	fake    *webanktest.Server
	cache   *Cache
	handles []*Handle
	keys    []string
}

func newEvictionFixture(t *testing.T) *evictionFixture {
	t.Helper()
	return newEvictionFixtureOfSize(t, 2)
}

func newEvictionFixtureOfSize(t *testing.T, size int) *evictionFixture {
	t.Helper()
	clock := newTestClock()
	apps := map[string]string{"IDAEV1": "s1", "IDAEV2": "s2", "IDAEV3": "s3"}
	fake := webanktest.NewServer(webanktest.Options{Apps: apps, Now: clock.Now})
	t.Cleanup(fake.Close)
	c := newTestCache(t, size, clock)
	f := &evictionFixture{clock: clock, fake: fake, cache: c}
	for i := 1; i <= 3; i++ {
		h, err := c.Register(Config{
			Credentials: Credentials{AppID: fmt.Sprintf("IDAEV%d", i), Secret: fmt.Sprintf("s%d", i), BaseURL: fake.URL},
			Refresh:     testRefresh, Timeout: 5 * time.Second, Logger: zaptest.NewLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		f.handles = append(f.handles, h)
		f.keys = append(f.keys, h.key)
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
	// Requests for busy, by the lock-free path.
	for range 3 {
		f.clock.Advance(2 * time.Second)
		if f.handles[0].cached() == nil {
			t.Fatal("no cached ticket for the busy app")
		}
	}
	evicted0 := counterValue(t, f.cache.metrics.evictions)
	if _, err := f.cache.ticket(context.Background(), third); err != nil {
		t.Fatal(err)
	}
	if f.cache.peek(busy) == nil || f.cache.peek(idle) != nil {
		t.Errorf("after a third app: busy in cache %v, idle in cache %v; want the idle one evicted",
			f.cache.peek(busy) != nil, f.cache.peek(idle) != nil)
	}
	if got := counterValue(t, f.cache.metrics.evictions) - evicted0; got != 1 {
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

// TestEvictionDuringFailingFetch checks that a fetch that fails after its
// app was evicted still backs the app off: the failure is not written into
// an entry nothing reads any more.
func TestEvictionDuringFailingFetch(t *testing.T) {
	f := newEvictionFixture(t)
	held := f.keys[0]
	fetcher := f.cache.fetcher.(*testFetcher)
	fetcher.heldApp, fetcher.entered, fetcher.outcome = "IDAEV1", make(chan struct{}), make(chan error)
	done := make(chan error)
	go func() {
		_, err := f.cache.ticket(context.Background(), held)
		done <- err
	}()
	<-fetcher.entered // the held app's fetch is under way, its entry in the cache
	for _, k := range f.keys[1:] {
		if _, err := f.cache.ticket(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	if f.cache.peek(held) != nil {
		t.Fatal("the app whose fetch is under way was not evicted")
	}
	fetcher.outcome <- &FetchError{Step: "access token", Class: "http_status", Msg: "HTTP 500"}
	if err := <-done; err == nil {
		t.Fatal("the failed fetch returned a ticket")
	}
	calls := f.fake.TokenCalls()
	_, err := f.cache.ticket(context.Background(), held)
	var be *backoffError
	if !errors.As(err, &be) {
		t.Errorf("the next request after the failure: %v, want the backoff to hold", err)
	}
	if got := f.fake.TokenCalls() - calls; got != 0 {
		t.Errorf("token calls during the backoff = %d, want 0", got)
	}
}

// TestEvictionKeepsForcedLimit checks that forced refreshes stay limited to
// one a minute per app however the apps push each other out of the cache.
func TestEvictionKeepsForcedLimit(t *testing.T) {
	f := newEvictionFixtureOfSize(t, 1) // every refresh evicts the app before
	accepted := 0
	for round := 0; round < 4; round++ {
		for i := 1; i <= 3; i++ {
			found, err := f.cache.ForceRefresh(context.Background(), fmt.Sprintf("IDAEV%d", i))
			var tooSoon *TooSoonError
			switch {
			case !found:
				t.Fatalf("IDAEV%d not found", i)
			case err == nil:
				accepted++
			case !errors.As(err, &tooSoon):
				t.Fatalf("IDAEV%d: %v", i, err)
			}
		}
	}
	if accepted != 3 {
		t.Errorf("forced refreshes accepted within a minute = %d, want 3 (one per app)", accepted)
	}
	if got := f.fake.TokenCalls(); got != 3 {
		t.Errorf("token calls = %d, want 3", got)
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
