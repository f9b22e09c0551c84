package webanktest

import (
	"crypto/sha256"
	"encoding/base64"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// minPhotoBytes is the smallest photo: the JPEG SOI and APP0 markers it
// starts with and the EOI marker it ends with.
const minPhotoBytes = 6

// jfifHeader starts every photo: SOI, then an APP0 JFIF segment. A photo
// shorter than the header plus EOI keeps only the header's start.
const jfifHeader = "\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"

// OCRResultBody returns exactly the body the getOcrResult endpoint answers
// to a valid request for appID and orderNo with get_file=1 if getFile and
// get_native=1 if getNative. Every byte is a function of the four arguments
// and Options.PhotoBytes alone, with no clock and no randomness, so that tests
// can compare answers byte for byte. The identity is made up but well
// formed: its idcard carries a valid GB 11643 check digit that agrees with
// the birth date and sex. With getFile the result holds five base64 JPEG-like
// photos of Options.PhotoBytes raw bytes each; with getNative, nativePlace.
// OCRResultBody is safe for concurrent use.
func (f *Fake) OCRResultBody(appID, orderNo string, getFile, getNative bool) []byte {
	seed := resultSeed("ocr", appID, orderNo)
	rng := rand.NewChaCha8(seed)
	id := newIdentity(rng)
	operated := timeIn2025(rng)
	queried := operated.Add(time.Duration(60+intn(rng, 24*3600)) * time.Second)

	res := ocrResult{
		BizSeqNo:          bizSeqNo(rng, operated),
		TransactionTime:   wbTime(operated),
		OrderNo:           orderNo,
		FrontCode:         "0",
		BackCode:          "0",
		Name:              id.name,
		Sex:               id.sex,
		Nation:            id.nation,
		Birth:             id.birth,
		Address:           id.address,
		IDCard:            id.idcard,
		ValidDate:         id.validDate,
		Authority:         id.region.authority,
		FrontWarnCode:     "0",
		BackWarnCode:      "0",
		FrontMultiWarning: "00000000",
		BackMultiWarning:  "00000000",
		FrontClarity:      strconv.Itoa(80 + intn(rng, 20)),
		BackClarity:       strconv.Itoa(80 + intn(rng, 20)),
		OperateTime:       operated.Format(time.DateTime),
		Success:           true,
	}
	if getFile {
		res.FrontPhoto = f.photo(seed, "frontPhoto")
		res.BackPhoto = f.photo(seed, "backPhoto")
		res.HeadPhoto = f.photo(seed, "headPhoto")
		res.FrontCrop = f.photo(seed, "frontCrop")
		res.BackCrop = f.photo(seed, "backCrop")
	}
	if getNative {
		res.NativePlace = id.region.place
	}
	return marshal(ocrResponse{
		Code:            codeOK,
		Msg:             msgOK,
		BizSeqNo:        bizSeqNo(rng, queried),
		TransactionTime: wbTime(queried),
		Result:          res,
	})
}

// photo returns the base64 of Options.PhotoBytes pseudo-random bytes drawn
// from seed and name, framed as a JPEG: SOI and APP0 first, EOI last.
func (f *Fake) photo(seed [32]byte, name string) string {
	b := f.fileBytes(seed, name)
	copy(b[:len(b)-2], jfifHeader)
	b[len(b)-2], b[len(b)-1] = 0xFF, 0xD9
	return base64.StdEncoding.EncodeToString(b)
}

// resultSeed seeds the made-up values of one result: a function of the kind
// of result, the app and the order alone.
func resultSeed(kind, appID, orderNo string) [32]byte {
	return sha256.Sum256([]byte("webanktest " + kind + " result\x00" + appID + "\x00" + orderNo))
}

// timeIn2025 draws a moment of 2025, Beijing time, to the second.
func timeIn2025(rng *rand.ChaCha8) time.Time {
	return time.Date(2025, 1, 1, 0, 0, 0, 0, beijing).Add(time.Duration(intn(rng, 365*24*3600)) * time.Second)
}

// fileBytes returns Options.PhotoBytes pseudo-random bytes drawn from seed
// and name.
func (f *Fake) fileBytes(seed [32]byte, name string) []byte {
	b := make([]byte, f.photoBytes)
	_, _ = rand.NewChaCha8(sha256.Sum256(append(seed[:], name...))).Read(b) // never fails
	return b
}

// bizSeqNo returns a 32-character WeBank-style business sequence number
// for an operation at t.
func bizSeqNo(rng *rand.ChaCha8, t time.Time) string {
	return t.In(beijing).Format("060102") + "2001" + digits(rng, 22)
}

// identity is a made-up but well-formed Chinese resident identity card.
type identity struct {
	name, sex, nation, birth, address, idcard, validDate string
	region                                               region
}

// region is where an identity card was issued.
type region struct {
	code      string // the first six digits of the idcard
	place     string // province, city and district; also the native place
	authority string // the issuing police bureau
}

// Tables the identities are drawn from; never modified.
var (
	regions = [...]region{
		{"110101", "北京市东城区", "北京市公安局东城分局"},
		{"310104", "上海市徐汇区", "上海市公安局徐汇分局"},
		{"440305", "广东省深圳市南山区", "深圳市公安局南山分局"},
		{"330106", "浙江省杭州市西湖区", "杭州市公安局西湖分局"},
		{"510107", "四川省成都市武侯区", "成都市公安局武侯区分局"},
		{"420106", "湖北省武汉市武昌区", "武汉市公安局武昌分局"},
		{"320102", "江苏省南京市玄武区", "南京市公安局玄武分局"},
		{"610113", "陕西省西安市雁塔区", "西安市公安局雁塔分局"},
	}
	surnames   = [...]string{"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "高", "罗"}
	givenChars = [...]string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀", "霞", "平", "刚", "英", "华", "玉", "兰", "文", "辉", "建", "国", "思"}
	minorities = [...]string{"壮", "回", "满", "维吾尔", "苗", "彝", "土家", "藏", "蒙古"}
	streets    = [...]string{"人民路", "建设路", "解放路", "中山路", "和平街", "文化路", "朝阳路", "青年路"}
)

// newIdentity draws an identity from rng.
func newIdentity(rng *rand.ChaCha8) identity {
	var id identity
	id.region = regions[intn(rng, len(regions))]

	id.name = surnames[intn(rng, len(surnames))]
	for range 1 + intn(rng, 2) {
		id.name += givenChars[intn(rng, len(givenChars))]
	}
	male := intn(rng, 2) == 0
	id.sex = "女"
	if male {
		id.sex = "男"
	}
	id.nation = "汉"
	if intn(rng, 10) == 0 {
		id.nation = minorities[intn(rng, len(minorities))]
	}

	born := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, intn(rng, 45*365))
	id.birth = born.Format("20060102")
	id.address = id.region.place + streets[intn(rng, len(streets))] +
		strconv.Itoa(1+intn(rng, 300)) + "号" +
		strconv.Itoa(1+intn(rng, 12)) + "栋" + strconv.Itoa(101+intn(rng, 20)) + "室"

	seq := 2 * intn(rng, 500) // the sequence number is odd for men, even for women
	if male {
		seq++
	}
	first17 := id.region.code + id.birth + leftPad(strconv.Itoa(seq), 3)
	id.idcard = first17 + string(gbCheckDigit(first17))

	issued := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, intn(rng, 9*365))
	id.validDate = issued.Format("20060102") + "-" + validUntil(born, issued)
	return id
}

// validUntil returns the end of validity of a card issued at issued to
// someone born at born: 5, 10 or 20 years by age at issue, or 长期 (no end)
// from 46 on.
func validUntil(born, issued time.Time) string {
	age := issued.Year() - born.Year()
	if issued.Month() < born.Month() || issued.Month() == born.Month() && issued.Day() < born.Day() {
		age--
	}
	var years int
	switch {
	case age < 16:
		years = 5
	case age < 26:
		years = 10
	case age < 46:
		years = 20
	default:
		return "长期"
	}
	return issued.AddDate(years, 0, 0).Format("20060102")
}

// gbCheckDigit returns the GB 11643-1999 check character of the first 17
// digits of an identity card number.
func gbCheckDigit(first17 string) byte {
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, w := range weights {
		sum += int(first17[i]-'0') * w
	}
	return "10X98765432"[sum%11]
}

func intn(rng *rand.ChaCha8, n int) int {
	return int(rng.Uint64() % uint64(n)) // the bias is far too small to matter here
}

func digits(rng *rand.ChaCha8, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + intn(rng, 10))
	}
	return string(b)
}

func leftPad(s string, n int) string {
	return strings.Repeat("0", max(0, n-len(s))) + s
}

type ocrResponse struct {
	Code            string    `json:"code"`
	Msg             string    `json:"msg"`
	BizSeqNo        string    `json:"bizSeqNo"`
	TransactionTime string    `json:"transactionTime"`
	Result          ocrResult `json:"result"`
}

type ocrResult struct {
	BizSeqNo          string `json:"bizSeqNo"`
	TransactionTime   string `json:"transactionTime"`
	OrderNo           string `json:"orderNo"`
	FrontCode         string `json:"frontCode"`
	BackCode          string `json:"backCode"`
	Name              string `json:"name"`
	Sex               string `json:"sex"`
	Nation            string `json:"nation"`
	Birth             string `json:"birth"`
	Address           string `json:"address"`
	IDCard            string `json:"idcard"`
	ValidDate         string `json:"validDate"`
	Authority         string `json:"authority"`
	FrontWarnCode     string `json:"frontWarnCode"`
	BackWarnCode      string `json:"backWarnCode"`
	FrontMultiWarning string `json:"frontMultiWarning"`
	BackMultiWarning  string `json:"backMultiWarning"`
	FrontClarity      string `json:"frontClarity"`
	BackClarity       string `json:"backClarity"`
	OperateTime       string `json:"operateTime"`
	Success           bool   `json:"success"`
	FrontPhoto        string `json:"frontPhoto,omitempty"`
	BackPhoto         string `json:"backPhoto,omitempty"`
	HeadPhoto         string `json:"headPhoto,omitempty"`
	FrontCrop         string `json:"frontCrop,omitempty"`
	BackCrop          string `json:"backCrop,omitempty"`
	NativePlace       string `json:"nativePlace,omitempty"`
}
