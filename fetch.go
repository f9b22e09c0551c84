package webanksign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/webanksign/caddy-webanksign/internal/tickets"
)

// This file is the ticket cache's Fetcher: it fetches access tokens, SIGN
// tickets and NONCE tickets from WeBank's oauth2 endpoints (docs/protocol.md
// §2 to §4) and parses the answers. Its errors are written for operators:
// they say which step failed and how, and never carry the secret, the token
// or the ticket (nor the token URL, whose query holds them). Clients are
// told only the step and the class (noTicketReason, noNonceReason), never
// the text.

const (
	oauthVersion = "1.0.0" // the version the oauth2 endpoints expect

	maxOAuthBody = 64 << 10 // token and ticket answers are a few hundred bytes
)

// fetchErr returns a *tickets.FetchError: its text must hold no secret.
func fetchErr(step, class, msg string) error {
	return &tickets.FetchError{Step: step, Class: class, Msg: msg}
}

// oauthClient fetches tokens and tickets over HTTP: the tickets.Fetcher of
// the process's ticket cache. Its errors are *tickets.FetchError.
type oauthClient struct{ client *http.Client }

// Token implements tickets.Fetcher.
func (o oauthClient) Token(ctx context.Context, c tickets.Credentials) (string, time.Duration, error) {
	return fetchToken(ctx, o.client, c)
}

// Ticket implements tickets.Fetcher.
func (o oauthClient) Ticket(ctx context.Context, c tickets.Credentials, token string) (string, time.Duration, error) {
	return fetchSignTicket(ctx, o.client, c, token)
}

// Nonce implements tickets.Fetcher.
func (o oauthClient) Nonce(ctx context.Context, c tickets.Credentials, token, userID string) (string, time.Duration, error) {
	body, err := getBody(ctx, o.client, nonceStep, c.BaseURL+"/api/oauth2/api_ticket", url.Values{
		"app_id":       {c.AppID},
		"access_token": {token},
		"type":         {"NONCE"},
		"version":      {oauthVersion},
		"user_id":      {userID},
	})
	if err != nil {
		return "", 0, err
	}
	// WeBank's msg is withheld if it echoes the user: the error is logged.
	return parseTicketAnswer(nonceStep, body, c.Secret, token, userID)
}

// CloseIdleConnections closes the client's idle connections, when the
// cache is closed.
func (o oauthClient) CloseIdleConnections() { o.client.CloseIdleConnections() }

// fetchToken gets a new access token and its life. WeBank invalidates the
// app's previous token, and every ticket made from it, about a minute later.
func fetchToken(ctx context.Context, client *http.Client, c tickets.Credentials) (string, time.Duration, error) {
	body, err := getBody(ctx, client, tokenStep, c.BaseURL+"/api/oauth2/access_token", url.Values{
		"app_id":     {c.AppID},
		"secret":     {c.Secret},
		"grant_type": {"client_credential"},
		"version":    {oauthVersion},
	})
	if err != nil {
		return "", 0, err
	}
	return parseTokenAnswer(body, c.Secret)
}

// fetchSignTicket gets a SIGN ticket made with token, and its life.
func fetchSignTicket(ctx context.Context, client *http.Client, c tickets.Credentials, token string) (string, time.Duration, error) {
	body, err := getBody(ctx, client, ticketStep, c.BaseURL+"/api/oauth2/api_ticket", url.Values{
		"app_id":       {c.AppID},
		"access_token": {token},
		"type":         {"SIGN"},
		"version":      {oauthVersion},
	})
	if err != nil {
		return "", 0, err
	}
	return parseTicketAnswer(ticketStep, body, c.Secret, token)
}

const (
	tokenStep  = "access token"
	ticketStep = "SIGN ticket"
	nonceStep  = "NONCE ticket"
)

// parseTokenAnswer reads the access_token endpoint's answer: the token and
// its life, or a *tickets.FetchError that holds neither secret nor token.
func parseTokenAnswer(body []byte, secret string) (string, time.Duration, error) {
	var tok struct {
		Code        json.RawMessage `json:"code"`
		Msg         string          `json:"msg"`
		AccessToken string          `json:"access_token"`
		ExpireIn    json.RawMessage `json:"expire_in"`
	}
	if err := decodeObject(tokenStep, body, &tok); err != nil {
		return "", 0, err
	}
	if err := checkCode(tokenStep, tok.Code, tok.Msg, secret); err != nil {
		return "", 0, err
	}
	if tok.AccessToken == "" {
		return "", 0, fetchErr(tokenStep, "malformed", "answer has no access_token")
	}
	life, err := parseExpireIn(tokenStep, tok.ExpireIn, tickets.MaxTokenLife)
	if err != nil {
		return "", 0, err
	}
	return tok.AccessToken, life, nil
}

// parseTicketAnswer reads the api_ticket endpoint's answer for step (a
// SIGN or a NONCE ticket): the first ticket and its life, or a
// *tickets.FetchError that holds no secret. WeBank's msg is withheld if it
// holds one of withheld (the secret, the token, a NONCE fetch's user_id).
func parseTicketAnswer(step string, body []byte, withheld ...string) (string, time.Duration, error) {
	var tkt struct {
		Code    json.RawMessage `json:"code"`
		Msg     string          `json:"msg"`
		Tickets []struct {
			Value    string          `json:"value"`
			ExpireIn json.RawMessage `json:"expire_in"`
		} `json:"tickets"`
	}
	if err := decodeObject(step, body, &tkt); err != nil {
		return "", 0, err
	}
	if err := checkCode(step, tkt.Code, tkt.Msg, withheld...); err != nil {
		return "", 0, err
	}
	if len(tkt.Tickets) == 0 || tkt.Tickets[0].Value == "" {
		return "", 0, fetchErr(step, "malformed", "answer has no tickets[0].value")
	}
	life, err := parseExpireIn(step, tkt.Tickets[0].ExpireIn, tickets.MaxTicketLife)
	if err != nil {
		return "", 0, err
	}
	return tkt.Tickets[0].Value, life, nil
}

func decodeObject(step string, body []byte, v any) error {
	if json.Unmarshal(body, v) != nil {
		return fetchErr(step, "malformed", "answer is not a JSON object")
	}
	return nil
}

// getBody GETs endpoint?query and returns the body of a 200 answer, at
// most maxOAuthBody bytes of it.
func getBody(ctx context.Context, client *http.Client, step, endpoint string, query url.Values) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?"+query.Encode(), nil)
	if err != nil {
		return nil, fetchErr(step, "transport", "building request: "+redactURLError(err).Error())
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fetchErr(step, "timeout", "no answer in time")
		}
		return nil, fetchErr(step, "transport", redactURLError(err).Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fetchErr(step, "http_status", "endpoint answered HTTP "+strconv.Itoa(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOAuthBody+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fetchErr(step, "timeout", "answer not complete in time")
		}
		return nil, fetchErr(step, "transport", "reading answer: "+redactURLError(err).Error())
	}
	if len(body) > maxOAuthBody {
		return nil, fetchErr(step, "malformed", "answer larger than 64 KiB")
	}
	return body, nil
}

// checkCode accepts code "0" (or 0) and turns anything else into an error that
// quotes WeBank's code and msg, unless the msg echoes one of the secrets.
func checkCode(step string, raw json.RawMessage, msg string, secrets ...string) error {
	code, ok := jsonScalar(raw)
	if !ok {
		return fetchErr(step, "malformed", "answer has no code")
	}
	if code == "0" {
		return nil
	}
	echoes := func(v string) bool {
		for _, s := range secrets {
			if s != "" && strings.Contains(v, s) {
				return true
			}
		}
		return false
	}
	if !isCode(code) || echoes(code) { // quoted in errors, logs and launch answers: only a code is
		return fetchErr(step, "malformed", "answer's code is not a code (1 to 16 of [A-Za-z0-9_.-])")
	}
	if echoes(msg) {
		msg = "(message withheld)"
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return &tickets.FetchError{Step: step, Class: "code", Code: code,
		Msg: fmt.Sprintf("endpoint answered code %q: %s", code, strings.ToValidUTF8(msg, ""))}
}

// isCode reports whether code reads as one of WeBank's codes ("15",
// "400101", "-1304", "66660004"): 1 to 16 of [A-Za-z0-9_.-], too short to
// be a secret, a token or a ticket.
func isCode(code string) bool {
	if len(code) == 0 || len(code) > 16 {
		return false
	}
	for i := range len(code) {
		c := code[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// parseExpireIn reads expire_in, which WeBank sends as a number or a string of
// seconds. Missing means the documented maximum; zero, negative or non-numeric
// is an error, larger than max is capped.
func parseExpireIn(step string, raw json.RawMessage, max time.Duration) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return max, nil
	}
	s, ok := jsonScalar(raw)
	if !ok {
		return 0, fetchErr(step, "malformed", "expire_in is not a number")
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs != secs { // NaN
		return 0, fetchErr(step, "malformed", "expire_in is not a number")
	}
	if secs < 1 {
		return 0, fetchErr(step, "malformed", "expire_in is not positive")
	}
	if secs >= max.Seconds() {
		return max, nil
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// jsonScalar returns a JSON string's content or a JSON number's text.
func jsonScalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return "", false
	}
	return n.String(), true
}

// redactURLError drops the query from a *url.Error, whose text otherwise
// holds the whole request URL: secret or access_token included.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, _, _ := strings.Cut(ue.URL, "?")
		return &url.Error{Op: ue.Op, URL: u, Err: ue.Err}
	}
	return err
}

// newOAuthClient returns the client used for the oauth2 endpoints. It never
// follows redirects: a redirect is reported, not chased with the secret.
func newOAuthClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Token and SIGN ticket fetches are rare, but a burst of launches
	// fetches as many NONCE tickets at once as its app's nonce_limit
	// allows: keep every connection a burst opened, so that the next
	// burst pays no new TLS handshakes. The in-flight bounds (nonce_limit
	// per app, one token fetch per app) bound what is kept, and what stays
	// unused is closed after IdleConnTimeout (90s).
	tr.MaxIdleConns = 0 // no limit
	tr.MaxIdleConnsPerHost = math.MaxInt
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
