package tickets

import (
	"context"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// checkFor returns a check that accepts exactly the ticket value want.
func checkFor(want string) func(string) bool {
	return func(ticket string) bool { return ticket == want }
}

func signedWith(t *testing.T, h *Handle, ticket string) bool {
	t.Helper()
	ok, err := h.SignedWith(context.Background(), checkFor(ticket))
	if err != nil {
		t.Fatalf("SignedWith: %v", err)
	}
	return ok
}

// A callback is checked against the current SIGN ticket, and against the
// one it replaced for the minute WeBank may still have signed with it; a
// check never fetches anything.
func TestSignedWithCurrentAndPrevious(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	invalid := 0
	f.h.c.registry.apps[f.key].regs[0].emit = func(name string, _ map[string]any) {
		if name == "callback_signature_invalid" {
			invalid++
		}
	}
	first := f.ticket(t)
	if !signedWith(t, f.h, first.value) {
		t.Fatal("the current ticket was refused")
	}
	if signedWith(t, f.h, "forged") {
		t.Fatal("a ticket the app never had was accepted")
	}
	if invalid != 1 {
		t.Errorf("%d callback_signature_invalid events, want 1", invalid)
	}

	f.clock.Advance(20 * time.Minute)
	f.cache.refreshScheduled(f.key)
	second := f.ticket(t)
	if second.value == first.value {
		t.Fatal("the scheduled refresh kept the ticket")
	}
	f.wantCalls(t, 2)
	if !signedWith(t, f.h, second.value) {
		t.Error("the new ticket was refused")
	}
	f.clock.Advance(tokenOverlap - time.Second)
	if !signedWith(t, f.h, first.value) {
		t.Error("a callback signed just before the refresh was refused within the minute")
	}
	f.clock.Advance(time.Second)
	if signedWith(t, f.h, first.value) {
		t.Error("the replaced ticket was still accepted a minute after the refresh")
	}
	f.wantCalls(t, 2) // no check fetched anything
}

// In a fleet, a peer may have replaced the ticket and WeBank signed with
// the new one before this sidecar polled: the check reads storage, at most
// once a second however many checks fail.
func TestSignedWithPeerTicket(t *testing.T) {
	f := newFleetFixture(t)
	a, b := f.sidecar(t), f.sidecar(t)
	old := a.ticket(t)
	b.ticket(t)
	if !a.h.Invalidate(old) {
		t.Fatal("invalidate refused")
	}
	fresh := a.ticket(t)
	f.wantCalls(t, 2, 2)

	loads := f.storage.calls.Load()
	if signedWith(t, b.h, "forged") {
		t.Fatal("forged ticket accepted")
	}
	if got := f.storage.calls.Load() - loads; got != 1 {
		t.Fatalf("a failed check read storage %d times, want 1", got)
	}
	// That read took up the peer's ticket.
	if !signedWith(t, b.h, fresh.value) {
		t.Fatal("the peer's newer ticket was refused")
	}
	if signedWith(t, b.h, "forged again") {
		t.Fatal("forged ticket accepted")
	}
	if got := f.storage.calls.Load() - loads; got != 1 {
		t.Errorf("failed checks within a second read storage %d times, want 1", got)
	}
	f.clock.Advance(storeCheckInterval)
	signedWith(t, b.h, "forged")
	if got := f.storage.calls.Load() - loads; got != 2 {
		t.Errorf("a failed check a second later read storage %d times in all, want 2", got)
	}
	f.wantCalls(t, 2, 2)
}

// A ticket dropped because WeBank refused a request made with it (a retry
// code, which a client's own bad input can draw) was, until then, the
// app's latest: WeBank may have signed a callback with it just before.
// It is accepted for the minute after its replacement, as a ticket
// replaced by a scheduled refresh is.
func TestSignedWithTicketDroppedOnRejection(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	first := f.ticket(t)
	if !f.h.Invalidate(first) {
		t.Fatal("invalidate refused")
	}
	second := f.ticket(t)
	if second.value == first.value {
		t.Fatal("the rejection kept the ticket")
	}
	if !signedWith(t, f.h, first.value) {
		t.Error("a callback signed with the ticket just dropped was refused within the minute")
	}
	f.clock.Advance(tokenOverlap)
	if signedWith(t, f.h, first.value) {
		t.Error("the dropped ticket was still accepted a minute after its replacement")
	}
}

// TestSignedWithTwoReplacementsInAMinute shows that a callback check
// keeps only the last ticket replaced: a scheduled refresh followed,
// within the minute, by a rejection (a retry code, which a client's own
// bad input can draw) forgets the ticket the refresh replaced, and a
// callback WeBank signed with it just before the refresh is refused
// although its minute has not run out.
func TestSignedWithTwoReplacementsInAMinute(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	first := f.ticket(t)
	f.clock.Advance(20 * time.Minute)
	f.cache.refreshScheduled(f.key)
	second := f.ticket(t)
	if second.value == first.value {
		t.Fatal("the scheduled refresh kept the ticket")
	}
	f.clock.Advance(10 * time.Second)
	if !f.h.Invalidate(second) {
		t.Fatal("invalidate refused")
	}
	third := f.ticket(t)
	if third.value == second.value {
		t.Fatal("the rejection kept the ticket")
	}
	f.clock.Advance(10 * time.Second) // 20 s after the refresh
	if !signedWith(t, f.h, second.value) {
		t.Error("the ticket dropped 10 s ago was refused")
	}
	if !signedWith(t, f.h, first.value) {
		t.Error("a callback signed just before the scheduled refresh, 20 s ago, was refused within its minute")
	}
}

// TestSignedWithWhileNoTicket shows that a callback check needs a
// current ticket before it looks at the one just dropped: after WeBank
// rejected the ticket (a retry code, which a client's own bad input can
// draw) and while no other can be fetched, a genuine callback WeBank
// signed with the dropped ticket moments before got an error (502 at
// /verify) instead of being found valid, although SignedWith accepts that
// ticket for a minute.
func TestSignedWithWhileNoTicket(t *testing.T) {
	f := newCacheFixture(t, webanktest.Options{})
	first := f.ticket(t)
	if !f.h.Invalidate(first) {
		t.Fatal("invalidate refused")
	}
	f.fake.Close() // WeBank unreachable: no other ticket can be had
	ok, err := f.h.SignedWith(context.Background(), checkFor(first.value))
	if err != nil || !ok {
		t.Errorf("a callback signed with the ticket dropped just now: %v, %v; want valid", ok, err)
	}
}
