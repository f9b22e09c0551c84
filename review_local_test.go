package webanksign

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// This file holds the review's findings on webank_sign_local (brief R2),
// each a test that failed on the tree it was written against.

// TestReviewLocalBodyCutShort shows siblings of 9efc5ec in
// webank_sign_local's body parser: a body cut short after a member that
// the endpoint does not take, a member that is not a string, or a member
// given twice was refused as field_unknown, field_invalid or
// body_key_repeated: the refusal came before the body was known whole. A
// broken body must be called broken (body_malformed), as parseBody's are.
func TestReviewLocalBodyCutShort(t *testing.T) {
	for _, body := range []string{
		`{"secret":"x"`,                  // was field_unknown
		`{"user_id":"u1","bogus":1`,      // was field_unknown
		`{"user_id":1`,                   // was field_invalid
		`{"user_id":null,`,               // was field_invalid
		`{"user_id":"u1","user_id":"u2"`, // was body_key_repeated
		`{"user_id":"u1","user_id":"u2",]`,
	} {
		if _, err := parseLocalBody([]byte(body), localFields[endpointSDKSign]); err != errBodyMalformed {
			t.Errorf("parseLocalBody(%s) = %v, want %v", body, err, errBodyMalformed)
		}
	}
	// Through ServeHTTP, the answer the client sees.
	h, _ := newLocalHandler(t, nil)
	r := httptest.NewRequest(http.MethodPost, "/webank/sdk_sign", strings.NewReader(`{"user_id":1`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, nil); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "sdk_sign cut short", w, http.StatusBadRequest, errBodyMalformed.Code)
}
