package webanktest

import (
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// mp4Header starts every video: an ISO BMFF ftyp box. A video shorter than
// the header keeps only the header's start.
const mp4Header = "\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"

// serveSync answers the legacy face-result query /api/server/sync:
// parameters (400102, also for a get_file other than absent, empty, 1, 2
// or 3), then the checks of authorize, with 66660011 for an order that has
// no result.
func (f *Fake) serveSync(x *exchange) {
	p, err := parseSignedQuery(x, "get_file")
	var photo, video bool
	if err == nil {
		photo, video, err = faceFiles(x.query.Get("get_file"), "get_file")
	}
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.authorize(x, p, answer{codeFaceNotFound, "face result not found"}) {
		return
	}
	x.writeBody(http.StatusOK, codeOK, f.SyncResultBody(p.appID, p.orderNo, photo, video))
}

// serveFaceRecord answers the face-result query /api/v2/base/queryfacerecord:
// the request (400102; see parseFaceRecord), then the checks of authorize,
// with 66660011 for an order that has no result.
func (f *Fake) serveFaceRecord(x *exchange) {
	p, err := parseFaceRecord(x)
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.authorize(x, p.signedParams, answer{codeFaceNotFound, "face result not found"}) {
		return
	}
	x.writeBody(http.StatusOK, codeOK, f.FaceRecordResultBody(p.appID, p.orderNo, p.photo, p.video, p.queryVersion))
}

// faceRecordParams are the parameters of a queryfacerecord request.
type faceRecordParams struct {
	signedParams
	photo, video bool // asked for by getFile
	queryVersion bool // queryVersion "1.0"
}

// parseFaceRecord checks a queryfacerecord request, in this order: the
// headers and body (see jsonBody.check), the URL's query (well formed, orderNo
// at most once), appId, orderNo, nonce, version and sign (non-empty JSON
// strings), getFile (absent, or 1, 2 or 3 as a number or a string, or the
// empty string), queryVersion (absent or the string "1.0"), the URL's orderNo
// if present being the body's, and the form of orderNo, nonce and sign (see
// checkShape). Other members are ignored.
func parseFaceRecord(x *exchange) (faceRecordParams, error) {
	var p faceRecordParams
	b, err := jsonRequest(x)
	if err != nil {
		return p, err
	}
	if err := b.requiredStrings(p.commonFields()...); err != nil {
		return p, err
	}
	if raw, ok := b.fieldsByKey["getFile"]; ok {
		v, isString := b.str("getFile")
		if !isString {
			v = string(raw) // a number must be written 1, 2 or 3
		}
		if p.photo, p.video, err = faceFiles(v, "getFile"); err != nil {
			return p, err
		}
	}
	if _, ok := b.fieldsByKey["queryVersion"]; ok {
		if v, _ := b.str("queryVersion"); v != "1.0" {
			return p, errors.New(`invalid parameter queryVersion: want "1.0"`)
		}
		p.queryVersion = true
	}
	if err := checkURLOrderNo(x, p.orderNo); err != nil {
		return p, err
	}
	return p, p.checkShape("orderNo")
}

// faceFiles returns the files a get_file (getFile) value asks for: none
// for "", both for "1", the photo for "2", the video for "3". Other values
// are an error that names key.
func faceFiles(v, key string) (photo, video bool, err error) {
	switch v {
	case "":
		return false, false, nil
	case "1":
		return true, true, nil
	case "2":
		return true, false, nil
	case "3":
		return false, true, nil
	}
	return false, false, errors.New("invalid parameter " + key)
}

// SyncResultBody returns exactly the body the sync endpoint answers to a
// valid request for appID and orderNo whose get_file asks for the photo if
// photo and the video if video (get_file 1 both, 2 the photo, 3 the video).
// Every byte is a function of the four arguments and Options.PhotoBytes
// alone. The face result is the one FaceRecordResultBody answers for the
// same appID and orderNo, plus the made-up identity verified (name, idNo,
// idType) and, at the top level, app_id and order_no, as in WeBank's
// documented example. The photo is a base64 JPEG-like file and the video a
// base64 MP4-like one, of Options.PhotoBytes raw bytes each.
// SyncResultBody is safe for concurrent use.
func (f *Fake) SyncResultBody(appID, orderNo string, photo, video bool) []byte {
	d := newFaceData(appID, orderNo)
	res := syncResult{
		BizSeqNo:        d.bizSeqNo,
		TransactionTime: wbTime(d.queried),
		OrderNo:         orderNo,
		IDNo:            d.id.idcard,
		IDType:          "01",
		Name:            d.id.name,
		LiveRate:        d.liveRate,
		Similarity:      d.similarity,
		OccurredTime:    wbTime(d.occurred),
		Success:         true,
	}
	res.Photo, res.Video = f.encodeFaceFiles(d.seed, photo, video)
	return marshal(syncResponse{
		Code:            codeOK,
		Msg:             msgOK,
		BizSeqNo:        d.bizSeqNo,
		Result:          res,
		TransactionTime: wbTime(d.queried),
		AppID:           appID,
		OrderNo:         orderNo,
	})
}

// FaceRecordResultBody returns exactly the body the queryfacerecord endpoint
// answers to a valid request for appID and orderNo whose getFile asks for
// the photo if photo and the video if video, and, if queryVersion, whose
// queryVersion is "1.0", which adds sdkVersion and trtcFlag. Every byte is
// a function of the five arguments and Options.PhotoBytes alone, and the
// photo and video are those of SyncResultBody. FaceRecordResultBody is safe
// for concurrent use.
func (f *Fake) FaceRecordResultBody(appID, orderNo string, photo, video, queryVersion bool) []byte {
	d := newFaceData(appID, orderNo)
	res := faceRecordResult{
		BizSeqNo:        d.bizSeqNo,
		TransactionTime: wbTime(d.queried),
		OrderNo:         orderNo,
		LiveRate:        d.liveRate,
		Similarity:      d.similarity,
		OccurredTime:    wbTime(d.occurred),
		AppID:           appID,
		Success:         true,
	}
	res.Photo, res.Video = f.encodeFaceFiles(d.seed, photo, video)
	if queryVersion {
		res.SDKVersion = d.sdkVersion
		res.TRTCFlag = d.trtcFlag
	}
	return marshal(faceRecordResponse{
		Code:            codeOK,
		Msg:             msgOK,
		BizSeqNo:        d.bizSeqNo,
		TransactionTime: wbTime(d.queried),
		Result:          res,
	})
}

// encodeFaceFiles returns the base64 photo if photo and video if video of the
// face result drawn from seed, and "" for each not asked for.
func (f *Fake) encodeFaceFiles(seed [32]byte, photo, video bool) (photoB64, videoB64 string) {
	if photo {
		photoB64 = f.photo(seed, "photo")
	}
	if video {
		b := f.fileBytes(seed, "video")
		copy(b, mp4Header)
		videoB64 = base64.StdEncoding.EncodeToString(b)
	}
	return photoB64, videoB64
}

// faceData is a made-up face verification, drawn from its app id and order
// number, that both face-result endpoints answer.
type faceData struct {
	seed                 [32]byte
	id                   identity
	occurred, queried    time.Time
	bizSeqNo             string
	liveRate, similarity string
	sdkVersion, trtcFlag string
}

func newFaceData(appID, orderNo string) faceData {
	seed := resultSeed("face", appID, orderNo)
	rng := rand.NewChaCha8(seed)
	d := faceData{seed: seed, id: newIdentity(rng)}
	d.occurred = timeIn2025(rng)
	d.queried = d.occurred.Add(time.Duration(5+intn(rng, 3600)) * time.Second)
	d.bizSeqNo = bizSeqNo(rng, d.queried)
	d.liveRate = strconv.Itoa(90 + intn(rng, 11))
	d.similarity = strconv.Itoa(80+intn(rng, 20)) + "." + strconv.Itoa(intn(rng, 10))
	d.sdkVersion = "5." + strconv.Itoa(intn(rng, 4)) + "." + strconv.Itoa(intn(rng, 20))
	d.trtcFlag = "N"
	return d
}

type syncResponse struct {
	Code            string     `json:"code"`
	Msg             string     `json:"msg"`
	BizSeqNo        string     `json:"bizSeqNo"`
	Result          syncResult `json:"result"`
	TransactionTime string     `json:"transactionTime"`
	AppID           string     `json:"app_id"`
	OrderNo         string     `json:"order_no"`
}

type syncResult struct {
	BizSeqNo        string `json:"bizSeqNo"`
	TransactionTime string `json:"transactionTime"`
	OrderNo         string `json:"orderNo"`
	IDNo            string `json:"idNo"`
	IDType          string `json:"idType"`
	Name            string `json:"name"`
	LiveRate        string `json:"liveRate"`
	Similarity      string `json:"similarity"`
	OccurredTime    string `json:"occurredTime"`
	Success         bool   `json:"success"`
	Photo           string `json:"photo,omitempty"`
	Video           string `json:"video,omitempty"`
}

type faceRecordResponse struct {
	Code            string           `json:"code"`
	Msg             string           `json:"msg"`
	BizSeqNo        string           `json:"bizSeqNo"`
	TransactionTime string           `json:"transactionTime"`
	Result          faceRecordResult `json:"result"`
}

type faceRecordResult struct {
	BizSeqNo        string `json:"bizSeqNo"`
	TransactionTime string `json:"transactionTime"`
	OrderNo         string `json:"orderNo"`
	LiveRate        string `json:"liveRate"`
	Similarity      string `json:"similarity"`
	OccurredTime    string `json:"occurredTime"`
	AppID           string `json:"appId"`
	Success         bool   `json:"success"`
	Photo           string `json:"photo,omitempty"`
	Video           string `json:"video,omitempty"`
	SDKVersion      string `json:"sdkVersion,omitempty"`
	TRTCFlag        string `json:"trtcFlag,omitempty"`
}

// servePhotoInfo answers the face-photo query /api/v2/base/queryphotoinfo:
// the request (400102; see parseSignedBody), then the checks of authorize,
// with 66660011 for an order that has no result. Every code it answers is
// a JSON number, as WeBank documents for this API.
func (f *Fake) servePhotoInfo(x *exchange) {
	p, err := parseSignedBody(x)
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.authorize(x, p, answer{codeFaceNotFound, "face result not found"}) {
		return
	}
	x.writeBody(http.StatusOK, codeOK, f.PhotoInfoResultBody(p.appID, p.orderNo))
}

// PhotoInfoResultBody returns exactly the body the queryphotoinfo endpoint
// answers to a valid request for appID and orderNo: code the number 0, and
// the photo of the face verification that FaceRecordResultBody answers
// for the same appID and orderNo. Every byte is a function of the two
// arguments and Options.PhotoBytes alone. PhotoInfoResultBody is safe for
// concurrent use.
func (f *Fake) PhotoInfoResultBody(appID, orderNo string) []byte {
	d := newFaceData(appID, orderNo)
	photo, _ := f.encodeFaceFiles(d.seed, true, false)
	return marshal(photoInfoResponse{
		Code:            0,
		Msg:             msgOK,
		BizSeqNo:        d.bizSeqNo,
		TransactionTime: wbTime(d.queried),
		Result: photoInfoResult{
			BizSeqNo:        d.bizSeqNo,
			TransactionTime: wbTime(d.queried),
			OrderNo:         orderNo,
			Photo:           photo,
			Success:         true,
		},
	})
}

type photoInfoResponse struct {
	Code            int             `json:"code"`
	Msg             string          `json:"msg"`
	BizSeqNo        string          `json:"bizSeqNo"`
	TransactionTime string          `json:"transactionTime"`
	Result          photoInfoResult `json:"result"`
}

type photoInfoResult struct {
	BizSeqNo        string `json:"bizSeqNo"`
	TransactionTime string `json:"transactionTime"`
	OrderNo         string `json:"orderNo"`
	Photo           string `json:"photo"`
	Success         bool   `json:"success"`
}
