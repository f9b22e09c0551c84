package tickets

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// flakyStorage is a certmagic.Storage that fails every call while down is
// set, as a read-only directory or a Redis that went away would.
type flakyStorage struct {
	certmagic.Storage
	down  atomic.Bool
	hang  atomic.Bool  // calls block until their context ends, as a black-holed Redis would
	calls atomic.Int64 // Load, Store and Lock calls, failed or not

	locking chan struct{} // if set, told of every Lock call before it waits
}

func (s *flakyStorage) fail(ctx context.Context) error {
	if s.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.down.Load() {
		return errStorageDown
	}
	return nil
}

var errStorageDown = errors.New("storage down (test)")

func (s *flakyStorage) Load(ctx context.Context, key string) ([]byte, error) {
	s.calls.Add(1)
	if err := s.fail(ctx); err != nil {
		return nil, err
	}
	return s.Storage.Load(ctx, key)
}

func (s *flakyStorage) Store(ctx context.Context, key string, v []byte) error {
	s.calls.Add(1)
	if err := s.fail(ctx); err != nil {
		return err
	}
	return s.Storage.Store(ctx, key, v)
}

func (s *flakyStorage) Lock(ctx context.Context, name string) error {
	s.calls.Add(1)
	if s.locking != nil {
		select {
		case s.locking <- struct{}{}:
		default:
		}
	}
	if err := s.fail(ctx); err != nil {
		return err
	}
	return s.Storage.Lock(ctx, name)
}

// sidecar is one ticket cache on the shared clock and storage, as one Caddy
// process of a fleet would have, with its logs observed.
type sidecar struct {
	cache *Cache
	h     *Handle
	key   string
	logs  *observer.ObservedLogs
}

// fleetFixture is a fake WeBank and a storage shared by several sidecars,
// all on one injected clock.
type fleetFixture struct {
	clock   *testClock
	fake    *webanktest.Server
	storage *flakyStorage
	creds   Credentials
}

func newFleetFixture(t *testing.T) *fleetFixture {
	t.Helper()
	clock := newTestClock()
	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret}, Now: clock.Now})
	t.Cleanup(fake.Close)
	return &fleetFixture{
		clock:   clock,
		fake:    fake,
		storage: &flakyStorage{Storage: &certmagic.FileStorage{Path: t.TempDir()}},
		creds:   Credentials{AppID: testAppID, Secret: testSecret, BaseURL: fake.URL},
	}
}

func (f *fleetFixture) sidecar(t *testing.T) *sidecar {
	t.Helper()
	return f.sidecarWithSecret(t, f.creds.Secret)
}

func (f *fleetFixture) sidecarWithSecret(t *testing.T, secret string) *sidecar {
	t.Helper()
	c := newTestCache(t, 16, f.clock)
	creds := f.creds
	creds.Secret = secret
	core, logs := observer.New(zapcore.DebugLevel)
	h, err := c.Register(Config{Credentials: creds, Refresh: testRefresh, Timeout: 5 * time.Second,
		Storage: f.storage, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	return &sidecar{c, h, h.key, logs}
}

func (s *sidecar) ticket(t *testing.T) *Ticket {
	t.Helper()
	tk, err := s.cache.ticket(context.Background(), s.key)
	if err != nil {
		t.Fatalf("ticket: %v", err)
	}
	return tk
}

func (f *fleetFixture) wantCalls(t *testing.T, tokens, tickets int64) {
	t.Helper()
	wantCalls(t, f.fake, tokens, tickets)
}

func TestSealedRecord(t *testing.T) {
	creds := Credentials{AppID: "IDA1", Secret: "secret-1", BaseURL: "https://h"}
	st, err := newTicketStore(&certmagic.FileStorage{Path: t.TempDir()}, creds)
	if err != nil {
		t.Fatal(err)
	}
	rec := storedRecord{Token: "TOKEN-VALUE-123", TokenFetched: time.Unix(1700000000, 0).UTC(), TokenLifeMS: 7200000,
		Gen: 7, By: "host/1", Ticket: "TICKET-VALUE-456", TicketFetched: time.Unix(1700000001, 0).UTC(), TicketLifeMS: 3600000}
	sealed, err := st.seal(rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{rec.Token, rec.Ticket, "TOKEN", "TICKET", "host/1"} {
		if bytes.Contains(sealed, []byte(plain)) {
			t.Errorf("sealed record holds %q in the clear", plain)
		}
	}
	got, err := st.open(sealed)
	if err != nil || got != rec {
		t.Fatalf("open(seal(rec)) = %+v, %v; want %+v", got, err, rec)
	}

	other, _ := newTicketStore(st.storage, Credentials{AppID: "IDA1", Secret: "secret-2", BaseURL: "https://h"})
	otherApp, _ := newTicketStore(st.storage, Credentials{AppID: "IDA2", Secret: "secret-1", BaseURL: "https://h"})
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-5] ^= 1
	tests := []struct {
		name string
		st   *ticketStore
		b    []byte
	}{
		{"another secret", other, sealed},
		{"another app's key", otherApp, sealed},
		{"a flipped bit", st, flipped},
		{"truncated", st, sealed[:len(sealed)-20]},
		{"cut to the prefix", st, sealed[:len(sealPrefix)+3]},
		{"not sealed at all", st, []byte(`{"token":"x"}`)},
	}
	for _, tt := range tests {
		if _, err := tt.st.open(tt.b); err == nil {
			t.Errorf("%s: the record opened", tt.name)
		}
	}
}

// While the cached ticket is usable, requests touch no storage at all: the
// in-memory cache is the hot path.
func TestRequestsDoNoStorageIO(t *testing.T) {
	f := newFleetFixture(t)
	s := f.sidecar(t)
	s.ticket(t)
	before := f.storage.calls.Load()
	for range 100 {
		s.ticket(t)
	}
	f.clock.Advance(19 * time.Minute)
	s.ticket(t)
	if n := f.storage.calls.Load() - before; n != 0 {
		t.Errorf("101 requests with a usable ticket made %d storage calls, want 0", n)
	}
}

// A sidecar that starts (or restarts) with a valid ticket in storage uses it
// and fetches nothing.
func TestStoredTicketSurvivesRestart(t *testing.T) {
	f := newFleetFixture(t)
	first := f.sidecar(t).ticket(t)
	f.wantCalls(t, 1, 1)
	f.clock.Advance(5 * time.Minute)
	restarted := f.sidecar(t)
	if got := restarted.ticket(t); got.value != first.value || got.token.gen != 1 {
		t.Errorf("restarted sidecar got another ticket (generation %d)", got.token.gen)
	}
	f.wantCalls(t, 1, 1)
	if restarted.logs.FilterMessage("ticket adopted from storage").Len() != 1 {
		t.Errorf("adoption not logged")
	}
}

// Three sidecars on one storage: one fetch for all of them, on a cold start
// and at every scheduled refresh, however they race for it.
func TestFleetFetchesOncePerPeriod(t *testing.T) {
	f := newFleetFixture(t)
	fleet := []*sidecar{f.sidecar(t), f.sidecar(t), f.sidecar(t)}
	race := func(do func(s *sidecar)) {
		var wg sync.WaitGroup
		for _, s := range fleet {
			wg.Add(1)
			go func() { defer wg.Done(); do(s) }()
		}
		wg.Wait()
	}
	race(func(s *sidecar) { s.ticket(t) })
	f.wantCalls(t, 1, 1)
	for period := 2; period <= 4; period++ {
		f.clock.Advance(testRefresh)
		race(func(s *sidecar) { s.cache.refreshScheduled(s.key) })
		f.wantCalls(t, int64(period), int64(period))
		gen := fleet[0].ticket(t).token.gen
		for i, s := range fleet {
			if g := s.ticket(t).token.gen; g != gen || g != uint64(period) {
				t.Errorf("period %d: sidecar %d has generation %d, want %d for all", period, i, g, period)
			}
		}
	}
}

// A peer's off-schedule fetch (after WeBank rejected its ticket) reaches
// the others through their storage poll, without a fetch of their own.
func TestPeerTicketAdoptedByPoll(t *testing.T) {
	f := newFleetFixture(t)
	a, b := f.sidecar(t), f.sidecar(t)
	old := a.ticket(t)
	b.ticket(t)
	if !a.h.Invalidate(old) {
		t.Fatal("invalidate refused")
	}
	fresh := a.ticket(t)
	f.wantCalls(t, 2, 2)
	if b.ticket(t).value != old.value {
		t.Fatal("b changed ticket before polling")
	}
	b.cache.pollStored(b.key)
	if got := b.ticket(t); got.value != fresh.value {
		t.Errorf("after polling, b has generation %d, want %d", got.token.gen, fresh.token.gen)
	}
	f.wantCalls(t, 2, 2)
	if b.logs.FilterMessage("ticket adopted from a peer").Len() != 1 {
		t.Errorf("adoption from a peer not logged")
	}
}

// A rejected ticket is not adopted back from storage: the sidecar that was
// told by WeBank fetches a new token even though storage still holds it.
func TestRejectedTicketNotReadopted(t *testing.T) {
	f := newFleetFixture(t)
	s := f.sidecar(t)
	old := s.ticket(t)
	s.h.Invalidate(old)
	if got := s.ticket(t); got.value == old.value {
		t.Fatal("the rejected ticket came back from storage")
	}
	f.wantCalls(t, 2, 2)
}

// A record that does not open (sealed with another secret, or tampered
// with) is treated as absent, reported, and replaced.
func TestUnopenableRecordReplaced(t *testing.T) {
	for _, name := range []string{"another secret", "tampered"} {
		t.Run(name, func(t *testing.T) {
			f := newFleetFixture(t)
			ctx := context.Background()
			now := f.clock.Now()
			foreign := f.creds
			foreign.Secret = "an-old-secret"
			other, _ := newTicketStore(f.storage, foreign)
			rec := storedRecord{Token: "T", TokenFetched: now, TokenLifeMS: 7200000, Gen: 9, Ticket: "K", TicketFetched: now, TicketLifeMS: 3600000}
			if err := other.save(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if name == "tampered" {
				mine, _ := newTicketStore(f.storage, f.creds)
				sealed, _ := mine.seal(rec)
				sealed[len(sealed)-1] ^= 0x80
				if err := f.storage.Store(ctx, mine.key, sealed); err != nil {
					t.Fatal(err)
				}
			}
			s := f.sidecar(t)
			if got := s.ticket(t); got.value == "K" {
				t.Fatal("the unopenable record's ticket was used")
			}
			f.wantCalls(t, 1, 1)
			if s.logs.FilterMessage("ignoring the stored ticket record; it will be replaced").Len() == 0 {
				t.Errorf("the unopenable record was not reported")
			}
			if got, err := newStoreFor(t, f, s).load(ctx); err != nil || got.Ticket != s.ticket(t).value {
				t.Errorf("after the fetch, the record does not hold the new ticket: %v", err)
			}
		})
	}
}

func newStoreFor(t *testing.T, f *fleetFixture, s *sidecar) *ticketStore {
	t.Helper()
	cfg, _ := s.cache.app(s.key)
	return cfg.store
}

// Storage failing mid-run: tickets keep coming (from memory, and fetched
// without the lock), the warning is logged once, and recovery puts the
// ticket back in storage.
func TestStorageFailureDegradesAndRecovers(t *testing.T) {
	f := newFleetFixture(t)
	s := f.sidecar(t)
	s.ticket(t)
	f.storage.down.Store(true)
	for range 5 {
		s.ticket(t) // the request path does not touch storage
	}
	f.clock.Advance(testRefresh)
	s.cache.refreshScheduled(s.key)
	f.wantCalls(t, 2, 2)
	f.clock.Advance(maxStoragePoll)
	s.cache.pollStored(s.key)
	if n := s.logs.FilterMessage("storage unavailable; tickets are kept in memory only until it works again").Len(); n != 1 {
		t.Errorf("storage warning logged %d times, want once", n)
	}
	// Storage still holds generation 1; the refresh above could not store 2.
	f.storage.down.Store(false)
	f.clock.Advance(maxStoragePoll)
	s.cache.pollStored(s.key)
	if s.logs.FilterMessage("storage available again").Len() != 1 {
		t.Errorf("recovery not logged")
	}
	if s.logs.FilterMessage("stored the current ticket again").Len() != 1 {
		t.Errorf("the newer ticket was not put back into storage")
	}
	restarted := f.sidecar(t)
	if got := restarted.ticket(t); got.token.gen != 2 {
		t.Errorf("restarted sidecar adopted generation %d, want 2", got.token.gen)
	}
	f.wantCalls(t, 2, 2)
}

// The token step succeeds and the ticket step fails: WeBank has superseded
// the old token, so the old ticket is used for a minute at most, and the
// retry fetches only a ticket, with the new token, fetching no third token.
func TestTicketStepFailureKeepsNewToken(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	old := f.ticket(t)
	f.clock.Advance(testRefresh)
	f.fake.SetFault(webanktest.TicketEndpoint, webanktest.Fault{Status: 500})
	f.cache.refreshScheduled(f.key)
	if f.fake.TokenCalls() != 2 || f.fake.TicketCalls() != 2 {
		t.Fatalf("calls = %d/%d, want a new token and a failed ticket", f.fake.TokenCalls(), f.fake.TicketCalls())
	}
	if got := f.ticket(t); got.value != old.value || got.expires.After(f.clock.Now().Add(tokenOverlap)) {
		t.Fatalf("old ticket not capped to the token overlap: expires in %v", got.expires.Sub(f.clock.Now()))
	}
	f.clock.Advance(tokenOverlap)
	f.fake.ClearFaults()
	fresh := f.ticket(t)
	if fresh.value == old.value || fresh.token.gen != 2 {
		t.Errorf("after the overlap: generation %d, want a new ticket made with token 2", fresh.token.gen)
	}
	if f.fake.TokenCalls() != 2 || f.fake.TicketCalls() != 3 {
		t.Errorf("calls = %d/%d, want no third token, one more ticket", f.fake.TokenCalls(), f.fake.TicketCalls())
	}
}

// Storage that hangs counts as failing: a sidecar without a ticket gets one
// from WeBank after the storage call's own deadline, instead of spending
// the whole fetch timeout waiting for a lock.
func TestHangingStorageDegrades(t *testing.T) {
	f := newFleetFixture(t)
	f.storage.hang.Store(true)
	s := f.sidecar(t)
	if got := s.ticket(t); got == nil {
		t.Fatal("no ticket")
	}
	f.wantCalls(t, 1, 1)
	if s.logs.FilterMessage("storage unavailable; tickets are kept in memory only until it works again").Len() != 1 {
		t.Errorf("the hanging storage was not reported as unavailable")
	}
}

// A sidecar waiting for a peer's storage lock reads storage again about
// every second, not once per poll period (15 s with the default refresh,
// longer than the fetch timeout): it takes up the ticket the peer stores
// instead of timing out.
func TestLockWaitAdoptsPeerTicket(t *testing.T) {
	f := newFleetFixture(t)
	s := f.sidecar(t) // refresh 20m: storage polled every 15s; fetch timeout 5s
	peer := newStoreFor(t, f, s)
	ctx := context.Background()
	if err := peer.lock(ctx); err != nil {
		t.Fatal(err)
	}
	defer peer.unlock()
	f.storage.locking = make(chan struct{}, 1)
	type result struct {
		t   *Ticket
		err error
	}
	got := make(chan result)
	go func() {
		tk, err := s.cache.ticket(ctx, s.key)
		got <- result{tk, err}
	}()
	<-f.storage.locking // the sidecar waits for the peer's lock
	tok := &accessToken{value: "peer-token", gen: 1, by: "peer", fetched: f.clock.Now(), life: MaxTokenLife}
	stored := newTicket("peer-ticket", f.clock.Now(), MaxTicketLife, tok, testRefresh)
	if err := peer.save(ctx, record(tok, stored)); err != nil {
		t.Fatal(err)
	}
	res := <-got
	if res.err != nil || res.t.value != "peer-ticket" {
		t.Fatalf("ticket while a peer held the lock = %v, want the peer's", res.err)
	}
	f.wantCalls(t, 0, 0)
}

// Two replicas that fetched a token of the same generation (one could not
// read storage at the shared refresh moment) settle on one: the token
// fetched later, which is the one WeBank keeps, within one poll.
func TestSameGenerationTokensReconcile(t *testing.T) {
	f := newFleetFixture(t)
	a, b := f.sidecar(t), f.sidecar(t)
	a.ticket(t)
	b.ticket(t)
	f.clock.Advance(testRefresh)
	f.storage.down.Store(true) // a's refresh can neither read nor write storage
	a.cache.refreshScheduled(a.key)
	f.storage.down.Store(false)
	f.clock.Advance(time.Second)
	b.cache.refreshScheduled(b.key) // under the lock: a second token of generation 2
	f.wantCalls(t, 3, 3)
	if ga, gb := a.ticket(t).token, b.ticket(t).token; ga.gen != 2 || gb.gen != 2 || ga.value == gb.value {
		t.Fatalf("setup: tokens of generations %d and %d, want two different of generation 2", ga.gen, gb.gen)
	}
	a.cache.pollStored(a.key)
	b.cache.pollStored(b.key)
	ta, tb := a.ticket(t), b.ticket(t)
	if ta.value != tb.value {
		t.Errorf("after one poll each the replicas sign with different tickets (tokens fetched by %s and %s)", ta.token.by, tb.token.by)
	}
	if ta.token.fetched != f.clock.Now() {
		t.Errorf("the replicas settled on the token fetched at %v, want the later one (%v)", ta.token.fetched, f.clock.Now())
	}
}

// A record older than what a running replica has seen (a restore from
// backup, a lagging Redis replica) does not win: the replica puts its newer
// record back at its next poll, and a sidecar that starts afterwards gets
// the newer one.
func TestOlderRecordPutBackIsReplaced(t *testing.T) {
	f := newFleetFixture(t)
	a := f.sidecar(t)
	a.ticket(t)
	st := newStoreFor(t, f, a)
	backup, err := st.load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(testRefresh)
	a.cache.refreshScheduled(a.key)
	if err := st.save(context.Background(), backup); err != nil { // generation 1 put back
		t.Fatal(err)
	}
	a.cache.pollStored(a.key)
	if rec, err := st.load(context.Background()); err != nil || rec.Gen != 2 {
		t.Fatalf("after the poll, storage holds generation %d (%v), want 2", rec.Gen, err)
	}
	if got := f.sidecar(t).ticket(t); got.token.gen != 2 {
		t.Errorf("a sidecar started after the poll got generation %d, want 2", got.token.gen)
	}
}

// The limit of one rejection-driven token rotation a minute holds for the
// fleet, not per replica: a replica that has learned of a peer's rotation
// (from storage) does not rotate again within the minute, so N replicas
// cannot rotate N times a minute for a client whose requests WeBank
// refuses.
func TestRejectionLimitIsFleetWide(t *testing.T) {
	f := newFleetFixture(t)
	a, b := f.sidecar(t), f.sidecar(t)
	rejected := a.ticket(t)
	b.ticket(t)
	if !a.h.Invalidate(rejected) {
		t.Fatal("the first rejection was not acted on")
	}
	rotated := a.ticket(t) // a new token, stored
	f.wantCalls(t, 2, 2)
	b.cache.pollStored(b.key)
	if got := b.ticket(t); got.value != rotated.value {
		t.Fatal("setup: b did not adopt a's new ticket")
	}
	f.clock.Advance(30 * time.Second)
	if b.h.Invalidate(rotated) {
		t.Error("b dropped the ticket a fetched for a rejection 30 s ago")
	}
	if got := b.ticket(t); got.value != rotated.value {
		t.Error("b no longer signs with the fleet's ticket")
	}
	f.wantCalls(t, 2, 2)
	f.clock.Advance(30 * time.Second) // a minute after the rotation
	if !b.h.Invalidate(rotated) {
		t.Error("a minute after the rotation, a rejection is still not acted on")
	}
}

// A replica that has learned a peer's new token (fetched for a rejection)
// before the ticket made with it drops its own rejected ticket at once:
// the fleet-wide limit holds back rotations, and dropping a ticket of an
// older token than the newest known rotates nothing.
func TestRejectedTicketOfOlderTokenDropped(t *testing.T) {
	f := newFleetFixture(t)
	a, b := f.sidecar(t), f.sidecar(t)
	old := a.ticket(t)
	b.ticket(t)
	if !a.h.Invalidate(old) {
		t.Fatal("the first rejection was not acted on")
	}
	rotated := a.ticket(t)                        // a new token, fetched for the rejection, and its ticket, stored
	b.cache.peek(b.key).learnToken(rotated.token) // b saw the token before the ticket
	if !b.h.Invalidate(old) {
		t.Fatal("b kept a ticket WeBank rejected although a newer token is known")
	}
	if got := b.ticket(t); got.value != rotated.value {
		t.Errorf("b signs with %s's ticket, want the peer's new one", got.token.by)
	}
	f.wantCalls(t, 2, 2)
}
