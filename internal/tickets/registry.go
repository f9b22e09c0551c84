package tickets

import (
	"slices"
	"sync"
)

// registry is the apps registered with a cache: for each, every
// registration (how its tickets are to be fetched; the latest is followed)
// and its appState, which lives exactly as long as the app is registered.
// It is safe for concurrent use.
type registry struct {
	mu   sync.Mutex             // protects apps
	apps map[string]*registered // by key (appKey)
}

// registered is one app as long as it is registered: how it is to be
// fetched, and what is known about fetching it.
type registered struct {
	regs  []*appConfig // the latest last
	state *appState
}

// register records cfg for key and returns the registration for
// unregister. An app whose last registration is gone is forgotten, ticket
// and all.
func (r *registry) register(key string, cfg appConfig) *appConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg := &cfg
	app := r.apps[key]
	if app == nil {
		app = &registered{state: new(appState)}
		r.apps[key] = app
	}
	app.regs = append(app.regs, reg)
	return reg
}

// drop removes registration reg of key, and reports whether it was key's
// last: the app is then forgotten.
func (r *registry) drop(key string, reg *appConfig) (last bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	app := r.apps[key]
	if app == nil {
		return false
	}
	if app.regs = slices.DeleteFunc(app.regs, func(x *appConfig) bool { return x == reg }); len(app.regs) > 0 {
		return false
	}
	delete(r.apps, key)
	return true
}

// app returns how key's tickets are fetched now.
func (r *registry) app(key string) (appConfig, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	app := r.apps[key]
	if app == nil {
		return appConfig{}, false
	}
	return *app.regs[len(app.regs)-1], true
}

// current returns every registered app's key and how its tickets are
// fetched now.
func (r *registry) current() map[string]appConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfgs := make(map[string]appConfig, len(r.apps))
	for k, app := range r.apps {
		cfgs[k] = *app.regs[len(app.regs)-1]
	}
	return cfgs
}

// OtherBaseURLs returns the base URLs, other than baseURL, that appID is
// registered with.
func (r *registry) OtherBaseURLs(appID, baseURL string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, app := range r.apps {
		for _, reg := range app.regs {
			if reg.creds.AppID == appID && reg.creds.BaseURL != baseURL && !slices.Contains(out, reg.creds.BaseURL) {
				out = append(out, reg.creds.BaseURL)
			}
		}
	}
	return out
}

// state returns what is known about fetching key's tickets: kept while key
// is registered, fresh (and kept nowhere) if it is not.
func (r *registry) state(key string) *appState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if app := r.apps[key]; app != nil {
		return app.state
	}
	return new(appState)
}
