// Package redisstorage is a Caddy storage module over Redis, written as a
// test fixture for running a fleet of Caddy replicas against a real Redis.
// It is not a supported product: it has no authentication, no TLS and no
// cluster support.
//
// Keys live under a configurable prefix (default "caddy"):
//
//	<prefix>/data/<key>    a hash with fields value (the bytes) and modified (Unix nanoseconds)
//	<prefix>/locks/<name>  a string holding the random owner token of the lock's holder
//
// StartServer starts a throwaway redis-server for tests.
package redisstorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(new(Storage))
}

const (
	defaultPrefix   = "caddy"
	defaultLockTTL  = 5 * time.Second
	defaultLockPoll = 100 * time.Millisecond

	// ioTimeout bounds dialling, reading and writing, so that a Redis that
	// is down or hung turns into an error rather than a hang.
	ioTimeout = time.Second

	scanCount = 1000 // keys asked of each SCAN call
)

// Storage is a certmagic.Storage kept in Redis, with a distributed lock
// (SET NX with a TTL that the holder keeps renewing). It is a test fixture:
// Caddy binaries built for fleet tests include it, and tests use it directly.
//
// A Storage must be provisioned before use. Its methods are then safe for
// concurrent use, and all of them honour ctx. Locks belong to the Storage
// value, not to a goroutine: see Lock.
//
// While Redis is down or hung, methods fail within about two seconds (one
// retry, each try bounded by 1s timeouts). Once Redis is back, methods may
// still fail fast for up to a second: after repeated failed dials, go-redis
// waits for a background probe, made once a second, to reach Redis.
type Storage struct {
	// The Redis server, as host:port. Required.
	Addr string `json:"addr,omitempty"`

	// The prefix of every Redis key this storage uses. Default: caddy.
	Prefix string `json:"prefix,omitempty"`

	// How long a held lock lasts after its last renewal. The holder renews
	// it every third of this, so a holder that dies loses the lock at most
	// this long after it died. Default: 5s.
	LockTTL caddy.Duration `json:"lock_ttl,omitempty"`

	// How often a waiting Lock tries again. Default: 100ms.
	LockPoll caddy.Duration `json:"lock_poll,omitempty"`

	client *redis.Client
	logger *zap.Logger

	mu    sync.Mutex           // protects locks
	locks map[string]*heldLock // by lock name
}

// CaddyModule returns the Caddy module information.
func (*Storage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.storage.webanksign_test_redis",
		New: func() caddy.Module { return new(Storage) },
	}
}

// Provision sets up s. It creates the Redis client but does not connect.
func (s *Storage) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	if s.Prefix == "" {
		s.Prefix = defaultPrefix
	}
	if s.LockTTL == 0 {
		s.LockTTL = caddy.Duration(defaultLockTTL)
	}
	if s.LockPoll == 0 {
		s.LockPoll = caddy.Duration(defaultLockPoll)
	}
	s.locks = make(map[string]*heldLock)
	s.client = redis.NewClient(&redis.Options{
		Addr:                  s.Addr,
		DialTimeout:           ioTimeout,
		DialerRetries:         1,
		ReadTimeout:           ioTimeout,
		WriteTimeout:          ioTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	return nil
}

// Validate checks the configuration of s.
func (s *Storage) Validate() error {
	if s.Addr == "" {
		return errors.New("addr is required")
	}
	if time.Duration(s.LockTTL) < time.Millisecond {
		return fmt.Errorf("lock_ttl must be at least 1ms, got %v", time.Duration(s.LockTTL))
	}
	if s.LockPoll < 0 {
		return fmt.Errorf("lock_poll must be positive, got %v", time.Duration(s.LockPoll))
	}
	return nil
}

// Cleanup stops renewing the locks s holds, which then expire after
// lock_ttl, and closes the Redis client.
func (s *Storage) Cleanup() error {
	s.mu.Lock()
	held := s.locks
	s.locks = make(map[string]*heldLock)
	s.mu.Unlock()
	for _, l := range held {
		l.stopRenewal()
	}
	if s.client == nil {
		return nil // never provisioned
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("closing redis client: %w", err)
	}
	return nil
}

// CertMagicStorage returns s.
func (s *Storage) CertMagicStorage() (certmagic.Storage, error) {
	return s, nil
}

// Store puts value at key, with the current time as its modification time.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	modified := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := s.client.HSet(ctx, s.dataKey(key), "value", value, "modified", modified).Err(); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist if
// there is none.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	value, err := s.client.HGet(ctx, s.dataKey(key), "value").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("loading %s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", key, err)
	}
	return value, nil
}

// Delete deletes key and every key under it. A missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	keys, err := s.scan(ctx, key, 0)
	if err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	keys = append(keys, s.dataKey(key))
	for batch := range slices.Chunk(keys, scanCount) {
		if err := s.client.Del(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("deleting %s: %w", key, err)
		}
	}
	return nil
}

// Exists reports whether key is a file or a directory. It returns false if
// Redis cannot be asked.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the files and directories under dir, each as dir/name. If
// recursive is true it walks the directories too. An empty dir lists the
// root. If dir is neither a file nor a directory, it returns an error
// wrapping fs.ErrNotExist.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	keys, err := s.scan(ctx, dir, 0)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	if len(keys) == 0 {
		// a file is listed as empty, as certmagic's FileStorage does
		if _, err := s.Stat(ctx, dir); err != nil {
			return nil, fmt.Errorf("listing %s: %w", dir, err)
		}
		return nil, nil
	}
	base := s.dataKey(dir) + "/"
	if dir == "" {
		base = s.dataKey("")
	}
	seen := make(map[string]bool)
	for _, k := range keys {
		parts := strings.Split(strings.TrimPrefix(k, base), "/")
		if !recursive {
			parts = parts[:1]
		}
		for i := range parts {
			seen[path.Join(dir, path.Join(parts[:i+1]...))] = true
		}
	}
	list := make([]string, 0, len(seen))
	for k := range seen {
		list = append(list, k)
	}
	slices.Sort(list)
	return list, nil
}

// Stat returns information about key, which is a file or a directory, or an
// error wrapping fs.ErrNotExist if it is neither.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	vals, err := s.client.HMGet(ctx, s.dataKey(key), "value", "modified").Result()
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	value, ok1 := vals[0].(string)
	modified, ok2 := vals[1].(string)
	if ok1 && ok2 {
		nanos, err := strconv.ParseInt(modified, 10, 64)
		if err != nil {
			return certmagic.KeyInfo{}, fmt.Errorf("stat %s: parsing modified: %w", key, err)
		}
		return certmagic.KeyInfo{
			Key:        key,
			Modified:   time.Unix(0, nanos),
			Size:       int64(len(value)),
			IsTerminal: true,
		}, nil
	}
	keys, err := s.scan(ctx, key, 1)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// dataKey returns the Redis key holding key; with an empty key, the prefix
// of all data keys, ending in a slash.
func (s *Storage) dataKey(key string) string {
	return s.Prefix + "/data/" + key
}

// scan returns the Redis keys of the files under dir (an empty dir is the
// root), stopping once it has found limit of them if limit is positive.
func (s *Storage) scan(ctx context.Context, dir string, limit int) ([]string, error) {
	match := globEscape(s.dataKey(dir)) + "/*"
	if dir == "" {
		match = globEscape(s.dataKey("")) + "*"
	}
	var keys []string
	var cursor uint64
	for {
		batch, next, err := s.client.Scan(ctx, cursor, match, scanCount).Result()
		if err != nil {
			return nil, err
		}
		keys = append(keys, batch...)
		if next == 0 || (limit > 0 && len(keys) >= limit) {
			return keys, nil
		}
		cursor = next
	}
}

// globEscape quotes the characters special to Redis's MATCH patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\*?[]`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Interface guards
var (
	_ caddy.Provisioner      = (*Storage)(nil)
	_ caddy.Validator        = (*Storage)(nil)
	_ caddy.CleanerUpper     = (*Storage)(nil)
	_ caddy.StorageConverter = (*Storage)(nil)
	_ certmagic.Storage      = (*Storage)(nil)
)
