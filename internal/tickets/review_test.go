package tickets

import (
	"context"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// This file holds the review's findings on the ticket cache (brief R2),
// each a test that failed on the tree it was written against.

// TestReviewCallbackTwoReplacementsInAMinute shows that a callback check
// keeps only the last ticket replaced: a scheduled refresh followed,
// within the minute, by a rejection (a retry code, which a client's own
// bad input can draw) forgets the ticket the refresh replaced, and a
// callback WeBank signed with it just before the refresh is refused
// although its minute has not run out.
func TestReviewCallbackTwoReplacementsInAMinute(t *testing.T) {
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

// TestReviewCallbackWhileNoTicket shows that a callback check needs a
// current ticket before it looks at the one just dropped: after WeBank
// rejected the ticket (a retry code, which a client's own bad input can
// draw) and while no other can be fetched, a genuine callback WeBank
// signed with the dropped ticket moments before got an error (502 at
// /verify) instead of being found valid, although SignedWith accepts that
// ticket for a minute.
func TestReviewCallbackWhileNoTicket(t *testing.T) {
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
