package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestAppFlag(t *testing.T) {
	tests := []struct {
		name    string
		flags   []string
		want    map[string]string
		wantErr bool
	}{
		{name: "none", want: map[string]string{}},
		{name: "two", flags: []string{"IDA1:s1", "IDA2:s:2"}, want: map[string]string{"IDA1": "s1", "IDA2": "s:2"}},
		{name: "no colon", flags: []string{"IDA1secret"}, wantErr: true},
		{name: "empty id", flags: []string{":secret"}, wantErr: true},
		{name: "empty secret", flags: []string{"IDA1:"}, wantErr: true},
		{name: "repeated id", flags: []string{"IDA1:secret", "IDA1:other"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a appFlag
			for _, f := range tt.flags {
				if err := a.Set(f); err != nil {
					t.Fatalf("Set(%q) = %v", f, err)
				}
			}
			got, err := a.apps()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("apps() = %v, want an error", got)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(a.String(), "secret") {
					t.Errorf("error %q or String %q shows a secret", err, a.String())
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Errorf("apps() = %v, %v, want %v", got, err, tt.want)
			}
		})
	}
}

func TestOptimalDomain(t *testing.T) {
	tests := []struct {
		name, flag string
		addr       net.Addr
		want       string
	}{
		{"flag", "kyc.example:443", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8090}, "kyc.example:443"},
		{"listen address", "", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8090}, "127.0.0.1:8090"},
		// Unspecified: each connection's local address, chosen by the fake.
		{"0.0.0.0", "", &net.TCPAddr{IP: net.IPv4zero, Port: 8090}, ""},
		{"::", "", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8090}, ""},
	}
	for _, tt := range tests {
		if got := optimalDomain(tt.flag, tt.addr); got != tt.want {
			t.Errorf("%s: optimalDomain(%q, %v) = %q, want %q", tt.name, tt.flag, tt.addr, got, tt.want)
		}
	}
}

// TestRunServesTheLaunchFlow runs the command on a free port of 127.0.0.1
// and walks a launch: token, SIGN ticket, getAdvFaceId, NONCE ticket, and
// the login page at the optimalDomain answered, which must be the
// command's own address.
func TestRunServesTheLaunchFlow(t *testing.T) {
	for _, tt := range []struct {
		name, flag string
		want       func(addr string) string
	}{
		{name: "default", want: func(addr string) string { return addr }},
		{name: "flag", flag: "kyc.example:8443", want: func(string) string { return "kyc.example:8443" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			listening := make(chan net.Addr, 1)
			done := make(chan error, 1)
			args := []string{"-listen", "127.0.0.1:0", "-nonce-ttl", "30s"}
			if tt.flag != "" {
				args = append(args, "-optimal-domain", tt.flag)
			}
			go func() { done <- run(ctx, args, listening) }()
			var addr string
			select {
			case a := <-listening:
				addr = a.String()
			case err := <-done:
				t.Fatalf("run = %v before listening", err)
			}
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("run = %v, want nil after cancel", err)
				}
			}()
			base := "http://" + addr
			token := getJSON(t, base+"/api/oauth2/access_token?"+url.Values{
				"app_id": {demoAppID}, "secret": {demoSecret}, "grant_type": {"client_credential"}, "version": {"1.0.0"},
			}.Encode())["access_token"].(string)
			ticketQuery := url.Values{"app_id": {demoAppID}, "access_token": {token}, "type": {"SIGN"}, "version": {"1.0.0"}}
			signTicket := ticketValue(t, getJSON(t, base+"/api/oauth2/api_ticket?"+ticketQuery.Encode()))

			nonce := "N0nce" + strings.Repeat("a", 27)
			body, _ := json.Marshal(map[string]string{
				"appId": demoAppID, "orderNo": "O1", "name": "张三", "idNo": "110101199003070011", "userId": "u1",
				"version": "1.0.0", "nonce": nonce, "sign": sign(demoAppID, "u1", "1.0.0", signTicket, nonce),
			})
			resp, err := http.Post(base+"/api/server/getAdvFaceId?orderNo=O1", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var adv struct {
				Code   string
				Result struct{ FaceID, OptimalDomain string }
			}
			err = json.NewDecoder(resp.Body).Decode(&adv)
			resp.Body.Close()
			if err != nil || adv.Code != "0" {
				t.Fatalf("getAdvFaceId = %+v (%v), want code 0", adv, err)
			}
			if want := tt.want(addr); adv.Result.OptimalDomain != want {
				t.Errorf("optimalDomain = %q, want %q", adv.Result.OptimalDomain, want)
			}

			ticketQuery.Set("type", "NONCE")
			ticketQuery.Set("user_id", "u1")
			nonceTicket := ticketValue(t, getJSON(t, base+"/api/oauth2/api_ticket?"+ticketQuery.Encode()))
			login := url.Values{
				"appId": {demoAppID}, "version": {"1.0.0"}, "nonce": {nonce}, "orderNo": {"O1"}, "faceId": {adv.Result.FaceID},
				"url": {"https://partner.example/cb"}, "from": {"browser"}, "userId": {"u1"}, "redirectType": {"1"},
				"sign": {sign(demoAppID, "O1", "u1", "1.0.0", adv.Result.FaceID, nonceTicket, nonce)},
			}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err = client.Get(base + "/api/web/login?" + login.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || loc.Host != "partner.example" ||
				loc.Query().Get("newSignature") != sign(demoAppID, "O1", "0", signTicket) {
				t.Errorf("login = %d to %s, want 302 to the callback with newSignature", resp.StatusCode, loc)
			}
		})
	}
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v["code"] != "0" {
		t.Fatalf("GET %s: %v (%v), want code 0", strings.SplitN(u, "?", 2)[0], v["code"], err)
	}
	return v
}

func ticketValue(t *testing.T, answer map[string]any) string {
	t.Helper()
	tickets, _ := answer["tickets"].([]any)
	if len(tickets) != 1 {
		t.Fatalf("tickets = %v, want one", len(tickets))
	}
	return tickets[0].(map[string]any)["value"].(string)
}

// sign is WeBank's sign over values: the uppercase hex SHA-1 of the values
// sorted and concatenated.
func sign(values ...string) string {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	sum := sha1.Sum([]byte(strings.Join(sorted, "")))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
