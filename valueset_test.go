package webanksign

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const (
	// docs/protocol.md §12, vectors 2 and 7.
	vectorNonce   = "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T"
	vectorTicketX = "XO99Qfxlti9iTVgHAjwvJdAZKN3nMuUhrsPdPlPVKlcyS50N6tlLnfuFBPIucaMS"
	vectorTicketD = "duSz9ptwyW1Xn7r6gYItxz3feMdJ8Na5x7JZuoxurE7RcI5TdwCE4KT2eEeNNDoe"
)

// signedMembers signs body for set with signBody and returns the signed
// body's members decoded as strings (the client's others as written), failing
// t if the body is refused or a member is repeated.
func signedMembers(t *testing.T, body string, set valueSet, appID, ticket string) (map[string]string, []byte) {
	t.Helper()
	var b checkedBody
	if err := parseBody([]byte(body), set, &b); err != nil {
		t.Fatalf("parseBody(%s) = %v", body, err)
	}
	signed := signBody(&b, appID, "1.0.0", ticket)
	out := make(map[string]string)
	for k, raw := range members(t, signed) {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw)
		}
		out[k] = s
	}
	return out, signed
}

// TestValueSetKnownAnswers signs bodies of each value set through signBody
// and checks the sign against the known answers of docs/protocol.md §12,
// or, where signBody draws a nonce, against the vectors' maths over the
// nonce it sent.
func TestValueSetKnownAnswers(t *testing.T) {
	t.Run("h5_face_id, vector 7", func(t *testing.T) {
		// The client's nonce, version and sign are dropped; none is added.
		const body = `{"orderNo":"orderNo19959248596551","name":"testName","idNo":"4300000000000","userId":"userID19959248596551","nonce":"x","sign":"y"}`
		got, signed := signedMembers(t, body, setH5FaceID, "appId001", vectorTicketD)
		if want := "EE57F7C1EDDE7B6BB0DFB54CD902836B8EB0575B"; got[fieldSign] != want {
			t.Errorf("signBody(%s) sign = %s, want %s", body, got[fieldSign], want)
		}
		if _, ok := got[fieldNonce]; ok {
			t.Errorf("signBody(%s) = %s: a nonce, which geth5faceid does not sign", body, signed)
		}
		// geth5faceid's body names the app webankAppId (docs/protocol.md §8.3).
		if got[fieldWebankAppID] != "appId001" || got[fieldVersion] != "1.0.0" || got[fieldOrderNo] != "orderNo19959248596551" {
			t.Errorf("signBody(%s) = %s: wrong webankAppId, version or orderNo", body, signed)
		}
		if _, ok := got[fieldAppID]; ok {
			t.Errorf("signBody(%s) = %s: appId beside webankAppId", body, signed)
		}
	})
	t.Run("h5_face_id signs the decoded name, passes on the raw one", func(t *testing.T) {
		const body = `{"orderNo":"orderNo19959248596551","name":"test\u004eame","idNo":"4300000000000","userId":"userID19959248596551"}`
		got, signed := signedMembers(t, body, setH5FaceID, "appId001", vectorTicketD)
		if want := "EE57F7C1EDDE7B6BB0DFB54CD902836B8EB0575B"; got[fieldSign] != want {
			t.Errorf("signBody(%s) sign = %s, want %s", body, got[fieldSign], want)
		}
		if !strings.Contains(string(signed), `"name":"test\u004eame"`) {
			t.Errorf("signBody(%s) = %s: the name not as the client wrote it", body, signed)
		}
	})
	t.Run("user_id, vector 2", func(t *testing.T) {
		b := checkedBody{set: setUserID, orderNo: []byte("O1"), userID: "userID19959248596551"}
		vals, n := setUserID.signedValues(&b, "O1", "IDAXXXXX", "1.0.0", vectorTicketX, vectorNonce)
		if got, want := signValues(vals[:n]), "D7606F1741DDCF90757DA924EDCF152A200AC7F0"; got != want {
			t.Errorf("user_id sign of vector 2 = %s, want %s", got, want)
		}
	})
	t.Run("user_id through signBody", func(t *testing.T) {
		const body = `{"orderNo":"ORD1","name":"\u5f20\u4e09","idNo":"43000000000000000X","userId":"userID19959248596551","sourcePhotoStr":"aGVsbG8=","sourcePhotoType":"1"}`
		got, signed := signedMembers(t, body, setUserID, "IDAXXXXX", vectorTicketX)
		if len(got[fieldNonce]) != nonceLen {
			t.Fatalf("signBody(%s) = %s: no nonce", body, signed)
		}
		if want := referenceSign("IDAXXXXX", "userID19959248596551", got[fieldNonce], "1.0.0", vectorTicketX); got[fieldSign] != want {
			t.Errorf("signBody(%s) sign = %s, want %s (the userId-type set)", body, got[fieldSign], want)
		}
		for _, k := range []string{fieldOrderNo, fieldName, fieldIDNo, fieldUserID, "sourcePhotoStr", "sourcePhotoType"} {
			if _, ok := got[k]; !ok {
				t.Errorf("signBody(%s) = %s: lost %s", body, signed, k)
			}
		}
	})
	t.Run("order_no through signBody", func(t *testing.T) {
		const body = `{"orderNo":"ORD1","userId":"U1","idcardStr":"aGVsbG8="}`
		got, _ := signedMembers(t, body, setOrderNo, "appId001", vectorTicketD)
		if want := referenceSign("appId001", "ORD1", got[fieldNonce], "1.0.0", vectorTicketD); got[fieldSign] != want {
			t.Errorf("signBody(%s) sign = %s, want %s (the order_no set)", body, got[fieldSign], want)
		}
	})
}

// TestValueSetRefusals checks the fields the userId-type and H5 sets sign
// or require: each missing, of the wrong type or out of its rule, and each
// imitated, is refused.
func TestValueSetRefusals(t *testing.T) {
	const rest = `"orderNo":"O1","name":"\u5f20\u4e09","idNo":"4300000000000"`
	long := func(n int, s string) string { return strings.Repeat(s, n) }
	tests := []struct {
		name    string
		body    string
		wantErr error
	}{
		{"usual", `{"userId":"U_1-a",` + rest + `}`, nil},
		{"no userId", `{` + rest + `}`, errBodyUserID},
		{"userId a number", `{"userId":1,` + rest + `}`, errBodyUserIDType},
		{"userId null", `{"userId":null,` + rest + `}`, errBodyUserIDType},
		{"userId empty", `{"userId":"",` + rest + `}`, errBodyUserIDEmpty},
		{"userId of 32", `{"userId":"` + long(32, "u") + `",` + rest + `}`, nil},
		{"userId of 33", `{"userId":"` + long(33, "u") + `",` + rest + `}`, errBodyUserIDLong},
		{"userId with a space", `{"userId":"U 1",` + rest + `}`, errBodyUserIDChars},
		{"userId with an escaped space", `{"userId":"U\u00201",` + rest + `}`, errBodyUserIDChars},
		{"userId twice", `{"userId":"U1","userId":"U1",` + rest + `}`, errBodyKeyRepeat},
		{"UserId", `{"userId":"U1","UserId":"U2",` + rest + `}`, errNameConfusable[fieldUserID]},
		{"user_id", `{"userId":"U1","user_id":"U2",` + rest + `}`, errNameConfusable[fieldUserID]},
		{"no orderNo", `{"userId":"U1","name":"N","idNo":"1"}`, errBodyOrderNo},
		{"no name", `{"userId":"U1","orderNo":"O1","idNo":"1"}`, errBodyName},
		{"name a number", `{"userId":"U1","orderNo":"O1","name":1,"idNo":"1"}`, errBodyNameInvalid},
		{"name empty", `{"userId":"U1","orderNo":"O1","name":"","idNo":"1"}`, errBodyNameInvalid},
		{"name with a newline", `{"userId":"U1","orderNo":"O1","name":"a\nb","idNo":"1"}`, errBodyNameInvalid},
		{"name with a bell", `{"userId":"U1","orderNo":"O1","name":"a\u0007b","idNo":"1"}`, errBodyNameInvalid},
		{"name with a C1 control", `{"userId":"U1","orderNo":"O1","name":"a\u0085b","idNo":"1"}`, errBodyNameInvalid},
		{"name of 64 characters", `{"userId":"U1","orderNo":"O1","name":"` + long(64, "张") + `","idNo":"1"}`, nil},
		{"name of 65 characters", `{"userId":"U1","orderNo":"O1","name":"` + long(65, "张") + `","idNo":"1"}`, errBodyNameLong},
		{"name with a lone surrogate", `{"userId":"U1","orderNo":"O1","name":"\ud800","idNo":"1"}`, errBodyMalformed},
		{"name not UTF-8", "{\"userId\":\"U1\",\"orderNo\":\"O1\",\"name\":\"\xe5\xbc\",\"idNo\":\"1\"}", errBodyMalformed},
		{"Name", `{"userId":"U1",` + rest + `,"Name":"x"}`, errNameConfusable[fieldName]},
		{"no idNo", `{"userId":"U1","orderNo":"O1","name":"N"}`, errBodyIDNo},
		{"idNo a number", `{"userId":"U1","orderNo":"O1","name":"N","idNo":4300}`, errBodyIDNoInvalid},
		{"idNo empty", `{"userId":"U1","orderNo":"O1","name":"N","idNo":""}`, errBodyIDNoInvalid},
		{"idNo with a dash", `{"userId":"U1","orderNo":"O1","name":"N","idNo":"4300-1"}`, errBodyIDNoInvalid},
		{"idNo of 33", `{"userId":"U1","orderNo":"O1","name":"N","idNo":"` + long(33, "1") + `"}`, errBodyIDNoLong},
		{"id_no", `{"userId":"U1",` + rest + `,"id_no":"1"}`, errNameConfusable[fieldIDNo]},
		{"the first owned name is the one named", `{"userId":"U1",` + rest + `,"IDNO":"1","Sign":"x"}`, errNameConfusable[fieldSign]},
	}
	for _, set := range []valueSet{setUserID, setH5FaceID} {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var b checkedBody
				err := parseBody([]byte(tt.body), set, &b)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parseBody(%s, set %d) = %v, want %v", tt.body, set, err, tt.wantErr)
				}
				if err != nil && strings.Contains(err.Error(), "\u5f20") {
					t.Errorf("refusal %q holds the client's name", err)
				}
			})
		}
	}
}
