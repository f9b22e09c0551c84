package redisstorage

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newStorage returns a provisioned Storage with prefix "test" on the Redis
// at addr, cleaned up when t ends.
func newStorage(t *testing.T, addr string, lockTTL, lockPoll time.Duration) *Storage {
	t.Helper()
	return provision(t, &Storage{
		Addr:     addr,
		Prefix:   "test",
		LockTTL:  caddy.Duration(lockTTL),
		LockPoll: caddy.Duration(lockPoll),
	})
}

// provision provisions and validates s, and cleans it up when t ends.
func provision(t *testing.T, s *Storage) *Storage {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatalf("Provision() = %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Cleanup(); err != nil {
			t.Errorf("Cleanup() = %v", err)
		}
	})
	return s
}

// newClient returns a plain Redis client for looking behind a Storage's back.
func newClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStorageContract(t *testing.T) {
	t.Parallel()
	srv := StartServer(t)
	s := newStorage(t, srv.Addr, time.Second, 10*time.Millisecond)
	ctx := t.Context()

	before := time.Now()
	files := map[string]string{
		"a/b/c":  "abc",
		"a/b/d":  "abd",
		"a/e":    "ae",
		"ab/q":   "abq", // "a" is a prefix of "ab" only as a string, not as a path
		"f":      "f",
		"g[1]/x": "g[1]x", // glob characters, which must not match g1/y
		"g1/y":   "g1y",
		"empty":  "",
	}
	for k, v := range files {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatalf("Store(%q) = %v", k, err)
		}
	}
	after := time.Now()

	t.Run("Load", func(t *testing.T) {
		for k, want := range files {
			got, err := s.Load(ctx, k)
			if err != nil || string(got) != want {
				t.Errorf("Load(%q) = %q, %v, want %q", k, got, err, want)
			}
		}
		for _, k := range []string{"missing", "a/b", "a/b/c/d"} {
			if _, err := s.Load(ctx, k); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Load(%q) error = %v, want fs.ErrNotExist", k, err)
			}
		}
	})

	t.Run("Exists", func(t *testing.T) {
		for k, want := range map[string]bool{
			"a/b/c": true, "a/b": true, "a": true, "ab": true, "g[1]": true, "empty": true,
			"missing": false, "a/b/c/d": false, "a/b/": false, "g": false, "g[": false,
		} {
			if got := s.Exists(ctx, k); got != want {
				t.Errorf("Exists(%q) = %v, want %v", k, got, want)
			}
		}
	})

	t.Run("Stat", func(t *testing.T) {
		info, err := s.Stat(ctx, "a/b/c")
		if err != nil {
			t.Fatalf("Stat(a/b/c) = %v", err)
		}
		if info.Key != "a/b/c" || !info.IsTerminal || info.Size != 3 {
			t.Errorf("Stat(a/b/c) = %+v, want key a/b/c, terminal, size 3", info)
		}
		if info.Modified.Before(before) || info.Modified.After(after) {
			t.Errorf("Stat(a/b/c).Modified = %v, want between %v and %v", info.Modified, before, after)
		}
		info, err = s.Stat(ctx, "a/b")
		if err != nil || info.Key != "a/b" || info.IsTerminal {
			t.Errorf("Stat(a/b) = %+v, %v, want key a/b, not terminal", info, err)
		}
		if _, err := s.Stat(ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(missing) error = %v, want fs.ErrNotExist", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		tests := []struct {
			dir       string
			recursive bool
			want      []string
		}{
			{"a", false, []string{"a/b", "a/e"}},
			{"a", true, []string{"a/b", "a/b/c", "a/b/d", "a/e"}},
			{"a/b", false, []string{"a/b/c", "a/b/d"}},
			{"", false, []string{"a", "ab", "empty", "f", "g1", "g[1]"}},
			{"g[1]", true, []string{"g[1]/x"}},
			{"f", true, nil}, // a file has nothing under it
		}
		for _, tt := range tests {
			got, err := s.List(ctx, tt.dir, tt.recursive)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("List(%q, %v) = %q, %v, want %q", tt.dir, tt.recursive, got, err, tt.want)
			}
		}
		if _, err := s.List(ctx, "missing", true); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("List(missing) error = %v, want fs.ErrNotExist", err)
		}
	})

	t.Run("prefix", func(t *testing.T) {
		other := provision(t, &Storage{Addr: srv.Addr, Prefix: "other"})
		if other.Exists(ctx, "f") {
			t.Errorf("Exists(f) with another prefix = true, want false")
		}
	})

	// Last, as it changes what the subtests above read.
	t.Run("Store and Delete", func(t *testing.T) {
		if err := s.Store(ctx, "f", []byte("new")); err != nil {
			t.Fatalf("Store(f) = %v", err)
		}
		if got, err := s.Load(ctx, "f"); err != nil || string(got) != "new" {
			t.Errorf("Load(f) after overwrite = %q, %v, want new", got, err)
		}
		if err := s.Delete(ctx, "a/b"); err != nil {
			t.Fatalf("Delete(a/b) = %v", err)
		}
		for k, want := range map[string]bool{"a/b/c": false, "a/b/d": false, "a/b": false, "a/e": true, "ab/q": true} {
			if got := s.Exists(ctx, k); got != want {
				t.Errorf("Exists(%q) after Delete(a/b) = %v, want %v", k, got, want)
			}
		}
		if err := s.Delete(ctx, "f"); err != nil || s.Exists(ctx, "f") {
			t.Errorf("Delete(f) = %v, and f exists = %v, want nil, false", err, s.Exists(ctx, "f"))
		}
		if err := s.Delete(ctx, "missing"); err != nil {
			t.Errorf("Delete(missing) = %v, want nil", err)
		}
	})
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	s := newStorage(t, StartServer(t).Addr, time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Store(ctx, "k", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Errorf("Store(canceled ctx) = %v, want context.Canceled", err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Load(canceled ctx) = %v, want context.Canceled", err)
	}
	if err := s.Lock(ctx, "job"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock(canceled ctx) = %v, want context.Canceled", err)
	}
}

// TestRedisDown checks that every method fails promptly while Redis is down,
// and that the storage works again once Redis is back.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := StartServer(t)
	s := newStorage(t, srv.Addr, time.Second, 10*time.Millisecond)
	if err := s.Store(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Store(k) = %v", err)
	}
	if err := s.Lock(t.Context(), "held"); err != nil {
		t.Fatalf("Lock(held) = %v", err)
	}

	srv.Stop()
	srv.Stop() // idempotent
	errFalse := errors.New("returned false")
	ops := []struct {
		name string
		op   func(context.Context) error
	}{
		{"Store", func(ctx context.Context) error { return s.Store(ctx, "k", []byte("w")) }},
		{"Load", func(ctx context.Context) error { _, err := s.Load(ctx, "k"); return err }},
		{"Delete", func(ctx context.Context) error { return s.Delete(ctx, "k") }},
		{"List", func(ctx context.Context) error { _, err := s.List(ctx, "", true); return err }},
		{"Stat", func(ctx context.Context) error { _, err := s.Stat(ctx, "k"); return err }},
		{"Exists", func(ctx context.Context) error {
			if !s.Exists(ctx, "k") {
				return errFalse
			}
			return nil
		}},
		{"Lock", func(ctx context.Context) error { return s.Lock(ctx, "other") }},
		{"Unlock", func(ctx context.Context) error { return s.Unlock(ctx, "held") }},
	}
	for _, tt := range ops {
		// The context allows far longer than the bound: the client's own
		// timeouts must end the call.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		start := time.Now()
		err := tt.op(ctx)
		elapsed := time.Since(start)
		cancel()
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s with Redis down = %v, want an error other than fs.ErrNotExist", tt.name, err)
		}
		if elapsed > 3*time.Second {
			t.Errorf("%s with Redis down took %v, want at most 3s", tt.name, elapsed)
		}
	}

	srv.Restart() // empty
	ctx := t.Context()
	// After as many failed dials as its pool has connections, go-redis
	// fails fast until a probe, once a second, reaches Redis again.
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := s.Load(ctx, "k")
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Load(k) 5s after restart = %v, want fs.ErrNotExist", err)
		}
		<-tick.C
	}
	if err := s.Store(ctx, "k", []byte("again")); err != nil {
		t.Errorf("Store(k) after restart = %v", err)
	}
	if got, err := s.Load(ctx, "k"); err != nil || string(got) != "again" {
		t.Errorf("Load(k) after restart = %q, %v, want again", got, err)
	}
	// the failed Unlock gave up the lock, and the restart emptied Redis
	if err := s.Lock(ctx, "held"); err != nil {
		t.Errorf("Lock(held) after restart = %v", err)
	}
	if err := s.Unlock(ctx, "held"); err != nil {
		t.Errorf("Unlock(held) after restart = %v", err)
	}
}

func TestProvision(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		defer cancel()
		// Loaded the way Caddy loads its "storage" config. Nothing listens
		// on port 1: provisioning must not connect.
		var cfg struct {
			StorageRaw json.RawMessage `json:"storage" caddy:"namespace=caddy.storage inline_key=module"`
		}
		raw := `{"storage": {"module": "webanksign_test_redis", "addr": "127.0.0.1:1", "lock_poll": "250ms"}}`
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			t.Fatal(err)
		}
		mod, err := ctx.LoadModule(&cfg, "StorageRaw")
		if err != nil {
			t.Fatalf("LoadModule() = %v", err)
		}
		s, ok := mod.(*Storage)
		if !ok {
			t.Fatalf("LoadModule() = %T, want *Storage", mod)
		}
		if s.Addr != "127.0.0.1:1" || s.Prefix != "caddy" ||
			s.LockTTL != caddy.Duration(5*time.Second) || s.LockPoll != caddy.Duration(250*time.Millisecond) {
			t.Errorf("provisioned %q, %q, %v, %v, want 127.0.0.1:1, caddy, 5s, 250ms",
				s.Addr, s.Prefix, time.Duration(s.LockTTL), time.Duration(s.LockPoll))
		}
		cm, err := s.CertMagicStorage()
		if err != nil || cm != s {
			t.Errorf("CertMagicStorage() = %p, %v, want %p", cm, err, s)
		}
	})

	tests := []struct {
		name, config, wantErr string
	}{
		{"no addr", `{}`, "addr is required"},
		{"negative lock_ttl", `{"addr": "127.0.0.1:1", "lock_ttl": "-1s"}`, "lock_ttl"},
		{"lock_ttl under 1ms", `{"addr": "127.0.0.1:1", "lock_ttl": "100us"}`, "lock_ttl"},
		{"negative lock_poll", `{"addr": "127.0.0.1:1", "lock_poll": "-1s"}`, "lock_poll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			_, err := ctx.LoadModuleByID("caddy.storage.webanksign_test_redis", json.RawMessage(tt.config))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadModuleByID(%s) = %v, want an error about %s", tt.config, err, tt.wantErr)
			}
		})
	}
}
