package webanksign

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseAndSignBody(t *testing.T) {
	const appID, version, ticket = "IDA00001", "1.0.0", "T1cket"
	tests := []struct {
		name      string
		body      string
		wantErr   error
		wantAppID string // the client's appId, if it gave one
		files     bool   // the body asks for photos or videos
		keep      map[string]string
	}{
		{name: "orderNo only", body: `{"orderNo":"A1"}`},
		{name: "face record query", body: `{"appId":"IDA00001","version":"9","nonce":"x","orderNo":"A1","sign":"DEAD","getFile":"1","queryVersion":"1.0"}`,
			wantAppID: "IDA00001", files: true, keep: map[string]string{"getFile": `"1"`, "queryVersion": `"1.0"`}},
		{name: "getFile as a number", body: `{"orderNo":"A1","getFile":2}`, files: true, keep: map[string]string{"getFile": "2"}},
		{name: "getFile 0", body: `{"orderNo":"A1","getFile":"0"}`},
		{name: "getFile number 0", body: `{"orderNo":"A1","getFile":0}`},
		{name: "getFile null counts as asking", body: `{"orderNo":"A1","getFile":null}`, files: true},
		{name: "getFile empty counts as asking", body: `{"orderNo":"A1","getFile":""}`, files: true},
		{name: "GetFile in capitals", body: `{"orderNo":"A1","GetFile":"1"}`, files: true},
		{name: "getfile in lowercase", body: `{"orderNo":"A1","getfile":1}`, files: true},
		{name: "get_file spelled as in queries", body: `{"orderNo":"A1","get_file":"3"}`, files: true},
		{name: "getFile an object", body: `{"orderNo":"A1","getFile":{}}`, files: true},
		{name: "get_file[] as a binder may read it", body: `{"orderNo":"A1","get_file[]":"1"}`, files: true},
		{name: "getfıle with a dotless ı, escaped", body: `{"orderNo":"A1","getf\u0131le":1}`, files: true},
		{name: "GET.FILE", body: `{"orderNo":"A1","GET.FILE":"2"}`, files: true},
		{name: "get.file 0", body: `{"orderNo":"A1","get.file":"0"}`},
		{name: "nested values kept as written", body: `{ "orderNo" : "A1", "extra" : {"a": [1, 2.50, "x"]} }`,
			keep: map[string]string{"extra": `{"a": [1, 2.50, "x"]}`}},
		{name: "escaped key", body: `{"order\u004eo":"A1"}`},
		{name: "other appId", body: `{"appId":"IDA2","orderNo":"A1"}`, wantAppID: "IDA2"},
		{name: "empty", body: "", wantErr: errBodyMissing},
		{name: "blank", body: " \n", wantErr: errBodyMissing},
		{name: "array", body: `[{"orderNo":"A1"}]`, wantErr: errBodyMalformed},
		{name: "string", body: `"orderNo"`, wantErr: errBodyMalformed},
		{name: "truncated", body: `{"orderNo":"A1"`, wantErr: errBodyMalformed},
		{name: "trailing data", body: `{"orderNo":"A1"}{}`, wantErr: errBodyMalformed},
		{name: "trailing garbage", body: `{"orderNo":"A1"} x`, wantErr: errBodyMalformed},
		{name: "bad value", body: `{"orderNo":"A1","x":tru}`, wantErr: errBodyMalformed},
		{name: "repeated key", body: `{"orderNo":"A1","orderNo":"A2"}`, wantErr: errBodyKeyRepeat},
		{name: "repeated sign", body: `{"orderNo":"A1","sign":"a","sign":"b"}`, wantErr: errBodyKeyRepeat},
		{name: "repeated key, escaped", body: `{"orderNo":"A1","order\u004eo":"A1"}`, wantErr: errBodyKeyRepeat},
		{name: "no orderNo", body: `{"appId":"IDA00001"}`, wantErr: errBodyOrderNo},
		{name: "orderNo a number", body: `{"orderNo":123}`, wantErr: errBodyOrderType},
		{name: "orderNo null", body: `{"orderNo":null}`, wantErr: errBodyOrderType},
		{name: "orderNo empty", body: `{"orderNo":""}`, wantErr: errBodyOrderEmpty},
		{name: "orderNo too long", body: `{"orderNo":"` + strings.Repeat("x", 33) + `"}`, wantErr: errBodyOrderLong},
		{name: "orderNo with a space", body: `{"orderNo":"A 1"}`, wantErr: errBodyOrderChars},
		{name: "appId a number", body: `{"appId":1,"orderNo":"A1"}`, wantErr: errBodyAppIDType},
		{name: "appId null", body: `{"appId":null,"orderNo":"A1"}`, wantErr: errBodyAppIDType},
		{name: "names near the owned ones kept", body: `{"orderNo":"A1","queryVersion":"1.0","signature":"x","appIds":[]}`,
			keep: map[string]string{"queryVersion": `"1.0"`, "signature": `"x"`, "appIds": "[]"}},
		// Members a case-insensitive, last-wins reader (Go's encoding/json,
		// Jackson's case-insensitive mode, fastjson) takes for an owned one
		// (issue 12, item 4).
		{name: "OrderNo after orderNo", body: `{"orderNo":"A1","OrderNo":"B2"}`, wantErr: errNameConfusable[fieldOrderNo]},
		{name: "OrderNo alone", body: `{"OrderNo":"A1"}`, wantErr: errNameConfusable[fieldOrderNo]},
		{name: "order_no, the query spelling", body: `{"orderNo":"A1","order_no":"A1"}`, wantErr: errNameConfusable[fieldOrderNo]},
		{name: "Sign", body: `{"orderNo":"A1","Sign":"x"}`, wantErr: errNameConfusable[fieldSign]},
		{name: "AppId", body: `{"orderNo":"A1","AppId":"IDA00001"}`, wantErr: errNameConfusable[fieldAppID]},
		{name: "app_id", body: `{"orderNo":"A1","app_id":"IDA00001"}`, wantErr: errNameConfusable[fieldAppID]},
		{name: "NONCE", body: `{"orderNo":"A1","NONCE":"x"}`, wantErr: errNameConfusable[fieldNonce]},
		{name: "Version", body: `{"orderNo":"A1","Version":"2"}`, wantErr: errNameConfusable[fieldVersion]},
		{name: "sign with a long s, escaped", body: `{"orderNo":"A1","\u017Fign":"x"}`, wantErr: errNameConfusable[fieldSign]},
		{name: "the first owned name is the one named", body: `{"orderNo":"A1","SIGN":"x","APPID":"y"}`, wantErr: errNameConfusable[fieldAppID]},
		// What decoders may read differently is refused: invalid UTF-8
		// (Go's encoding/json and Java read U+FFFD, others fail), a lone
		// surrogate, a name twice once decoded, at any depth.
		{name: "invalid UTF-8 in a value", body: "{\"orderNo\":\"A1\",\"x\":\"\xff\"}", wantErr: errBodyMalformed},
		{name: "invalid UTF-8 in a name", body: "{\"orderNo\":\"A1\",\"\xff\":1}", wantErr: errBodyMalformed},
		{name: "lone surrogate escape", body: `{"orderNo":"A1","x":"\ud800"}`, wantErr: errBodyMalformed},
		{name: "surrogate pair escape kept", body: `{"orderNo":"A1","x":"\ud83d\ude00"}`, keep: map[string]string{"x": `"\ud83d\ude00"`}},
		{name: "repeated key, nested", body: `{"orderNo":"A1","x":{"a":1,"a":2}}`, wantErr: errBodyKeyRepeat},
		{name: "same key in two nested objects", body: `{"orderNo":"A1","x":{"a":1},"y":{"a":1}}`, keep: map[string]string{"x": `{"a":1}`}},
		{name: "userId is no owned name here", body: `{"orderNo":"A1","UserId":"u","Name":"n","IDNO":"1"}`,
			keep: map[string]string{"UserId": `"u"`, "Name": `"n"`, "IDNO": `"1"`}},
		{name: "malformed wins over a confusable name", body: `{"Sign":"x","orderNo":"A1"`, wantErr: errBodyMalformed},
		{name: "a confusable name wins over orderNo", body: `{"Sign":"x","orderNo":1}`, wantErr: errNameConfusable[fieldSign]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b checkedBody
			err := parseBody([]byte(tt.body), setOrderNo, &b)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseBody(%s) error = %v, want %v", tt.body, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if b.hasAppID != (tt.wantAppID != "") || b.appID != tt.wantAppID {
				t.Errorf("parseBody(%s) appId = %q (given: %v), want %q", tt.body, b.appID, b.hasAppID, tt.wantAppID)
			}
			if got := b.filesRequested(); got != tt.files {
				t.Errorf("filesRequested(%s) = %v, want %v", tt.body, got, tt.files)
			}
			signed := signBody(&b, appID, version, ticket)
			got := members(t, signed)
			for _, k := range []string{fieldAppID, fieldOrderNo, fieldVersion, fieldNonce, fieldSign} {
				if _, ok := got[k]; !ok {
					t.Fatalf("signBody(%s) = %s: no %s", tt.body, signed, k)
				}
			}
			str := func(k string) string {
				var s string
				if err := json.Unmarshal(got[k], &s); err != nil {
					t.Fatalf("signBody(%s): %s is not a string: %s", tt.body, k, got[k])
				}
				return s
			}
			if str(fieldAppID) != appID || str(fieldVersion) != version || str(fieldOrderNo) != string(b.orderNo) || len(str(fieldNonce)) != nonceLen {
				t.Errorf("signBody(%s) = %s: wrong appId, version, orderNo or nonce", tt.body, signed)
			}
			if want := referenceSign(appID, string(b.orderNo), version, ticket, str(fieldNonce)); str(fieldSign) != want {
				t.Errorf("signBody(%s) sign = %s, want %s", tt.body, str(fieldSign), want)
			}
			for k, v := range tt.keep {
				if string(got[k]) != v {
					t.Errorf("signBody(%s): %s = %s, want %s as the client wrote it", tt.body, k, got[k], v)
				}
			}
			client := members(t, []byte(tt.body))
			for k := range client {
				if _, ok := got[k]; !ok {
					t.Errorf("signBody(%s) lost the client's %s", tt.body, k)
				}
			}
			if again := signBody(&b, appID, version, ticket); bytes.Equal(again, signed) {
				t.Error("signing twice gave the same body: the nonce was not renewed")
			}
		})
	}
}

// members decodes a JSON object into its members, failing t if it is
// not one or has a key twice.
func members(t *testing.T, data []byte) map[string]json.RawMessage {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s is not a JSON object", data)
	}
	out := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if _, dup := out[tok.(string)]; dup {
			t.Fatalf("%s has %s twice", data, tok)
		}
		out[tok.(string)] = raw
	}
	return out
}

// FuzzBodyRewrite checks that every body parseBody accepts is signed into a
// JSON object that holds each of the client's members, values unchanged,
// and the five signed values.
func FuzzBodyRewrite(f *testing.F) {
	for _, s := range []string{
		`{"orderNo":"A1"}`,
		`{"appId":"IDA1","orderNo":"A1","getFile":"1","queryVersion":"1.0","sign":"x"}`,
		`{"orderNo":"A1","x":{"y":[1,"\u00e9",null]},"k\"ey":true}`,
		`{"orderNo":"A1","orderNo":"A2"}`,
		`[1]`, `{"orderNo":1}`, "",
		`{"orderNo":"A1","OrderNo":"A2","Sign":"x","app_id":"y"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b checkedBody
		err := parseBody(data, setOrderNo, &b)
		if err != nil {
			var qe *refusal
			if !errors.As(err, &qe) {
				t.Fatalf("parseBody(%q) error %v is not a *refusal", data, err)
			}
			return
		}
		out := encodeSignedBody(&b, "IDA00001", "1.0.0", bytes.Repeat([]byte("N"), nonceLen), bytes.Repeat([]byte("S"), signLen))
		if !json.Valid(out) {
			t.Fatalf("encodeSignedBody(%q) = %q, not JSON", data, out)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("encodeSignedBody(%q) = %q: %v", data, out, err)
		}
		for f := range b.kept() {
			var key string
			if err := json.Unmarshal(f.key, &key); err != nil {
				t.Fatalf("parseBody(%q) kept the name %s, not a JSON string", data, f.key)
			}
			if g, ok := got[key]; !ok || !bytes.Equal(g, f.raw) {
				t.Errorf("encodeSignedBody(%q): %q = %s, want %s", data, key, g, f.raw)
			}
			if !bytes.Contains(data, f.raw) || !bytes.Contains(out, f.key) {
				t.Errorf("encodeSignedBody(%q): member %s: %s not as the client wrote it", data, f.key, f.raw)
			}
		}
		// No member but the owned ones reads as one of them to a lenient reader.
		for k := range got {
			for _, owned := range []string{fieldAppID, fieldOrderNo, fieldNonce, fieldVersion, fieldSign} {
				if k != owned && javaFoldName(k) == javaFoldName(owned) {
					t.Errorf("encodeSignedBody(%q) has %q, which reads as %s", data, k, owned)
				}
			}
		}
		var orderNo string
		if json.Unmarshal(got[fieldOrderNo], &orderNo) != nil || orderNo != string(b.orderNo) {
			t.Errorf("encodeSignedBody(%q): orderNo = %s, want %q", data, got[fieldOrderNo], b.orderNo)
		}
	})
}

// TestBodyKeyRepeatCutShort shows the same sibling in parseBody: a
// body cut short after a name given twice was refused as
// body_key_repeated, before the body was known whole.
func TestBodyKeyRepeatCutShort(t *testing.T) {
	for _, body := range []string{
		`{"orderNo":"A1","x":1,"x":2`,
		`{"orderNo":"A1","x":1,"x":`,
		`{"orderNo":"A1","y":{"x":1,"x":2}`,
		`{"orderNo":"A1","x":1,"x":2,}`,
	} {
		var b checkedBody
		if err := parseBody([]byte(body), setOrderNo, &b); err != errBodyMalformed {
			t.Errorf("parseBody(%s) = %v, want %v", body, err, errBodyMalformed)
		}
	}
	// A whole body with a name twice is still refused as such.
	var b checkedBody
	if err := parseBody([]byte(`{"orderNo":"A1","x":1,"x":2}`), setOrderNo, &b); err != errBodyKeyRepeat {
		t.Errorf("whole body with a name twice: %v, want %v", err, errBodyKeyRepeat)
	}
}
