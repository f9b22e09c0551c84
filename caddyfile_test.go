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
			}`,
			want: Handler{
				AppID: "{env.WEBANK_APP_ID}", Secret: "{env.WEBANK_SECRET}",
				BaseURL: "https://kyc1.qcloud.com", Version: "1.0.0", Refresh: "15m",
				FetchTimeout: "5s", RetryCodes: []string{"15", "400101", "66660001"},
			},
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
		{name: "bad refresh", input: "webank_sign {\n refresh soon\n}", wantErr: `refresh: "soon" is not a positive duration`},
		{name: "zero refresh", input: "webank_sign {\n refresh 0s\n}", wantErr: `refresh: "0s" is not a positive duration`},
		{name: "negative fetch_timeout", input: "webank_sign {\n fetch_timeout -1s\n}", wantErr: `fetch_timeout: "-1s" is not a positive duration`},
		{name: "retry_codes without codes", input: "webank_sign {\n retry_codes\n}", wantErr: "retry_codes needs at least one code"},
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
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("UnmarshalCaddyfile = %+v, want %+v", h, tt.want)
			}
		})
	}
}

// provision provisions and validates h the way Caddy does, including the
// Cleanup that follows a failed Validate, and returns the first error.
func provision(t testing.TB, h *Handler) error {
	t.Helper()
	ctx, err := caddy.ProvisionContext(&caddy.Config{
		StorageRaw: json.RawMessage(fmt.Sprintf(`{"module":"file_system","root":%q}`, t.TempDir())),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Provision(ctx); err != nil {
		return err
	}
	if err := h.Validate(); err != nil {
		_ = h.Cleanup()
		return err
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return nil
}

func TestProvisionAndValidate(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	t.Setenv("WBS_TEST_EMPTY", "")
	t.Setenv("WBS_TEST_REFRESH", "90s")
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

func TestProvisionDefaults(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	h := Handler{AppID: "IDA00001", Secret: "{env.WBS_TEST_SECRET}", BaseURL: "http://127.0.0.1:1/"}
	if err := provision(t, &h); err != nil {
		t.Fatal(err)
	}
	if h.creds.secret != "s3cr3t-value" || h.Secret != "{env.WBS_TEST_SECRET}" {
		t.Errorf("secret not expanded into the unexported field only")
	}
	if h.creds.baseURL != "http://127.0.0.1:1" {
		t.Errorf("base_url = %q, want the trailing slash trimmed", h.creds.baseURL)
	}
	if h.version != defaultVersion || h.refresh != defaultRefresh || h.timeout != defaultFetchTimeout {
		t.Errorf("defaults = %q %v %v", h.version, h.refresh, h.timeout)
	}
	if !h.retryCodes["15"] || !h.retryCodes["400101"] || len(h.retryCodes) != 2 {
		t.Errorf("retry codes = %v, want 15 and 400101", h.retryCodes)
	}
}
