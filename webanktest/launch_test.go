package webanktest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// faceIDPaths are the four faceId APIs, signed as the userId type.
var faceIDPaths = []string{PathAdvFaceID, PathFaceID, PathPlusFaceID, PathWillFaceID}

// TestLaunchVectors checks vectors 2, 4 and 7 of docs/protocol.md §12
// through the fake's checker, with the vectors' tickets planted.
func TestLaunchVectors(t *testing.T) {
	fx := newVectorFixture(t, Options{})
	fx.plantSignTicket(vectorApp2, "XO99Qfxlti9iTVgHAjwvJdAZKN3nMuUhrsPdPlPVKlcyS50N6tlLnfuFBPIucaMS")
	fx.plantSignTicket(vectorApp, "duSz9ptwyW1Xn7r6gYItxz3feMdJ8Na5x7JZuoxurE7RcI5TdwCE4KT2eEeNNDoe")
	tests := []struct {
		name string
		path string
		body launch
	}{
		{name: "vector 2", path: PathAdvFaceID, body: launch{
			"appId": vectorApp2, "orderNo": "orderNo596551", "name": "testName", "idNo": "4300000000000",
			"userId": "userID19959248596551", "version": "1.0.0", "nonce": "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T",
			"sign": "D7606F1741DDCF90757DA924EDCF152A200AC7F0",
		}},
		{name: "vector 4", path: PathH5FaceID, body: launch{
			"webankAppId": vectorApp, "orderNo": "19959248596551", "name": "testName", "idNo": "4300000000000",
			"userId": "19959248596551", "version": "1.0.0", "sign": "11670F8BD6181CF71FB4656534253A0627D835CF",
		}},
		{name: "vector 7", path: PathH5FaceID, body: launch{
			"webankAppId": vectorApp, "orderNo": "orderNo19959248596551", "name": "testName", "idNo": "4300000000000",
			"userId": "userID19959248596551", "version": "1.0.0", "sign": "EE57F7C1EDDE7B6BB0DFB54CD902836B8EB0575B",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := fx.sendLaunch(tt.path, tt.body)
			id := FaceID(tt.body["appId"]+tt.body["webankAppId"], tt.body["orderNo"])
			if a.Code != "0" || a.Result.FaceID+a.Result.H5FaceID != id {
				t.Errorf("answer = %+v, want code 0 and faceId %s", a, id)
			}
		})
	}
	if n := fx.s.BadSignatures() + fx.s.StaleTickets() + fx.s.BadRequests(); n != 0 {
		t.Errorf("BadSignatures+StaleTickets+BadRequests = %d, want 0", n)
	}
}

func TestFaceIDAnswers(t *testing.T) {
	for _, path := range append(faceIDPaths, PathH5FaceID) {
		t.Run(path, func(t *testing.T) {
			fx := newFixture(t, Options{})
			ticket := fx.ticketNow()
			l := newLaunch(ticket, "O1", "u1")
			if path == PathH5FaceID {
				l = newH5Launch(ticket, "O1", "u1")
			}
			a := fx.sendLaunch(path, l)
			now := wbTime(fx.clock.Now())
			r := a.Result
			if a.Code != "0" || a.Msg == "" || len(a.BizSeqNo) != 32 || a.BizSeqNo != r.BizSeqNo ||
				a.TransactionTime != now || r.TransactionTime != now || r.OrderNo != "O1" || !r.Success {
				t.Errorf("answer = %+v", a)
			}
			faceID := r.FaceID
			if path == PathH5FaceID {
				faceID = r.H5FaceID
				if r.FaceID != "" {
					t.Errorf("geth5faceid answered faceId %q, want h5faceId only", r.FaceID)
				}
			}
			if faceID != FaceID(testApp, "O1") || len(faceID) != 32 {
				t.Errorf("faceId = %q, want FaceID = %q", faceID, FaceID(testApp, "O1"))
			}
			if want := strings.TrimPrefix(fx.s.URL, "http://"); r.OptimalDomain != want {
				t.Errorf("optimalDomain = %q, want the listener's %q", r.OptimalDomain, want)
			}
			if got := fx.s.Calls(path); got != 1 {
				t.Errorf("Calls = %d, want 1", got)
			}
			if got := fx.s.Requests(path); len(got) != 1 || got[0].Get("userId") != "u1" || got[0].Get("url:orderNo") != "O1" {
				t.Errorf("Requests = %v, want the one request", got)
			}
		})
	}
}

func TestFaceIDIsDeterministic(t *testing.T) {
	a, b := FaceID("IDA1", "O1"), FaceID("IDA1", "O1")
	if a != b || a == FaceID("IDA1", "O2") || a == FaceID("IDA2", "O1") || !strings.HasPrefix(a, "wb") {
		t.Errorf("FaceID: %q, %q, %q, %q", a, b, FaceID("IDA1", "O2"), FaceID("IDA2", "O1"))
	}
}

func TestOptimalDomain(t *testing.T) {
	t.Run("configured", func(t *testing.T) {
		fx := newFixture(t, Options{OptimalDomain: "kyc.example:8443"})
		if a := fx.sendLaunch(PathAdvFaceID, newLaunch(fx.ticketNow(), "O1", "u1")); a.Result.OptimalDomain != "kyc.example:8443" {
			t.Errorf("optimalDomain = %q, want kyc.example:8443", a.Result.OptimalDomain)
		}
	})
	t.Run("not the Host header", func(t *testing.T) {
		fx := newFixture(t, Options{})
		l := newLaunch(fx.ticketNow(), "O1", "u1")
		b, _ := json.Marshal(l)
		req, _ := http.NewRequest(http.MethodPost, fx.s.URL+PathAdvFaceID, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Host = "proxy.example" // as a proxy passes its client's Host through
		resp, err := fx.s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a launchAnswer
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimPrefix(fx.s.URL, "http://"); a.Result.OptimalDomain != want {
			t.Errorf("optimalDomain = %q, want %q", a.Result.OptimalDomain, want)
		}
	})
	t.Run("bare handler", func(t *testing.T) {
		// Served by another server, the fake answers the local address of
		// the connection, which is that server's listener.
		f := New(Options{Apps: map[string]string{testApp: testSecret}, Now: newTestClock().Now})
		srv := httptest.NewServer(f)
		defer srv.Close()
		fx := &fixture{t: t, s: &Server{Fake: f, URL: srv.URL, srv: srv}, clock: newTestClock()}
		if a := fx.sendLaunch(PathAdvFaceID, newLaunch(fx.ticketNow(), "O1", "u1")); a.Result.OptimalDomain != strings.TrimPrefix(srv.URL, "http://") {
			t.Errorf("optimalDomain = %q, want %q", a.Result.OptimalDomain, srv.URL)
		}
	})
}

// TestLaunchSignChecks runs the checks of the SIGN-ticket endpoints against
// the launch APIs.
func TestLaunchSignChecks(t *testing.T) {
	for _, path := range append(faceIDPaths, PathH5FaceID) {
		t.Run(path, func(t *testing.T) {
			fx := newFixture(t, Options{})
			token := fx.token(testApp)
			ticket := fx.ticket(testApp, token)
			otherTicket := fx.ticket(otherApp, fx.token(otherApp))
			mk := newLaunch
			if path == PathH5FaceID {
				mk = newH5Launch
			}
			orderNoSigned := mk(ticket, "O5", "u1")
			if path == PathH5FaceID {
				orderNoSigned["sign"] = sign(testApp, "O5", "1.0.0", ticket, "") // five values, not seven
			} else {
				orderNoSigned["sign"] = sign(testApp, "O5", "1.0.0", ticket, orderNoSigned["nonce"]) // the orderNo type
			}
			tests := []struct {
				name string
				body launch
				want string
			}{
				{"valid", mk(ticket, "O1", "u1"), "0"},
				{"lowercase sign", lowerLaunch(mk(ticket, "O2", "u1")), "0"},
				// Launches have no "not found".
				{"NOTFOUND order", mk(ticket, "NOTFOUND1", "u1"), "0"},
				{"unknown ticket", mk(strings.Repeat("x", 64), "O3", "u1"), "400101"},
				{"other app's ticket", mk(otherTicket, "O4", "u1"), "400101"},
				{"sign of another value set", orderNoSigned, "400101"},
				{"sign of another user", mk(ticket, "O6", "u1").with("userId", "u2"), "400101"},
				{"unknown app", mk(ticket, "O7", "u1").with(appFieldOf(path), "IDANOPE1"), "400103"},
			}
			if path == PathH5FaceID {
				// The seven values include name and idNo.
				tests = append(tests, struct {
					name string
					body launch
					want string
				}{"sign of another name", mk(ticket, "O8", "u1").with("name", "李四"), "400101"})
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if a := fx.sendLaunch(path, tt.body); a.Code != tt.want {
						t.Errorf("code = %s (%s), want %s", a.Code, a.Msg, tt.want)
					}
				})
			}

			// A ticket whose token was superseded past grace is stale.
			fx.s.RotateToken(testApp)
			fx.clock.Advance(time.Minute)
			if a := fx.sendLaunch(path, mk(ticket, "O9", "u1")); a.Code != "15" {
				t.Errorf("stale ticket: code = %s, want 15", a.Code)
			}
		})
	}
}

func lowerLaunch(l launch) launch { return l.with("sign", strings.ToLower(l["sign"])) }

// TestLaunchNonceReuse checks that the faceId APIs share the nonces of the
// other SIGN-ticket endpoints.
func TestLaunchNonceReuse(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	l := newLaunch(ticket, "O1", "u1")
	if a := fx.sendLaunch(PathAdvFaceID, l); a.Code != "0" {
		t.Fatalf("first: code %s, want 0", a.Code)
	}
	if a := fx.sendLaunch(PathAdvFaceID, l); a.Code != "400101" || a.Msg != "nonce already used" {
		t.Errorf("again: %+v, want 400101, nonce already used", a)
	}
	if a := fx.sendLaunch(PathWillFaceID, l); a.Code != "400101" {
		t.Errorf("on getWillFaceId: code %s, want 400101", a.Code)
	}
	q := ocrQuery(ticket, "O2", nil)
	fx.ocr(q)
	reused := newLaunch(ticket, "O3", "u1").with("nonce", q.Get("nonce"))
	reused["sign"] = sign(testApp, "u1", "1.0.0", ticket, q.Get("nonce"))
	if a := fx.sendLaunch(PathFaceID, reused); a.Code != "400101" {
		t.Errorf("getOcrResult's nonce on getfaceid: code %s, want 400101", a.Code)
	}
	if got := fx.s.ReusedNonces(); got != 3 {
		t.Errorf("ReusedNonces = %d, want 3", got)
	}
}

func TestLaunchBadRequests(t *testing.T) {
	fx := newFixture(t, Options{})
	ticket := fx.ticketNow()
	valid := newLaunch(ticket, "O1", "u1")
	h5 := newH5Launch(ticket, "O1", "u1")
	big := strings.Repeat("A", 8<<20)
	tests := []struct {
		name    string
		path    string
		query   string // default: the body's orderNo
		body    launch
		wantMsg string
	}{
		{"without appId", PathAdvFaceID, "", valid.without("appId"), "missing parameter appId"},
		{"without orderNo", PathAdvFaceID, "-", valid.without("orderNo"), "missing parameter orderNo"},
		{"without name", PathAdvFaceID, "", valid.without("name"), "missing parameter name"},
		{"empty name", PathAdvFaceID, "", valid.with("name", ""), "missing parameter name"},
		{"without idNo", PathAdvFaceID, "", valid.without("idNo"), "missing parameter idNo"},
		{"without userId", PathAdvFaceID, "", valid.without("userId"), "missing parameter userId"},
		{"without version", PathAdvFaceID, "", valid.without("version"), "missing parameter version"},
		{"without sign", PathAdvFaceID, "", valid.without("sign"), "missing parameter sign"},
		{"without nonce", PathAdvFaceID, "", valid.without("nonce"), "missing parameter nonce"},
		{"orderNo of 33", PathFaceID, "-", valid.with("orderNo", strings.Repeat("o", 33)), "invalid parameter orderNo"},
		{"userId with a dot", PathFaceID, "", valid.with("userId", "u.1"), "invalid parameter userId"},
		{"userId of 33", PathFaceID, "", valid.with("userId", strings.Repeat("u", 33)), "invalid parameter userId"},
		{"idNo with a dash", PathPlusFaceID, "", valid.with("idNo", "1101-19"), "invalid parameter idNo"},
		{"idNo of 33", PathPlusFaceID, "", valid.with("idNo", strings.Repeat("1", 33)), "invalid parameter idNo"},
		{"nonce of 31", PathWillFaceID, "", valid.with("nonce", valid["nonce"][:31]), "invalid parameter nonce"},
		{"sign not hex", PathWillFaceID, "", valid.with("sign", "G"+valid["sign"][1:]), "invalid parameter sign"},
		{"sourcePhotoType 3", PathAdvFaceID, "", valid.with("sourcePhotoType", "3"), "invalid parameter sourcePhotoType"},
		{"URL orderNo differs", PathAdvFaceID, "orderNo=O2", valid, "orderNo in URL differs"},
		{"body over 8 MiB", PathAdvFaceID, "", valid.with("sourcePhotoStr", big), "larger than 8 MiB"},
		{"geth5faceid without name", PathH5FaceID, "", h5.without("name"), "missing parameter name"},
		{"geth5faceid without userId", PathH5FaceID, "", h5.without("userId"), "missing parameter userId"},
		{"geth5faceid idNo with a dash", PathH5FaceID, "", h5.with("idNo", "1-1"), "invalid parameter idNo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"orderNo": {tt.body["orderNo"]}}.Encode()
			switch tt.query {
			case "-":
				q = ""
			case "":
			default:
				q = tt.query
			}
			before := fx.s.BadRequests()
			status, answer := fx.postJSON(tt.path, q, tt.body)
			if status != http.StatusOK || fx.code(answer) != "400102" || !strings.Contains(fx.msg(answer), tt.wantMsg) {
				t.Errorf("answer = %d %s, want 200 with code 400102 and a msg holding %q", status, truncate(answer), tt.wantMsg)
			}
			if got := fx.s.BadRequests() - before; got != 1 {
				t.Errorf("BadRequests grew by %d, want 1", got)
			}
		})
	}
	// A number for sourcePhotoType is allowed, and a photo of a few MB.
	photo := valid.with("sourcePhotoStr", strings.Repeat("A", 3<<20))
	raw, _ := json.Marshal(photo)
	raw = append(raw[:len(raw)-1], `,"sourcePhotoType":2}`...)
	if _, answer := fx.postRaw(PathAdvFaceID, "orderNo=O1", raw); fx.code(answer) != "0" {
		t.Errorf("valid launch with a 3 MB photo: %s, want code 0", truncate(answer))
	}
	// geth5faceid takes no nonce; one sent is ignored.
	if a := fx.sendLaunch(PathH5FaceID, h5.with("nonce", "x")); a.Code != "0" {
		t.Errorf("geth5faceid with a stray nonce: %+v, want code 0", a)
	}
	rec := fx.s.Requests(PathAdvFaceID)
	last := rec[len(rec)-1].Get("sourcePhotoStr")
	if !strings.HasPrefix(last, "sha256:") || !strings.HasSuffix(last, ",bytes="+strconv.Itoa(3<<20)) {
		t.Errorf("recorded photo = %.80q, want its hash and length", last)
	}
}
