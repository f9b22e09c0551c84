package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

const (
	testAppID   = "IDAUNIT1"
	testSecret  = "unit-secret"
	testRefresh = 20 * time.Minute // WeBank's advice, and the plugin's default
)

// testClock is the fake WeBank's clock, shared with the cache under test.
type testClock = webanktest.Clock

func newTestClock() *testClock {
	return webanktest.NewClock(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
}

// testFetcher is a plain Fetcher for the cache's tests, speaking to the
// fake WeBank (webanktest) over HTTP. The plugin's own Fetcher, with its
// caps, redaction and error classes, is tested in the root package and end
// to end in caddytest; here only the classes the tests look at are told
// apart.
type testFetcher struct {
	client http.Client
	gate   chan struct{} // if set, token fetches wait for it to close

	// If set, the first token fetch for heldApp announces itself on entered
	// and then returns the error sent on outcome, or fetches if it is nil.
	heldApp string
	entered chan struct{}
	outcome chan error
	held    atomic.Bool

	// If nonceGate is set, each NONCE fetch announces itself on
	// nonceEntered and then waits for nonceGate to close.
	nonceGate    chan struct{}
	nonceEntered chan struct{}
}

func (f *testFetcher) Token(ctx context.Context, c Credentials) (string, time.Duration, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return "", 0, ctx.Err()
		}
	}
	if f.heldApp != "" && c.AppID == f.heldApp && !f.held.Swap(true) {
		f.entered <- struct{}{}
		if err := <-f.outcome; err != nil {
			return "", 0, err
		}
	}
	var a struct {
		Code        string          `json:"code"`
		AccessToken string          `json:"access_token"`
		ExpireIn    json.RawMessage `json:"expire_in"`
	}
	err := f.get(ctx, "access token", c.BaseURL+"/api/oauth2/access_token", url.Values{
		"app_id": {c.AppID}, "secret": {c.Secret}, "grant_type": {"client_credential"}, "version": {"1.0.0"},
	}, &a, &a.Code)
	if err != nil {
		return "", 0, err
	}
	return a.AccessToken, seconds(a.ExpireIn), nil
}

func (f *testFetcher) Ticket(ctx context.Context, c Credentials, token string) (string, time.Duration, error) {
	var a struct {
		Code    string `json:"code"`
		Tickets []struct {
			Value    string          `json:"value"`
			ExpireIn json.RawMessage `json:"expire_in"`
		} `json:"tickets"`
	}
	err := f.get(ctx, "SIGN ticket", c.BaseURL+"/api/oauth2/api_ticket", url.Values{
		"app_id": {c.AppID}, "access_token": {token}, "type": {"SIGN"}, "version": {"1.0.0"},
	}, &a, &a.Code)
	if err != nil {
		return "", 0, err
	}
	if len(a.Tickets) == 0 {
		return "", 0, &FetchError{Step: "SIGN ticket", Class: "malformed", Msg: "no tickets"}
	}
	return a.Tickets[0].Value, seconds(a.Tickets[0].ExpireIn), nil
}

func (f *testFetcher) Nonce(ctx context.Context, c Credentials, token, userID string) (string, time.Duration, error) {
	if f.nonceGate != nil {
		f.nonceEntered <- struct{}{}
		select {
		case <-f.nonceGate:
		case <-ctx.Done():
			return "", 0, ctx.Err()
		}
	}
	var a struct {
		Code    string `json:"code"`
		Tickets []struct {
			Value    string          `json:"value"`
			ExpireIn json.RawMessage `json:"expire_in"`
		} `json:"tickets"`
	}
	err := f.get(ctx, "NONCE ticket", c.BaseURL+"/api/oauth2/api_ticket", url.Values{
		"app_id": {c.AppID}, "access_token": {token}, "type": {"NONCE"}, "version": {"1.0.0"}, "user_id": {userID},
	}, &a, &a.Code)
	if err != nil {
		return "", 0, err
	}
	if len(a.Tickets) == 0 {
		return "", 0, &FetchError{Step: "NONCE ticket", Class: "malformed", Msg: "no tickets"}
	}
	return a.Tickets[0].Value, seconds(a.Tickets[0].ExpireIn), nil
}

func (f *testFetcher) get(ctx context.Context, step, endpoint string, q url.Values, answer any, code *string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &FetchError{Step: step, Class: "timeout", Msg: "no answer in time"}
		}
		return &FetchError{Step: step, Class: "transport", Msg: "request failed"}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &FetchError{Step: step, Class: "http_status", Msg: "HTTP " + strconv.Itoa(resp.StatusCode)}
	}
	if err := json.NewDecoder(resp.Body).Decode(answer); err != nil {
		return &FetchError{Step: step, Class: "malformed", Msg: "not JSON"}
	}
	if *code != "0" {
		return &FetchError{Step: step, Class: "code", Code: *code, Msg: fmt.Sprintf("code %q", *code)}
	}
	return nil
}

// seconds reads expire_in, a number or a string of seconds.
func seconds(raw json.RawMessage) time.Duration {
	var s json.Number
	if err := json.Unmarshal(raw, &s); err != nil {
		var str string
		_ = json.Unmarshal(raw, &str)
		s = json.Number(str)
	}
	n, _ := s.Float64()
	return time.Duration(n * float64(time.Second))
}

// wantCalls checks how many token and ticket calls fake has answered.
func wantCalls(t *testing.T, fake *webanktest.Server, tokens, tickets int64) {
	t.Helper()
	if got := fake.TokenCalls(); got != tokens {
		t.Errorf("token calls = %d, want %d", got, tokens)
	}
	if got := fake.TicketCalls(); got != tickets {
		t.Errorf("ticket calls = %d, want %d", got, tickets)
	}
}

// newTestCache returns a cache of size apps, fetching from the fake WeBank,
// on clock (nil: real time), closed when t ends. With a clock, backoffs are
// at their upper bound and the background refresher is off: tests call
// dueKeys, refreshScheduled and pollStored themselves.
func newTestCache(t testing.TB, size int, clock *testClock) *Cache {
	c := New(size, new(testFetcher))
	if clock != nil {
		c.now = clock.Now
		c.jitter = func(d time.Duration) time.Duration { return d }
		c.autoRefresh = false
	}
	t.Cleanup(c.Close)
	return c
}

// holdFetchUntil makes c's token fetches wait until n callers have joined
// one flight: a stampede test then proves that they met, not merely that
// their timing overlapped. Set it before any caller starts.
func holdFetchUntil(c *Cache, n int32) {
	gate := make(chan struct{})
	c.fetcher.(*testFetcher).gate = gate
	var joined atomic.Int32
	c.joined = func() {
		if joined.Add(1) == n {
			close(gate)
		}
	}
}
