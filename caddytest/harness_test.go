// Package integration runs a real Caddy, with the webank_sign module, in
// front of the fake WeBank in webanktest. One in-process Caddy serves the
// whole test binary (started and stopped in TestMain), so these tests run
// one at a time, each loading its own config through the admin API.
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddytester "github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/webanksign/caddy-webanksign"
	"github.com/webanksign/caddy-webanksign/caddytest/leakcheck"
	"github.com/webanksign/caddy-webanksign/webanktest"
)

const (
	adminAddr = "127.0.0.1:2999"
	sitePort  = 9080
	appID     = "IDATEST1"
	secret    = "itest-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
	secretEnv = "WBS_IT_SECRET"
)

var siteURL = fmt.Sprintf("http://127.0.0.1:%d", sitePort)

// emptyConfig keeps only the admin endpoint: loading it stops every site
// and cleans up every handler of the previous config.
var emptyConfig = fmt.Sprintf(`{"admin":{"listen":%q,"config":{"persist":false}}}`, adminAddr)

func TestMain(m *testing.M) {
	os.Setenv(secretEnv, secret)
	persist := false
	err := caddy.Run(&caddy.Config{Admin: &caddy.AdminConfig{
		Listen: adminAddr,
		Config: &caddy.ConfigSettings{Persist: &persist},
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting caddy:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := caddy.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping caddy:", err)
	}
	os.Exit(code)
}

// env is one test's Caddy config and fake WeBank.
type env struct {
	t          *testing.T
	fake       *webanktest.Server
	tester     *caddytester.Tester
	client     *http.Client
	logPath    string
	storageDir string // the file_system storage of the test's config

	// Values the test itself sent as a client (a forged sign, say): the
	// access log may show them, since they are no secret.
	clientSent []string

	// What the sidecar's launch answers held (signs, nonces, login URLs):
	// meant for the SDK or the browser, never for a log.
	launchSecrets []string

	// The config holds the secret literally, so Caddy's own debug dump of
	// it ("adjusted config") does too: the log check skips that line.
	literalSecret bool

	globals string // global options added to the test's own
}

// setup starts a fake WeBank with opts and loads a Caddy config whose site
// is built by site(fakeURL). It registers the cleanup that unloads the
// config, stops the fake and checks the logs for leaked secrets.
func setup(t *testing.T, opts webanktest.Options, site func(fakeURL string) string) *env {
	t.Helper()
	return setupGlobals(t, opts, "", site)
}

// setupGlobals is setup with more global options, such as webank_sign's.
func setupGlobals(t *testing.T, opts webanktest.Options, globals string, site func(fakeURL string) string) *env {
	t.Helper()
	if opts.Apps == nil {
		opts.Apps = map[string]string{appID: secret}
	}
	fake := webanktest.NewServer(opts)
	dir := t.TempDir()
	e := &env{
		t:       t,
		fake:    fake,
		tester:  caddytester.NewTester(t),
		client:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
		logPath: filepath.Join(dir, "caddy.log"),
		globals: globals,
	}
	t.Cleanup(func() {
		loadJSON(t, emptyConfig) // stops the site and the ticket refresher before the fake goes
		fake.Close()
		e.client.CloseIdleConnections()
		e.checkLogs()
	})
	e.load(site(fake.URL), dir)
	return e
}

// load loads a Caddyfile site under the test's global options.
func (e *env) load(site, dir string) {
	e.t.Helper()
	e.storageDir = filepath.Join(dir, "storage")
	e.tester.InitServer(e.caddyfile(site), "caddyfile")
	if e.t.Failed() {
		e.t.FailNow()
	}
}

// caddyfile is site under the test's global options: its admin endpoint
// and storage, and Caddy's debug log going to the test's log file.
func (e *env) caddyfile(site string) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	storage file_system %s
	log {
		output file %s
		level DEBUG
	}
	%s
}
%s`, adminAddr, e.storageDir, e.logPath, e.globals, site)
}

// siteFor is the usual site: webank_sign, fetching tickets from baseURL,
// with extra options, then reverse_proxy to upstream.
func siteFor(baseURL, upstream, extra string) string {
	return fmt.Sprintf(`http://:%d {
	bind 127.0.0.1
	log
	route %s {
		webank_sign {
			app_id %s
			secret {env.%s}
			base_url %s
			%s
		}
		reverse_proxy %s
	}
}
`, sitePort, ocrPath, appID, secretEnv, baseURL, extra, upstream)
}

// signSite is siteFor with the fake as both base_url and upstream.
func signSite(extra string) func(fakeURL string) string {
	return func(fakeURL string) string { return siteFor(fakeURL, fakeURL, extra) }
}

func loadJSON(t *testing.T, cfg string) {
	t.Helper()
	resp, err := http.Post("http://"+adminAddr+"/load", "application/json", strings.NewReader(cfg))
	if err != nil {
		t.Errorf("loading config: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Errorf("loading config: %s: %s", resp.Status, body)
	}
}

// get sends a request to the sidecar and returns the status and body.
func (e *env) do(method, pathAndQuery string) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, siteURL+pathAndQuery, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, pathAndQuery, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, pathAndQuery, err)
	}
	return resp.StatusCode, body, resp.Header
}

func (e *env) get(pathAndQuery string) (int, []byte) {
	status, body, _ := e.do(http.MethodGet, pathAndQuery)
	return status, body
}

// sidecarError is the JSON body of an answer the sidecar gives by itself.
type sidecarError struct {
	Code string `json:"code"`
	Msg  string `json:"msg"`
}

func decodeError(t *testing.T, body []byte) sidecarError {
	t.Helper()
	var se sidecarError
	if err := json.Unmarshal(body, &se); err != nil || se.Code == "" || se.Msg == "" {
		t.Fatalf("body %q is not a JSON {code, msg}", body)
	}
	return se
}

// wantCounts checks the fake's token and ticket call counts.
func (e *env) wantCounts(tokens, tickets int64) {
	e.t.Helper()
	if got := e.fake.TokenCalls(); got != tokens {
		e.t.Errorf("token calls = %d, want %d", got, tokens)
	}
	if got := e.fake.TicketCalls(); got != tickets {
		e.t.Errorf("ticket calls = %d, want %d", got, tickets)
	}
}

// wantCleanSignatures checks that the fake never saw a bad signature.
func (e *env) wantCleanSignatures() {
	e.t.Helper()
	if n := e.fake.BadSignatures(); n != 0 {
		e.t.Errorf("fake saw %d bad signatures", n)
	}
	if n := e.fake.ReusedNonces(); n != 0 {
		e.t.Errorf("fake saw %d reused nonces", n)
	}
}

// checkLogs fails the test if Caddy's log (at debug level, access log
// included) holds the secret, a token or ticket the fake issued, a sign or
// nonce it received, anything shaped like those, or OCR personal data.
func (e *env) checkLogs() {
	t := e.t
	logs, err := os.ReadFile(e.logPath)
	if err != nil {
		t.Errorf("reading caddy log: %v", err)
		return
	}
	if len(logs) == 0 {
		t.Errorf("caddy log is empty: the log check would prove nothing")
	}
	for _, s := range e.clientSent {
		logs = bytes.ReplaceAll(logs, []byte(s), nil)
	}
	if e.literalSecret {
		logs = withoutLines(logs, []byte(`"msg":"adjusted config"`))
	}
	forbidden := leakcheck.Forbidden(secret, e.fake.Fake)
	forbidden = append(forbidden, e.launchSecrets...)
	for _, path := range []string{webanktest.PathOCR, webanktest.PathBankCard, webanktest.PathSync, webanktest.PathFaceRecord} {
		for _, q := range e.fake.Requests(path) {
			forbidden = append(forbidden, personalData(e.fake, path, q)...)
		}
	}
	// What the signed launch and upload APIs received: their signs and
	// nonces, and the person's name, ID number and photo.
	for _, path := range []string{webanktest.PathAdvFaceID, webanktest.PathFaceID, webanktest.PathPlusFaceID, webanktest.PathWillFaceID,
		webanktest.PathH5FaceID, webanktest.PathPhotoInfo, webanktest.PathBankCardOCR, webanktest.PathFaceRecord} {
		for _, q := range e.fake.Requests(path) {
			for _, k := range []string{"sign", "nonce", "name", "idNo", "sourcePhotoStr"} {
				if v := q.Get(k); len(v) > 1 {
					forbidden = append(forbidden, v)
				}
			}
		}
	}
	for _, leak := range leakcheck.Find(logs, forbidden) {
		t.Errorf("caddy log holds %s", leak)
	}
}

func withoutLines(logs, marker []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(logs, []byte("\n")) {
		if !bytes.Contains(line, marker) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// personalData returns the fields of the result WeBank gave a request to
// path that identify a person: they may never be logged.
func personalData(fake *webanktest.Server, path string, q url.Values) []string {
	app, orderNo := q.Get("app_id"), q.Get("order_no")
	if path == webanktest.PathFaceRecord {
		app, orderNo = q.Get("appId"), q.Get("orderNo")
	}
	if orderNo == "" {
		return nil
	}
	var answer []byte
	switch path {
	case webanktest.PathOCR:
		answer = fake.OCRResultBody(app, orderNo, false, false)
	case webanktest.PathBankCard:
		answer = fake.BankCardResultBody(app, orderNo, false)
	default: // a face result: the person verified is in sync's answer
		answer = fake.SyncResultBody(app, orderNo, false, false)
	}
	var body struct {
		Result map[string]any `json:"result"`
	}
	if json.Unmarshal(answer, &body) != nil {
		return nil
	}
	var out []string
	for _, k := range []string{"name", "idcard", "idNo", "address", "bankCardNo"} {
		if s, ok := body.Result[k].(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}
