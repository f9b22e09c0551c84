package webanksign

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"math"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// The known-answer vectors of the protocol notes (shared/webank-protocol.md):
// both use the five-value order_no scheme that getOcrResult uses.
func TestSignKnownAnswers(t *testing.T) {
	tests := []struct {
		name                                   string
		appID, orderNo, version, ticket, nonce string
		want                                   string
	}{
		{
			name:    "vector 1",
			appID:   "appId001",
			orderNo: "aabc1457895464",
			version: "1.0.0",
			ticket:  "FxlAe3HFtEy73Um0pJNzIUriwtfnS3KRcPXiesd5ulS4XRAIcT0FbfaP52dwZf5S",
			nonce:   "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T",
			want:    "993D057C652D97FD90D5D298F2E5DC4B8D893CBC",
		},
		{
			name:    "vector 3",
			appID:   "IDAXXXXX",
			orderNo: "orderNo596551",
			version: "1.0.0",
			ticket:  "XO99Qfxlti9iTVgHAjwvJdAZKN3nMuUhrsPdPlPVKlcyS50N6tlLnfuFBPIucaMS",
			nonce:   "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T",
			want:    "6CD5F0DBCFA1155E2A66754B33C2E67DD358393B",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sign(tt.appID, tt.orderNo, tt.version, tt.ticket, tt.nonce); got != tt.want {
				t.Errorf("sign(...) = %s, want %s", got, tt.want)
			}
			// The five values are sorted, so the order of the arguments must not matter.
			if got := sign(tt.nonce, tt.ticket, tt.version, tt.orderNo, tt.appID); got != tt.want {
				t.Errorf("sign(reversed) = %s, want %s", got, tt.want)
			}
		})
	}
}

// A case-insensitive sort gives a different signature (the protocol notes
// list the wrong answer for vector 1); byte order puts "F" before "a".
func TestSignIsByteOrderNotCaseInsensitive(t *testing.T) {
	const wrong = "6993167F07AAE4813B2265E96838036F1376908F"
	got := sign("appId001", "aabc1457895464", "1.0.0",
		"FxlAe3HFtEy73Um0pJNzIUriwtfnS3KRcPXiesd5ulS4XRAIcT0FbfaP52dwZf5S", "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T")
	if got == wrong {
		t.Fatalf("sign = %s, the case-insensitive answer", got)
	}
}

// referenceSign is an independent computation of the signature for
// arbitrary values: sort.Strings, string concatenation, hex, upper case.
func referenceSign(vals ...string) string {
	s := append([]string(nil), vals...)
	sort.Strings(s)
	sum := sha1.Sum([]byte(strings.Join(s, "")))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func TestSignMatchesReference(t *testing.T) {
	tests := [][5]string{
		{"", "", "", "", ""},
		{"a", "a", "a", "a", "a"},
		{"IDA1", "ORD-1", "1.0.0", "ticket", "nonce"},
		{"应用", "订单", "1.0.0", "票据", "Ωmega"}, // non-ASCII: UTF-8 bytes are sorted
		{"Z", "a", "_", "-", "0"},
	}
	for _, v := range tests {
		if got, want := sign(v[0], v[1], v[2], v[3], v[4]), referenceSign(v[:]...); got != want {
			t.Errorf("sign(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestNonce(t *testing.T) {
	const n = 20000
	seen := make(map[string]bool, n)
	counts := make(map[rune]int)
	for range n {
		nonce := newNonce()
		if len(nonce) != nonceLen {
			t.Fatalf("len(newNonce()) = %d, want %d", len(nonce), nonceLen)
		}
		for _, c := range nonce {
			if !strings.ContainsRune(nonceAlphabet, c) {
				t.Fatalf("newNonce() = %q: %q is not in [A-Za-z0-9]", nonce, c)
			}
			counts[c]++
		}
		if seen[nonce] {
			t.Fatalf("newNonce() repeated %q", nonce)
		}
		seen[nonce] = true
	}
	if len(counts) != len(nonceAlphabet) {
		t.Errorf("nonces used %d distinct characters, want all %d", len(counts), len(nonceAlphabet))
	}
	// Each character is expected n*32/62 times. A biased draw (taking b%62 of
	// every byte) makes the first 8 characters 1/31 more likely than the rest:
	// +3.2%, about 9 standard deviations here. Allow 6.
	expected := float64(n*nonceLen) / float64(len(nonceAlphabet))
	sd := math.Sqrt(expected)
	for c, got := range counts {
		if math.Abs(float64(got)-expected) > 6*sd {
			t.Errorf("character %q drawn %d times, want %.0f ± %.0f", c, got, expected, 6*sd)
		}
	}
}

func TestCheckOrderNo(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   error
	}{
		{"plain", []string{"ORD20261126001"}, nil},
		{"underscore and dash", []string{"a_b-C9"}, nil},
		{"32 characters", []string{strings.Repeat("x", 32)}, nil},
		{"missing", nil, errOrderNoMissing},
		{"empty", []string{""}, errOrderNoEmpty},
		{"repeated", []string{"A1", "A1"}, errOrderNoRepeat},
		{"33 characters", []string{strings.Repeat("x", 33)}, errOrderNoLong},
		{"space", []string{"A 1"}, errOrderNoChars},
		{"dot", []string{"A.1"}, errOrderNoChars},
		{"CRLF (header injection)", []string{"A1\r\nX-Evil: 1"}, errOrderNoChars},
		{"short newline", []string{"A1\nB"}, errOrderNoChars},
		{"ampersand", []string{"A1&sign=x"}, errOrderNoChars},
		{"non-ASCII", []string{"订单1"}, errOrderNoChars},
		{"NUL", []string{"A\x00"}, errOrderNoChars},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkOrderNo(tt.values)
			if !errors.Is(err, tt.want) {
				t.Fatalf("checkOrderNo(%q) error = %v, want %v", tt.values, err, tt.want)
			}
			if err == nil && got != tt.values[0] {
				t.Errorf("checkOrderNo(%q) = %q, want %q", tt.values, got, tt.values[0])
			}
		})
	}
}

func TestClientAndSignQuery(t *testing.T) {
	const appID, version, ticket = "IDA00001", "1.0.0", "T1cket"
	tests := []struct {
		name    string
		raw     string
		wantErr error
		keep    url.Values // client parameters that must come through unchanged
	}{
		{name: "order_no only", raw: "order_no=A1", keep: url.Values{"order_no": {"A1"}}},
		{name: "photos and native place", raw: "order_no=A1&get_file=1&get_native=1",
			keep: url.Values{"get_file": {"1"}, "get_native": {"1"}}},
		{name: "client sign, nonce and version dropped", raw: "order_no=A1&sign=DEADBEEF&nonce=x&version=9&sign=Y"},
		{name: "matching client app_id", raw: "app_id=IDA00001&order_no=A1"},
		{name: "percent-encoded name is decoded", raw: "order%5Fno=A1", keep: url.Values{"order_no": {"A1"}}},
		{name: "other app_id", raw: "app_id=IDA99999&order_no=A1", wantErr: errAppIDMismatch},
		{name: "two app_ids, one other", raw: "app_id=IDA00001&app_id=X&order_no=A1", wantErr: errAppIDMismatch},
		{name: "semicolon separator", raw: "order_no=A1;sign=X", wantErr: errQueryMalformed},
		{name: "bad escape", raw: "order_no=A1&x=%zz", wantErr: errQueryMalformed},
		{name: "no order_no", raw: "get_file=1", wantErr: errOrderNoMissing},
		{name: "empty query", raw: "", wantErr: errOrderNoMissing},
		{name: "repeated order_no", raw: "order_no=A1&order_no=A2", wantErr: errOrderNoRepeat},
		{name: "encoded ampersand in order_no", raw: "order_no=A1%26sign%3DX", wantErr: errOrderNoChars},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cq, err := clientQueryFor(tt.raw, appID)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("clientQuery(%q) error = %v, want %v", tt.raw, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := signQuery(&cq, appID, version, ticket)
			q, err := url.ParseQuery(got)
			if err != nil {
				t.Fatalf("signQuery(%q) = %q, which does not parse: %v", tt.raw, got, err)
			}
			for _, k := range []string{paramAppID, paramOrderNo, paramNonce, paramVersion, paramSign} {
				if len(q[k]) != 1 {
					t.Fatalf("signQuery(%q) = %q: %s has %d values, want 1", tt.raw, got, k, len(q[k]))
				}
			}
			if q.Get(paramAppID) != appID || q.Get(paramVersion) != version || len(q.Get(paramNonce)) != nonceLen {
				t.Errorf("signQuery(%q) = %q: wrong app_id, version or nonce", tt.raw, got)
			}
			want := referenceSign(appID, q.Get(paramOrderNo), version, ticket, q.Get(paramNonce))
			if q.Get(paramSign) != want {
				t.Errorf("signQuery(%q) sign = %s, want %s", tt.raw, q.Get(paramSign), want)
			}
			for k, vs := range tt.keep {
				if strings.Join(q[k], ",") != strings.Join(vs, ",") {
					t.Errorf("signQuery(%q): %s = %q, want %q", tt.raw, k, q[k], vs)
				}
			}
		})
	}
}

// clientQueryFor is clientQuery followed by a single-app handler's check of
// the client's app_id.
func clientQueryFor(raw, appID string) (checkedQuery, error) {
	q, err := clientQuery(raw)
	if err == nil && q.appID.mismatch(appID) {
		return checkedQuery{}, errAppIDMismatch
	}
	return q, err
}

// referenceRewrite is the query rewrite as it was first written, on
// url.ParseQuery and url.Values, with the nonce and sign given: what
// clientQuery and encodeSigned must match byte for byte, errors included.
func referenceRewrite(raw, appID, version, nonce, sig string) (orderNo, signed string, err error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "", "", errQueryMalformed
	}
	orderNo, err = checkOrderNo(q[paramOrderNo])
	if err != nil {
		return "", "", err
	}
	for _, v := range q[paramAppID] {
		if v != appID {
			return "", "", errAppIDMismatch
		}
	}
	q[paramAppID] = []string{appID}
	q[paramNonce] = []string{nonce}
	q[paramVersion] = []string{version}
	q[paramSign] = []string{sig}
	return orderNo, q.Encode(), nil
}

// checkRewrite fails t unless clientQuery and encodeSigned agree with
// referenceRewrite on raw.
func checkRewrite(t *testing.T, raw string) {
	t.Helper()
	const appID, version = "IDA00001", "1.0.0"
	const nonce, sig = "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T", "993D057C652D97FD90D5D298F2E5DC4B8D893CBC"
	wantOrderNo, want, wantErr := referenceRewrite(raw, appID, version, nonce, sig)
	q, err := clientQueryFor(raw, appID)
	if err != wantErr { // the same *refusal, so the same status and code
		t.Fatalf("clientQuery(%q) error = %v, want %v", raw, err, wantErr)
	}
	if err != nil {
		return
	}
	if q.orderNo != wantOrderNo {
		t.Errorf("clientQuery(%q) order_no = %q, want %q", raw, q.orderNo, wantOrderNo)
	}
	if got := encodeSigned(&q, appID, version, nonce, sig); got != want {
		t.Errorf("encodeSigned(clientQuery(%q)) =\n\t%q, want\n\t%q", raw, got, want)
	}
}

func TestQueryRewriteMatchesReference(t *testing.T) {
	many := func(n int, p string) string { return strings.TrimSuffix(strings.Repeat(p+"&", n), "&") }
	tests := []struct{ name, raw string }{
		{"typical", "order_no=ORD20261126001&get_file=1&get_native=1"},
		{"names sorted in byte order", "zeta=1&order_no=A1&Zeta=2&_x=3&-y=4&get_file=1&app_ids=5&nonces=6"},
		{"repeated name keeps its order among others", "x=3&order_no=A1&x=1&y=0&x=2"},
		{"client sign, nonce and version dropped", "sign=S&order_no=A1&nonce=N&version=9&sign=T"},
		{"matching app_id, twice", "app_id=IDA00001&order_no=A1&app_id=IDA00001"},
		{"other app_id", "app_id=IDA99999&order_no=A1"},
		{"other app_id, then the right one", "app_id=IDA99999&order_no=A1&app_id=IDA00001"},
		{"app_id without value", "app_id&order_no=A1"},
		{"encoded app_id name", "app%5Fid=IDA99999&order_no=A1"},
		{"encoded sign name dropped", "si%67n=X&order_no=A1"},
		{"encoded order_no name", "order%5Fno=A1"},
		{"plus in order_no name", "order+no=A1&order_no=A2"},
		{"order_no once plain, once encoded", "order_no=A1&order%5fno=A2"},
		{"order_no without '='", "order_no&get_file=1"},
		{"order_no empty", "order_no="},
		{"order_no long", "order_no=" + strings.Repeat("x", 33)},
		{"order_no encoded '&'", "order_no=A1%26sign%3DX"},
		{"order_no with '+'", "order_no=A+1"},
		{"no order_no", "get_file=1"},
		{"empty query", ""},
		{"only separators", "&&&"},
		{"empty segments", "&order_no=A1&&get_file=1&"},
		{"empty name", "=x&order_no=A1&="},
		{"'=' in value", "order_no=A1&x=a=b=c"},
		{"values decoded and re-encoded", "order_no=A1&q=a+b%2Fc%20d~e*f'g(h)!&%E4%B8%AD=%e4%b8%ad"},
		{"raw characters re-encoded", "order_no=A1&q=a b\"c<d>é\x00\x7f\xff/?:@$,"},
		{"lower-case escapes", "order_no=A1&x=%2f%3a"},
		{"encoded semicolon", "order_no=A1&x=%3B"},
		{"semicolon", "order_no=A1;sign=X"},
		{"semicolon in a later value", "order_no=A1&x=a;b"},
		{"semicolon alone", ";"},
		{"bad escape", "order_no=A1&x=%zz"},
		{"bad escape in a name", "order_no=A1&%zz=1"},
		{"truncated escape", "order_no=A1&x=%4"},
		{"'%' at the end", "order_no=A1&x=%"},
		{"malformed wins over missing order_no", "x=%zz"},
		{"malformed wins over app_id", "app_id=X&order_no=A1&x=%zz"},
		{"order_no wins over app_id", "app_id=X&order_no=A1&order_no=A2"},
		{"16 parameters, the most split inline", "order_no=A1&" + many(15, "k=v")},
		{"17 parameters, through url.Values", "order_no=A1&" + many(16, "k=v")},
		{"17 parameters, malformed", "order_no=A1&" + many(15, "k=v") + "&x=%zz"},
		{"17 parameters, other app_id", "order_no=A1&app_id=X&" + many(15, "k=v")},
		{"17 parameters, client sign", "sign=X&order_no=A1&nonce=Y&version=Z&" + many(13, "k=v")},
		{"17 separators, few parameters", "order_no=A1" + strings.Repeat("&", 16)},
		{"at url.ParseQuery's limit", "order_no=A1&" + many(9999, "k")},
		{"past url.ParseQuery's limit", "order_no=A1&" + many(10000, "k")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRewrite(t, tt.raw) })
	}
}

// FuzzQueryRewrite checks clientQuery and encodeSigned against
// referenceRewrite. Its seed corpus is in testdata/fuzz/FuzzQueryRewrite;
// run it with go test -run '^$' -fuzz FuzzQueryRewrite.
func FuzzQueryRewrite(f *testing.F) {
	for _, s := range []string{
		"order_no=ORD20261126001&get_file=1&get_native=1",
		"app_id=IDA00001&order%5Fno=A1&sign=x&nonce=y&version=z&q=a+b%2F",
		"order_no=A1;x=1",
		"order_no=A1&" + strings.Repeat("k=v&", 16),
	} {
		f.Add(s)
	}
	f.Fuzz(checkRewrite)
}

// The rewrite must not allocate per parameter: a typical request costs the
// output, the nonce and the sign, whatever the client sent.
func TestQueryRewriteAllocations(t *testing.T) {
	for _, raw := range []string{
		"order_no=ORD20261126001&get_file=1&get_native=1",
		"app_id=IDA00001&order_no=A1&sign=DEADBEEF&nonce=x&version=9&a=1&b=2&c=3&d=4&e=5&f=6",
	} {
		allocs := testing.AllocsPerRun(100, func() {
			q, err := clientQueryFor(raw, "IDA00001")
			if err != nil {
				t.Fatal(err)
			}
			_ = signQuery(&q, "IDA00001", "1.0.0", "ticket")
		})
		if allocs > 4 {
			t.Errorf("clientQuery + signQuery(%q): %v allocations, want at most 4", raw, allocs)
		}
	}
}
