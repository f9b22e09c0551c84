package integration

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// Caddyfile.example adapts to JSON that holds the credential placeholders,
// not their values, and routes the signed path through webank_sign then
// reverse_proxy, apart from the catch-all 404.
func TestCaddyfileExampleAdapts(t *testing.T) {
	t.Setenv("WEBANK_SECRET", "must-not-appear-in-adapt-output")
	src, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatalf("adapting Caddyfile.example: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s:%d: %s", w.File, w.Line, w.Message)
	}
	if strings.Contains(string(out), "must-not-appear") {
		t.Errorf("adapted config holds the secret's value")
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen            []string `json:"listen"`
					ReadTimeout       int64    `json:"read_timeout"`
					ReadHeaderTimeout int64    `json:"read_header_timeout"`
					IdleTimeout       int64    `json:"idle_timeout"`
					Routes            []struct {
						Match  []map[string]any `json:"match"`
						Handle []struct {
							Routes []struct {
								Handle []map[string]any `json:"handle"`
							} `json:"routes"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	srv := cfg.Apps.HTTP.Servers["srv0"]
	if len(srv.Listen) != 1 || srv.Listen[0] != "127.0.0.1:8080" {
		t.Errorf("listen = %v, want only 127.0.0.1:8080", srv.Listen)
	}
	// Bounds on slow clients (issue 12, item 15), in nanoseconds.
	if srv.ReadHeaderTimeout != 5e9 || srv.ReadTimeout != 10e9 || srv.IdleTimeout != 120e9 {
		t.Errorf("timeouts: read_header %v, read_body %v, idle %v; want 5s, 10s, 2m",
			time.Duration(srv.ReadHeaderTimeout), time.Duration(srv.ReadTimeout), time.Duration(srv.IdleTimeout))
	}
	if len(srv.Routes) != 3 || len(srv.Routes[0].Match) != 1 || len(srv.Routes[1].Match) != 1 || len(srv.Routes[2].Match) != 0 {
		t.Fatalf("want the signed APIs' route, webank_sign_local's and the catch-all, in that order; got %d routes", len(srv.Routes))
	}
	handlers := func(i int) (names []string, byName map[string]map[string]any) {
		byName = make(map[string]map[string]any)
		for _, sub := range srv.Routes[i].Handle {
			for _, r := range sub.Routes {
				for _, h := range r.Handle {
					names = append(names, h["handler"].(string))
					byName[h["handler"].(string)] = h
				}
			}
		}
		return names, byName
	}
	names, signed := handlers(0)
	if strings.Join(names, ",") != "webank_sign,reverse_proxy" {
		t.Errorf("signed route handlers = %v, want webank_sign then reverse_proxy", names)
	}
	names, local := handlers(1)
	if strings.Join(names, ",") != "webank_sign_local" {
		t.Errorf("second route handlers = %v, want webank_sign_local alone", names)
	}
	for _, h := range []map[string]any{signed["webank_sign"], local["webank_sign_local"]} {
		if h["secret"] != "{env.WEBANK_SECRET}" || h["app_id"] != "{env.WEBANK_APP_ID}" {
			t.Errorf("credentials in adapted JSON = %v / %v, want the {env.*} placeholders", h["app_id"], h["secret"])
		}
	}
	if signed["webank_sign"]["base_url"] != local["webank_sign_local"]["base_url"] {
		t.Errorf("the two handlers fetch from different base URLs, %v and %v: they would not share the app's token",
			signed["webank_sign"]["base_url"], local["webank_sign_local"]["base_url"])
	}
}

// A secret written into the config works and draws a warning. Caddy itself
// then shows it: its debug log of the loaded config ("adjusted config")
// holds it, which is why the module warns. No other log line may.
func TestLiteralSecretWarns(t *testing.T) {
	e := setup(t, webanktest.Options{}, func(fakeURL string) string {
		return strings.Replace(signSite("")(fakeURL), "{env."+secretEnv+"}", secret, 1)
	})
	e.literalSecret = true
	if status, body := e.get(ocrPath + "?order_no=LIT1"); status != 200 {
		t.Fatalf("status = %d body %s", status, body)
	}
	logs, err := os.ReadFile(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), "secret is written into the config") {
		t.Errorf("no warning about the literal secret in the log")
	}
	var dumps int
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(line, `"msg":"adjusted config"`) && strings.Contains(line, secret) {
			dumps++
		}
	}
	if dumps == 0 {
		t.Errorf("Caddy's config dump no longer holds the literal secret: the warning and README can say less")
	}
	// checkLogs, at cleanup, fails the test if any other line holds it.
}
