package webanktest

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// controlPrefix starts the paths of the control API.
const controlPrefix = "/__fake/"

// serveControl answers the control API described in the package doc. Its
// answers are JSON: {"code":"0","msg":"ok"} on success, HTTP 400 with code
// "400102" for bad parameters, 404 and 405 as usual. Its requests are
// counted nowhere.
func (f *Fake) serveControl(x *exchange) {
	var method string
	var serve func(q url.Values) (answer any, err error)
	switch x.r.URL.Path {
	case controlPrefix + "stats":
		method, serve = http.MethodGet, f.serveStats
	case controlPrefix + "fault":
		method, serve = http.MethodPost, f.serveSetFault
	case controlPrefix + "clear":
		method, serve = http.MethodPost, f.serveClear
	case controlPrefix + "rotate":
		method, serve = http.MethodPost, f.serveRotate
	default:
		x.writeJSON(http.StatusNotFound, "404", "not found")
		return
	}
	if x.r.Method != method {
		x.w.Header().Set("Allow", method)
		x.writeJSON(http.StatusMethodNotAllowed, "405", "method not allowed")
		return
	}
	if x.queryErr != nil {
		x.writeJSON(http.StatusBadRequest, codeBadParameter, errMalformedQuery.Error())
		return
	}
	answer, err := serve(x.query)
	switch {
	case err != nil:
		x.writeJSON(http.StatusBadRequest, codeBadParameter, err.Error())
	case answer != nil:
		x.writeBody(http.StatusOK, codeOK, marshal(answer))
	default:
		x.reply(codeOK, "ok")
	}
}

// stats is the answer of GET /__fake/stats.
type stats struct {
	TokenCalls       int64 `json:"token_calls"`
	TicketCalls      int64 `json:"ticket_calls"`
	OCRCalls         int64 `json:"ocr_calls"`
	BankCardCalls    int64 `json:"bankcard_calls"`
	SyncCalls        int64 `json:"sync_calls"`
	FaceRecordCalls  int64 `json:"facerecord_calls"`
	NonceCalls       int64 `json:"nonce_calls"`
	AdvFaceIDCalls   int64 `json:"advfaceid_calls"`
	FaceIDCalls      int64 `json:"faceid_calls"`
	PlusFaceIDCalls  int64 `json:"plusfaceid_calls"`
	WillFaceIDCalls  int64 `json:"willfaceid_calls"`
	H5FaceIDCalls    int64 `json:"h5faceid_calls"`
	PhotoInfoCalls   int64 `json:"photoinfo_calls"`
	BankCardOCRCalls int64 `json:"bankcardocr_calls"`
	LoginCalls       int64 `json:"login_calls"`
	SDKLoginCalls    int64 `json:"sdklogin_calls"`
	NonceTickets     int64 `json:"nonce_tickets"`
	Logins           int64 `json:"logins"`
	SDKLogins        int64 `json:"sdk_logins"`
	BadSignatures    int64 `json:"bad_signatures"`
	StaleTickets     int64 `json:"stale_tickets"`
	ReusedNonces     int64 `json:"reused_nonces"`
	BadRequests      int64 `json:"bad_requests"`
}

func (f *Fake) serveStats(url.Values) (any, error) {
	return stats{
		TokenCalls:       f.Calls(PathToken),
		TicketCalls:      f.Calls(PathTicket),
		OCRCalls:         f.Calls(PathOCR),
		BankCardCalls:    f.Calls(PathBankCard),
		SyncCalls:        f.Calls(PathSync),
		FaceRecordCalls:  f.Calls(PathFaceRecord),
		NonceCalls:       f.NonceCalls(),
		AdvFaceIDCalls:   f.Calls(PathAdvFaceID),
		FaceIDCalls:      f.Calls(PathFaceID),
		PlusFaceIDCalls:  f.Calls(PathPlusFaceID),
		WillFaceIDCalls:  f.Calls(PathWillFaceID),
		H5FaceIDCalls:    f.Calls(PathH5FaceID),
		PhotoInfoCalls:   f.Calls(PathPhotoInfo),
		BankCardOCRCalls: f.Calls(PathBankCardOCR),
		LoginCalls:       f.Calls(PathLogin),
		SDKLoginCalls:    f.Calls(PathSDKLogin),
		NonceTickets:     f.NonceTickets(),
		Logins:           f.Logins(),
		SDKLogins:        f.SDKLogins(),
		BadSignatures:    f.BadSignatures(),
		StaleTickets:     f.StaleTickets(),
		ReusedNonces:     f.ReusedNonces(),
		BadRequests:      f.BadRequests(),
	}, nil
}

func (f *Fake) serveClear(url.Values) (any, error) {
	f.ClearFaults()
	return nil, nil
}

// serveSetFault sets the fault described by the query, replacing the
// endpoint's previous one: endpoint (required), status, code, delay (a Go
// duration), malformed, hang and reset (booleans such as 1 or true).
func (f *Fake) serveSetFault(q url.Values) (any, error) {
	for k, vs := range q {
		if len(vs) > 1 {
			return nil, errors.New("repeated parameter " + k)
		}
	}
	ep := Endpoint(q.Get("endpoint"))
	var fault Fault
	var err error
	if s := q.Get("status"); s != "" {
		if fault.Status, err = strconv.Atoi(s); err != nil {
			return nil, errors.New("invalid parameter status")
		}
	}
	fault.Code = q.Get("code")
	if s := q.Get("delay"); s != "" {
		if fault.Delay, err = time.ParseDuration(s); err != nil {
			return nil, errors.New("invalid parameter delay")
		}
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{{"malformed", &fault.Malformed}, {"hang", &fault.Hang}, {"reset", &fault.Reset}} {
		if s := q.Get(b.key); s != "" {
			if *b.dst, err = strconv.ParseBool(s); err != nil {
				return nil, errors.New("invalid parameter " + b.key)
			}
		}
	}
	if err := checkFault(ep, fault); err != nil {
		return nil, err
	}
	f.SetFault(ep, fault)
	return nil, nil
}

// serveRotate rotates the access token of the app named by app_id.
func (f *Fake) serveRotate(q url.Values) (any, error) {
	appID, err := single(q, "app_id")
	if err != nil {
		return nil, err
	}
	if !f.creds.known(appID) {
		return nil, errors.New("unknown app_id")
	}
	f.RotateToken(appID)
	return nil, nil
}
