package webanksign

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseLocalBody(t *testing.T) {
	fields := localFields[endpointVerify]
	tests := []struct {
		name, body string
		want       localBody
		wantErr    error
	}{
		{"members", `{"order_no":"o1","code":"0","sign":"ab"}`, localBody{"order_no": "o1", "code": "0", "sign": "ab"}, nil},
		{"escapes decoded", `{"order_no":"\u006f1"}`, localBody{"order_no": "o1"}, nil},
		{"empty object", `{}`, localBody{}, nil},
		{"no body", ` `, nil, errBodyMissing},
		{"array", `["order_no"]`, nil, errBodyMalformed},
		{"trailing", `{"code":"0"} {}`, nil, errBodyMalformed},
		{"unclosed", `{"code":"0"`, nil, errBodyMalformed},
		{"repeated", `{"code":"0","code":"0"}`, nil, errBodyKeyRepeat},
		{"unknown member", `{"code":"0","secret":"x"}`, nil, errLocalField},
		{"member of another endpoint", `{"user_id":"u"}`, nil, errLocalField},
		{"number", `{"code":0}`, nil, errLocalFieldType},
		{"null", `{"code":null}`, nil, errLocalFieldType},
		{"object", `{"code":{}}`, nil, errLocalFieldType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLocalBody([]byte(tt.body), fields)
			if err != tt.wantErr {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestIDRules(t *testing.T) {
	for _, tt := range []struct {
		b       localBody
		wantErr error
	}{
		{localBody{"user_id": "user_01-A"}, nil},
		{localBody{}, errUserIDMissing},
		{localBody{"user_id": ""}, errUserIDInvalid},
		{localBody{"user_id": strings.Repeat("u", 33)}, errUserIDInvalid},
		{localBody{"user_id": "u 1"}, errUserIDInvalid},
		{localBody{"user_id": "用户"}, errUserIDInvalid},
	} {
		if _, err := userIDRule.check(tt.b); err != tt.wantErr {
			t.Errorf("check(%q) = %v, want %v", tt.b["user_id"], err, tt.wantErr)
		}
	}
	if _, err := orderNoRule.check(localBody{"order_no": "o/1"}); err != errLocalOrderNo {
		t.Errorf("order_no o/1: %v, want %v", err, errLocalOrderNo)
	}
}

func TestLoginHosts(t *testing.T) {
	allowed := []string{"kyc1.qcloud.com", "*.webank.com", "127.0.0.1:9443"}
	for _, tt := range []struct {
		v        string
		valid    bool
		isAllowd bool
	}{
		{"kyc1.qcloud.com", true, true},
		{"KYC1.qcloud.com", true, true},
		{"ida.webank.com", true, true},
		{"a.b.webank.com", true, true},
		{"webank.com", true, false},          // *.webank.com is the hosts under it
		{"evilwebank.com", true, false},      // not under webank.com
		{"ida.webank.com:8443", true, false}, // a pattern allows the default port only
		{"127.0.0.1:9443", true, true},
		{"127.0.0.1:9444", true, false},
		{"kyc1.qcloud.com.evil.com", true, false},
		{"", false, false},
		{"ida.webank.com/path", false, false},
		{"user@ida.webank.com", false, false},
		{"ida.webank.com:0", false, false},
		{"-a.webank.com", false, false},
		{"::1", false, false},
		{"[::1]:8443", true, false},
	} {
		host, ok := loginHost(tt.v)
		if ok != tt.valid {
			t.Errorf("loginHost(%q) ok = %v, want %v", tt.v, ok, tt.valid)
			continue
		}
		if ok && hostAllowed(host, allowed) != tt.isAllowd {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, !tt.isAllowd, tt.isAllowd)
		}
	}
}

func TestCallbackChecks(t *testing.T) {
	for _, tt := range []struct {
		v  string
		ok bool
	}{
		{"https://app.example.com/done?x=1", true},
		{"http://127.0.0.1:8080/cb", true},
		{"/relative", false},
		{"javascript:alert(1)", false},
		{"https://u:p@app.example.com/", false},
		{"https://app.example.com/#/result", true},
		{"https://app.example.com/" + strings.Repeat("a", maxCallbackURL), false},
	} {
		_, err := checkCallbackURL(localBody{"callback_url": tt.v}, nil)
		if (err == nil) != tt.ok {
			t.Errorf("checkCallbackURL(%q) = %v, want ok %v", tt.v, err, tt.ok)
		}
	}
	allowed := []string{"app.example.com", "*.example.org"}
	for _, tt := range []struct {
		v       string
		wantErr error
	}{
		{"https://app.example.com/cb", nil},
		{"https://APP.example.com/cb", nil},
		{"https://m.example.org/cb", nil},
		{"https://evil.example.com/cb", errCallbackDenied},
		{"https://app.example.com.evil.net/cb", errCallbackDenied},
	} {
		if _, err := checkCallbackURL(localBody{"callback_url": tt.v}, allowed); err != tt.wantErr {
			t.Errorf("checkCallbackURL(%q) with callback_hosts = %v, want %v", tt.v, err, tt.wantErr)
		}
	}
	for _, tt := range []struct {
		v  string
		ok bool
	}{{"0", true}, {"66660004", true}, {"-1304", true}, {"-", false}, {"1-2", false}, {"", false}, {"0 ", false}, {strings.Repeat("1", 17), false}} {
		if isResultCode(tt.v) != tt.ok {
			t.Errorf("isResultCode(%q) = %v, want %v", tt.v, !tt.ok, tt.ok)
		}
	}
	if !isHexSign("526365e042766ae27a6e52d2e4829d4c6e156b5d") || isHexSign("526365E042766AE27A6E52D2E4829D4C6E156B5G") || isHexSign("52") {
		t.Error("isHexSign accepts what it should not, or refuses a sign in lower case")
	}
	if got := upperHex("526365e042766ae27a6e52d2e4829d4c6e156b5d"); got != "526365E042766AE27A6E52D2E4829D4C6E156B5D" {
		t.Errorf("upperHex = %s", got)
	}
}

// TestLocalBodyCutShort shows siblings of 9efc5ec in
// webank_sign_local's body parser: a body cut short after a member that
// the endpoint does not take, a member that is not a string, or a member
// given twice was refused as field_unknown, field_invalid or
// body_key_repeated: the refusal came before the body was known whole. A
// broken body must be called broken (body_malformed), as parseBody's are.
func TestLocalBodyCutShort(t *testing.T) {
	for _, body := range []string{
		`{"secret":"x"`,                  // was field_unknown
		`{"user_id":"u1","bogus":1`,      // was field_unknown
		`{"user_id":1`,                   // was field_invalid
		`{"user_id":null,`,               // was field_invalid
		`{"user_id":"u1","user_id":"u2"`, // was body_key_repeated
		`{"user_id":"u1","user_id":"u2",]`,
	} {
		if _, err := parseLocalBody([]byte(body), localFields[endpointSDKSign]); err != errBodyMalformed {
			t.Errorf("parseLocalBody(%s) = %v, want %v", body, err, errBodyMalformed)
		}
	}
	// Through ServeHTTP, the answer the client sees.
	h, _ := newLocalHandler(t, nil)
	r := httptest.NewRequest(http.MethodPost, "/webank/sdk_sign", strings.NewReader(`{"user_id":1`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, nil); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "sdk_sign cut short", w, http.StatusBadRequest, errBodyMalformed.Code)
}
