package tickets

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// cacheFixture is a ticket cache on an injected clock, registered for one
// app, in front of a fake WeBank on the same clock. The background
// refresher is off: tests call dueKeys and refreshScheduled themselves.
type cacheFixture struct {
	clock *testClock
	fake  *webanktest.Server
	cache *Cache
	h     *Handle
	key   string
}

func newCacheFixture(t *testing.T, opts webanktest.Options) *cacheFixture {
	t.Helper()
	clock := newTestClock()
	opts.Apps = map[string]string{testAppID: testSecret}
	opts.Now = clock.Now
	fake := webanktest.NewServer(opts)
	t.Cleanup(fake.Close)
	c := newTestCache(t, 16, clock)
	h, err := c.Register(Config{
		Credentials: Credentials{AppID: testAppID, Secret: testSecret, BaseURL: fake.URL},
		Refresh:     testRefresh, Timeout: 5 * time.Second, Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &cacheFixture{clock, fake, c, h, h.key}
}

func (f *cacheFixture) ticket(t *testing.T) *Ticket {
	t.Helper()
	tk, err := f.cache.ticket(context.Background(), f.key)
	if err != nil {
		t.Fatalf("ticket: %v", err)
	}
	return tk
}

func (f *cacheFixture) wantCalls(t *testing.T, tokens int64) {
	t.Helper()
	wantCalls(t, f.fake, tokens, tokens)
}

func TestNewTicketSchedule(t *testing.T) {
	t0 := newTestClock().Now()
	tests := []struct {
		name                     string
		tokenLife, life, refresh time.Duration
		wantRefresh, wantUntil   time.Duration
	}{
		{"documented lifetimes", 2 * time.Hour, time.Hour, 20 * time.Minute, 20 * time.Minute, time.Hour - 30*time.Second},
		{"short expire_in wins over refresh", 2 * time.Hour, 10 * time.Minute, 20 * time.Minute, 450 * time.Second, 9*time.Minute + 30*time.Second},
		{"seconds-long test lifetimes", 2 * time.Second, 2 * time.Second, time.Second, time.Second, 1800 * time.Millisecond},
		{"refresh longer than life", 2 * time.Second, 2 * time.Second, time.Minute, 1500 * time.Millisecond, 1800 * time.Millisecond},
		{"the token ends first", 10 * time.Minute, time.Hour, 20 * time.Minute, 450 * time.Second, 9*time.Minute + 30*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := &accessToken{value: "tok", gen: 1, fetched: t0, life: tt.tokenLife}
			tk := newTicket("v", t0, tt.life, tok, tt.refresh)
			if got := tk.refreshAt.Sub(t0); got != tt.wantRefresh {
				t.Errorf("refresh after %v, want %v", got, tt.wantRefresh)
			}
			if got := tk.expires.Sub(t0); got != tt.wantUntil {
				t.Errorf("usable for %v, want %v", got, tt.wantUntil)
			}
		})
	}
}

func TestCacheFetchesOnFirstUseOnly(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	f.wantCalls(t, 0) // registering fetches nothing
	first := f.ticket(t)
	f.clock.Advance(19 * time.Minute)
	if again := f.ticket(t); again != first {
		t.Errorf("a second request got another ticket")
	}
	f.wantCalls(t, 1)
}

func TestCacheScheduledRefresh(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	first := f.ticket(t)
	f.clock.Advance(20*time.Minute - time.Second)
	due, _, next := f.cache.dueKeys(f.clock.Now())
	if len(due) != 0 || next.Sub(f.clock.Now()) != time.Second {
		t.Fatalf("dueKeys a second early = %v, next in %v; want none, next in 1s", due, next.Sub(f.clock.Now()))
	}
	f.clock.Advance(time.Second)
	if due, _, _ := f.cache.dueKeys(f.clock.Now()); len(due) != 1 || due[0] != f.key {
		t.Fatalf("dueKeys at 20m = %v, want the app", due)
	}
	f.cache.refreshScheduled(f.key)
	f.wantCalls(t, 2)
	if second := f.ticket(t); second.value == first.value {
		t.Errorf("refresh kept the old ticket")
	}
	// Refreshing again right away does nothing: the ticket is fresh.
	f.cache.refreshScheduled(f.key)
	f.wantCalls(t, 2)
}

// A failing refresh keeps the current ticket in service until it expires,
// retries with doubling backoff, and once the ticket has expired requests
// get an error at once during the backoff instead of a fetch each.
func TestCacheRefreshFailure(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	first := f.ticket(t)
	f.clock.Advance(20 * time.Minute)
	f.fake.SetFault(webanktest.TokenEndpoint, webanktest.Fault{Status: 500})

	for i, wantBackoff := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		f.cache.refreshScheduled(f.key)
		if got := f.fake.TokenCalls(); got != int64(2+i) {
			t.Fatalf("after failed refresh %d: token calls = %d, want %d", i+1, got, 2+i)
		}
		if tk := f.ticket(t); tk != first {
			t.Fatalf("after failed refresh %d: requests no longer get the current ticket", i+1)
		}
		due, _, next := f.cache.dueKeys(f.clock.Now())
		if len(due) != 0 || next.Sub(f.clock.Now()) != wantBackoff {
			t.Fatalf("after failed refresh %d: due %v, next in %v; want the retry in %v", i+1, due, next.Sub(f.clock.Now()), wantBackoff)
		}
		f.clock.Advance(wantBackoff)
	}

	// The ticket expires while WeBank is still failing.
	f.clock.Advance(first.expires.Sub(f.clock.Now()))
	calls := f.fake.TokenCalls()
	_, err := f.cache.ticket(context.Background(), f.key)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Class != "http_status" {
		t.Fatalf("ticket after expiry = %v, want the fetch error", err)
	}
	if f.fake.TokenCalls() != calls+1 {
		t.Fatalf("an expired ticket did not make the request fetch")
	}
	var be *backoffError
	if _, err := f.cache.ticket(context.Background(), f.key); !errors.As(err, &be) {
		t.Fatalf("ticket during backoff = %v, want a backoffError", err)
	}
	if f.fake.TokenCalls() != calls+1 {
		t.Errorf("a request during the backoff fetched")
	}

	f.fake.ClearFaults()
	f.clock.Advance(backoffMax)
	if tk := f.ticket(t); tk.value == first.value {
		t.Errorf("recovered with the old ticket")
	}
	if due, _, _ := f.cache.dueKeys(f.clock.Now()); len(due) != 0 {
		t.Errorf("after recovery, due = %v, want none", due)
	}
}

func TestCacheStampedeFetchesOnce(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	const n = 100
	holdFetchUntil(f.cache, n)
	var wg sync.WaitGroup
	got := make([]*Ticket, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = f.cache.ticket(context.Background(), f.key)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("caller %d: %v, or a different ticket", i, errs[i])
		}
	}
	f.wantCalls(t, 1)
}

// A caller that gives up does not cancel the fetch for the others.
func TestCacheWaiterGivingUpDoesNotCancelFetch(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	holdFetchUntil(f.cache, 2) // the one who gives up, and the one who waits
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.cache.ticket(gone, f.key); !errors.Is(err, context.Canceled) {
		t.Fatalf("ticket with a cancelled context = %v, want context.Canceled", err)
	}
	f.ticket(t) // joins the fetch the first caller started
	f.wantCalls(t, 1)
}

func TestCacheInvalidate(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	t1 := f.ticket(t)
	if !f.h.Invalidate(t1) {
		t.Fatal("invalidate(t1) = false, want true")
	}
	t2 := f.ticket(t)
	f.wantCalls(t, 2)
	if t2.value == t1.value {
		t.Fatal("invalidated ticket served again")
	}
	if !f.h.Invalidate(t1) {
		t.Error("invalidate of an already replaced ticket = false, want true (retry with the new one)")
	}
	if f.h.Invalidate(t2) {
		t.Error("a second drop within the guard interval was allowed")
	}
	if f.ticket(t) != t2 {
		t.Error("refused drop still dropped the ticket")
	}
	f.clock.Advance(minForcedInterval)
	if !f.h.Invalidate(t2) {
		t.Error("drop after the guard interval refused")
	}
	f.ticket(t)
	f.wantCalls(t, 3)
}

func TestCacheRegistration(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	f.cache.registry.mu.Lock()
	first := f.cache.apps[f.key].regs[0]
	f.cache.registry.mu.Unlock()
	cfg := *first
	cfg.refresh = time.Hour
	second := f.cache.register(f.key, cfg) // a second handler for the same app
	if got, _ := f.cache.app(f.key); got.refresh != time.Hour {
		t.Errorf("the latest registration is not followed")
	}
	f.ticket(t)
	f.cache.unregister(f.key, second)
	if got, _ := f.cache.app(f.key); got.refresh != testRefresh {
		t.Errorf("after the latest handler left, refresh = %v, want the remaining handler's", got.refresh)
	}
	f.ticket(t) // still registered once
	f.wantCalls(t, 1)
	f.cache.unregister(f.key, second) // twice: no effect
	f.ticket(t)
	f.cache.unregister(f.key, first)
	if _, err := f.cache.ticket(context.Background(), f.key); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("ticket after the last unregister = %v, want ErrNotRegistered", err)
	}
}

func TestAppKey(t *testing.T) {
	base := Credentials{AppID: "IDA1", Secret: "s1", BaseURL: "https://a"}
	for _, other := range []Credentials{
		{AppID: "IDA2", Secret: "s1", BaseURL: "https://a"},
		{AppID: "IDA1", Secret: "s2", BaseURL: "https://a"},
		{AppID: "IDA1", Secret: "s1", BaseURL: "https://b"},
	} {
		if appKey(other) == appKey(base) {
			t.Errorf("appKey(%v) = appKey(%v)", other.AppID+" "+other.BaseURL, base.AppID+" "+base.BaseURL)
		}
	}
	if appKey(base) != appKey(Credentials{AppID: "IDA1", Secret: "s1", BaseURL: "https://a"}) {
		t.Error("appKey is not stable")
	}
}

// The refresher goroutine, on real time, replaces a short-lived ticket by
// itself, and Close stops it and every fetch.
func TestCacheRefresherRunsAndStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fake := webanktest.NewServer(webanktest.Options{
		Apps:     map[string]string{testAppID: testSecret},
		TokenTTL: 2 * time.Second, TicketTTL: 2 * time.Second,
	})
	defer fake.Close()
	c := New(16, new(testFetcher))
	creds := Credentials{AppID: testAppID, Secret: testSecret, BaseURL: fake.URL}
	key := appKey(creds)
	c.register(key, appConfig{creds: creds, refresh: 200 * time.Millisecond, timeout: 5 * time.Second, logger: zaptest.NewLogger(t)})
	first, err := c.ticket(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	// Poll until the cached ticket is replaced: nothing but the refresher
	// fetches here.
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, ok := c.entries.Peek(key)
		if ok && e.cur.Load() != nil && e.cur.Load() != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refresher did not replace the ticket within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()
	// goleak (deferred) fails the test if the refresher or a fetch lives on.
}

// An entry that leaves the cache (evicted for another app, or its app
// unregistered) is marked gone, so that a handler holding it for the
// lock-free path looks it up again instead of trusting a ticket no longer
// kept current.
func TestEntryGoneOnEviction(t *testing.T) {
	c := newTestCache(t, 1, nil)
	first := c.entry("app-1")
	c.entry("app-2") // evicts app-1: the cache holds one app
	if !first.gone.Load() {
		t.Error("the evicted entry is not marked gone")
	}
	second := c.peek("app-2")
	cfg := appConfig{creds: Credentials{AppID: "IDA2"}}
	reg := c.register("app-2", cfg)
	c.unregister("app-2", reg)
	if !second.gone.Load() || c.peek("app-2") != nil {
		t.Error("the unregistered app's entry is not removed and marked gone")
	}
}

// A ticket capped when a newer token became known is a new copy of the
// same ticket: WeBank rejecting the original still drops it.
func TestInvalidateCappedTicket(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	t1 := f.ticket(t)
	e := f.cache.peek(f.key)
	e.learnToken(&accessToken{value: "peer-token", gen: t1.token.gen + 1, fetched: f.clock.Now(), life: time.Hour})
	if capped := e.cur.Load(); capped == t1 || capped.value != t1.value {
		t.Fatal("learning a newer token did not cap the current ticket")
	}
	if !f.h.Invalidate(t1) || e.cur.Load() != nil {
		t.Error("the capped copy of the rejected ticket was not dropped")
	}
}

// A ticket made with an older token than the newest known (fetched outside
// the lock while a peer rotated) is installed capped to that token's
// retirement, not for its full life.
func TestInstallCapsTicketOfOlderToken(t *testing.T) {
	now := newTestClock().Now()
	e := &entry{app: new(appState)}
	newest := &accessToken{value: "new", gen: 5, fetched: now, life: 2 * time.Hour}
	e.learnToken(newest)
	old := newTicket("old-ticket", now, time.Hour, &accessToken{value: "old", gen: 4, fetched: now, life: 2 * time.Hour}, testRefresh)
	got := e.install(old)
	if got.value != "old-ticket" || got.expires.After(retireAt(newest)) {
		t.Errorf("installed until %v, want at most %v", got.expires.Sub(now), retireAt(newest).Sub(now))
	}
}

// WeBank's rejection of a ticket reaches the app's state even after the
// handle was released (a request in flight across a reload) or the app
// evicted: the retry never signs again with the rejected ticket.
func TestInvalidateAfterRelease(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	t1, err := f.h.Ticket(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.h.Release()
	if got, err := f.h.Ticket(context.Background()); err != nil || got != t1 {
		t.Fatalf("a released handle's in-flight request: %v, want the ticket it knew", err)
	}
	if !f.h.Invalidate(t1) {
		t.Fatal("Invalidate after release = false, want true")
	}
	if got, err := f.h.Ticket(context.Background()); err == nil && got.value == t1.value {
		t.Error("after WeBank rejected it, the released handle still signs with the ticket")
	}
}
