package webanktest

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// serveBankCard answers the getBankCardOcrResult endpoint: parameters
// (400102), then the checks of authorize, with 66660020 for an order that
// has no result.
func (f *Fake) serveBankCard(x *exchange) {
	p, err := parseSignedQuery(x, "get_file")
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.authorize(x, p, answer{codeNotFound, "bank card ocr result not found"}) {
		return
	}
	getFile := x.query.Get("get_file") == "1"
	x.writeBody(http.StatusOK, codeOK, f.BankCardResultBody(p.appID, p.orderNo, getFile))
}

// BankCardResultBody returns exactly the body the getBankCardOcrResult
// endpoint answers to a valid request for appID and orderNo with get_file=1
// if getFile. Every byte is a function of the three arguments and
// Options.PhotoBytes alone. The card is made up but well formed: a UnionPay
// prefix and a valid Luhn check digit, 16 or 19 digits, valid until a month
// written MM/YYYY. With getFile the result holds three base64 JPEG-like
// photos of Options.PhotoBytes raw bytes each. BankCardResultBody is safe
// for concurrent use.
func (f *Fake) BankCardResultBody(appID, orderNo string, getFile bool) []byte {
	c := newBankCard(appID, orderNo)
	res := bankCardResult{
		BizSeqNo:          c.operatedSeq,
		TransactionTime:   wbTime(c.operated),
		OrderNo:           orderNo,
		BankCardNo:        c.number,
		BankCardValidDate: c.validDate,
		WarnCode:          "0",
		OperateTime:       c.operated.Format(time.DateTime),
		Success:           true,
	}
	if getFile {
		res.BankcardCropPhoto = f.photo(c.seed, "bankcardCropPhoto")
		res.BankcardNoPhoto = f.photo(c.seed, "bankcardNoPhoto")
		res.OriginBankcardPhoto = f.photo(c.seed, "originBankcardPhoto")
	}
	return marshal(bankCardResponse{
		Code:            codeOK,
		Msg:             msgOK,
		BizSeqNo:        c.queriedSeq,
		TransactionTime: wbTime(c.queried),
		Result:          res,
	})
}

// serveBankCardOCR answers the bank-card upload /api/paas/bankcardocrapp:
// the request (400102; see parseSignedBody; the image, in a member of its
// own, is not checked), then the checks of authorize.
func (f *Fake) serveBankCardOCR(x *exchange) {
	p, err := parseSignedBody(x)
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.authorize(x, p, answer{}) {
		return
	}
	x.writeBody(http.StatusOK, codeOK, f.BankCardUploadResultBody(p.appID, p.orderNo))
}

// BankCardUploadResultBody returns exactly the body the bankcardocrapp
// endpoint answers to a valid request for appID and orderNo: the card that
// BankCardResultBody answers for the same appID and orderNo, with the
// upload API's spelling (bankcardNo, bankcardValidDate, warningCode) and
// no photo. Every byte is a function of the two arguments alone.
// BankCardUploadResultBody is safe for concurrent use.
func (f *Fake) BankCardUploadResultBody(appID, orderNo string) []byte {
	c := newBankCard(appID, orderNo)
	return marshal(bankCardUploadResponse{
		Code:            codeOK,
		Msg:             msgOK,
		BizSeqNo:        c.operatedSeq,
		TransactionTime: wbTime(c.operated),
		Result: bankCardUploadResult{
			BizSeqNo:          c.operatedSeq,
			TransactionTime:   wbTime(c.operated),
			OrderNo:           orderNo,
			BankcardNo:        c.number,
			BankcardValidDate: c.validDate,
			WarningCode:       "0",
			Success:           true,
		},
	})
}

// bankCard is a made-up bank-card OCR, drawn from its app id and order
// number, that both bank-card endpoints answer.
type bankCard struct {
	seed                    [32]byte
	operated, queried       time.Time
	operatedSeq, queriedSeq string // bizSeqNo of the OCR and of the query
	number, validDate       string
}

func newBankCard(appID, orderNo string) bankCard {
	c := bankCard{seed: resultSeed("bank card", appID, orderNo)}
	rng := rand.NewChaCha8(c.seed)
	c.operated = timeIn2025(rng)
	c.queried = c.operated.Add(time.Duration(60+intn(rng, 24*3600)) * time.Second)
	c.operatedSeq = bizSeqNo(rng, c.operated)
	c.number = newBankCardNo(rng)
	c.validDate = fmt.Sprintf("%02d/%d", 1+intn(rng, 12), 2026+intn(rng, 10))
	c.queriedSeq = bizSeqNo(rng, c.queried)
	return c
}

// cardPrefixes are UnionPay issuer prefixes and the lengths of their card
// numbers. Never modified.
var cardPrefixes = [...]struct {
	prefix string
	length int
}{
	{"622202", 19},
	{"621700", 19},
	{"622848", 19},
	{"601382", 19},
	{"621483", 16},
	{"622588", 16},
}

// newBankCardNo draws a card number with a valid Luhn check digit from rng.
func newBankCardNo(rng *rand.ChaCha8) string {
	p := cardPrefixes[intn(rng, len(cardPrefixes))]
	payload := p.prefix + digits(rng, p.length-len(p.prefix)-1)
	return payload + string(luhnCheckDigit(payload))
}

// luhnCheckDigit returns the digit that, appended to the digits of payload,
// makes a number that passes the Luhn check.
func luhnCheckDigit(payload string) byte {
	sum := 0
	double := true // the rightmost payload digit is doubled once the check digit follows it
	for i := len(payload) - 1; i >= 0; i-- {
		d := int(payload[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

type bankCardResponse struct {
	Code            string         `json:"code"`
	Msg             string         `json:"msg"`
	BizSeqNo        string         `json:"bizSeqNo"`
	TransactionTime string         `json:"transactionTime"`
	Result          bankCardResult `json:"result"`
}

type bankCardResult struct {
	BizSeqNo            string `json:"bizSeqNo"`
	TransactionTime     string `json:"transactionTime"`
	OrderNo             string `json:"orderNo"`
	BankCardNo          string `json:"bankCardNo"`
	BankCardValidDate   string `json:"bankCardValidDate"`
	WarnCode            string `json:"warnCode"`
	OperateTime         string `json:"operateTime"`
	Success             bool   `json:"success"`
	BankcardCropPhoto   string `json:"bankcardCropPhoto,omitempty"`
	BankcardNoPhoto     string `json:"bankcardNoPhoto,omitempty"`
	OriginBankcardPhoto string `json:"originBankcardPhoto,omitempty"`
}

type bankCardUploadResponse struct {
	Code            string               `json:"code"`
	Msg             string               `json:"msg"`
	BizSeqNo        string               `json:"bizSeqNo"`
	TransactionTime string               `json:"transactionTime"`
	Result          bankCardUploadResult `json:"result"`
}

type bankCardUploadResult struct {
	BizSeqNo          string `json:"bizSeqNo"`
	TransactionTime   string `json:"transactionTime"`
	OrderNo           string `json:"orderNo"`
	BankcardNo        string `json:"bankcardNo"`
	BankcardValidDate string `json:"bankcardValidDate"`
	WarningCode       string `json:"warningCode"`
	Success           bool   `json:"success"`
}
