package webanktest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestSyncGetFile(t *testing.T) {
	fx := newFixture(t, Options{PhotoBytes: 1000})
	ticket := fx.ticketNow()
	tests := []struct {
		name         string
		extra        url.Values
		want         string // code
		photo, video bool
	}{
		{name: "absent", want: "0"},
		// WeBank documents an empty get_file as "no files".
		{name: "empty", extra: url.Values{"get_file": {""}}, want: "0"},
		{name: "1", extra: url.Values{"get_file": {"1"}}, want: "0", photo: true, video: true},
		{name: "2", extra: url.Values{"get_file": {"2"}}, want: "0", photo: true},
		{name: "3", extra: url.Values{"get_file": {"3"}}, want: "0", video: true},
		{name: "0", extra: url.Values{"get_file": {"0"}}, want: "400102"},
		{name: "4", extra: url.Values{"get_file": {"4"}}, want: "400102"},
		{name: "01", extra: url.Values{"get_file": {"01"}}, want: "400102"},
		{name: "x", extra: url.Values{"get_file": {"x"}}, want: "400102"},
		{name: "repeated", extra: url.Values{"get_file": {"1", "1"}}, want: "400102"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := ocrQuery(ticket, "S"+strconv.Itoa(i), tt.extra)
			_, body := fx.get(PathSync, q.Encode())
			if got := fx.code(body); got != tt.want {
				t.Fatalf("code = %s, want %s (%s)", got, tt.want, truncate(body))
			}
			if tt.want != "0" {
				return
			}
			if want := fx.s.SyncResultBody(testApp, q.Get("order_no"), tt.photo, tt.video); !bytes.Equal(body, want) {
				t.Errorf("body = %s, want %s", truncate(body), truncate(want))
			}
			checkFaceFiles(t, body, tt.photo, tt.video, 1000)
		})
	}
	if got, want := fx.s.BadRequests(), int64(5); got != want {
		t.Errorf("BadRequests = %d, want %d", got, want)
	}
}

// checkFaceFiles checks that the result of the face answer body holds a
// JPEG-like photo if photo and an MP4-like video if video, each of size raw
// bytes, and neither otherwise.
func checkFaceFiles(t *testing.T, body []byte, photo, video bool, size int) {
	t.Helper()
	var r struct{ Result map[string]any }
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		field  string
		want   bool
		prefix string
	}{{"photo", photo, "\xFF\xD8\xFF\xE0"}, {"video", video, "\x00\x00\x00\x18ftyp"}} {
		s, ok := r.Result[f.field].(string)
		if ok != f.want {
			t.Errorf("%s present = %v, want %v", f.field, ok, f.want)
			continue
		}
		if !ok {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != size || !bytes.HasPrefix(raw, []byte(f.prefix)) {
			t.Errorf("%s: %d bytes starting % X (%v), want %d starting % X", f.field, len(raw), raw[:min(8, len(raw))], err, size, f.prefix)
		}
	}
}

func TestFaceRecordGetFile(t *testing.T) {
	fx := newFixture(t, Options{PhotoBytes: 1000})
	ticket := fx.ticketNow()
	tests := []struct {
		name         string
		extra        string // JSON members added to the body, with a leading comma
		want         string // code
		photo, video bool
		queryVersion bool
	}{
		{name: "absent", want: "0"},
		{name: "number 1", extra: `,"getFile":1`, want: "0", photo: true, video: true},
		{name: "number 2", extra: `,"getFile":2`, want: "0", photo: true},
		{name: "number 3", extra: `,"getFile":3`, want: "0", video: true},
		{name: "string 1", extra: `,"getFile":"1"`, want: "0", photo: true, video: true},
		{name: "string 2", extra: `,"getFile":"2"`, want: "0", photo: true},
		{name: "string 3", extra: `,"getFile":"3"`, want: "0", video: true},
		{name: "empty string", extra: `,"getFile":""`, want: "0"},
		{name: "number 0", extra: `,"getFile":0`, want: "400102"},
		{name: "number 4", extra: `,"getFile":4`, want: "400102"},
		{name: "string 4", extra: `,"getFile":"4"`, want: "400102"},
		{name: "number 1.0", extra: `,"getFile":1.0`, want: "400102"},
		{name: "true", extra: `,"getFile":true`, want: "400102"},
		{name: "null", extra: `,"getFile":null`, want: "400102"},
		{name: "array", extra: `,"getFile":[1]`, want: "400102"},
		{name: "queryVersion 1.0", extra: `,"queryVersion":"1.0"`, want: "0", queryVersion: true},
		{name: "queryVersion and getFile", extra: `,"getFile":"2","queryVersion":"1.0"`, want: "0", photo: true, queryVersion: true},
		{name: "queryVersion 2.0", extra: `,"queryVersion":"2.0"`, want: "400102"},
		{name: "queryVersion number", extra: `,"queryVersion":1.0`, want: "400102"},
		// Unknown members are ignored.
		{name: "other member", extra: `,"userId":"u1","nested":{"a":[1,2]}`, want: "0"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newSignedReq(ticket, "F"+strconv.Itoa(i))
			status, body := fx.post("orderNo="+r.orderNo, "application/json", faceRecordJSON(r, tt.extra), false)
			if got := fx.code(body); status != http.StatusOK || got != tt.want {
				t.Fatalf("answer = %d %s, want 200 with code %s", status, truncate(body), tt.want)
			}
			if tt.want != "0" {
				return
			}
			want := fx.s.FaceRecordResultBody(testApp, r.orderNo, tt.photo, tt.video, tt.queryVersion)
			if !bytes.Equal(body, want) {
				t.Errorf("body = %s, want %s", truncate(body), truncate(want))
			}
			checkFaceFiles(t, body, tt.photo, tt.video, 1000)
			hasSDK := bytes.Contains(body, []byte(`"sdkVersion"`)) && bytes.Contains(body, []byte(`"trtcFlag"`))
			if hasSDK != tt.queryVersion {
				t.Errorf("sdkVersion and trtcFlag present = %v, want %v", hasSDK, tt.queryVersion)
			}
		})
	}
}

// faceRecordJSON returns the JSON body of r for queryfacerecord, with extra
// (JSON members with a leading comma) added at the end.
func faceRecordJSON(r signedReq, extra string) []byte {
	b, _ := json.Marshal(map[string]string{"appId": r.appID, "orderNo": r.orderNo, "nonce": r.nonce, "version": r.version, "sign": r.sign})
	return append(append(b[:len(b)-1], extra...), '}')
}

func TestFaceRecordBadRequests(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	r := newSignedReq(ticket, "F1")
	body := faceRecordJSON(r, "")
	query := "orderNo=F1"
	quoted := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	tests := []struct {
		name        string
		query       string
		contentType string
		body        string
		chunked     bool
		wantMsg     string // a part of the msg answered
	}{
		{name: "text/plain", contentType: "text/plain", wantMsg: "Content-Type must be application/json"},
		{name: "no Content-Type", contentType: "-", wantMsg: "Content-Type must be application/json"},
		{name: "form", contentType: "application/x-www-form-urlencoded", wantMsg: "Content-Type"},
		{name: "json with GBK charset", contentType: "application/json; charset=GBK", wantMsg: "charset=UTF-8"},
		{name: "json with other parameter", contentType: "application/json; v=1", wantMsg: "charset=UTF-8"},
		{name: "bad media type", contentType: "application/json;;", wantMsg: "Content-Type"},
		{name: "chunked", chunked: true, wantMsg: "Content-Length required"},
		{name: "malformed", body: `{"appId":`, wantMsg: "malformed JSON body"},
		{name: "not JSON", body: `appId=IDATEST1`, wantMsg: "malformed JSON body"},
		{name: "trailing garbage", body: string(body) + " x", wantMsg: "malformed JSON body"},
		{name: "two objects", body: string(body) + string(body), wantMsg: "one JSON object"},
		{name: "array", body: "[" + string(body) + "]", wantMsg: "one JSON object"},
		{name: "string", body: quoted(string(body)), wantMsg: "one JSON object"},
		{name: "null", body: "null", wantMsg: "one JSON object"},
		{name: "empty", body: " ", wantMsg: "one JSON object"},
		// A repeated key is refused even with the same value: WeBank's
		// reading of it would be ambiguous.
		{name: "duplicate sign", body: string(faceRecordJSON(r, `,"sign":`+quoted(r.sign))), wantMsg: "repeated parameter sign"},
		{name: "duplicate orderNo", body: string(faceRecordJSON(r, `,"orderNo":"F2"`)), wantMsg: "repeated parameter orderNo"},
		{name: "duplicate getFile", body: string(faceRecordJSON(r, `,"getFile":1,"getFile":2`)), wantMsg: "repeated parameter getFile"},
		// A long key is not echoed: it might be a secret.
		{name: "duplicate long key", body: string(faceRecordJSON(r, `,"`+r.nonce+`":1,"`+r.nonce+`":2`)), wantMsg: "repeated key in JSON body"},
		{name: "too large", body: string(faceRecordJSON(r, `,"pad":"`+strings.Repeat("x", smallBody)+`"`)), wantMsg: "larger than 1 MiB"},
		{name: "URL orderNo differs", query: "orderNo=F2", wantMsg: "orderNo in URL differs"},
		{name: "URL orderNo empty", query: "orderNo=", wantMsg: "orderNo in URL differs"},
		{name: "URL orderNo repeated", query: "orderNo=F1&orderNo=F1", wantMsg: "repeated parameter orderNo in URL"},
		{name: "URL malformed", query: "orderNo=F1&x=%zz", wantMsg: "malformed query string"},
		{name: "appId a number", body: strings.Replace(string(body), quoted(r.appID), "12345678", 1), wantMsg: "parameter appId must be a string"},
		{name: "sign missing", body: strings.Replace(string(body), `"sign":`+quoted(r.sign), `"x":1`, 1), wantMsg: "missing parameter sign"},
		{name: "nonce empty", body: strings.Replace(string(body), quoted(r.nonce), `""`, 1), wantMsg: "missing parameter nonce"},
		{name: "snake_case names", body: `{"app_id":"IDATEST1","order_no":"F1","nonce":` + quoted(r.nonce) + `,"version":"1.0.0","sign":` + quoted(r.sign) + `}`, wantMsg: "missing parameter appId"},
		{name: "orderNo of 33", body: string(faceRecordJSON(newSignedReq(ticket, strings.Repeat("a", 33)), "")), query: "-", wantMsg: "invalid parameter orderNo"},
		{name: "sign not hex", body: strings.Replace(string(body), quoted(r.sign), quoted("G"+r.sign[1:]), 1), wantMsg: "invalid parameter sign"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, ct, b := query, "application/json", string(body)
			if tt.query != "" {
				q = tt.query
			}
			if q == "-" {
				q = ""
			}
			if tt.contentType != "" {
				ct = tt.contentType
			}
			if ct == "-" {
				ct = ""
			}
			if tt.body != "" {
				b = tt.body
			}
			before := fx.s.BadRequests()
			status, answer := fx.post(q, ct, []byte(b), tt.chunked)
			if status != http.StatusOK || fx.code(answer) != "400102" || !strings.Contains(fx.msg(answer), tt.wantMsg) {
				t.Errorf("answer = %d %s, want 200 with code 400102 and a msg holding %q", status, truncate(answer), tt.wantMsg)
			}
			if got := fx.s.BadRequests() - before; got != 1 {
				t.Errorf("BadRequests grew by %d, want 1", got)
			}
			for _, s := range []string{r.sign, r.nonce, ticket} {
				if bytes.Contains(answer, []byte(s)) {
					t.Errorf("answer %s holds a sign, nonce or ticket", answer)
				}
			}
		})
	}
	if n := fx.s.BadSignatures() + fx.s.ReusedNonces() + fx.s.StaleTickets(); n != 0 {
		t.Errorf("BadSignatures+ReusedNonces+StaleTickets = %d, want 0", n)
	}

	// The media type and charset are case-insensitive, and the URL's orderNo
	// is optional.
	for i, ct := range []string{"application/json", "application/json;charset=UTF-8", "Application/JSON; charset=utf-8"} {
		r := newSignedReq(ticket, "OK"+strconv.Itoa(i))
		q := "orderNo=" + r.orderNo
		if i == 2 {
			q = ""
		}
		if _, answer := fx.post(q, ct, faceRecordJSON(r, ""), false); fx.code(answer) != "0" {
			t.Errorf("Content-Type %q, query %q: answer = %s, want code 0", ct, q, truncate(answer))
		}
	}
	// The valid request was never spent by the bad ones.
	if _, answer := fx.post(query, "application/json", body, false); fx.code(answer) != "0" {
		t.Errorf("the valid request after the bad ones: answer = %s, want code 0", truncate(answer))
	}
}

// TestFaceRecordNoContentLength sends a body-less request with neither
// Content-Length nor Transfer-Encoding, which Go's client never does.
func TestFaceRecordNoContentLength(t *testing.T) {
	fx := newFixture(t, Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(fx.s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = io.WriteString(conn, "POST "+PathFaceRecord+"?orderNo=F1 HTTP/1.1\r\nHost: fake\r\n"+
		"Content-Type: application/json\r\nConnection: close\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if fx.code(body) != "400102" || fx.msg(body) != "Content-Length required" {
		t.Errorf("answer = %s, want code 400102, Content-Length required", body)
	}
	if got := fx.s.Requests(PathFaceRecord); len(got) != 1 || got[0].Has("header:Content-Length") {
		t.Errorf("Requests = %v, want one without header:Content-Length", got)
	}
}

func TestFaceResultBodies(t *testing.T) {
	a := New(Options{Apps: map[string]string{"A": "s"}, PhotoBytes: 100})
	b := New(Options{Apps: map[string]string{"B": "t"}, PhotoBytes: 100, Now: newTestClock().Now})
	type result struct {
		Code, Msg, BizSeqNo, TransactionTime string
		AppID                                string `json:"app_id"`
		OrderNo                              string `json:"order_no"`
		Result                               map[string]any
	}
	decode := func(body []byte) result {
		t.Helper()
		var r result
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for i := range 50 {
		orderNo := "order" + strconv.Itoa(i)
		for _, files := range [][2]bool{{false, false}, {true, true}, {true, false}, {false, true}} {
			sa := a.SyncResultBody("IDA1", orderNo, files[0], files[1])
			fa := a.FaceRecordResultBody("IDA1", orderNo, files[0], files[1], true)
			if !bytes.Equal(sa, b.SyncResultBody("IDA1", orderNo, files[0], files[1])) ||
				!bytes.Equal(fa, b.FaceRecordResultBody("IDA1", orderNo, files[0], files[1], true)) {
				t.Fatalf("%s: two fakes answer differently", orderNo)
			}
			s, f := decode(sa), decode(fa)
			// The two endpoints answer the same face verification.
			for _, k := range []string{"orderNo", "liveRate", "similarity", "occurredTime", "photo", "video", "bizSeqNo", "transactionTime"} {
				if s.Result[k] != f.Result[k] {
					t.Errorf("%s: %s = %v from sync, %v from queryfacerecord", orderNo, k, s.Result[k], f.Result[k])
				}
			}
			if s.Code != "0" || f.Code != "0" || len(s.BizSeqNo) != 32 || s.BizSeqNo != s.Result["bizSeqNo"] {
				t.Errorf("%s: wrappers %+v, %+v", orderNo, s, f)
			}
			if s.AppID != "IDA1" || s.OrderNo != orderNo || f.Result["appId"] != "IDA1" {
				t.Errorf("%s: sync app_id/order_no = %q/%q, queryfacerecord appId = %v", orderNo, s.AppID, s.OrderNo, f.Result["appId"])
			}
			id, _ := s.Result["idNo"].(string)
			if len(id) != 18 || id[17] != gbCheckDigit(id[:17]) || s.Result["idType"] != "01" || s.Result["name"] == "" {
				t.Errorf("%s: sync identity = %v/%v/%v", orderNo, id, s.Result["idType"], s.Result["name"])
			}
			if _, err := strconv.ParseFloat(s.Result["similarity"].(string), 64); err != nil {
				t.Errorf("%s: similarity %v is not a number", orderNo, s.Result["similarity"])
			}
			if v, _ := f.Result["sdkVersion"].(string); v == "" || f.Result["trtcFlag"] == nil {
				t.Errorf("%s: queryVersion 1.0 without sdkVersion or trtcFlag: %v", orderNo, f.Result)
			}
		}
	}
	plain := decode(a.FaceRecordResultBody("IDA1", "o", false, false, false))
	if _, ok := plain.Result["sdkVersion"]; ok {
		t.Error("sdkVersion without queryVersion")
	}
	if bytes.Equal(a.SyncResultBody("IDA1", "o", false, false), a.SyncResultBody("IDA2", "o", false, false)) {
		t.Error("apps 1 and 2 answer the same")
	}
	// Photo and video are distinct files.
	both := decode(a.SyncResultBody("IDA1", "o", true, true))
	if both.Result["photo"] == both.Result["video"] {
		t.Error("photo and video are the same bytes")
	}
}
