package webanktest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strconv"
	"testing"
)

func TestGBCheckDigit(t *testing.T) {
	// The two examples of GB 11643-1999.
	tests := map[string]byte{
		"11010519491231002": 'X',
		"44052418800101001": '4',
	}
	for first17, want := range tests {
		if got := gbCheckDigit(first17); got != want {
			t.Errorf("gbCheckDigit(%s) = %c, want %c", first17, got, want)
		}
	}
}

// decodedResult is the part of a getOcrResult answer the tests look at.
type decodedResult struct {
	Code, Msg, BizSeqNo, TransactionTime string
	Result                               map[string]any
}

func decodeResult(t *testing.T, body []byte) decodedResult {
	t.Helper()
	var r decodedResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decoding result: %v", err)
	}
	return r
}

func TestOCRResultBodyDeterministic(t *testing.T) {
	a := New(Options{Apps: map[string]string{"A": "s"}, PhotoBytes: 1000})
	b := New(Options{Apps: map[string]string{"B": "t"}, PhotoBytes: 1000, Now: newTestClock().Now})
	for _, files := range []bool{false, true} {
		for _, native := range []bool{false, true} {
			x := a.OCRResultBody("IDA1", "order-1", files, native)
			if y := b.OCRResultBody("IDA1", "order-1", files, native); !bytes.Equal(x, y) {
				t.Errorf("get_file=%v get_native=%v: two fakes answer differently", files, native)
			}
			if y := a.OCRResultBody("IDA1", "order-2", files, native); bytes.Equal(x, y) {
				t.Errorf("get_file=%v get_native=%v: orders 1 and 2 answer the same", files, native)
			}
			if y := a.OCRResultBody("IDA2", "order-1", files, native); bytes.Equal(x, y) {
				t.Errorf("get_file=%v get_native=%v: apps 1 and 2 answer the same", files, native)
			}
		}
	}
}

func TestOCRResultBodyIdentity(t *testing.T) {
	f := New(Options{Apps: map[string]string{"A": "s"}})
	idcard := regexp.MustCompile(`^[0-9]{17}[0-9X]$`)
	validDate := regexp.MustCompile(`^[0-9]{8}-([0-9]{8}|长期)$`)
	// Many orders, so that every table and branch is likely drawn.
	for i := range 200 {
		orderNo := "order" + strconv.Itoa(i)
		r := decodeResult(t, f.OCRResultBody("IDA1", orderNo, false, true))
		res := r.Result
		id, _ := res["idcard"].(string)
		if !idcard.MatchString(id) {
			t.Fatalf("%s: idcard = %q, want 18 digits", orderNo, id)
		}
		if got, want := id[17], gbCheckDigit(id[:17]); got != want {
			t.Errorf("%s: idcard %s check digit = %c, want %c", orderNo, id, got, want)
		}
		if res["birth"] != id[6:14] {
			t.Errorf("%s: birth = %v, want %s from the idcard", orderNo, res["birth"], id[6:14])
		}
		wantSex := "女"
		if (id[16]-'0')%2 == 1 {
			wantSex = "男"
		}
		if res["sex"] != wantSex {
			t.Errorf("%s: sex = %v, want %s from idcard %s", orderNo, res["sex"], wantSex, id)
		}
		if v, _ := res["validDate"].(string); !validDate.MatchString(v) {
			t.Errorf("%s: validDate = %q", orderNo, v)
		}
		if res["orderNo"] != orderNo || res["success"] != true || res["frontCode"] != "0" || res["backCode"] != "0" {
			t.Errorf("%s: result = %v", orderNo, res)
		}
		if p, _ := res["nativePlace"].(string); p == "" {
			t.Errorf("%s: no nativePlace with get_native", orderNo)
		}
		if r.Code != "0" || len(r.BizSeqNo) != 32 || len(r.TransactionTime) != 14 {
			t.Errorf("%s: wrapper = %+v", orderNo, r)
		}
	}
}

func TestOCRResultBodyPhotos(t *testing.T) {
	photoFields := []string{"frontPhoto", "backPhoto", "headPhoto", "frontCrop", "backCrop"}
	tests := []struct {
		name       string
		photoBytes int
		want       int
	}{
		{"default", 0, 512 << 10},
		{"small", 100, 100},
		{"raised to the markers' size", 1, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Options{Apps: map[string]string{"A": "s"}, PhotoBytes: tt.photoBytes})
			body := f.OCRResultBody("IDA1", "order-1", true, false)
			res := decodeResult(t, body).Result
			seen := map[string]bool{}
			for _, field := range photoFields {
				s, _ := res[field].(string)
				raw, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					t.Fatalf("%s: %v", field, err)
				}
				if len(raw) != tt.want {
					t.Errorf("%s: %d bytes, want %d", field, len(raw), tt.want)
				}
				if !bytes.HasPrefix(raw, []byte{0xFF, 0xD8, 0xFF, 0xE0}) || !bytes.HasSuffix(raw, []byte{0xFF, 0xD9}) {
					t.Errorf("%s: not framed as a JPEG: % X … % X", field, raw[:4], raw[len(raw)-2:])
				}
				if seen[s] && tt.want > len(jfifHeader)+2 {
					t.Errorf("%s: same bytes as another photo", field)
				}
				seen[s] = true
			}
			if _, ok := res["nativePlace"]; ok {
				t.Error("nativePlace without get_native")
			}
			// The body is the five photos plus about a kilobyte of fields.
			photos := 5 * base64.StdEncoding.EncodedLen(tt.want)
			if len(body) < photos || len(body) > photos+2048 {
				t.Errorf("body is %d bytes, want %d plus less than 2 KiB", len(body), photos)
			}

			plain := decodeResult(t, f.OCRResultBody("IDA1", "order-1", false, false)).Result
			for _, field := range photoFields {
				if _, ok := plain[field]; ok {
					t.Errorf("%s without get_file", field)
				}
			}
		})
	}
}
