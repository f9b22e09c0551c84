package webanktest

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Endpoint names one of the fake's WeBank endpoints, for faults.
type Endpoint string

// The endpoints a Fault can be set on.
const (
	TokenEndpoint      Endpoint = "token"      // PathToken
	TicketEndpoint     Endpoint = "ticket"     // PathTicket
	OCREndpoint        Endpoint = "ocr"        // PathOCR
	BankCardEndpoint   Endpoint = "bankcard"   // PathBankCard
	SyncEndpoint       Endpoint = "sync"       // PathSync
	FaceRecordEndpoint Endpoint = "facerecord" // PathFaceRecord

	NonceEndpoint       Endpoint = "nonce"       // PathTicket with type=NONCE
	AdvFaceIDEndpoint   Endpoint = "advfaceid"   // PathAdvFaceID
	FaceIDEndpoint      Endpoint = "faceid"      // PathFaceID
	PlusFaceIDEndpoint  Endpoint = "plusfaceid"  // PathPlusFaceID
	WillFaceIDEndpoint  Endpoint = "willfaceid"  // PathWillFaceID
	H5FaceIDEndpoint    Endpoint = "h5faceid"    // PathH5FaceID
	PhotoInfoEndpoint   Endpoint = "photoinfo"   // PathPhotoInfo
	BankCardOCREndpoint Endpoint = "bankcardocr" // PathBankCardOCR
	LoginEndpoint       Endpoint = "login"       // PathLogin
	SDKLoginEndpoint    Endpoint = "sdklogin"    // PathSDKLogin
)

// endpoints are the Endpoint constants. Never modified.
var endpoints = [...]Endpoint{
	TokenEndpoint, TicketEndpoint, OCREndpoint, BankCardEndpoint, SyncEndpoint, FaceRecordEndpoint,
	NonceEndpoint, AdvFaceIDEndpoint, FaceIDEndpoint, PlusFaceIDEndpoint, WillFaceIDEndpoint,
	H5FaceIDEndpoint, PhotoInfoEndpoint, BankCardOCREndpoint, LoginEndpoint, SDKLoginEndpoint,
}

// Fault describes how an endpoint misbehaves. The zero Fault means none.
// A request answered by a fault is still counted in Calls (and, for a
// recorded endpoint, recorded in Requests), but is not checked, so it changes
// no other counter, uses up no nonce or NONCE ticket and issues no token,
// ticket or faceId. A Code fault is answered with the endpoint's refusal
// status (400 for the login page) and, for queryphotoinfo, a numeric code.
//
// Delay applies first; then the first of the other fields that is set, in
// the order Reset, Hang, Status, Code, Malformed, decides the answer. A
// Delay alone delays the normal answer.
type Fault struct {
	// Status, if non-zero, is answered with a small HTML error page
	// instead of JSON (no body for 204 and 304). It must be between 200
	// and 599.
	Status int

	// Code, if not empty, is answered as {"code":Code,"msg":"injected fault"},
	// with HTTP 200 (400 on the login page).
	Code string

	// Delay is waited before answering. The wait ends, with no answer, when
	// the request's context ends or the Fake is closed.
	Delay time.Duration

	// Malformed answers HTTP 200 with truncated JSON.
	Malformed bool

	// Hang never answers: the request is held until its context ends or the
	// Fake is closed, and then its connection is dropped.
	Hang bool

	// Reset hijacks the connection and closes it, with a TCP reset, without
	// answering. Go's http.Transport retries an idempotent request once if
	// it went out on a reused connection, so one client call may be counted
	// twice.
	Reset bool
}

// htmlErrorPage is what a Status fault answers, in the style of a proxy
// in front of WeBank; %[1]d is the status and %[2]s its text.
const htmlErrorPage = "<html>\r\n<head><title>%[1]d %[2]s</title></head>\r\n<body>\r\n" +
	"<center><h1>%[1]d %[2]s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

// malformedBody is what a Malformed fault answers: JSON cut short.
const malformedBody = `{"code":"0","msg":"请求成功","transactionTime":"2025`

// SetFault makes ep misbehave as fault describes from now on, replacing any
// fault set on ep before; the zero Fault removes it. Requests already being
// answered are not affected. SetFault is safe for concurrent use. It panics
// if ep is not one of the Endpoint constants or fault.Status is neither zero
// nor between 200 and 599.
func (f *Fake) SetFault(ep Endpoint, fault Fault) {
	if err := checkFault(ep, fault); err != nil {
		panic("webanktest: " + err.Error())
	}
	f.faultsMu.Lock()
	defer f.faultsMu.Unlock()
	if fault == (Fault{}) {
		delete(f.faults, ep)
		return
	}
	f.faults[ep] = fault
}

// ClearFaults removes the faults of every endpoint. It is safe for
// concurrent use.
func (f *Fake) ClearFaults() {
	f.faultsMu.Lock()
	defer f.faultsMu.Unlock()
	clear(f.faults)
}

func checkFault(ep Endpoint, fault Fault) error {
	if !slices.Contains(endpoints[:], ep) {
		return fmt.Errorf("unknown endpoint %q", ep)
	}
	if fault.Status != 0 && (fault.Status < 200 || fault.Status > 599) {
		return fmt.Errorf("fault status %d out of range 200-599", fault.Status)
	}
	if fault.Delay < 0 {
		return fmt.Errorf("negative fault delay %v", fault.Delay)
	}
	return nil
}

func (f *Fake) fault(ep Endpoint) Fault {
	f.faultsMu.Lock()
	defer f.faultsMu.Unlock()
	return f.faults[ep]
}

// injectFault answers x as fault says and reports whether it did; if not,
// the normal answer follows. It may end the handler by panicking with
// http.ErrAbortHandler, which drops the connection without an answer.
func (f *Fake) injectFault(x *exchange, fault Fault) (answered bool) {
	if fault.Delay > 0 {
		t := time.NewTimer(fault.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-x.r.Context().Done():
			x.outcome = "fault delay: request ended"
			return true
		case <-f.done:
			x.outcome = "fault delay: fake closed"
			panic(http.ErrAbortHandler)
		}
	}
	switch {
	case fault.Reset:
		x.outcome = "fault reset"
		resetConn(x.w)
	case fault.Hang:
		if f.testHookHang != nil {
			f.testHookHang()
		}
		select {
		case <-x.r.Context().Done():
			x.outcome = "fault hang: request ended"
		case <-f.done:
			x.outcome = "fault hang: fake closed"
		}
		panic(http.ErrAbortHandler)
	case fault.Status != 0:
		if fault.Status == http.StatusNoContent || fault.Status == http.StatusNotModified {
			x.w.WriteHeader(fault.Status) // these may carry no body
		} else {
			page := fmt.Sprintf(htmlErrorPage, fault.Status, http.StatusText(fault.Status))
			x.write(fault.Status, "text/html", []byte(page))
		}
		x.outcome = "fault status " + strconv.Itoa(fault.Status)
	case fault.Code != "":
		x.reply(fault.Code, "injected fault")
		x.outcome = "fault code " + strconv.Quote(fault.Code)
	case fault.Malformed:
		x.write(http.StatusOK, jsonContentType, []byte(malformedBody))
		x.outcome = "fault malformed"
	default:
		return false
	}
	return true
}

// resetConn closes the connection of w without answering, with a TCP reset
// where it can. If the connection cannot be hijacked, as with HTTP/2, the
// handler is aborted instead.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST rather than FIN
	}
	_ = conn.Close()
}
