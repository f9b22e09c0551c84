package webanksign

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

func TestParseExpireIn(t *testing.T) {
	const max = time.Hour
	tests := []struct {
		raw     string // "" for absent
		want    time.Duration
		wantErr string
	}{
		{raw: `3600`, want: time.Hour},
		{raw: `"1200"`, want: 20 * time.Minute},
		{raw: `"1.5"`, want: 1500 * time.Millisecond},
		{raw: ``, want: max},
		{raw: `null`, want: max},
		{raw: `1e12`, want: max},    // capped to the documented maximum
		{raw: `"99999"`, want: max}, // likewise
		{raw: `0`, wantErr: "expire_in is not positive"},
		{raw: `"-5"`, wantErr: "expire_in is not positive"},
		{raw: `0.5`, wantErr: "expire_in is not positive"},
		{raw: `"soon"`, wantErr: "expire_in is not a number"},
		{raw: `"NaN"`, wantErr: "expire_in is not a number"},
		{raw: `true`, wantErr: "expire_in is not a number"},
		{raw: `{}`, wantErr: "expire_in is not a number"},
		{raw: `[]`, wantErr: "expire_in is not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := parseExpireIn("SIGN ticket", json.RawMessage(tt.raw), max)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseExpireIn(%s) error = %v, want %q", tt.raw, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseExpireIn(%s) = %v, %v; want %v", tt.raw, got, err, tt.want)
			}
		})
	}
}

func TestCheckCode(t *testing.T) {
	const secret = "the-secret-value"
	tests := []struct {
		raw, msg string
		wantErr  string // "" for success
	}{
		{raw: `"0"`},
		{raw: `0`},
		{raw: `"15"`, msg: "access_token invalid", wantErr: `endpoint answered code "15": access_token invalid`},
		{raw: `400101`, msg: "不合法的请求", wantErr: `code "400101": 不合法的请求`},
		{raw: `"1"`, msg: "bad secret " + secret, wantErr: "(message withheld)"},
		{raw: ``, wantErr: "answer has no code"},
		{raw: `{}`, wantErr: "answer has no code"},
		{raw: `"-1304"`, msg: "x", wantErr: `code "-1304": x`},
		// A code is quoted to clients and logs: one that is not a short
		// code (too long, or holding what a secret could be) is not.
		{raw: `"` + strings.Repeat("9", 40) + `"`, msg: "x", wantErr: "answer's code is not a code"},
		{raw: `"` + secret + `"`, msg: "x", wantErr: "answer's code is not a code"},
		{raw: `"1 2"`, msg: "x", wantErr: "answer's code is not a code"},
	}
	for _, tt := range tests {
		err := checkCode("access token", json.RawMessage(tt.raw), tt.msg, secret)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("checkCode(%s) = %v, want nil", tt.raw, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("checkCode(%s, %q) = %v, want %q", tt.raw, tt.msg, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("checkCode error %q holds the secret", err)
		}
	}
}

// Transport errors carry the URL; its query (secret, access_token) must go.
func TestFetchErrorsHoldNoSecret(t *testing.T) {
	const secret = "do-not-leak-me"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("app_id") {
		case "html":
			w.Write([]byte("<html>502 Bad Gateway</html>"))
		case "big":
			w.Write([]byte(`{"code":"0","access_token":"` + strings.Repeat("x", 70<<10) + `"}`))
		case "redirect":
			http.Redirect(w, r, "https://elsewhere.example/", http.StatusFound)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name, appID, base string
		wantClass, want   string
	}{
		{"connection refused", "IDA1", closedURL, "transport", "connection refused"},
		{"html page", "html", srv.URL, "malformed", "answer is not a JSON object"},
		{"oversized answer", "big", srv.URL, "malformed", "answer larger than 64 KiB"},
		{"redirect not followed", "redirect", srv.URL, "http_status", "HTTP 302"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _, err := fetchToken(ctx, newOAuthClient(), tickets.Credentials{AppID: tt.appID, Secret: secret, BaseURL: tt.base})
			var fe *tickets.FetchError
			if !errors.As(err, &fe) || fe.Class != tt.wantClass || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("fetchTicket error = %v, want class %s containing %q", err, tt.wantClass, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "secret=") {
				t.Errorf("error %q holds the secret or the token URL's query", err)
			}
		})
	}
}

func TestRedactURLError(t *testing.T) {
	err := &url.Error{Op: "Get", URL: "https://h/api/oauth2/access_token?app_id=A&secret=S3CR3T", Err: errors.New("boom")}
	got := redactURLError(err).Error()
	if strings.Contains(got, "S3CR3T") || !strings.Contains(got, "https://h/api/oauth2/access_token") {
		t.Errorf("redactURLError = %q", got)
	}
}

// A NONCE fetch's error is logged, emitted and counted: if WeBank's
// message echoes the user_id the launch was for, the message is withheld,
// as it is when it echoes the secret or the token. The code stays.
func TestNonceFetchErrorHoldsNoUserID(t *testing.T) {
	const userID = "customer_8842093"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"code":"400101","msg":"user_id ` + r.URL.Query().Get("user_id") + ` is not allowed"}`))
	}))
	defer srv.Close()
	_, _, err := oauthClient{newOAuthClient()}.Nonce(context.Background(), tickets.Credentials{AppID: "IDA1", Secret: "unit-secret-value", BaseURL: srv.URL}, "unit-access-token", userID)
	var fe *tickets.FetchError
	if !errors.As(err, &fe) || fe.Class != "code" || fe.Code != "400101" {
		t.Fatalf("Nonce error = %v, want class code, code 400101", err)
	}
	if strings.Contains(err.Error(), userID) {
		t.Errorf("error %q holds the user_id", err)
	}
}
