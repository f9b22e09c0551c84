package webanksign

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
)

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
		{"bad body_timeout", "body_timeout soon", `body_timeout: parsing "soon"`},
		{"zero body_timeout", "body_timeout 0s", "body_timeout: must be positive, not 0s"},
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

// provisionable is a handler of the module, for provision.
type provisionable interface {
	caddy.Provisioner
	caddy.Validator
	caddy.CleanerUpper
}

// provision provisions and validates h the way Caddy does, including the
// Cleanup that follows a failed Validate, and returns the first error.
func provision(t testing.TB, h provisionable) error {
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
	ctx, cancel := newConfigContext(t)
	t.Cleanup(cancel)
	return ctx
}

// newConfigContext is testContext for a test that unloads the config
// itself, by calling cancel.
func newConfigContext(t testing.TB) (caddy.Context, context.CancelFunc) {
	t.Helper()
	root, err := caddy.ProvisionContext(&caddy.Config{
		StorageRaw: json.RawMessage(fmt.Sprintf(`{"module":"file_system","root":%q}`, t.TempDir())),
	})
	if err != nil {
		t.Fatal(err)
	}
	return caddy.NewContext(root)
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
		{name: "placeholder refresh", h: ok(Handler{AppOptions: AppOptions{Refresh: "{env.WBS_TEST_REFRESH}"}})},
		{name: "no app_id", h: Handler{AppOptions: AppOptions{Secret: "x"}}, wantErr: "app_id is required"},
		{name: "bad app_id", h: ok(Handler{AppOptions: AppOptions{AppID: "ID A"}}), wantErr: `app_id: "ID A" is not`},
		// The app_id is a path element of the storage key:
		// webank_sign/../x.ticket would land outside webank_sign/.
		{name: "app_id ..", h: ok(Handler{AppOptions: AppOptions{AppID: ".."}}), wantErr: `app_id: ".." is only dots`},
		{name: "app_id .", h: ok(Handler{AppOptions: AppOptions{AppID: "."}}), wantErr: `app_id: "." is only dots`},
		{name: "app with app_id ...", h: Handler{AppOptions: AppOptions{Apps: []AppCredentials{{"...", "{env.WBS_TEST_SECRET}"}}}}, wantErr: `apps[0].app_id: "..." is only dots`},
		{name: "app_id with dots and more", h: ok(Handler{AppOptions: AppOptions{AppID: "IDA.1"}})},
		{name: "no secret", h: Handler{AppOptions: AppOptions{AppID: "IDA1"}}, wantErr: "secret is required"},
		{name: "secret placeholder empty", h: ok(Handler{AppOptions: AppOptions{Secret: "{env.WBS_TEST_EMPTY}"}}), wantErr: "secret: expanding placeholders"},
		{name: "unknown placeholder", h: ok(Handler{AppOptions: AppOptions{AppID: "{nope.x}"}}), wantErr: "app_id: expanding placeholders"},
		{name: "base_url scheme", h: ok(Handler{AppOptions: AppOptions{BaseURL: "ftp://example.com"}}), wantErr: "base_url: \"ftp://example.com\": scheme must be https or http"},
		{name: "base_url without host", h: ok(Handler{AppOptions: AppOptions{BaseURL: "https://"}}), wantErr: "base_url: \"https://\": no host"},
		{name: "base_url with query", h: ok(Handler{AppOptions: AppOptions{BaseURL: "https://h/?a=1"}}), wantErr: "must not have a query"},
		{name: "base_url with user", h: ok(Handler{AppOptions: AppOptions{BaseURL: "https://u:p@h"}}), wantErr: "must not hold user information"},
		{name: "bad version", h: ok(Handler{AppOptions: AppOptions{Version: "1 0"}}), wantErr: `version: "1 0" is not`},
		{name: "bad refresh", h: ok(Handler{AppOptions: AppOptions{Refresh: "often"}}), wantErr: `refresh: parsing "often"`},
		{name: "negative fetch_timeout", h: ok(Handler{AppOptions: AppOptions{FetchTimeout: "-3s"}}), wantErr: "fetch_timeout: must be positive"},
		{name: "retry off with codes", h: ok(Handler{AppOptions: AppOptions{RetryCodes: []string{"off", "15"}}}), wantErr: "retry_codes: 'off' cannot be combined"},
		{name: "retry code 0", h: ok(Handler{AppOptions: AppOptions{RetryCodes: []string{"0"}}}), wantErr: `retry_codes: "0" is not an error code`},
		{name: "several apps", h: Handler{AppOptions: AppOptions{Apps: []AppCredentials{{"IDA1", "{env.WBS_TEST_SECRET}"}, {"IDA2", "{env.WBS_TEST_SECRET}"}}}}},
		{name: "apps and app_id", h: ok(Handler{AppOptions: AppOptions{Apps: []AppCredentials{{"IDA2", "{env.WBS_TEST_SECRET}"}}}}), wantErr: "app_id and secret cannot be combined with apps"},
		{name: "app listed twice", h: Handler{AppOptions: AppOptions{Apps: []AppCredentials{{"IDA1", "{env.WBS_TEST_SECRET}"}, {"IDA1", "{env.WBS_TEST_SECRET}"}}}}, wantErr: "apps[1]: app_id IDA1 is listed more than once"},
		{name: "app without secret", h: Handler{AppOptions: AppOptions{Apps: []AppCredentials{{"IDA1", ""}}}}, wantErr: "apps[0].secret is required"},
		{name: "app with bad app_id", h: Handler{AppOptions: AppOptions{Apps: []AppCredentials{{"ID 1", "{env.WBS_TEST_SECRET}"}}}}, wantErr: `apps[0].app_id: "ID 1" is not`},
		{name: "app_id and secret swapped", h: Handler{AppOptions: AppOptions{Apps: []AppCredentials{{"{env.WBS_TEST_LONG}", "IDA1"}}}}, wantErr: "apps[0].app_id: a value of 64 characters is not 1 to 32 characters"},
		{name: "bad mode", h: ok(Handler{Mode: "form"}), wantErr: `mode: "form" is not query or json`},
		{name: "bad value_set", h: ok(Handler{ValueSet: "userId"}), wantErr: `value_set: "userId" is not order_no, user_id or h5_face_id`},
		{name: "value_set user_id with mode query", h: ok(Handler{ValueSet: "user_id", Mode: "query"}), wantErr: "value_set: user_id signs a JSON body, and needs mode json, not query"},
		{name: "value_set h5_face_id with mode query", h: ok(Handler{ValueSet: "h5_face_id", Mode: "query"}), wantErr: "value_set: h5_face_id signs a JSON body"},
		{name: "value_set order_no with mode query", h: ok(Handler{ValueSet: "order_no", Mode: "query"})},
		{name: "value_set user_id with mode json", h: ok(Handler{ValueSet: "user_id", Mode: "json"})},
		{name: "bad photos", h: ok(Handler{Photos: "strip"}), wantErr: `photos: "strip" is not allow or deny`},
		{name: "negative max_body_size", h: ok(Handler{MaxBodySize: -1}), wantErr: "max_body_size: must be positive"},
		{name: "placeholder body_timeout", h: ok(Handler{BodyTimeout: "{env.WBS_TEST_REFRESH}"})},
		{name: "bad body_timeout", h: ok(Handler{BodyTimeout: "slow"}), wantErr: `body_timeout: parsing "slow"`},
		{name: "negative body_timeout", h: ok(Handler{BodyTimeout: "-1s"}), wantErr: "body_timeout: must be positive, not -1s"},
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
	h := Handler{
		AppOptions: AppOptions{AppID: "IDA1", Secret: "{env.WBS_TEST_SECRET}", BaseURL: "http://127.0.0.1:1"},
		ProxyHosts: []string{"idasc.webank.com:443", "Kyc1.QCloud.com"},
	}
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

func TestProvisionDefaults(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	h := Handler{AppOptions: AppOptions{AppID: "IDA00001", Secret: "{env.WBS_TEST_SECRET}", BaseURL: "http://127.0.0.1:1/"}}
	if err := provision(t, &h); err != nil {
		t.Fatal(err)
	}
	if h.tenants[0].creds.Secret != "s3cr3t-value" || h.Secret != "{env.WBS_TEST_SECRET}" {
		t.Errorf("secret not expanded into the unexported field only")
	}
	if h.tenants[0].creds.BaseURL != "http://127.0.0.1:1" {
		t.Errorf("base_url = %q, want the trailing slash trimmed", h.tenants[0].creds.BaseURL)
	}
	if h.version != defaultVersion || h.refresh != defaultRefresh || h.timeout != defaultFetchTimeout || h.bodyWait != defaultBodyTimeout {
		t.Errorf("defaults = %q %v %v %v", h.version, h.refresh, h.timeout, h.bodyWait)
	}
	if !h.retryCodes["15"] || !h.retryCodes["400101"] || len(h.retryCodes) != 2 {
		t.Errorf("retry codes = %v, want 15 and 400101", h.retryCodes)
	}
}

// TestJSONRequestDefaults checks the value set and body limit of a JSON
// request: configured, else by path (jsonAPIs), else order_no and 1 MiB;
// and that a value set other than order_no implies mode json.
func TestJSONRequestDefaults(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	const mib = 1 << 20
	tests := []struct {
		name      string
		h         Handler
		path      string
		wantMode  string // the mode parsed: "" is by path
		wantSet   valueSet
		wantLimit int64
	}{
		{"queryfacerecord", Handler{}, "/api/v2/base/queryfacerecord", "", setOrderNo, mib},
		{"queryphotoinfo", Handler{}, "/api/v2/base/queryphotoinfo", "", setOrderNo, mib},
		{"easyface uploads a selfie", Handler{}, "/api/paas/easyface", "", setOrderNo, 8 * mib},
		{"idcardocrapp carries images", Handler{}, "/api/paas/idcardocrapp", "", setOrderNo, 8 * mib},
		{"bankcardocrapp carries images", Handler{}, "/api/paas/bankcardocrapp", "", setOrderNo, 8 * mib},
		{"getAdvFaceId", Handler{}, "/api/server/getAdvFaceId", "", setUserID, 8 * mib},
		{"getfaceid", Handler{}, "/api/server/getfaceid", "", setUserID, 8 * mib},
		{"getPlusFaceId", Handler{}, "/api/server/getPlusFaceId", "", setUserID, 8 * mib},
		{"getWillFaceId", Handler{}, "/api/server/getWillFaceId", "", setUserID, 8 * mib},
		{"geth5faceid", Handler{}, "/api/server/h5/geth5faceid", "", setH5FaceID, 8 * mib},
		{"another path in json mode", Handler{Mode: "json"}, "/mine", modeJSON, setOrderNo, mib},
		{"another path, user_id implies json", Handler{ValueSet: "user_id"}, "/mine", modeJSON, setUserID, 8 * mib},
		{"another path, h5_face_id implies json", Handler{ValueSet: "h5_face_id"}, "/mine", modeJSON, setH5FaceID, 8 * mib},
		{"order_no implies nothing", Handler{ValueSet: "order_no"}, "/mine", "", setOrderNo, mib},
		{"configured over the path's", Handler{ValueSet: "order_no"}, "/api/server/getfaceid", "", setOrderNo, 8 * mib},
		{"max_body_size whatever the path", Handler{MaxBodySize: 2 * mib}, "/api/server/getfaceid", "", setUserID, 2 * mib},
		{"max_body_size on a result query", Handler{MaxBodySize: 100}, "/api/v2/base/queryfacerecord", "", setOrderNo, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			h.AppID, h.Secret, h.BaseURL = "IDA00001", "{env.WBS_TEST_SECRET}", "http://127.0.0.1:1"
			if err := provision(t, &h); err != nil {
				t.Fatal(err)
			}
			if h.mode != tt.wantMode {
				t.Errorf("mode = %q, want %q", h.mode, tt.wantMode)
			}
			set, limit := h.jsonRequest(jsonAPIs[tt.path])
			if set != tt.wantSet || limit != tt.wantLimit {
				t.Errorf("jsonRequest(%s) = %d, %d; want %d, %d", tt.path, set, limit, tt.wantSet, tt.wantLimit)
			}
		})
	}
}
