package webanksign

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Handler
		wantErr string // a substring of the error; "" for none
	}{
		{
			name: "all options",
			input: `webank_sign {
				app_id        {env.WEBANK_APP_ID}
				secret        {env.WEBANK_SECRET}
				base_url      https://kyc1.qcloud.com
				version       1.0.0
				refresh       15m
				fetch_timeout 5s
				retry_codes   15 400101 66660001
				mode          json
				photos        deny
				max_body_size 4MiB
				proxy_hosts   idasc.webank.com kyc1.qcloud.com:80
			}`,
			want: Handler{
				AppID: "{env.WEBANK_APP_ID}", Secret: "{env.WEBANK_SECRET}",
				BaseURL: "https://kyc1.qcloud.com", Version: "1.0.0", Refresh: "15m",
				FetchTimeout: "5s", RetryCodes: []string{"15", "400101", "66660001"},
				Mode: "json", Photos: "deny", MaxBodySize: 4 << 20,
				ProxyHosts: []string{"idasc.webank.com", "kyc1.qcloud.com:80"},
			},
		},
		{
			name:  "several apps",
			input: "webank_sign {\n app IDA1 {env.S1}\n app IDA2 {env.S2}\n}",
			want: Handler{Apps: []AppCredentials{
				{AppID: "IDA1", Secret: "{env.S1}"}, {AppID: "IDA2", Secret: "{env.S2}"},
			}},
		},
		{
			name:  "required only",
			input: "webank_sign {\n app_id IDA1\n secret {file./run/secrets/wb}\n}",
			want:  Handler{AppID: "IDA1", Secret: "{file./run/secrets/wb}"},
		},
		{
			name:  "placeholder durations are checked at provision time",
			input: "webank_sign {\n refresh {env.REFRESH}\n}",
			want:  Handler{Refresh: "{env.REFRESH}"},
		},
		{name: "retry off", input: "webank_sign {\n retry_codes off\n}", want: Handler{RetryCodes: []string{"off"}}},
		{name: "inline argument", input: "webank_sign IDA1", wantErr: "wrong argument count"},
		{name: "unknown subdirective", input: "webank_sign {\n appid IDA1\n}", wantErr: `unrecognized subdirective "appid"`},
		{name: "repeated subdirective", input: "webank_sign {\n app_id A\n app_id B\n}", wantErr: "app_id already specified"},
		{name: "missing value", input: "webank_sign {\n secret\n}", wantErr: "secret takes exactly one value, got 0"},
		{name: "two values", input: "webank_sign {\n app_id A B\n}", wantErr: "app_id takes exactly one value, got 2"},
		{name: "retry_codes without codes", input: "webank_sign {\n retry_codes\n}", wantErr: "retry_codes needs at least one code"},
		{name: "app without secret", input: "webank_sign {\n app IDA1\n}", wantErr: "app takes an app_id and a secret, got 1 values"},
		{name: "app twice", input: "webank_sign {\n app IDA1 {env.A}\n app IDA1 {env.B}\n}", wantErr: "app IDA1 already specified"},
		{name: "app and app_id", input: "webank_sign {\n app_id IDA1\n app IDA2 {env.B}\n}", wantErr: "app cannot be combined with app_id and secret"},
		{name: "bad max_body_size", input: "webank_sign {\n max_body_size lots\n}", wantErr: `max_body_size: "lots" is not a size`},
		{name: "zero max_body_size", input: "webank_sign {\n max_body_size 0\n}", wantErr: `max_body_size: "0" is not a size`},
		{name: "proxy_hosts without hosts", input: "webank_sign {\n proxy_hosts\n}", wantErr: "proxy_hosts needs at least one host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("UnmarshalCaddyfile error = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "Testfile:") {
					t.Errorf("error %q does not name the file and line", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			tt.want.Source = "Testfile:1"
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("UnmarshalCaddyfile = %+v, want %+v", h, tt.want)
			}
		})
	}
}

// TestCaddyfileValuesCheckedOnce checks that a wrong value in a Caddyfile
// is refused by the one check every config goes through, at provision
// time, and that the error still names the Caddyfile line.
func TestCaddyfileValuesCheckedOnce(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	const app = "webank_sign {\n app_id IDA1\n secret {env.WBS_TEST_SECRET}\n "
	tests := []struct{ name, option, wantErr string }{
		{"bad refresh", "refresh soon", `refresh: parsing "soon"`},
		{"zero refresh", "refresh 0s", "refresh: must be at least 1s, not 0s"},
		{"negative fetch_timeout", "fetch_timeout -1s", "fetch_timeout: must be positive, not -1s"},
		{"bad mode", "mode form", `mode: "form" is not query or json`},
		{"bad photos", "photos strip", `photos: "strip" is not allow or deny`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(app + tt.option + "\n}")); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v, want the value left to provisioning", err)
			}
			err := provision(t, &h)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("provision error = %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "Testfile:1") {
				t.Errorf("error %q does not name the file and line", err)
			}
		})
	}
}

// provision provisions and validates h the way Caddy does, including the
// Cleanup that follows a failed Validate, and returns the first error.
func provision(t testing.TB, h *Handler) error {
	t.Helper()
	ctx := testContext(t)
	if err := h.Provision(ctx); err != nil {
		_ = h.Cleanup() // as Caddy does after a failed Provision
		return err
	}
	if err := h.Validate(); err != nil {
		_ = h.Cleanup()
		return err
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return nil
}

// testContext returns a Caddy context for one config, with its own storage,
// that is cancelled (cleaning up the apps loaded into it) when t ends.
func testContext(t testing.TB) caddy.Context {
	t.Helper()
	root, err := caddy.ProvisionContext(&caddy.Config{
		StorageRaw: json.RawMessage(fmt.Sprintf(`{"module":"file_system","root":%q}`, t.TempDir())),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(root)
	t.Cleanup(cancel)
	return ctx
}

func TestProvisionAndValidate(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	t.Setenv("WBS_TEST_EMPTY", "")
	t.Setenv("WBS_TEST_REFRESH", "90s")
	t.Setenv("WBS_TEST_LONG", strings.Repeat("k", 64))
	ok := func(h Handler) Handler {
		if h.AppID == "" {
			h.AppID = "IDA00001"
		}
		if h.Secret == "" {
			h.Secret = "{env.WBS_TEST_SECRET}"
		}
		return h
	}
	tests := []struct {
		name    string
		h       Handler
		wantErr string
	}{
		{name: "defaults", h: ok(Handler{})},
		{name: "placeholder refresh", h: ok(Handler{Refresh: "{env.WBS_TEST_REFRESH}"})},
		{name: "no app_id", h: Handler{Secret: "x"}, wantErr: "app_id is required"},
		{name: "bad app_id", h: ok(Handler{AppID: "ID A"}), wantErr: `app_id: "ID A" is not`},
		{name: "no secret", h: Handler{AppID: "IDA1"}, wantErr: "secret is required"},
		{name: "secret placeholder empty", h: ok(Handler{Secret: "{env.WBS_TEST_EMPTY}"}), wantErr: "secret: expanding placeholders"},
		{name: "unknown placeholder", h: ok(Handler{AppID: "{nope.x}"}), wantErr: "app_id: expanding placeholders"},
		{name: "base_url scheme", h: ok(Handler{BaseURL: "ftp://example.com"}), wantErr: "base_url: \"ftp://example.com\": scheme must be https or http"},
		{name: "base_url without host", h: ok(Handler{BaseURL: "https://"}), wantErr: "base_url: \"https://\": no host"},
		{name: "base_url with query", h: ok(Handler{BaseURL: "https://h/?a=1"}), wantErr: "must not have a query"},
		{name: "base_url with user", h: ok(Handler{BaseURL: "https://u:p@h"}), wantErr: "must not hold user information"},
		{name: "bad version", h: ok(Handler{Version: "1 0"}), wantErr: `version: "1 0" is not`},
		{name: "bad refresh", h: ok(Handler{Refresh: "often"}), wantErr: `refresh: parsing "often"`},
		{name: "negative fetch_timeout", h: ok(Handler{FetchTimeout: "-3s"}), wantErr: "fetch_timeout: must be positive"},
		{name: "retry off with codes", h: ok(Handler{RetryCodes: []string{"off", "15"}}), wantErr: "retry_codes: 'off' cannot be combined"},
		{name: "retry code 0", h: ok(Handler{RetryCodes: []string{"0"}}), wantErr: `retry_codes: "0" is not an error code`},
		{name: "several apps", h: Handler{Apps: []AppCredentials{{"IDA1", "{env.WBS_TEST_SECRET}"}, {"IDA2", "{env.WBS_TEST_SECRET}"}}}},
		{name: "apps and app_id", h: ok(Handler{Apps: []AppCredentials{{"IDA2", "{env.WBS_TEST_SECRET}"}}}), wantErr: "app_id and secret cannot be combined with apps"},
		{name: "app listed twice", h: Handler{Apps: []AppCredentials{{"IDA1", "{env.WBS_TEST_SECRET}"}, {"IDA1", "{env.WBS_TEST_SECRET}"}}}, wantErr: "apps[1]: app_id IDA1 is listed more than once"},
		{name: "app without secret", h: Handler{Apps: []AppCredentials{{"IDA1", ""}}}, wantErr: "apps[0].secret is required"},
		{name: "app with bad app_id", h: Handler{Apps: []AppCredentials{{"ID 1", "{env.WBS_TEST_SECRET}"}}}, wantErr: `apps[0].app_id: "ID 1" is not`},
		{name: "app_id and secret swapped", h: Handler{Apps: []AppCredentials{{"{env.WBS_TEST_LONG}", "IDA1"}}}, wantErr: "apps[0].app_id: a value of 64 characters is not 1 to 32 characters"},
		{name: "bad mode", h: ok(Handler{Mode: "form"}), wantErr: `mode: "form" is not query or json`},
		{name: "bad photos", h: ok(Handler{Photos: "strip"}), wantErr: `photos: "strip" is not allow or deny`},
		{name: "negative max_body_size", h: ok(Handler{MaxBodySize: -1}), wantErr: "max_body_size: must be positive"},
		{name: "bad proxy host", h: ok(Handler{ProxyHosts: []string{"idasc.webank.com/api"}}), wantErr: `proxy_hosts: "idasc.webank.com/api" is not a host`},
		{name: "bad proxy port", h: ok(Handler{ProxyHosts: []string{"idasc.webank.com:99999"}}), wantErr: `proxy_hosts: "idasc.webank.com:99999" is not a host`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			err := provision(t, &h)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("provision: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("provision error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t-value") {
				t.Errorf("error %q holds the secret", err)
			}
		})
	}
}

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
	first := &Handler{AppID: "IDA1", Secret: "{env.WBS_TEST_SECRET}", BaseURL: "http://127.0.0.1:1", Source: "Caddyfile:3"}
	if err := load(ctx, first); err != nil {
		t.Fatal(err)
	}
	same := &Handler{AppID: "IDA1", Secret: "{env.WBS_TEST_SAME}", BaseURL: "http://127.0.0.1:1"}
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
	otherURL := &Handler{AppID: "IDA1", Secret: "{env.WBS_TEST_SECRET}", BaseURL: "https://127.0.0.1:2"}
	if err := load(ctx, otherURL); err != nil {
		t.Fatalf("the same app and secret at another base_url: %v", err)
	}
	conflict := &Handler{Apps: []AppCredentials{{"IDA2", "{env.WBS_TEST_SECRET}"}, {"IDA1", "{env.WBS_TEST_OTHER}"}},
		BaseURL: "https://idasc.webank.com", Source: "Caddyfile:17"}
	err = load(ctx, conflict)
	want := "app_id IDA1 is given one secret at Caddyfile:3 and another at Caddyfile:17"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("conflicting secret (at another base_url): error = %v, want one containing %q", err, want)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %q holds a secret", err)
	}
	noSource := &Handler{AppID: "IDA1", Secret: "{env.WBS_TEST_OTHER}", BaseURL: "http://127.0.0.1:1"}
	if err := load(ctx, noSource); err == nil || !strings.Contains(err.Error(), "another at webank_sign handler #5 of the config") {
		t.Errorf("conflict in a JSON config: error = %v, want it to name the handler by position", err)
	}
	// Another config (a reload) may change the secret.
	if err := load(testContext(t), noSource); err != nil {
		t.Errorf("a new config with a new secret: %v", err)
	}
}

// TestBaseURLSpellings checks that one host, however written, is one
// base_url: one app at it is one app in the cache, with one token.
func TestBaseURLSpellings(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://idasc.webank.com", "https://idasc.webank.com"},
		{"https://IDASC.webank.com:443/", "https://idasc.webank.com"},
		{"HTTPS://idasc.WEBANK.com", "https://idasc.webank.com"},
		{"http://127.0.0.1:80", "http://127.0.0.1"},
		{"http://127.0.0.1:8090/", "http://127.0.0.1:8090"},
		{"https://kyc1.qcloud.com:8443", "https://kyc1.qcloud.com:8443"},
		{"http://[::1]:80", "http://[::1]"},
	} {
		if got, err := parseBaseURL(tt.in); err != nil || got != tt.want {
			t.Errorf("parseBaseURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestNormalHost is the host comparison for absolute-form requests.
func TestNormalHost(t *testing.T) {
	for _, tt := range []struct {
		scheme, host, want string
		ok                 bool
	}{
		{"http", "idasc.webank.com", "idasc.webank.com", true},
		{"http", "IDASC.WeBank.com:80", "idasc.webank.com", true},
		{"https", "idasc.webank.com:443", "idasc.webank.com", true},
		{"http", "idasc.webank.com:443", "idasc.webank.com:443", true},
		{"http", "idasc.webank.com:8080", "idasc.webank.com:8080", true},
		{"http", "[::1]", "::1", true},
		{"http", "[::1]:80", "::1", true},
		{"http", "[::1]:8080", "[::1]:8080", true},
		{"http", "", "", false},
		{"http", "idasc.webank.com:99999", "", false},
		{"http", "idasc.webank.com:x", "", false},
		{"http", "user@idasc.webank.com", "", false},
		{"http", "idasc.webank.com/api", "", false},
	} {
		got, ok := normalHost(tt.scheme, tt.host)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalHost(%q, %q) = %q, %v; want %q, %v", tt.scheme, tt.host, got, ok, tt.want, tt.ok)
		}
	}
}

// TestProxyHosts checks which absolute-form hosts a handler signs for.
func TestProxyHosts(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	h := Handler{AppID: "IDA1", Secret: "{env.WBS_TEST_SECRET}", BaseURL: "http://127.0.0.1:1",
		ProxyHosts: []string{"idasc.webank.com:443", "Kyc1.QCloud.com"}}
	if err := provision(t, &h); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		scheme, host string
		allowed      bool
	}{
		{"https", "idasc.webank.com", true},
		{"https", "idasc.webank.com:443", true},
		{"http", "idasc.webank.com:443", true},
		{"http", "idasc.webank.com", true}, // one host: the port only says which scheme
		{"http", "idasc.webank.com:8080", false},
		{"http", "kyc1.qcloud.com", true},
		{"https", "kyc1.qcloud.com", true},
		{"http", "kyc1.qcloud.com:80", true},
		{"http", "127.0.0.1:1", false}, // base_url's host is the default only
	} {
		n, _ := normalHost(tt.scheme, tt.host)
		if h.proxyHosts[n] != tt.allowed {
			t.Errorf("%s://%s allowed = %v, want %v", tt.scheme, tt.host, h.proxyHosts[n], tt.allowed)
		}
	}
}

// TestIsGetFile is the photo policy's reading of parameter names.
func TestIsGetFile(t *testing.T) {
	for name, want := range map[string]bool{
		"get_file": true, "getFile": true, "GetFile": true, "GET-FILE": true, "get__file": true,
		"getfile": true, "get_files": false, "get": false, "file": false, "xgetfile": false, "": false,
	} {
		if got := isGetFile(name); got != want {
			t.Errorf("isGetFile(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestProvisionDefaults(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	h := Handler{AppID: "IDA00001", Secret: "{env.WBS_TEST_SECRET}", BaseURL: "http://127.0.0.1:1/"}
	if err := provision(t, &h); err != nil {
		t.Fatal(err)
	}
	if h.tenants[0].creds.Secret != "s3cr3t-value" || h.Secret != "{env.WBS_TEST_SECRET}" {
		t.Errorf("secret not expanded into the unexported field only")
	}
	if h.tenants[0].creds.BaseURL != "http://127.0.0.1:1" {
		t.Errorf("base_url = %q, want the trailing slash trimmed", h.tenants[0].creds.BaseURL)
	}
	if h.version != defaultVersion || h.refresh != defaultRefresh || h.timeout != defaultFetchTimeout {
		t.Errorf("defaults = %q %v %v", h.version, h.refresh, h.timeout)
	}
	if !h.retryCodes["15"] || !h.retryCodes["400101"] || len(h.retryCodes) != 2 {
		t.Errorf("retry codes = %v, want 15 and 400101", h.retryCodes)
	}
}
