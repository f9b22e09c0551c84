package main

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// caller makes one call for id (an order number, or for sdk_sign a user
// id), reads the whole answer and checks it, so that a refused call is
// never counted as a fast one.
type caller func(ctx context.Context, id string) error

// newConnClient returns an HTTP client that opens a new connection for
// every request and closes it after, as PHP's curl with a fresh handle,
// Python's requests without a Session, or a shell script's curl do. Its TLS
// sessions are never resumed: such clients keep no session cache either.
func newConnClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots},
	}}
}

// newPoolClient returns an HTTP client with a connection pool that never
// closes a connection it could reuse: the best an app can do by itself.
func newPoolClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        0, // no limit
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     0, // never
		TLSClientConfig:     &tls.Config{RootCAs: roots},
	}}
}

// directCaller returns a caller that signs each request itself, as an app
// holding the secret does, and sends it over HTTPS to baseURL (the relay).
func directCaller(client *http.Client, baseURL string, s signer) caller {
	return func(ctx context.Context, order string) error {
		return get(ctx, client, baseURL+"/api/server/getOcrResult?"+s.query(order))
	}
}

// sidecarCaller returns a caller that sends the unsigned request to the
// sidecar at baseURL, as a legacy app behind it does.
func sidecarCaller(client *http.Client, baseURL string) caller {
	return func(ctx context.Context, order string) error {
		return get(ctx, client, baseURL+"/api/server/getOcrResult?order_no="+order)
	}
}

// sdkSignCaller returns a caller that asks the sidecar at baseURL to sign an
// SDK launch for a user, as an app's backend does before a face
// verification: one NONCE ticket fetched from WeBank per call.
func sdkSignCaller(client *http.Client, baseURL string) caller {
	return func(ctx context.Context, user string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/webank/sdk_sign",
			strings.NewReader(`{"user_id":"`+user+`"}`))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var answer struct {
			Sign string `json:"sign"`
			Code string `json:"code"` // only in a refusal
		}
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
			return fmt.Errorf("sdk_sign: HTTP status %d, answer is not JSON", resp.StatusCode)
		}
		if resp.StatusCode != http.StatusOK || len(answer.Sign) != 40 {
			return fmt.Errorf("sdk_sign: HTTP status %d, code %q", resp.StatusCode, answer.Code)
		}
		return nil
	}
}

// get sends a GET for u with client, and checks the answer.
func get(ctx context.Context, client *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	return checkCode(body)
}

// checkCode returns an error unless body is a WeBank answer with code "0".
// The error never holds the body, which is personal data.
func checkCode(body []byte) error {
	var answer struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return fmt.Errorf("answer is not JSON")
	}
	if answer.Code != "0" {
		return fmt.Errorf("WeBank answered code %q", answer.Code)
	}
	return nil
}

// signerVersion is the version every signed request carries.
const signerVersion = "1.0.0"

// signer signs getOcrResult queries for one app with its SIGN ticket, as an
// app that talks to WeBank by itself must.
type signer struct {
	appID  string
	ticket string // never printed
}

// query returns the signed query string for order: app_id, order_no, a
// fresh nonce, version, and the sign (docs/protocol.md §4).
func (s signer) query(order string) string {
	nonce := newNonce()
	values := []string{s.appID, order, signerVersion, s.ticket, nonce}
	slices.Sort(values)
	sum := sha1.Sum([]byte(strings.Join(values, "")))
	return url.Values{
		"app_id":   {s.appID},
		"order_no": {order},
		"nonce":    {nonce},
		"version":  {signerVersion},
		"sign":     {strings.ToUpper(hex.EncodeToString(sum[:]))},
	}.Encode()
}

// newNonce returns 32 random characters of [A-Za-z0-9].
func newNonce() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [32]byte
	for i := range b {
		b[i] = alphabet[randIntN(len(alphabet))]
	}
	return string(b[:])
}

// randIntN returns a uniform random int in [0, n) from crypto/rand.
func randIntN(n int) int {
	var b [1]byte
	for {
		_, _ = rand.Read(b[:]) // never fails (crypto/rand's contract)
		if v := int(b[0]); v < 256-256%n {
			return v % n
		}
	}
}

// fetchSigner fetches an access token and a SIGN ticket for the app from
// the fake's oauth endpoints at oauthURL, once, as a signing app does at
// start.
func fetchSigner(ctx context.Context, oauthURL, appID, secret string) (signer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var token struct {
		Code        string `json:"code"`
		AccessToken string `json:"access_token"`
	}
	err := getJSON(ctx, oauthURL+"/api/oauth2/access_token?"+url.Values{
		"app_id": {appID}, "secret": {secret}, "grant_type": {"client_credential"}, "version": {signerVersion},
	}.Encode(), &token)
	if err != nil || token.Code != "0" {
		return signer{}, fmt.Errorf("access_token: code %q, %v", token.Code, err)
	}
	var ticket struct {
		Code    string `json:"code"`
		Tickets []struct {
			Value string `json:"value"`
		} `json:"tickets"`
	}
	err = getJSON(ctx, oauthURL+"/api/oauth2/api_ticket?"+url.Values{
		"app_id": {appID}, "access_token": {token.AccessToken}, "type": {"SIGN"}, "version": {signerVersion},
	}.Encode(), &ticket)
	if err != nil || ticket.Code != "0" || len(ticket.Tickets) != 1 {
		return signer{}, fmt.Errorf("api_ticket: code %q, %v", ticket.Code, err)
	}
	return signer{appID: appID, ticket: ticket.Tickets[0].Value}, nil
}

// getJSON decodes the answer to a GET for u into v. Errors never hold u,
// which carries the secret or the token.
func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("bad request")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("request failed")
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
