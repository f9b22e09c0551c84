package webanksign

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

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
		{name: "names near the owned ones kept", raw: "order_no=A1&signs=1&app_ids=2&queryVersion=1.0&nonce_str=3",
			keep: url.Values{"signs": {"1"}, "app_ids": {"2"}, "queryVersion": {"1.0"}, "nonce_str": {"3"}}},
		// Names a case-insensitive, last-wins server reads as an owned one
		// (issue 12, item 4): the client's value would replace the signed one.
		{name: "ORDER_NO alone", raw: "ORDER_NO=A1", wantErr: errNameConfusable[paramOrderNo]},
		{name: "ORDER_NO after order_no", raw: "order_no=A1&ORDER_NO=B2", wantErr: errNameConfusable[paramOrderNo]},
		{name: "Sign", raw: "order_no=A1&Sign=X", wantErr: errNameConfusable[paramSign]},
		{name: "appId, the JSON spelling", raw: "order_no=A1&appId=IDA00001", wantErr: errNameConfusable[paramAppID]},
		{name: "app-id", raw: "order_no=A1&app-id=IDA00001", wantErr: errNameConfusable[paramAppID]},
		{name: "Nonce", raw: "order_no=A1&Nonce=x", wantErr: errNameConfusable[paramNonce]},
		{name: "VERSION", raw: "order_no=A1&VERSION=2", wantErr: errNameConfusable[paramVersion]},
		{name: "sign with a long s", raw: "order_no=A1&%C5%BFign=X", wantErr: errNameConfusable[paramSign]},
		{name: "sign[]", raw: "order_no=A1&sign%5B%5D=X", wantErr: errNameConfusable[paramSign]},
		{name: "the first owned name is the one named", raw: "order_no=A1&Sign=X&APP_ID=Y", wantErr: errNameConfusable[paramAppID]},
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
	for _, owned := range []string{paramAppID, paramOrderNo, paramNonce, paramVersion, paramSign} {
		for k := range q {
			if k != owned && javaFoldName(k) == javaFoldName(owned) {
				return "", "", errNameConfusable[owned]
			}
		}
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
	if got := encodeSigned(&q, appID, version, []byte(nonce), []byte(sig)); got != want {
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
		{"ORDER_NO", "ORDER_NO=A1"},
		{"order_no and Order-No", "order_no=A1&Order-No=A2"},
		{"confusable names, the first owned one named", "version_=1&order_no=A1&SIGN=2&nonce%00=3"},
		{"malformed wins over a confusable name", "Sign=X&order_no=A1&x=%zz"},
		{"a confusable name wins over order_no", "Sign=X&order_no=A1&order_no=A2"},
		{"17 parameters, a confusable name", "order_no=A1&Nonce=Y&" + many(15, "k=v")},
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
		"ORDER_NO=A1&appId=IDA00001&%C5%BFign=x&get_file%5B%5D=1",
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
