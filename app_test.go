package webanksign

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestOneSecretPerApp provisions several handlers into one config: one
// app_id may appear in any number of them, with one secret only.
func TestOneSecretPerApp(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	t.Setenv("WBS_TEST_OTHER", "other-s3cr3t")
	t.Setenv("WBS_TEST_SAME", "s3cr3t-value")
	load := func(ctx caddy.Context, h *Handler) error {
		t.Helper()
		err := h.Provision(ctx)
		t.Cleanup(func() { _ = h.Cleanup() })
		return err
	}
	ctx := testContext(t)
	first := &Handler{AppOptions: AppOptions{AppID: "IDA1", Secret: "{env.WBS_TEST_SECRET}", BaseURL: "http://127.0.0.1:1"}, Source: "Caddyfile:3"}
	if err := load(ctx, first); err != nil {
		t.Fatal(err)
	}
	same := &Handler{AppOptions: AppOptions{AppID: "IDA1", Secret: "{env.WBS_TEST_SAME}", BaseURL: "http://127.0.0.1:1"}}
	if err := load(ctx, same); err != nil {
		t.Fatalf("a second handler with the same secret (from another placeholder): %v", err)
	}
	app, err := ctx.App("webank_sign")
	if err != nil {
		t.Fatal(err)
	}
	entries := 0
	for _, st := range app.(*App).cache.Status() {
		if st.AppID == "IDA1" && st.BaseURL == "http://127.0.0.1:1" {
			entries++
		}
	}
	if entries != 1 {
		t.Errorf("two handlers of one app are %d apps in the cache, want 1 (sharing its ticket)", entries)
	}
	otherURL := &Handler{AppOptions: AppOptions{AppID: "IDA1", Secret: "{env.WBS_TEST_SECRET}", BaseURL: "https://127.0.0.1:2"}}
	if err := load(ctx, otherURL); err != nil {
		t.Fatalf("the same app and secret at another base_url: %v", err)
	}
	conflict := &Handler{
		AppOptions: AppOptions{Apps: []AppCredentials{{"IDA2", "{env.WBS_TEST_SECRET}"}, {"IDA1", "{env.WBS_TEST_OTHER}"}}, BaseURL: "https://idasc.webank.com"},
		Source:     "Caddyfile:17",
	}
	err = load(ctx, conflict)
	want := "app_id IDA1 is given one secret at Caddyfile:3 and another at Caddyfile:17"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("conflicting secret (at another base_url): error = %v, want one containing %q", err, want)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %q holds a secret", err)
	}
	noSource := &Handler{AppOptions: AppOptions{AppID: "IDA1", Secret: "{env.WBS_TEST_OTHER}", BaseURL: "http://127.0.0.1:1"}}
	if err := load(ctx, noSource); err == nil || !strings.Contains(err.Error(), "another at webank_sign handler #5 of the config") {
		t.Errorf("conflict in a JSON config: error = %v, want it to name the handler by position", err)
	}
	localNoSource := &LocalHandler{AppOptions: AppOptions{AppID: "IDA1", Secret: "{env.WBS_TEST_OTHER}", BaseURL: "http://127.0.0.1:1"}}
	err = localNoSource.Provision(ctx)
	t.Cleanup(func() { _ = localNoSource.Cleanup() })
	if err == nil || !strings.HasPrefix(err.Error(), "webank_sign_local handler #6 of the config:") {
		t.Errorf("conflict in a JSON config's webank_sign_local: error = %v, want it to name that handler by position", err)
	}
	// Another config (a reload) may change the secret.
	if err := load(testContext(t), noSource); err != nil {
		t.Errorf("a new config with a new secret: %v", err)
	}
}

// TestAppSharesOneCache checks that every config's App holds the one
// process-wide cache, which outlives a reload and is closed with the last
// config that uses it.
func TestAppSharesOneCache(t *testing.T) {
	load := func() (*App, context.CancelFunc) {
		t.Helper()
		ctx, cancel := newConfigContext(t)
		t.Cleanup(cancel)
		app, err := ctx.App("webank_sign")
		if err != nil {
			t.Fatal(err)
		}
		return app.(*App), cancel
	}
	old, unloadOld := load()
	reloaded, unloadNew := load()
	if old.cache != reloaded.cache || loadedCache() != old.cache {
		t.Fatal("two loaded configs do not share the process's ticket cache")
	}
	unloadOld()
	if loadedCache() != reloaded.cache {
		t.Error("unloading the old config dropped the cache the new one uses")
	}
	unloadNew()
	if c := loadedCache(); c != nil {
		t.Error("the cache outlived the last config that used it")
	}
}

func TestAppCacheSize(t *testing.T) {
	ctx := testContext(t)
	if err := (&App{CacheSize: -1}).Provision(ctx); err == nil || !strings.Contains(err.Error(), "cache_size") {
		t.Errorf("cache_size -1: error = %v, want one naming cache_size", err)
	}
	app := new(App)
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Cleanup() })
	if app.size != defaultCacheSize {
		t.Errorf("default size = %d, want %d", app.size, defaultCacheSize)
	}
}

// TestHoldConn: a connection a config's server accepts is served once the
// config is checked, and closed, not served, if the config goes first.
// That it waits meanwhile is shown end to end by caddytest's
// TestRefusedConfigServesNothing.
func TestHoldConn(t *testing.T) {
	// hold runs holdConn on one end of a pipe, until settle returns, and
	// hands back the other end.
	hold := func(app *App, settle func()) net.Conn {
		server, client := net.Pipe()
		t.Cleanup(func() { client.Close() })
		held := make(chan struct{})
		go func() {
			app.holdConn(context.Background(), server)
			close(held)
		}()
		settle()
		<-held
		go server.Write([]byte("x")) // a closed end fails this at once
		return client
	}
	t.Run("checked", func(t *testing.T) {
		app := &App{ctx: testContext(t), checked: make(chan struct{})}
		client := hold(app, func() { close(app.checked) })
		if _, err := client.Read(make([]byte, 1)); err != nil {
			t.Errorf("the held connection after the check: %v, want it open", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		ctx, cancel := newConfigContext(t)
		app := &App{ctx: ctx, checked: make(chan struct{})}
		client := hold(app, cancel) // cancel: what Caddy does to a config whose Start failed
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("reading the connection of a refused config: %v, want EOF (closed)", err)
		}
	})
}
