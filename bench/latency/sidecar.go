package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/webanksign/caddy-webanksign"
)

// sidecarSite is one site of the in-process Caddy: webank_sign and
// reverse_proxy, as in Caddyfile.example (or, for comparison, reverse_proxy
// alone), on its own loopback port, with its own reverse_proxy transport
// and so its own pool of connections to WeBank.
type sidecarSite struct {
	name      string // for the report
	upstream  string // host:port of the relay it proxies to, over HTTPS
	transport string // extra lines of the transport http block (keepalive settings)
	launches  bool   // also serve webank_sign_local under /webank/ (sdk_sign)
	plain     bool   // reverse_proxy alone, without webank_sign: the client signs

	url string // http://127.0.0.1:port, set by startSidecar
}

// sidecar is Caddy, run in this process with the webank_sign module.
type sidecar struct {
	config []byte // the adapted JSON, loaded again for a reload
}

// startSidecar builds the Caddyfile of sites, adapts it and starts Caddy,
// with its storage and its autosaved config in dir, not in $HOME. Tokens,
// SIGN and NONCE tickets are fetched from baseURL. The caller must call
// stop.
func startSidecar(dir string, sites []*sidecarSite, baseURL, caFile string) (*sidecar, string, error) {
	os.Setenv("BENCH_WEBANK_APP_ID", sidecarAppID)
	os.Setenv("BENCH_WEBANK_SECRET", sidecarSecret)
	caddy.ConfigAutosavePath = filepath.Join(dir, "autosave.json")
	var b strings.Builder
	fmt.Fprintf(&b, `{
	admin off
	storage file_system %s
	log {
		level ERROR
	}
}
`, filepath.Join(dir, "storage"))
	for _, s := range sites {
		port, err := freePort()
		if err != nil {
			return nil, "", err
		}
		s.url = fmt.Sprintf("http://127.0.0.1:%d", port)
		launches := ""
		if s.launches {
			launches = fmt.Sprintf(`
	handle /webank/* {
		webank_sign_local {
			app_id {env.BENCH_WEBANK_APP_ID}
			secret {env.BENCH_WEBANK_SECRET}
			base_url %s
		}
	}`, baseURL)
		}
		sign := fmt.Sprintf(`
		webank_sign {
			app_id {env.BENCH_WEBANK_APP_ID}
			secret {env.BENCH_WEBANK_SECRET}
			base_url %s
		}`, baseURL)
		if s.plain {
			sign = ""
		}
		fmt.Fprintf(&b, `
# %s
http://127.0.0.1:%d {
	bind 127.0.0.1
	handle /api/server/getOcrResult {%s
		reverse_proxy https://%s {
			transport http {
				tls_trust_pool file %s
%s			}
		}
	}%s
	handle {
		respond 404
	}
}
`, s.name, port, sign, s.upstream, caFile, indent(s.transport, "\t\t\t\t"), launches)
	}
	caddyfile := b.String()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "latency.Caddyfile"})
	if err != nil {
		return nil, caddyfile, fmt.Errorf("adapting the sidecar's Caddyfile: %v", err)
	}
	if len(warnings) > 0 { // the Caddyfile is ours: a warning is a mistake in it
		return nil, caddyfile, fmt.Errorf("adapting the sidecar's Caddyfile: line %d: %s", warnings[0].Line, warnings[0].Message)
	}
	if err := caddy.Load(cfg, true); err != nil {
		return nil, caddyfile, fmt.Errorf("starting Caddy: %v", err)
	}
	return &sidecar{config: cfg}, caddyfile, nil
}

// reload loads the same config again, forced, as `caddy reload --force`
// does: Caddy provisions every handler anew, reverse_proxy's transports
// included, and cleans up the old ones.
func (s *sidecar) reload() error { return caddy.Load(s.config, true) }

// stop stops Caddy.
func (s *sidecar) stop() { _ = caddy.Stop() }

// indent returns the non-empty lines of lines, trimmed, each after prefix.
func indent(lines, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(lines) {
		if strings.TrimSpace(line) != "" {
			b.WriteString(prefix + strings.TrimSpace(line) + "\n")
		}
	}
	return b.String()
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
