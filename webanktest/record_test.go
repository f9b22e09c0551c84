package webanktest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestRequestsOfGETEndpoints(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	for _, path := range []string{PathOCR, PathBankCard, PathSync} {
		q1 := ocrQuery(ticket, "A1", url.Values{"get_file": {"2"}})
		q2 := ocrQuery(ticket, "A2", url.Values{"extra": {"x", "y"}})
		fx.get(path, q1.Encode())
		fx.get(path, q2.Encode())
		got := fx.s.Requests(path)
		if len(got) != 2 || got[0].Encode() != q1.Encode() || got[1].Encode() != q2.Encode() {
			t.Errorf("Requests(%s) = %v, want [%v %v]", path, got, q1, q2)
		}
		if got := fx.s.Calls(path); got != 2 {
			t.Errorf("Calls(%s) = %d, want 2", path, got)
		}
	}
	if got := fx.s.Requests(PathToken); got != nil {
		t.Errorf("Requests(PathToken) = %v, want nil: it would hold the secret", got)
	}
	if got := fx.s.Requests(PathTicket); got != nil {
		t.Errorf("Requests(PathTicket) = %v, want nil: it would hold the access token", got)
	}
	if got := fx.s.Calls(PathToken) + fx.s.Calls(PathTicket); got != 2 {
		t.Errorf("Calls of token and ticket = %d, want 2", got)
	}
	if got := fx.s.Calls("/nope"); got != 0 {
		t.Errorf("Calls(/nope) = %d, want 0", got)
	}
	if got := fx.s.Requests("/nope"); got != nil {
		t.Errorf("Requests(/nope) = %v, want nil", got)
	}
}

func TestRequestsOfFaceRecord(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	r := newSignedReq(ticket, "F1")
	body := faceRecordJSON(r, `,"getFile":1,"queryVersion":"1.0","n":null,"o":{ "a" : [1, "x"] },"s":"quote\"d"`)
	if _, answer := fx.post("orderNo=F1&trace=t1", "application/json;charset=UTF-8", body, false); fx.code(answer) != "0" {
		t.Fatalf("answer = %s, want code 0", truncate(answer))
	}
	// A duplicate key is recorded with both values, a chunked request
	// without Content-Length, and malformed JSON without any member.
	dup := faceRecordJSON(newSignedReq(ticket, "F2"), `,"getFile":"2","getFile":3`)
	fx.post("orderNo=F2", "application/json", dup, true)
	fx.post("", "text/plain", []byte(`{"appId":`), false)

	got := fx.s.Requests(PathFaceRecord)
	if len(got) != 3 {
		t.Fatalf("Requests = %v, want 3", got)
	}
	want := url.Values{
		"appId":                 {testApp},
		"orderNo":               {"F1"},
		"nonce":                 {r.nonce},
		"version":               {"1.0.0"},
		"sign":                  {r.sign},
		"getFile":               {"1"},
		"queryVersion":          {"1.0"},
		"n":                     {"null"},
		"o":                     {`{"a":[1,"x"]}`},
		"s":                     {`quote"d`},
		"url:orderNo":           {"F1"},
		"url:trace":             {"t1"},
		"header:Content-Length": {strconv.Itoa(len(body))},
		"header:Content-Type":   {"application/json;charset=UTF-8"},
	}
	if got[0].Encode() != want.Encode() {
		t.Errorf("Requests[0] =\n%v, want\n%v", got[0], want)
	}
	if g := got[1]["getFile"]; !slices.Equal(g, []string{"2", "3"}) {
		t.Errorf("duplicate getFile recorded as %q, want [2 3]", g)
	}
	if got[1].Has("header:Content-Length") || got[1].Get("appId") != testApp {
		t.Errorf("chunked request recorded as %v, want members and no header:Content-Length", got[1])
	}
	if want := (url.Values{"header:Content-Length": {"9"}, "header:Content-Type": {"text/plain"}}); got[2].Encode() != want.Encode() {
		t.Errorf("malformed request recorded as %v, want %v", got[2], want)
	}

	// The caller may change the copies.
	got[0].Set("appId", "changed")
	if again := fx.s.Requests(PathFaceRecord); again[0].Get("appId") != testApp {
		t.Error("changing a returned request changed the fake's copy")
	}
	if got := fx.s.Calls(PathFaceRecord); got != 3 {
		t.Errorf("Calls(PathFaceRecord) = %d, want 3", got)
	}
}

func TestFaultsOnNewEndpoints(t *testing.T) {
	tests := []struct {
		ep   Endpoint
		path string
	}{
		{BankCardEndpoint, PathBankCard},
		{SyncEndpoint, PathSync},
		{FaceRecordEndpoint, PathFaceRecord},
	}
	for _, tt := range tests {
		t.Run(string(tt.ep), func(t *testing.T) {
			fx := newFixture(t, Options{})
			ticket := fx.ticketNow()
			fx.s.SetFault(tt.ep, Fault{Code: "66661099"})
			r := newSignedReq(ticket, "A1")
			if got := fx.sendCode(tt.path, r); got != "66661099" {
				t.Errorf("code = %s, want the injected 66661099", got)
			}
			// A faulted request is counted and recorded, but not checked.
			if got := fx.s.Calls(tt.path); got != 1 {
				t.Errorf("Calls = %d, want 1", got)
			}
			if got := fx.s.Requests(tt.path); len(got) != 1 {
				t.Errorf("Requests = %v, want one", got)
			}
			// Other endpoints answer normally.
			for _, other := range signedPaths {
				if other != tt.path {
					if got := fx.sendCode(other, newSignedReq(ticket, "B1")); got != "0" {
						t.Errorf("%s: code = %s, want 0", other, got)
					}
				}
			}

			// The control API sets faults on the new endpoints too.
			status, body := fx.do(http.MethodPost, "/__fake/fault", "endpoint="+string(tt.ep)+"&status=502")
			if status != http.StatusOK {
				t.Fatalf("setting fault: %d %s", status, body)
			}
			if status, _ := fx.send(tt.path, r); status != http.StatusBadGateway {
				t.Errorf("status = %d, want 502", status)
			}
			fx.do(http.MethodPost, "/__fake/clear", "")
			// The faulted requests did not use up r's nonce.
			if got := fx.sendCode(tt.path, r); got != "0" {
				t.Errorf("after clear: code = %s, want 0", got)
			}
			if n := fx.s.BadSignatures() + fx.s.ReusedNonces() + fx.s.BadRequests(); n != 0 {
				t.Errorf("BadSignatures+ReusedNonces+BadRequests = %d, want 0", n)
			}
		})
	}
}

func TestStatsOfNewEndpoints(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	fx.send(PathBankCard, newSignedReq(ticket, "A1"))
	fx.send(PathSync, newSignedReq(ticket, "A2"))
	fx.send(PathSync, newSignedReq(ticket, "A3"))
	fx.send(PathFaceRecord, newSignedReq("no-ticket", "A4"))
	fx.post("", "text/plain", nil, false)

	_, body := fx.get("/__fake/stats", "")
	var got map[string]int64
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"bankcard_calls": 1, "sync_calls": 2, "facerecord_calls": 2, "bad_signatures": 1, "bad_requests": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("stats[%s] = %d, want %d (%s)", k, got[k], v, body)
		}
	}
}

func TestLogsOfNewEndpoints(t *testing.T) {
	var logs logRecorder
	fx := newFixture(t, Options{Logf: logs.Logf, PhotoBytes: 64})
	ticket := fx.ticketNow()
	bank := newSignedReq(ticket, "B1")
	bank.extra = map[string]string{"get_file": "1"}
	sync := newSignedReq(ticket, "S1")
	sync.extra = map[string]string{"get_file": "1"}
	face := newSignedReq(ticket, "F1")
	face.extra = map[string]string{"getFile": "1"}
	fx.send(PathBankCard, bank)
	fx.send(PathSync, sync)
	fx.send(PathFaceRecord, face)
	fx.send(PathFaceRecord, face) // reused nonce
	fx.post("orderNo=F9", "application/json", []byte(`{"appId":`), false)
	fx.s.Close()

	lines := logs.Lines()
	wantLines := []string{
		`GET /api/server/getBankCardOcrResult app_id="IDATEST1" order_no="B1": code 0`,
		`GET /api/server/sync app_id="IDATEST1" order_no="S1": code 0`,
		`POST /api/v2/base/queryfacerecord app_id="IDATEST1" order_no="F1": code 0`,
		`POST /api/v2/base/queryfacerecord app_id="IDATEST1" order_no="F1": code 400101`,
		`POST /api/v2/base/queryfacerecord order_no="F9": code 400102`,
	}
	for _, w := range wantLines {
		if !slices.Contains(lines, w) {
			t.Errorf("no log line %q in %q", w, lines)
		}
	}
	var secrets []string
	for _, r := range []signedReq{bank, sync, face} {
		secrets = append(secrets, r.sign, r.nonce)
	}
	secrets = append(secrets, fx.s.IssuedValues()...)
	var card, res struct{ Result map[string]any }
	if err := json.Unmarshal(fx.s.BankCardResultBody(testApp, "B1", true), &card); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fx.s.SyncResultBody(testApp, "S1", true, true), &res); err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, card.Result["bankCardNo"].(string), res.Result["idNo"].(string), res.Result["name"].(string),
		res.Result["photo"].(string)[:20], res.Result["video"].(string)[:20])
	for _, line := range lines {
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log line %q holds %q", line, s)
			}
		}
	}
}
