package webanksign

import "testing"

// This file holds the review's findings on webank_sign (brief R2), each a
// test that failed on the tree it was written against.

// TestReviewBodyKeyRepeatCutShort shows the same sibling in parseBody: a
// body cut short after a name given twice was refused as
// body_key_repeated, before the body was known whole.
func TestReviewBodyKeyRepeatCutShort(t *testing.T) {
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
