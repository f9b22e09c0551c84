package webanksign

import (
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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
				value_set     user_id
				photos        deny
				max_body_size 4MiB
				body_timeout  5s
				proxy_hosts   idasc.webank.com kyc1.qcloud.com:80
			}`,
			want: Handler{
				AppOptions: AppOptions{
					AppID: "{env.WEBANK_APP_ID}", Secret: "{env.WEBANK_SECRET}",
					BaseURL: "https://kyc1.qcloud.com", Version: "1.0.0", Refresh: "15m",
					FetchTimeout: "5s", RetryCodes: []string{"15", "400101", "66660001"},
				},
				Mode: "json", ValueSet: "user_id", Photos: "deny", MaxBodySize: 4 << 20, BodyTimeout: "5s",
				ProxyHosts: []string{"idasc.webank.com", "kyc1.qcloud.com:80"},
			},
		},
		{
			name:  "several apps",
			input: "webank_sign {\n app IDA1 {env.S1}\n app IDA2 {env.S2}\n}",
			want: Handler{
				AppOptions: AppOptions{Apps: []AppCredentials{
					{AppID: "IDA1", Secret: "{env.S1}"}, {AppID: "IDA2", Secret: "{env.S2}"},
				}},
			},
		},
		{
			name:  "required only",
			input: "webank_sign {\n app_id IDA1\n secret {file./run/secrets/wb}\n}",
			want:  Handler{AppOptions: AppOptions{AppID: "IDA1", Secret: "{file./run/secrets/wb}"}},
		},
		{
			name:  "placeholder durations are checked at provision time",
			input: "webank_sign {\n refresh {env.REFRESH}\n}",
			want:  Handler{AppOptions: AppOptions{Refresh: "{env.REFRESH}"}},
		},
		{name: "value_set twice", input: "webank_sign {\n value_set user_id\n value_set order_no\n}", wantErr: "value_set already specified"},
		{name: "value_set without a value", input: "webank_sign {\n value_set\n}", wantErr: "value_set takes exactly one value"},
		{name: "retry off", input: "webank_sign {\n retry_codes off\n}", want: Handler{AppOptions: AppOptions{RetryCodes: []string{"off"}}}},
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
		{name: "body_timeout without a value", input: "webank_sign {\n body_timeout\n}", wantErr: "body_timeout takes exactly one value, got 0"},
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

// TestAppOptionsJSON checks that the shared options, which both handlers
// embed, sit in the JSON beside each handler's own, as the Caddyfile
// adapter writes them and as Caddy reads them back, unknown names refused.
func TestAppOptionsJSON(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webank_sign {\n app_id IDA1\n secret {env.S}\n refresh 5m\n mode json\n}")); err != nil {
		t.Fatal(err)
	}
	var l LocalHandler
	if err := l.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webank_sign_local {\n app IDA1 {env.S}\n retry_codes off\n nonce_limit 4\n}")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		in   any
		out  any
		want string
	}{
		{&h, new(Handler), `{"app_id":"IDA1","secret":"{env.S}","refresh":"5m","mode":"json","source":"Testfile:1"}`},
		{&l, new(LocalHandler), `{"apps":[{"app_id":"IDA1","secret":"{env.S}"}],"retry_codes":["off"],"nonce_limit":4,"source":"Testfile:1"}`},
	} {
		got := caddyconfig.JSON(tt.in, nil)
		if string(got) != tt.want {
			t.Errorf("JSON = %s, want %s", got, tt.want)
		}
		if err := caddy.StrictUnmarshalJSON(got, tt.out); err != nil {
			t.Fatalf("reading %s back: %v", got, err)
		}
		if !reflect.DeepEqual(tt.out, tt.in) {
			t.Errorf("read back %+v, want %+v", tt.out, tt.in)
		}
	}
	if err := caddy.StrictUnmarshalJSON([]byte(`{"app_id":"IDA1","nonce_limit":4}`), new(Handler)); err == nil || !strings.Contains(err.Error(), "nonce_limit") {
		t.Errorf("webank_sign with nonce_limit: error = %v, want one naming nonce_limit", err)
	}
}
