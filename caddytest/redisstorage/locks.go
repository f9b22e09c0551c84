package redisstorage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Lua scripts, which Redis runs atomically. KEYS[1] is the lock key and
// ARGV[1] the owner token; each acts only if the lock still holds the token.
var (
	renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)
	unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)
)

// Lock acquires the lock called name, trying every lock_poll until it is
// free or ctx is done. It returns an error at once if Redis cannot be asked.
//
// While s holds the lock, a goroutine renews it every third of lock_ttl. If
// the holder's process dies, the renewals stop and the lock expires within
// lock_ttl. If Redis answers that the lock is no longer ours (it expired,
// say while Redis was unreachable, and another took it), the renewal stops
// with a warning, and Unlock will fail.
//
// Locks belong to the Storage value, not to a goroutine: a second Lock of
// the same name on s waits like any other, and Unlock releases the lock
// whichever goroutine calls it. Distinct Storage values exclude each other,
// whether in one process or in several.
func (s *Storage) Lock(ctx context.Context, name string) error {
	key := s.lockKey(name)
	token := rand.Text()
	ttl := time.Duration(s.LockTTL)
	for {
		ok, err := s.client.SetNX(ctx, key, token, ttl).Result()
		if err != nil {
			return fmt.Errorf("locking %s: %w", name, err)
		}
		if ok {
			break
		}
		t := time.NewTimer(time.Duration(s.LockPoll))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("locking %s: %w", name, ctx.Err())
		}
	}

	rctx, cancel := context.WithCancel(context.Background())
	l := &heldLock{token: token, cancel: cancel, done: make(chan struct{})}
	go s.renew(rctx, name, key, token, l.done)

	s.mu.Lock()
	lost := s.locks[name] // only if its lock was lost without an Unlock
	s.locks[name] = l
	s.mu.Unlock()
	if lost != nil {
		lost.stopRenewal()
	}
	return nil
}

// Unlock releases the lock called name, which s must hold. It stops the
// renewal first, so when Unlock fails (Redis cannot be asked, or the lock
// was lost to another holder) s no longer holds the lock, which, if still
// ours in Redis, expires after lock_ttl. Unlocking a lock that s does not
// hold is an error and changes nothing.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("unlocking %s: not held by this storage", name)
	}
	l.stopRenewal()

	n, err := unlockScript.Run(ctx, s.client, []string{s.lockKey(name)}, l.token).Int()
	if err != nil {
		return fmt.Errorf("unlocking %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("unlocking %s: lock expired or taken by another holder", name)
	}
	return nil
}

// renew extends the lock at key every third of lock_ttl for as long as it
// holds token, until ctx is done. It closes done when it returns.
func (s *Storage) renew(ctx context.Context, name, key, token string, done chan<- struct{}) {
	defer close(done)
	ttl := time.Duration(s.LockTTL)
	ticker := time.NewTicker(max(ttl/3, time.Millisecond))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		n, err := renewScript.Run(ctx, s.client, []string{key}, token, ttl.Milliseconds()).Int()
		switch {
		case ctx.Err() != nil, errors.Is(err, redis.ErrClosed):
			return // stopped while renewing, or Cleanup closed the client
		case err != nil:
			// keep trying: the lock may still be ours when Redis is back
			s.logger.Warn("lock renewal failed", zap.String("lock", name), zap.Error(err))
		case n == 0:
			s.logger.Warn("lock lost", zap.String("lock", name))
			return
		}
	}
}

// lockKey returns the Redis key of the lock called name.
func (s *Storage) lockKey(name string) string {
	return s.Prefix + "/locks/" + name
}

// heldLock is a lock a Storage holds, with the goroutine renewing it.
type heldLock struct {
	token  string             // random; identifies this holding in Redis
	cancel context.CancelFunc // stops the renewal
	done   chan struct{}      // closed when the renewal has stopped
}

// stopRenewal stops renewing l and waits until the renewal has stopped.
func (l *heldLock) stopRenewal() {
	l.cancel()
	<-l.done
}
