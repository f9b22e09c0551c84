package webanksign

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

func init() {
	caddy.RegisterModule(App{})
}

// cachePool holds the process's one ticket cache. Configs' Apps
// reference-count it, so the cache and every ticket in it survive a config
// reload; it is closed when no loaded config uses webank_sign any more.
var cachePool = caddy.NewUsagePool()

const cachePoolKey = "tickets"

const defaultCacheSize = 1024 // apps whose tickets are kept; more are refetched on use

// pooledCache is the ticket cache as the pool holds it.
type pooledCache struct{ *tickets.Cache }

// Destruct closes the cache: the pool calls it when the last config using
// it is unloaded.
func (p pooledCache) Destruct() error {
	p.Close()
	return nil
}

// loadedCache returns the process's ticket cache, or nil if no loaded
// config uses webank_sign. It serves the admin API, which belongs to no
// config; handlers reach the cache through their config's App.
func loadedCache() *tickets.Cache {
	var c *tickets.Cache
	cachePool.Range(func(_, v any) bool {
		c = v.(pooledCache).Cache
		return false
	})
	return c
}

// App holds what every webank_sign handler of a config shares: the
// process's ticket cache, and the apps the config signs for, so that one
// app_id is never given two secrets. Handlers load it themselves; configure
// it only to change its settings, with the Caddyfile's global option:
//
//	{
//	    webank_sign {
//	        cache_size 4096
//	    }
//	}
type App struct {
	// How many apps' access tokens and SIGN tickets are kept in memory. An
	// app pushed out by others that were used more recently gets its ticket
	// back from storage (or, failing that, from WeBank) on its next request;
	// each such eviction is counted in caddy_webank_sign_evictions_total.
	// The cache is shared by the whole process, so the config loaded last
	// sets it. Default: 1024.
	CacheSize int `json:"cache_size,omitempty"`

	cache  *tickets.Cache
	claims *claims
	size   int
	ctx    caddy.Context // the config's, for its http app at Start
	logger *zap.Logger

	// checked is closed once Start has found the config exposes nothing;
	// the config's HTTP servers hold the connections they accept until then.
	checked chan struct{}
}

// claims are the apps a config signs for.
type claims struct {
	mu       sync.Mutex          // protects secrets and handlers
	secrets  map[string]appClaim // the secret each app_id is given, and where
	handlers int                 // webank_sign and webank_sign_local handlers provisioned so far, to name the ones without a Source
}

type appClaim struct {
	secret [sha256.Size]byte
	place  string
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "webank_sign",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision joins the process's ticket cache.
func (a *App) Provision(ctx caddy.Context) error {
	if a.CacheSize < 0 {
		return fmt.Errorf("cache_size: must be positive, not %d", a.CacheSize)
	}
	a.size = a.CacheSize
	if a.size == 0 {
		a.size = defaultCacheSize
	}
	a.ctx = ctx
	a.logger = ctx.Logger()
	val, _, err := cachePool.LoadOrNew(cachePoolKey, func() (caddy.Destructor, error) {
		return pooledCache{tickets.New(a.size, oauthClient{newOAuthClient()})}, nil
	})
	if err != nil {
		return err
	}
	a.cache = val.(pooledCache).Cache
	a.claims = &claims{secrets: make(map[string]appClaim)}
	a.checked = make(chan struct{})
	return a.holdServers()
}

// holdServers makes the config's HTTP servers hold each connection they
// accept until Start has checked the config, and close it if the config is
// refused. Caddy starts a config's apps in no set order, so its http app
// may be serving, on listeners shared with the running config, before
// Start refuses it: without the hold, a request accepted then would be
// served by the refused config, and show sign and nonce. HTTP/3 does not
// go through the hold.
//
// The http app is usually being provisioned already, since its handlers
// load this app; with the webank_sign global option this app may come
// first, and then loads it here, once this app is ready for its handlers.
func (a *App) holdServers() error {
	httpApp, err := a.ctx.AppIfConfigured("http")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, srv := range httpApp.(*caddyhttp.App).Servers {
		srv.RegisterConnContext(a.holdConn)
	}
	return nil
}

// holdConn waits for Start's check; if the config is refused, or stopped
// before it was checked, it closes c, so that no request on it is served.
func (a *App) holdConn(ctx context.Context, c net.Conn) context.Context {
	select {
	case <-a.checked:
		return ctx
	default:
	}
	select {
	case <-a.checked:
	case <-a.ctx.Done():
		c.Close()
	}
	return ctx
}

// Start refuses a config that would expose the signed query (see
// confcheck.go), then sizes the ticket cache. The check waits for Start
// because only then are all of the config's routes provisioned: the app is
// provisioned with the first webank_sign handler, before the handlers
// after it. A Start error makes Caddy stop the apps it started and keep
// the running config; the hold (holdServers) keeps the refused config from
// serving in the meantime. Sizing is not done at Provision either, so that a
// config that fails to load leaves the running one's cache alone.
func (a *App) Start() error {
	httpApp, err := a.ctx.AppIfConfigured("http")
	if err != nil && !errors.Is(err, caddy.ErrNotConfigured) {
		return err
	}
	if httpApp != nil {
		if err := checkExposure(httpApp.(*caddyhttp.App)); err != nil {
			return err
		}
	}
	if a.checked != nil {
		close(a.checked)
	}
	if n := a.cache.Resize(a.size); n > 0 {
		a.logger.Warn("cache_size is smaller than the number of apps in use: the least recently used were evicted, and get their tickets back from storage when next used",
			zap.Int("cache_size", a.size), zap.Int("evicted", n))
	}
	return nil
}

// Stop does nothing: the ticket cache outlives a config, for the next one.
func (a *App) Stop() error { return nil }

// Cleanup releases the config's hold on the ticket cache.
func (a *App) Cleanup() error {
	if a.cache == nil {
		return nil
	}
	a.cache = nil
	_, err := cachePool.Delete(cachePoolKey)
	return err
}

// place names a handler of directive in errors: its Source if the
// Caddyfile adapter set one, else its position among the config's
// webank_sign and webank_sign_local handlers, counted together.
func (a *App) place(source, directive string) string {
	c := a.claims
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers++
	if source != "" {
		return source
	}
	return directive + " handler #" + strconv.Itoa(c.handlers) + " of the config"
}

// provisionHandler is what both handlers' Provision do: it joins the
// config's webank_sign app, sets *place to the handler's place (see
// App.place), and runs provision, whose error it prefixes with the place.
func provisionHandler(ctx caddy.Context, source, directive string, place *string, provision func(*App) error) error {
	appVal, err := ctx.App("webank_sign")
	if err != nil {
		return fmt.Errorf("loading the webank_sign app: %w", err)
	}
	app := appVal.(*App)
	*place = app.place(source, directive)
	if err := provision(app); err != nil {
		return fmt.Errorf("%s: %w", *place, err)
	}
	return nil
}

// claim records that the config signs for appID with secret, from place.
// One app_id must have one secret in a config, whatever its base_url: two
// handlers that fetched tokens with two secrets would each invalidate the
// other's, and one of the two secrets is wrong anyway.
func (a *App) claim(appID, secret, place string) error {
	c := a.claims
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := sha256.Sum256([]byte("webank_sign claim\x00" + secret))
	prev, ok := c.secrets[appID]
	if !ok {
		c.secrets[appID] = appClaim{sum, place}
		return nil
	}
	if prev.secret != sum {
		return fmt.Errorf("app_id %s is given one secret at %s and another at %s: one app has one secret, or the two would fetch access tokens that invalidate each other",
			appID, prev.place, place)
	}
	return nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
