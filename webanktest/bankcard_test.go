package webanktest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestBankCardGetFile(t *testing.T) {
	fx := newFixture(t, Options{PhotoBytes: 1000})
	ticket := fx.ticketNow()
	tests := []struct {
		name  string
		extra url.Values
		want  string // code
		files bool
	}{
		{name: "absent", want: "0"},
		{name: "1", extra: url.Values{"get_file": {"1"}}, want: "0", files: true},
		// Only "1" asks for files, as for getOcrResult.
		{name: "0", extra: url.Values{"get_file": {"0"}}, want: "0"},
		{name: "2", extra: url.Values{"get_file": {"2"}}, want: "0"},
		{name: "empty", extra: url.Values{"get_file": {""}}, want: "0"},
		{name: "repeated", extra: url.Values{"get_file": {"1", "1"}}, want: "400102"},
		// get_native is not a parameter of this endpoint, so it is ignored.
		{name: "get_native", extra: url.Values{"get_native": {"1"}}, want: "0"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := ocrQuery(ticket, "BC"+strconv.Itoa(i), tt.extra)
			_, body := fx.get(PathBankCard, q.Encode())
			if got := fx.code(body); got != tt.want {
				t.Fatalf("code = %s, want %s (%s)", got, tt.want, truncate(body))
			}
			if tt.want != "0" {
				return
			}
			if want := fx.s.BankCardResultBody(testApp, q.Get("order_no"), tt.files); !bytes.Equal(body, want) {
				t.Errorf("body = %s, want %s", truncate(body), truncate(want))
			}
			if got := bytes.Contains(body, []byte(`"bankcardNoPhoto"`)); got != tt.files {
				t.Errorf("photos present = %v, want %v", got, tt.files)
			}
		})
	}
}

func TestBankCardBadRequests(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	valid := ocrQuery(ticket, "A1", nil)
	without := func(key string) string {
		c := copyValues(valid)
		c.Del(key)
		return c.Encode()
	}
	tests := []struct{ name, query string }{
		{"without app_id", without("app_id")},
		{"without order_no", without("order_no")},
		{"without nonce", without("nonce")},
		{"without version", without("version")},
		{"without sign", without("sign")},
		{"camelCase names", url.Values{"appId": {testApp}, "orderNo": {"A1"}, "nonce": {valid.Get("nonce")}, "version": {"1.0.0"}, "sign": {valid.Get("sign")}}.Encode()},
		{"repeated sign", valid.Encode() + "&sign=" + valid.Get("sign")},
		{"order_no of 33", ocrQuery(ticket, strings.Repeat("a", 33), nil).Encode()},
		{"nonce of 31", with(valid, "nonce", strings.Repeat("a", 31)).Encode()},
		{"sign not hex", with(valid, "sign", "G"+valid.Get("sign")[1:]).Encode()},
		{"malformed escape", valid.Encode() + "&x=%zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fx.s.BadRequests()
			if _, body := fx.get(PathBankCard, tt.query); fx.code(body) != "400102" {
				t.Errorf("answer = %s, want code 400102", body)
			}
			if got := fx.s.BadRequests() - before; got != 1 {
				t.Errorf("BadRequests grew by %d, want 1", got)
			}
		})
	}
	// The valid query was never spent by the bad ones.
	if _, body := fx.get(PathBankCard, valid.Encode()); fx.code(body) != "0" {
		t.Errorf("valid query: answer = %s, want code 0", truncate(body))
	}
}

func TestLuhnCheckDigit(t *testing.T) {
	tests := map[string]byte{
		"7992739871":      '3', // the usual worked example
		"0":               '0',
		"1":               '8',
		"411111111111111": '1', // 4111 1111 1111 1111, a well-known test card
	}
	for payload, want := range tests {
		if got := luhnCheckDigit(payload); got != want {
			t.Errorf("luhnCheckDigit(%s) = %c, want %c", payload, got, want)
		}
	}
}

// luhnValid is an independent Luhn check of a whole number: from the right,
// every second digit doubled, digits of the products summed.
func luhnValid(number string) bool {
	sum := 0
	for i := range len(number) {
		d := int(number[len(number)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			d = d/10 + d%10
		}
		sum += d
	}
	return sum%10 == 0
}

func TestBankCardResultBody(t *testing.T) {
	a := New(Options{Apps: map[string]string{"A": "s"}, PhotoBytes: 100})
	b := New(Options{Apps: map[string]string{"B": "t"}, PhotoBytes: 100, Now: newTestClock().Now})
	cardNo := regexp.MustCompile(`^6[0-9]{15}([0-9]{3})?$`)
	validDate := regexp.MustCompile(`^(0[1-9]|1[0-2])/20[0-9]{2}$`)
	for i := range 200 {
		orderNo := "order" + strconv.Itoa(i)
		body := a.BankCardResultBody("IDA1", orderNo, false)
		if !bytes.Equal(body, b.BankCardResultBody("IDA1", orderNo, false)) {
			t.Fatalf("%s: two fakes answer differently", orderNo)
		}
		var r struct {
			Code, Msg, BizSeqNo, TransactionTime string
			Result                               map[string]any
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		no, _ := r.Result["bankCardNo"].(string)
		if !cardNo.MatchString(no) || !luhnValid(no) {
			t.Errorf("%s: bankCardNo = %q, want 16 or 19 digits passing the Luhn check", orderNo, no)
		}
		if v, _ := r.Result["bankCardValidDate"].(string); !validDate.MatchString(v) {
			t.Errorf("%s: bankCardValidDate = %q, want MM/YYYY", orderNo, v)
		}
		if r.Code != "0" || r.Msg == "" || len(r.BizSeqNo) != 32 || len(r.TransactionTime) != 14 {
			t.Errorf("%s: wrapper = %+v", orderNo, r)
		}
		if r.Result["orderNo"] != orderNo || r.Result["warnCode"] != "0" || r.Result["success"] != true {
			t.Errorf("%s: result = %v", orderNo, r.Result)
		}
		if op, _ := r.Result["operateTime"].(string); len(op) != len("2006-01-02 15:04:05") {
			t.Errorf("%s: operateTime = %q", orderNo, op)
		}
	}
	if bytes.Equal(a.BankCardResultBody("IDA1", "o", false), a.BankCardResultBody("IDA2", "o", false)) {
		t.Error("apps 1 and 2 answer the same")
	}

	var r struct{ Result map[string]any }
	if err := json.Unmarshal(a.BankCardResultBody("IDA1", "o", true), &r); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, field := range []string{"bankcardCropPhoto", "bankcardNoPhoto", "originBankcardPhoto"} {
		s, _ := r.Result[field].(string)
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != 100 {
			t.Fatalf("%s: %d bytes (%v), want 100", field, len(raw), err)
		}
		if !bytes.HasPrefix(raw, []byte{0xFF, 0xD8, 0xFF, 0xE0}) || !bytes.HasSuffix(raw, []byte{0xFF, 0xD9}) {
			t.Errorf("%s: not framed as a JPEG", field)
		}
		if seen[s] {
			t.Errorf("%s: same bytes as another photo", field)
		}
		seen[s] = true
	}
}
