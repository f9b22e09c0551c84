package webanksign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// The fuzz targets below run on their seeds with every `go test`; .ci/run
// also fuzzes each for a few seconds. Seeds live here, and any failing
// input the fuzzer finds lands in testdata/fuzz/.

// For any five values, sign equals an independent computation.
func FuzzSign(f *testing.F) {
	f.Add("appId001", "aabc1457895464", "1.0.0", "FxlAe3HFtEy73Um0pJNzIUriwtfnS3KRcPXiesd5ulS4XRAIcT0FbfaP52dwZf5S", "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T")
	f.Add("", "", "", "", "")
	f.Add("应用", "订单", "1.0.0", "票据", "Ωmega")
	f.Add("a", "a", "a", "a", "a")
	f.Add("\xff\xfe", "\x00", "Z", "z", "0")
	f.Fuzz(func(t *testing.T, appID, orderNo, version, ticket, nonce string) {
		if got, want := sign(appID, orderNo, version, ticket, nonce), referenceSign(appID, orderNo, version, ticket, nonce); got != want {
			t.Fatalf("sign(%q, %q, %q, %q, %q) = %s, want %s", appID, orderNo, version, ticket, nonce, got, want)
		}
	})
}

// Any Caddyfile text gives a config or an error, never a panic; and a
// config that parses is carried whole by its JSON, which is what Caddy
// runs: adapting it loses and changes nothing.
func FuzzCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"webank_sign {\n app_id IDA1\n secret {env.S}\n refresh 20m\n retry_codes 15 400101\n}",
		"webank_sign {\n retry_codes off\n fetch_timeout 1s\n}",
		"webank_sign IDA1",
		"webank_sign {\n app_id\n}",
		"webank_sign {\n refresh {env.R}\n base_url https://kyc1.qcloud.com\n}",
		"webank_sign_health {\n margin 30s\n}",
		"webank_sign {\n{\n}\n}",
		"webank_sign \"unterminated",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Fuzzfile")
		if err != nil || len(tokens) == 0 {
			return // the lexer refused it: Caddy reports that before any module sees it
		}
		var h Handler
		if h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)) == nil {
			roundTrip(t, &h, new(Handler))
		}
		var hc Health
		if hc.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)) == nil {
			roundTrip(t, &hc, new(Health))
		}
	})
}

// roundTrip checks that v, marshalled to JSON and unmarshalled into back,
// is v again.
func roundTrip[T any](t *testing.T, v, back *T) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshalling %+v: %v", *v, err)
	}
	if err := json.Unmarshal(b, back); err != nil {
		t.Fatalf("unmarshalling %s: %v", b, err)
	}
	if !reflect.DeepEqual(v, back) {
		t.Fatalf("through JSON %s, %+v came back as %+v", b, *v, *back)
	}
}

// Any answer from the token or ticket endpoint gives a typed error that holds
// no secret, or a non-empty value with a life within WeBank's maximum.
func FuzzOAuthAnswers(f *testing.F) {
	for _, seed := range []string{
		`{"code":"0","msg":"请求成功","access_token":"T","expire_in":7200}`,
		`{"code":0,"access_token":"T","expire_in":"7200"}`,
		`{"code":"0","access_token":"T"}`,
		`{"code":"0","access_token":"T","expire_in":-1}`,
		`{"code":"0","access_token":"T","expire_in":1e300}`,
		`{"code":"0","access_token":"T","expire_in":"0"}`,
		`{"code":"0","tickets":[{"value":"K","expire_in":"3600"}]}`,
		`{"code":"0","tickets":[]}`,
		`{"code":"0"}`,
		`{"code":"15","msg":"SECRET-x is wrong"}`,
		`<html><body>502 Bad Gateway</body></html>`,
		`{"code":"0","access_token":"T","exp`,
		`[]`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	const secret, token = "SECRET-x", "TOKEN-y"
	check := func(t *testing.T, what, value string, life, max time.Duration, err error) {
		if err != nil {
			var fe *tickets.FetchError
			if !errors.As(err, &fe) {
				t.Fatalf("%s: untyped error %v", what, err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), token) {
				t.Fatalf("%s: error %q holds a secret", what, err)
			}
			return
		}
		if value == "" || life <= 0 || life > max {
			t.Fatalf("%s: value %q, life %v: want a value and a life in (0, %v]", what, value, life, max)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, life, err := parseTokenAnswer(body, secret)
		check(t, "token", v, life, tickets.MaxTokenLife, err)
		v, life, err = parseTicketAnswer(ticketStep, body, secret, token)
		check(t, "ticket", v, life, tickets.MaxTicketLife, err)
	})
}

// Any query either reaches the next handler correctly signed (each of
// app_id, order_no, nonce, version and sign exactly once, sign matching) or
// is answered here with a JSON 4xx and never reaches it.
func FuzzServeHTTPQuery(f *testing.F) {
	for _, seed := range []string{
		"order_no=A1", "order_no=A1&get_file=1&get_native=1", "", "order_no=", "order_no=A1&order_no=A2",
		"order_no=A1;sign=X", "order%5Fno=A1", "order_no=A1&sign=DEADBEEF&nonce=x&version=9",
		"order_no=A1&app_id=IDAOTHER", "order_no=A1&app_id=" + testAppID, "order_no=A1%0D%0AX: 1",
		"order_no=A1&x=%zz", "order_no=" + strings.Repeat("9", 33), "a=1&a=2&order_no=B-2_c",
		strings.Repeat("p=1&", 20) + "order_no=MANY",
		"order_no=A1&Sign=X&APP-ID=Y", "ORDER_NO=A1", "order_no=A1&%C5%BFign=X", "order_no=A1&signs=1",
	} {
		f.Add(seed)
	}
	h, _ := newTestHandler(f)
	warm, err := h.tenants[0].tickets.Ticket(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := httptest.NewRequest(http.MethodGet, "/api/server/getOcrResult", nil)
		r.URL.RawQuery = rawQuery
		var forwarded bool
		next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			forwarded = true
			q, err := url.ParseQuery(r.URL.RawQuery)
			if err != nil {
				t.Fatalf("forwarded a query the upstream cannot parse: %q", r.URL.RawQuery)
			}
			for _, k := range []string{"app_id", "order_no", "nonce", "version", "sign"} {
				if len(q[k]) != 1 {
					t.Fatalf("forwarded %q: %s %d times", r.URL.RawQuery, k, len(q[k]))
				}
				for name := range q { // none that a lenient server reads as k
					if name != k && javaFoldName(name) == javaFoldName(k) {
						t.Fatalf("forwarded %q: %q reads as %s", r.URL.RawQuery, name, k)
					}
				}
			}
			if _, err := checkOrderNo(q["order_no"]); err != nil || q.Get("app_id") != testAppID || len(q.Get("nonce")) != nonceLen {
				t.Fatalf("forwarded %q: bad order_no, app_id or nonce", r.URL.RawQuery)
			}
			want := referenceSign(q.Get("app_id"), q.Get("order_no"), q.Get("version"), warm.Value(), q.Get("nonce"))
			if q.Get("sign") != want {
				t.Fatalf("forwarded %q with a wrong sign", r.URL.RawQuery)
			}
			w.WriteHeader(http.StatusOK)
			return nil
		})
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatalf("ServeHTTP(%q): %v", rawQuery, err)
		}
		if forwarded {
			return
		}
		var body struct{ Code, Msg string }
		if w.Code < 400 || w.Code > 499 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Code == "" || body.Msg == "" {
			t.Fatalf("ServeHTTP(%q) neither forwarded nor answered a JSON 4xx: %d %q", rawQuery, w.Code, w.Body.String())
		}
	})
}

// handlerFunc adapts a function to caddyhttp.Handler.
type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// FuzzBodyParse checks parseBody, whose tokenizer is jsontext, against
// encoding/json's verdicts on the same bytes, for every value set: a body
// it accepts is one valid JSON object for encoding/json too, with no name
// twice in any object, in valid UTF-8 without a lone surrogate escape, and
// each member it keeps has the name and, byte for byte, the value that
// encoding/json reads; where encoding/json finds an unambiguous valid
// object, parseBody refuses it as malformed never, and as a repeated name
// exactly when encoding/json finds a name twice.
func FuzzBodyParse(f *testing.F) {
	for _, s := range []string{
		`{"orderNo":"A1"}`,
		`{"appId":"IDA1","orderNo":"A1","getFile":"1","queryVersion":"1.0","sign":"x"}`,
		`{"orderNo":"A1","userId":"U1","name":"\u5f20\u4e09","idNo":"4300","sourcePhotoStr":"QUJD"}`,
		`{"orderNo":"A1","x":{"y":[1,"\u00e9",null,{"a":1,"b":{}}]},"k\"ey":true}`,
		`{"orderNo":"A1","orderNo":"A2"}`,
		`{"orderNo":"A1","order\u004eo":"A2"}`,
		`{"orderNo":"A1","x":{"a":1,"a":2}}`,
		`{"orderNo":"A1","x":"\ud800"}`,
		`{"orderNo":"A1","x":"\ud83d\ude00"}`,
		"{\"orderNo\":\"A1\",\"x\":\"\xff\"}",
		"{\"orderNo\":\"A1\",\"\xff\":1,\"\xfe\":2}",
		`[1]`, `{"orderNo":1}`, "", " ", `{} `, `{}{}`, `{"a":1,}`, `{"a" 1}`, `{"a":01}`, `{"a":1e}`,
		`{"orderNo":"A1","OrderNo":"A2","Sign":"x","app_id":"y"}`,
		`{"appId":0`, `{"appId":"x"`, `{"orderNo":"A1","appId":null,}`,
		`{"orderNo":"A1","userId":"U1","name":"N","idNo":"43","webankAppId":"IDA1"}`,
		`{"orderNo":"A1","userId":"U1","name":"N","idNo":"43","webankAppId":"IDA1","appId":"IDA1"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ref := referenceVerdict(data)
		for _, set := range []valueSet{setOrderNo, setUserID, setH5FaceID} {
			var b checkedBody
			err := parseBody(data, set, &b)
			if err != nil {
				if _, ok := err.(*refusal); !ok {
					t.Fatalf("parseBody(%q) error %v is not a *refusal", data, err)
				}
			}
			clean := ref.valid && ref.object && !ref.ambiguous
			switch {
			case err == nil && (!clean || ref.repeated):
				t.Fatalf("parseBody(%q, %d) accepted what encoding/json reads as %+v", data, set, ref)
			case clean && err == errBodyMalformed:
				t.Fatalf("parseBody(%q, %d) = malformed; encoding/json reads a valid object", data, set)
			case clean && (err == errBodyKeyRepeat) != ref.repeated:
				t.Fatalf("parseBody(%q, %d) = %v; encoding/json finds a name twice: %v", data, set, err, ref.repeated)
			case err != nil && err != errBodyMalformed && err != errBodyMissing && err != errBodyKeyRepeat && !clean:
				t.Fatalf("parseBody(%q, %d) = %v for what encoding/json reads as %+v", data, set, err, ref)
			}
			if err != nil {
				continue
			}
			kept := 0
			for f := range b.kept() {
				kept++
				var key string
				if err := json.Unmarshal(f.key, &key); err != nil {
					t.Fatalf("parseBody(%q) kept the name %s, which encoding/json cannot read", data, f.key)
				}
				if want, ok := ref.members[key]; !ok || !bytes.Equal(f.raw, want) {
					t.Errorf("parseBody(%q): %q = %s, encoding/json reads %s", data, key, f.raw, want)
				}
			}
			dropped := 0
			for _, k := range []string{fieldAppID, fieldNonce, fieldVersion, fieldSign, fieldWebankAppID} {
				if _, ok := ref.members[k]; ok {
					dropped++ // webankAppId only where the set names the app so: elsewhere it is refused
				}
			}
			if kept+dropped != len(ref.members) {
				t.Errorf("parseBody(%q) kept %d members and dropped %d of encoding/json's %d", data, kept, dropped, len(ref.members))
			}
		}
	})
}

// bodyVerdict is what encoding/json, and a plain scan, make of a body.
type bodyVerdict struct {
	valid     bool // json.Valid
	object    bool // one object
	repeated  bool // a name twice in one object, at any depth, compared decoded
	ambiguous bool // invalid UTF-8, or an escaped lone surrogate: decoders differ
	members   map[string]json.RawMessage
}

func referenceVerdict(data []byte) bodyVerdict {
	v := bodyVerdict{valid: json.Valid(data), ambiguous: !utf8.Valid(data) || hasLoneSurrogate(data)}
	if !v.valid {
		return v
	}
	v.object = bytes.TrimLeft(data, " \t\r\n")[0] == '{'
	if !v.object {
		return v
	}
	if err := json.Unmarshal(data, &v.members); err != nil {
		panic(err) // a valid object
	}
	// Walk the tokens, with the names seen in each open object.
	type frame struct {
		names     map[string]bool // nil for an array
		expectKey bool
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if top != nil && top.names != nil {
				top.expectKey = true
			}
			fr := frame{}
			if tok == json.Delim('{') {
				fr = frame{names: map[string]bool{}, expectKey: true}
			}
			stack = append(stack, fr)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if top == nil || top.names == nil {
				continue
			}
			if top.expectKey {
				name := tok.(string)
				if top.names[name] {
					v.repeated = true
				}
				top.names[name] = true
				top.expectKey = false
			} else {
				top.expectKey = true
			}
		}
	}
	return v
}

// hasLoneSurrogate reports whether valid JSON text escapes a surrogate
// that is not one of a pair. Outside strings there are no backslashes.
func hasLoneSurrogate(data []byte) bool {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(data) || data[i] != '\\' || data[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(data[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // an escaped character
			continue
		}
		switch {
		case 0xD800 <= r && r < 0xDC00:
			if r2, ok := hex4(i + 6); !ok || r2 < 0xDC00 || r2 > 0xDFFF {
				return true
			}
			i += 11
		case 0xDC00 <= r && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}
