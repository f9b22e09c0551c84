// Package leakcheck finds secrets in logs, for the integration tests: the
// app secret, every token and ticket the fake WeBank issued, every sign and
// nonce it received, and anything shaped like a sign or a token.
package leakcheck

import (
	"bytes"
	"fmt"
	"regexp"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

var (
	signShape  = regexp.MustCompile(`\b[0-9A-Fa-f]{40}\b`) // a sign: 40 hex
	tokenShape = regexp.MustCompile(`\b[A-Za-z0-9]{64}\b`) // the fake's tokens and tickets
)

// Forbidden returns the values that must never be logged: secret, and what
// fake issued and received.
func Forbidden(secret string, fake *webanktest.Fake) []string {
	out := append([]string{secret}, fake.IssuedValues()...)
	for _, q := range fake.OCRQueries() {
		out = append(out, q.Get("sign"), q.Get("nonce"))
	}
	return out
}

// Find returns a description of each leak in logs: a forbidden value, or a
// value shaped like a sign or a token. Descriptions never repeat the value.
func Find(logs []byte, forbidden []string) []string {
	var leaks []string
	for _, s := range forbidden {
		if s != "" && bytes.Contains(logs, []byte(s)) {
			leaks = append(leaks, fmt.Sprintf("a secret or personal value (%d chars)", len(s)))
		}
	}
	if m := signShape.Find(logs); m != nil {
		leaks = append(leaks, fmt.Sprintf("a sign-shaped value %.8s…", m))
	}
	if m := tokenShape.Find(logs); m != nil {
		leaks = append(leaks, fmt.Sprintf("a token-shaped value %.8s…", m))
	}
	return leaks
}
