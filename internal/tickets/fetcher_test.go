package tickets

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A secret printed or marshalled by mistake, in the credentials or in what
// holds them, comes out redacted.
func TestCredentialsRedacted(t *testing.T) {
	const secret = "redact-me-0123456789"
	creds := Credentials{AppID: "IDA1", Secret: secret, BaseURL: "https://h"}
	cfg := appConfig{creds: creds, refresh: time.Minute}
	for _, v := range []any{creds, &creds, cfg, &cfg} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, secret) || !strings.Contains(out, "IDA1") {
				t.Errorf("Sprintf(%q, %T) = %q, want the app_id and no secret", verb, v, out)
			}
		}
	}
	b, err := json.Marshal(creds)
	if err != nil || strings.Contains(string(b), secret) || !strings.Contains(string(b), "IDA1") {
		t.Errorf("json.Marshal = %s, %v; want the app_id and no secret", b, err)
	}
}
