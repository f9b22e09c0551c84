package webanktest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestFaultsOnLaunchEndpoints sets a fault on each endpoint of the launch
// flows through the control API.
func TestFaultsOnLaunchEndpoints(t *testing.T) {
	type sender func(fx *fixture, ticket, token string) (status int, body []byte)
	launchTo := func(path string) sender {
		return func(fx *fixture, ticket, _ string) (int, []byte) {
			return fx.postJSON(path, "", newLaunch(ticket, "O1", "u1"))
		}
	}
	tests := []struct {
		ep     Endpoint
		path   string
		send   sender
		status int    // of a Code fault
		prefix string // of a Code fault's body
	}{
		{NonceEndpoint, PathTicket, func(fx *fixture, _, token string) (int, []byte) {
			return fx.get(PathTicket, nonceQuery(testApp, token, "u1").Encode())
		}, 200, `{"code":"66661099"`},
		{AdvFaceIDEndpoint, PathAdvFaceID, launchTo(PathAdvFaceID), 200, `{"code":"66661099"`},
		{FaceIDEndpoint, PathFaceID, launchTo(PathFaceID), 200, `{"code":"66661099"`},
		{PlusFaceIDEndpoint, PathPlusFaceID, launchTo(PathPlusFaceID), 200, `{"code":"66661099"`},
		{WillFaceIDEndpoint, PathWillFaceID, launchTo(PathWillFaceID), 200, `{"code":"66661099"`},
		{H5FaceIDEndpoint, PathH5FaceID, func(fx *fixture, ticket, _ string) (int, []byte) {
			return fx.postJSON(PathH5FaceID, "", newH5Launch(ticket, "O1", "u1"))
		}, 200, `{"code":"66661099"`},
		{PhotoInfoEndpoint, PathPhotoInfo, func(fx *fixture, ticket, _ string) (int, []byte) {
			return fx.postJSON(PathPhotoInfo, "", photoInfoBody(newSignedReq(ticket, "O1")))
		}, 200, `{"code":66661099`},
		{BankCardOCREndpoint, PathBankCardOCR, func(fx *fixture, ticket, _ string) (int, []byte) {
			return fx.postJSON(PathBankCardOCR, "", photoInfoBody(newSignedReq(ticket, "O1")))
		}, 200, `{"code":"66661099"`},
		{LoginEndpoint, PathLogin, func(fx *fixture, _, _ string) (int, []byte) {
			return fx.get(PathLogin, "appId="+testApp)
		}, 400, `{"code":"66661099"`},
		{SDKLoginEndpoint, PathSDKLogin, func(fx *fixture, ticket, _ string) (int, []byte) {
			return fx.postJSON(PathSDKLogin, "", sdkLogin(ticket, "u1"))
		}, 200, `{"code":"66661099"`},
	}
	for _, tt := range tests {
		t.Run(string(tt.ep), func(t *testing.T) {
			fx := newFixture(t, Options{})
			token := fx.token(testApp)
			ticket := fx.ticket(testApp, token)
			if status, body := fx.do(http.MethodPost, "/__fake/fault", "endpoint="+string(tt.ep)+"&code=66661099"); status != http.StatusOK {
				t.Fatalf("setting fault: %d %s", status, body)
			}
			status, body := tt.send(fx, ticket, token)
			if status != tt.status || !strings.HasPrefix(string(body), tt.prefix) {
				t.Errorf("answer = %d %s, want %d starting %s", status, body, tt.status, tt.prefix)
			}
			fx.do(http.MethodPost, "/__fake/fault", "endpoint="+string(tt.ep)+"&status=502")
			if status, _ := tt.send(fx, ticket, token); status != http.StatusBadGateway {
				t.Errorf("status fault: %d, want 502", status)
			}
			calls := fx.s.Calls(tt.path)
			if tt.ep == NonceEndpoint {
				calls = fx.s.NonceCalls()
			}
			if calls != 2 {
				t.Errorf("calls = %d, want 2", calls)
			}
			// A fault issues nothing, and leaves the other endpoints alone.
			if n := fx.s.NonceTickets() + fx.s.Logins() + fx.s.SDKLogins(); n != 0 {
				t.Errorf("NonceTickets+Logins+SDKLogins = %d, want 0", n)
			}
			if tt.ep == NonceEndpoint {
				fx.ticket(testApp, token) // fails the test if the SIGN ticket is faulted too
			} else {
				fx.nonceTicket(testApp, token, "u1")
			}
		})
	}
}

// TestLogsOfLaunchFlows walks the launch flows with a logger and checks
// the lines hold no secret and no personal data.
func TestLogsOfLaunchFlows(t *testing.T) {
	var logs logRecorder
	fx := newFixture(t, Options{Logf: logs.Logf, PhotoBytes: 64})
	token := fx.token(testApp)
	ticket := fx.ticket(testApp, token)
	adv := newLaunch(ticket, "O1", "u1").with("sourcePhotoStr", "UEhPVE9QSE9UT1BIT1RP")
	adv["sourcePhotoType"] = "1"
	a := fx.sendLaunch(PathAdvFaceID, adv)
	h5 := newH5Launch(ticket, "O2", "u1")
	fx.sendLaunch(PathH5FaceID, h5)
	photo := newSignedReq(ticket, "O3")
	fx.postJSON(PathPhotoInfo, "", photoInfoBody(photo))
	nonceTicket := fx.nonceTicket(testApp, token, "u1")
	l := login{appID: testApp, userID: "u1", orderNo: "O1", faceID: a.Result.FaceID, nonce: randomAlnum(32), callback: "https://partner.example/cb"}
	resp, _ := fx.getLogin(l.query(nonceTicket))
	fx.getLogin(l.query(nonceTicket)) // used up
	sdkTicket := fx.nonceTicket(testApp, token, "u2")
	sdk := sdkLogin(sdkTicket, "u2")
	fx.postJSON(PathSDKLogin, "", sdk)
	fx.s.Close()

	lines := logs.Lines()
	for _, w := range []string{
		`POST /api/server/getAdvFaceId app_id="IDATEST1" order_no="O1": code 0`,
		`POST /api/server/h5/geth5faceid app_id="IDATEST1" order_no="O2": code 0`,
		`POST /api/v2/base/queryphotoinfo app_id="IDATEST1" order_no="O3": code 0`,
		`GET /api/oauth2/api_ticket app_id="IDATEST1": code 0`,
		`GET /api/web/login app_id="IDATEST1" order_no="O1": redirect code 0`,
		`GET /api/web/login app_id="IDATEST1" order_no="O1": status 400 code 400101`,
		`POST /api/sdk/login app_id="IDATEST1": code 0`,
	} {
		if !slices.Contains(lines, w) {
			t.Errorf("no log line %q in %q", w, lines)
		}
	}
	to, _ := url.Parse(resp.Header.Get("Location"))
	secrets := append(fx.s.IssuedValues(), adv["sign"], adv["nonce"], adv["name"], adv["idNo"], adv["sourcePhotoStr"],
		h5["sign"], photo.sign, photo.nonce, l.nonce, l.query(nonceTicket).Get("sign"), sdk["sign"], sdk["nonce"],
		to.Query().Get("newSignature"), "partner.example", "u1", "u2")
	if !slices.Contains(secrets, nonceTicket) || !slices.Contains(secrets, sdkTicket) {
		t.Error("IssuedValues lacks the NONCE tickets")
	}
	for _, line := range lines {
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log line %q holds %q", line, s)
			}
		}
	}
}
