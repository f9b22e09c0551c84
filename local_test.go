package webanksign

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestLocalConfig checks webank_sign_local's own options: each bad value
// is refused at provision time with a message that names the option and
// the Caddyfile line.
func TestLocalConfig(t *testing.T) {
	t.Setenv("WBS_TEST_SECRET", "s3cr3t-value")
	const head = "webank_sign_local {\n app_id IDA1\n secret {env.WBS_TEST_SECRET}\n "
	tests := []struct{ name, options, wantErr string }{
		{"defaults", "", ""},
		{"all options", "nonce_limit 4\n nonce_queue 8\n login_url http://127.0.0.1:9443\n login_hosts 127.0.0.1:9443 *.example.com\n retry_codes 15", ""},
		{"login_url with a path", "login_url https://kyc1.qcloud.com/api/web/login", "login_url: \"https://kyc1.qcloud.com/api/web/login\" must be a scheme and host only"},
		{"login_url scheme", "login_url ftp://kyc1.qcloud.com", "login_url: \"ftp://kyc1.qcloud.com\": scheme must be https or http"},
		{"login_hosts path", "login_hosts kyc1.qcloud.com/x", `login_hosts: "kyc1.qcloud.com/x" is not a host`},
		{"login_hosts bare wildcard", "login_hosts *", `login_hosts: "*" is not a host`},
		{"callback_hosts", "callback_hosts app.example.com *.example.org", ""},
		{"callback_hosts path", "callback_hosts app.example.com/cb", `callback_hosts: "app.example.com/cb" is not a host`},
		{"bad version", "version 1_0!", `version: "1_0!" is not`},
		{"bad fetch_timeout", "fetch_timeout -1s", "fetch_timeout: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h LocalHandler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(head + tt.options + "\n}"))
			if err == nil {
				err = provision(t, &h)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error = %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			case err != nil && !strings.Contains(err.Error(), "Testfile:1"):
				t.Errorf("error %q does not name the file and line", err)
			case err != nil && strings.Contains(err.Error(), "s3cr3t-value"):
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// TestLocalCaddyfileSyntax checks what the parser itself refuses.
func TestLocalCaddyfileSyntax(t *testing.T) {
	for _, tt := range []struct{ block, wantErr string }{
		{"nonce_limit 0", `nonce_limit: "0" is not a positive number`},
		{"nonce_queue -1", `nonce_queue: "-1" is not a positive number`},
		{"nonce_limit x", `nonce_limit: "x" is not a positive number`},
		{"login_hosts", "login_hosts needs at least one host"},
		{"login_url a b", "login_url takes exactly one value, got 2"},
		{"mode json", `unrecognized subdirective "mode"`},
		{"app_id A\n app B s", "app cannot be combined with app_id and secret"},
		{"nonce_limit 2\n nonce_limit 3", "nonce_limit already specified"},
	} {
		var h LocalHandler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webank_sign_local {\n " + tt.block + "\n}"))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: error = %v, want one containing %q", tt.block, err, tt.wantErr)
		}
	}
}
