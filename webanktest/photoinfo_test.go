package webanktest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// photoInfoBody returns the queryphotoinfo body of r.
func photoInfoBody(r signedReq) map[string]string {
	return map[string]string{"appId": r.appID, "orderNo": r.orderNo, "nonce": r.nonce, "version": r.version, "sign": r.sign}
}

func TestPhotoInfo(t *testing.T) {
	fx := newFixture(t, Options{PhotoBytes: 1000})
	ticket := fx.ticketNow()
	r := newSignedReq(ticket, "P1")
	status, body := fx.postJSON(PathPhotoInfo, "orderNo=P1", photoInfoBody(r))
	if want := fx.s.PhotoInfoResultBody(testApp, "P1"); status != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("answer = %d %s, want %s", status, truncate(body), truncate(want))
	}
	var v struct {
		Code   any
		Result struct{ OrderNo, Photo string }
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if v.Code != float64(0) {
		t.Errorf("code = %#v, want the number 0", v.Code)
	}
	// The photo is the one queryfacerecord answers for the order.
	var face struct{ Result struct{ Photo string } }
	if err := json.Unmarshal(fx.s.FaceRecordResultBody(testApp, "P1", true, false, false), &face); err != nil {
		t.Fatal(err)
	}
	if v.Result.Photo == "" || v.Result.Photo != face.Result.Photo || v.Result.OrderNo != "P1" {
		t.Errorf("result = %.60v, want the order's face photo", v.Result)
	}
	checkFaceFiles(t, body, true, false, 1000)
}

// TestPhotoInfoNumericCodes checks that every code of queryphotoinfo is a
// JSON number, refusals and faults included.
func TestPhotoInfoNumericCodes(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	tests := []struct {
		name  string
		body  map[string]string
		fault string
		want  string // the code as JSON
	}{
		{name: "not found", body: photoInfoBody(newSignedReq(ticket, "NOTFOUND1")), want: "66660011"},
		{name: "bad sign", body: photoInfoBody(newSignedReq("no-ticket", "P2")), want: "400101"},
		{name: "bad request", body: map[string]string{"appId": testApp}, want: "400102"},
		{name: "unknown app", body: photoInfoBody(withApp(newSignedReq(ticket, "P3"), "IDANOPE1")), want: "400103"},
		{name: "injected fault", body: photoInfoBody(newSignedReq(ticket, "P4")), fault: "66661099", want: "66661099"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx.s.SetFault(PhotoInfoEndpoint, Fault{Code: tt.fault})
			_, body := fx.postJSON(PathPhotoInfo, "", tt.body)
			if !strings.HasPrefix(string(body), `{"code":`+tt.want+`,`) {
				t.Errorf("answer = %s, want code the number %s", body, tt.want)
			}
		})
	}
}

func TestBankCardOCR(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	upload := func(orderNo string, image int) (int, []byte) {
		r := newSignedReq(ticket, orderNo)
		b := photoInfoBody(r)
		b["bankcardStr"] = strings.Repeat("A", image)
		return fx.postJSON(PathBankCardOCR, "orderNo="+orderNo, b)
	}
	// An image of a few MB fits in the 8 MiB limit.
	status, body := upload("B1", 7<<20)
	if want := fx.s.BankCardUploadResultBody(testApp, "B1"); status != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("answer = %d %s, want %s", status, truncate(body), want)
	}
	var up, card struct{ Result map[string]any }
	if err := json.Unmarshal(body, &up); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fx.s.BankCardResultBody(testApp, "B1", false), &card); err != nil {
		t.Fatal(err)
	}
	// The upload answers the card getBankCardOcrResult answers, in its own spelling.
	if up.Result["bankcardNo"] != card.Result["bankCardNo"] || up.Result["bankcardValidDate"] != card.Result["bankCardValidDate"] ||
		up.Result["warningCode"] != "0" || up.Result["orderNo"] != "B1" {
		t.Errorf("upload result = %v, card = %v", up.Result, card.Result)
	}
	if _, body := upload("B2", 8<<20); fx.code(body) != "400102" || !strings.Contains(fx.msg(body), "larger than 8 MiB") {
		t.Errorf("image of 8 MiB: %s, want 400102, larger than 8 MiB", body)
	}
	if _, body := fx.postJSON(PathBankCardOCR, "", photoInfoBody(newSignedReq("no-ticket", "B3"))); fx.code(body) != "400101" {
		t.Errorf("bad sign: %s, want 400101", body)
	}
	rec := fx.s.Requests(PathBankCardOCR)
	if len(rec) != 3 || !strings.HasPrefix(rec[0].Get("bankcardStr"), "sha256:") || rec[0].Get("orderNo") != "B1" {
		t.Errorf("Requests = %.200v, want 3, the image kept as its hash", rec)
	}
}
