package redisstorage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Short lock timings, so that expiry and renewal happen within a test. Two
// Storage values on one Redis stand for two Caddy processes.
const (
	lockTTL  = 300 * time.Millisecond
	lockPoll = 20 * time.Millisecond

	// slack is how late a takeover may come beyond lock_ttl + lock_poll, for
	// slow machines and the race detector.
	slack = 500 * time.Millisecond

	// lockKeyJob is the Redis key of lock "job" for prefix "test".
	lockKeyJob = "test/locks/job"
)

func TestLockExcludes(t *testing.T) {
	t.Parallel()
	srv := StartServer(t)
	a := newStorage(t, srv.Addr, lockTTL, lockPoll)
	b := newStorage(t, srv.Addr, lockTTL, lockPoll)
	ctx := t.Context()

	if err := a.Lock(ctx, "job"); err != nil {
		t.Fatalf("a.Lock() = %v", err)
	}
	acquired := make(chan error, 1)
	go func() { acquired <- b.Lock(ctx, "job") }()
	select {
	case err := <-acquired:
		t.Fatalf("b.Lock() = %v while a held the lock, want it to wait", err)
	case <-time.After(2 * lockTTL): // b polls many times, a renews at least once
	}
	if err := a.Unlock(ctx, "job"); err != nil {
		t.Fatalf("a.Unlock() = %v", err)
	}
	select {
	case err := <-acquired:
		if err != nil {
			t.Fatalf("b.Lock() = %v after a.Unlock", err)
		}
	case <-time.After(lockPoll + slack):
		t.Fatalf("b.Lock() still waiting %v after a.Unlock", lockPoll+slack)
	}
	if err := b.Unlock(ctx, "job"); err != nil {
		t.Errorf("b.Unlock() = %v", err)
	}
}

// TestLockRenewal holds a lock for three times its TTL while a competitor
// tries all along to take it.
func TestLockRenewal(t *testing.T) {
	t.Parallel()
	srv := StartServer(t)
	a := newStorage(t, srv.Addr, lockTTL, lockPoll)
	b := newStorage(t, srv.Addr, lockTTL, lockPoll)

	if err := a.Lock(t.Context(), "job"); err != nil {
		t.Fatalf("a.Lock() = %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*lockTTL)
	defer cancel()
	start := time.Now()
	err := b.Lock(ctx, "job")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b.Lock() while a holds the lock = %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 3*lockTTL+slack {
		t.Errorf("b.Lock() returned %v after its context's deadline, want at most %v", elapsed-3*lockTTL, slack)
	}
	if err := a.Unlock(t.Context(), "job"); err != nil {
		t.Errorf("a.Unlock() after 3×lock_ttl = %v, want nil: the lock was not kept", err)
	}
}

// TestLockTakeover leaves the lock as a holder that crashed would (a foreign
// token with lock_ttl to live, no renewals), and checks that it is taken over
// once it expires, and not before.
func TestLockTakeover(t *testing.T) {
	t.Parallel()
	srv := StartServer(t)
	b := newStorage(t, srv.Addr, lockTTL, lockPoll)
	rdb := newClient(t, srv.Addr)
	ctx := t.Context()

	start := time.Now()
	if err := rdb.Set(ctx, lockKeyJob, "crashed-holder", lockTTL).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(ctx, "job"); err != nil {
		t.Fatalf("b.Lock() = %v", err)
	}
	elapsed := time.Since(start)
	// Redis expires keys with up to 1ms of error; allow a little more.
	if elapsed < lockTTL-5*time.Millisecond {
		t.Errorf("lock taken over after %v, before its TTL of %v", elapsed, lockTTL)
	}
	if elapsed > lockTTL+lockPoll+slack {
		t.Errorf("lock taken over after %v, want at most %v", elapsed, lockTTL+lockPoll+slack)
	}
	if got, err := rdb.Get(ctx, lockKeyJob).Result(); err != nil || got == "crashed-holder" {
		t.Errorf("lock value after takeover = %q, %v, want b's token", got, err)
	}
	if err := b.Unlock(ctx, "job"); err != nil {
		t.Errorf("b.Unlock() = %v", err)
	}
}

func TestUnlockNotHeld(t *testing.T) {
	t.Parallel()
	srv := StartServer(t)
	a := newStorage(t, srv.Addr, lockTTL, lockPoll)
	b := newStorage(t, srv.Addr, lockTTL, lockPoll)
	rdb := newClient(t, srv.Addr)
	ctx := t.Context()

	if err := b.Unlock(ctx, "never"); err == nil {
		t.Errorf("Unlock() of a lock nobody holds = nil, want an error")
	}
	if err := a.Lock(ctx, "job"); err != nil {
		t.Fatalf("a.Lock() = %v", err)
	}
	token, err := rdb.Get(ctx, lockKeyJob).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "job"); err == nil {
		t.Errorf("b.Unlock() of a's lock = nil, want an error")
	}
	if got, err := rdb.Get(ctx, lockKeyJob).Result(); err != nil || got != token {
		t.Errorf("lock value after b.Unlock() = %q, %v, want a's token unchanged", got, err)
	}
	if err := a.Unlock(ctx, "job"); err != nil {
		t.Errorf("a.Unlock() = %v", err)
	}
	if n, err := rdb.Exists(ctx, lockKeyJob).Result(); err != nil || n != 0 {
		t.Errorf("lock keys after a.Unlock() = %d, %v, want 0", n, err)
	}
}

// TestLockLost has a's lock expire and pass to an intruder behind a's back:
// a's renewals must not extend the intruder's lock, and a's Unlock must fail
// without releasing the lock of whoever holds it now.
func TestLockLost(t *testing.T) {
	t.Parallel()
	srv := StartServer(t)
	a := newStorage(t, srv.Addr, lockTTL, lockPoll)
	b := newStorage(t, srv.Addr, lockTTL, lockPoll)
	rdb := newClient(t, srv.Addr)
	ctx := t.Context()

	if err := a.Lock(ctx, "job"); err != nil {
		t.Fatalf("a.Lock() = %v", err)
	}
	if err := rdb.Set(ctx, lockKeyJob, "intruder", lockTTL).Err(); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithTimeout(ctx, lockTTL+lockPoll+slack)
	defer cancel()
	if err := b.Lock(lctx, "job"); err != nil {
		t.Fatalf("b.Lock() after the intruder's lock expired = %v", err)
	}
	if err := a.Unlock(ctx, "job"); err == nil {
		t.Errorf("a.Unlock() of a lost lock = nil, want an error")
	}
	if err := b.Unlock(ctx, "job"); err != nil {
		t.Errorf("b.Unlock() = %v, want nil: a's Unlock must leave b's lock", err)
	}
}
