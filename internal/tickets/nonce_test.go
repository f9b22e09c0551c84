package tickets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// nonceFixture is a cache on real time, registered for one app with the
// given bounds on NONCE fetches, in front of a fake WeBank.
func nonceFixture(t *testing.T, limit, queue int, opts webanktest.Options) (*Handle, *webanktest.Server, *testFetcher) {
	t.Helper()
	opts.Apps = map[string]string{testAppID: testSecret}
	fake := webanktest.NewServer(opts)
	t.Cleanup(fake.Close)
	c := newTestCache(t, 16, nil)
	h, err := c.Register(Config{
		Credentials: Credentials{AppID: testAppID, Secret: testSecret, BaseURL: fake.URL},
		Refresh:     testRefresh, Timeout: 5 * time.Second, Logger: zaptest.NewLogger(t),
		RetryCodes: map[string]bool{"15": true}, NonceLimit: limit, NonceQueue: queue,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, fake, c.fetcher.(*testFetcher)
}

// Many launches at once, each for its own user: one token for all of them
// and a NONCE ticket each, bound to its user.
func TestNonceTicketsPerUserOneToken(t *testing.T) {
	h, fake, _ := nonceFixture(t, 0, 0, webanktest.Options{})
	const n = 50
	values := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			v, err := h.NonceTicket(context.Background(), fmt.Sprintf("user%03d", i))
			values[i] = v
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("NonceTicket: %v", err)
	}
	seen := make(map[string]bool)
	for _, v := range values {
		if v == "" || seen[v] {
			t.Fatalf("NONCE tickets are not one per launch: %d distinct of %d", len(seen), n)
		}
		seen[v] = true
	}
	if got := fake.TokenCalls(); got != 1 {
		t.Errorf("token calls = %d, want 1", got)
	}
	if got := fake.NonceTickets(); got != n {
		t.Errorf("NONCE ticket calls = %d, want %d", got, n)
	}
}

// Beyond the in-flight bound launches wait their turn; beyond the queue,
// one is refused at once.
func TestNonceQueueBounded(t *testing.T) {
	h, _, fetcher := nonceFixture(t, 1, 1, webanktest.Options{})
	if _, err := h.Ticket(context.Background()); err != nil { // the token first: only NONCE fetches are held
		t.Fatal(err)
	}
	fetcher.nonceGate, fetcher.nonceEntered = make(chan struct{}), make(chan struct{}, 3)
	queued := make(chan struct{}, 3)
	h.reg.nonces.queued = func() { queued <- struct{}{} }
	// Another registration of the app, made later with other bounds, does
	// not change this one's.
	if _, err := h.c.Register(Config{Credentials: h.reg.creds, Refresh: testRefresh, Timeout: 5 * time.Second,
		Logger: h.reg.logger, NonceLimit: 100, NonceQueue: 100}); err != nil {
		t.Fatal(err)
	}

	results := make(chan error, 3)
	launch := func(user string) {
		_, err := h.NonceTicket(context.Background(), user)
		results <- err
	}
	go launch("first")
	<-fetcher.nonceEntered // in flight
	go launch("second")
	<-queued // waiting its turn
	go launch("third")
	if err := <-results; !errors.Is(err, ErrNonceQueueFull) {
		t.Fatalf("third launch: %v, want ErrNonceQueueFull", err)
	}
	close(fetcher.nonceGate)
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("a launch within the bounds failed: %v", err)
		}
	}
}

// WeBank refusing the token for a NONCE ticket gets the app a new token
// through its one refresh, and the launch is tried once more.
func TestNonceTicketTokenRefused(t *testing.T) {
	// A superseded token dies at once: another party's token call kills
	// the cache's.
	h, fake, _ := nonceFixture(t, 0, 0, webanktest.Options{Grace: time.Nanosecond})
	if _, err := h.Ticket(context.Background()); err != nil {
		t.Fatal(err)
	}
	fake.RotateToken(testAppID) // not counted in TokenCalls
	if _, err := h.NonceTicket(context.Background(), "user1"); err != nil {
		t.Fatalf("NonceTicket after the token died: %v", err)
	}
	if got := fake.TokenCalls(); got != 2 {
		t.Errorf("token calls = %d, want 2 (the first, and the one replacing the dead one)", got)
	}
	// A second refusal within the minute is not chased with another token:
	// a launch that WeBank refuses for another reason must not rotate the
	// token in a loop.
	fake.RotateToken(testAppID)
	if _, err := h.NonceTicket(context.Background(), "user2"); err == nil {
		t.Fatal("NonceTicket succeeded with a dead token")
	}
	if got := fake.TokenCalls(); got != 2 {
		t.Errorf("token calls = %d, want 2: no new token within a minute of the last forced one", got)
	}
}

// A launch whose caller leaves while its NONCE ticket is being fetched
// is not a failure to fetch: the fetcher's error then reads as a transport
// failure (the real one's does), but no warning or nonce_ticket_failed
// event is raised for it, and it is counted as canceled. Otherwise any
// client could fill the logs and page the operator by hanging up.
func TestNonceTicketCallerLeaves(t *testing.T) {
	fake := webanktest.New(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	fake.SetFault(webanktest.NonceEndpoint, webanktest.Fault{Hang: true})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("type") == "NONCE" {
			arrived <- struct{}{}
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(fake.Close)
	var events []string
	var mu sync.Mutex
	c := newTestCache(t, 16, nil)
	h, err := c.Register(Config{
		Credentials: Credentials{AppID: testAppID, Secret: testSecret, BaseURL: srv.URL},
		Refresh:     testRefresh, Timeout: 5 * time.Second, Logger: zaptest.NewLogger(t),
		Emit: func(name string, _ map[string]any) {
			mu.Lock()
			events = append(events, name)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.NonceTicket(ctx, "user1")
		done <- err
	}()
	<-arrived
	cancel()
	if err := <-done; err == nil {
		t.Fatal("NonceTicket succeeded for a caller that left")
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(events, "nonce_ticket_failed") {
		t.Errorf("events %v: a caller that left raised nonce_ticket_failed", events)
	}
	m := &dto.Metric{}
	if err := c.metrics.nonces.WithLabelValues(testAppID, "failed", "canceled").Write(m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 1 {
		t.Errorf("nonce_tickets_total{result=failed,reason=canceled} = %v, want 1", got)
	}
}
