package webanksign

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Known-answer vectors 1 and 3 of docs/protocol.md §12: both use the
// five-value order_no scheme that getOcrResult uses.
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

// The known-answer vectors of docs/protocol.md §12 for the other value sets:
// the userId-type sign (also the SDK launch sign), geth5faceid's seven values
// without a nonce, the H5 login URL's seven with one, and the three- and
// four-value checks of front-end results and callbacks.
func TestSignValuesKnownAnswers(t *testing.T) {
	const (
		nonce   = "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T"
		ticketX = "XO99Qfxlti9iTVgHAjwvJdAZKN3nMuUhrsPdPlPVKlcyS50N6tlLnfuFBPIucaMS"
		ticketD = "duSz9ptwyW1Xn7r6gYItxz3feMdJ8Na5x7JZuoxurE7RcI5TdwCE4KT2eEeNNDoe"
		ticketZ = "zxc9Qfxlti9iTVgHAjwvJdAZKN3nMuUhrsPdPlPVKlcyS50N6tlLnfuFBPIucaMS"
	)
	tests := []struct {
		name string
		vals []string
		want string
	}{
		{"vector 2 (userId-type)", []string{"IDAXXXXX", "userID19959248596551", nonce, "1.0.0", ticketX}, "D7606F1741DDCF90757DA924EDCF152A200AC7F0"},
		{"vector 4 (geth5faceid)", []string{"appId001", "19959248596551", "testName", "4300000000000", "19959248596551", "1.0.0", ticketD}, "11670F8BD6181CF71FB4656534253A0627D835CF"},
		{"vector 5 (3 values)", []string{"appId001", "test1480921551481", ticketD}, "B02CEBEB07F792B2F085E8CB1E7BA9EC19284F54"},
		{"vector 6 (H5 login)", []string{"appId001", "userID19959248596551", nonce, "1.0.0", "bwiwe1457895464", "aabc1457895464", ticketZ}, "4E9DFABF938BF37BDB7A7DC25CCA1233D12D986B"},
		{"vector 7 (geth5faceid, 2018)", []string{"appId001", "orderNo19959248596551", "testName", "4300000000000", "userID19959248596551", "1.0.0", ticketD}, "EE57F7C1EDDE7B6BB0DFB54CD902836B8EB0575B"},
		{"vector 8 (callback)", []string{"appId001", "test1480921551481", ticketD, "0"}, "526365E042766AE27A6E52D2E4829D4C6E156B5D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := signValues(slices.Clone(tt.vals)); got != tt.want {
				t.Errorf("signValues = %s, want %s", got, tt.want)
			}
			rev := slices.Clone(tt.vals)
			slices.Reverse(rev)
			if got := signValues(rev); got != tt.want {
				t.Errorf("signValues(reversed) = %s, want %s", got, tt.want)
			}
		})
	}
}

// A case-insensitive sort gives a different signature (docs/protocol.md §5
// gives the wrong answer for vector 1); byte order puts "F" before "a".
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

func TestFoldName(t *testing.T) {
	tests := []struct{ name, want string }{
		{"get_file", "getfile"},
		{"GetFile[]", "getfile"},
		{"!app-ID ", "appid"},
		{"order_no\x00", "orderno"},
		{"ORDER.NO", "orderno"},
		{"\u017Fign", "sign"},              // long s: its upper case is S
		{"\u212Aey", "key"},                // the Kelvin sign: its lower case is k
		{"nonce\u0131", "noncei"},          // dotless ı: its upper case is I
		{"no\u0301nce", "nonce"},           // a combining accent is no letter
		{"\u00c9t\u00e9", "\u00c9t\u00e9"}, // other letters stay as they are, in their case
		{"x\uff11", "x\uff11"},             // and so do digits of other scripts
		{"a\xffb", "ab"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := string(foldName(nil, tt.name)); got != tt.want {
			t.Errorf("foldName(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestFoldNameMatchesJava checks foldName on every rune against
// javaFoldName, an independent statement of the rule.
func TestFoldNameMatchesJava(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		if got, want := string(foldName(nil, string(r))), javaFoldName(string(r)); got != want {
			t.Errorf("foldName(%q) = %q, want %q", r, got, want)
		}
	}
}

// javaFoldName is foldName written from the rule of Java's
// String.equalsIgnoreCase, with Go's case mappings for Java's: a char
// equals an ASCII letter if their upper cases are equal, or the lower
// cases of their upper cases. Characters other than letters and digits
// are dropped.
func javaFoldName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			continue
		}
		out := r
		for c := 'a'; c <= 'z'; c++ {
			u1, u2 := unicode.ToUpper(r), unicode.ToUpper(c)
			if u1 == u2 || unicode.ToLower(u1) == unicode.ToLower(u2) {
				out = c
				break
			}
		}
		b.WriteRune(out)
	}
	return b.String()
}

// TestOwnedNamesFold checks the tables of owned names: each folds to its
// entry of foldedOwned, in both shapes' spelling, each has a refusal, the
// query shape owns the five alone, and a JSON request's URL accepts orderNo
// alone.
func TestOwnedNamesFold(t *testing.T) {
	for i, f := range foldedOwned {
		for _, names := range []*ownedNames{&queryOwned, &jsonOwned[setUserID]} {
			if names.names[i] == "" {
				continue
			}
			if got := string(foldName(nil, names.names[i])); got != f {
				t.Errorf("foldName(%q) = %q, want %q", names.names[i], got, f)
			}
			if errNameConfusable[names.names[i]] == nil {
				t.Errorf("no refusal for a name that imitates %s", names.names[i])
			}
		}
	}
	if queryOwned.owned != ownedFive || jsonOwned[setOrderNo].owned != ownedFive {
		t.Errorf("query and order_no own %b and %b, want the five alone", queryOwned.owned, jsonOwned[setOrderNo].owned)
	}
	for set, names := range urlOwned[setOrderNo:] {
		if names.names != ([len(foldedOwned)]string{1: fieldOrderNo}) || names.owned != jsonOwned[set+1].owned {
			t.Errorf("urlOwned[%d] = %+v, want orderNo alone, owning what the body owns", set+1, names)
		}
	}
}

// TestIsGetFile is the photo policy's reading of parameter names: every
// name a lenient server may bind to get_file (issue 12, item 3).
func TestIsGetFile(t *testing.T) {
	for name, want := range map[string]bool{
		"get_file": true, "getFile": true, "GetFile": true, "GET-FILE": true, "get__file": true,
		"getfile": true, "get_files": false, "get": false, "file": false, "xgetfile": false, "": false,
		"!get_file":      true, // decorations a lenient binder strips
		"get_file[]":     true, // PHP- and Spring-style array names
		"getFile[]":      true,
		"get.file":       true,
		"get_file ":      true, // get_file%20, decoded
		"get_file\x00":   true, // get_file%00, decoded
		"\tget file\r\n": true,
		"getf\u0131le":   true, // dotless ı: Java's equalsIgnoreCase takes it for i
		"GETF\u0130LE":   true, // dotted İ: its lower case is i
		"get_fi\u200ble": true, // a zero-width space is no letter
		"\xffgetfile":    true, // nor is a byte that is not UTF-8
		"getfil\u00e9":   false,
		"getf\uff49le":   false, // fullwidth i: Java's equalsIgnoreCase tells it from i
		"get_filet":      false,
	} {
		if got := isGetFile(name); got != want {
			t.Errorf("isGetFile(%q) = %v, want %v", name, got, want)
		}
	}
}
