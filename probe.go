package webanksign

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// maxProbe is how much of an upstream answer is held back to read WeBank's
// code. Its token and ticket errors are a few dozen bytes; an answer longer
// than this is not one of them and is streamed from then on.
const maxProbe = 4 << 10

// retryProbe is the ResponseWriter the next handler writes the first attempt
// to. It holds back the status and up to maxProbe bytes of body; the headers
// go straight into w's, as they would without it, and the ones w had before
// are saved, so that a discarded attempt leaves no trace. If the answer ends
// within maxProbe, the handler reads WeBank's code from it and either
// discards it (to retry with a new ticket) or sends it; a longer answer is
// sent as soon as it outgrows the buffer and streams from there. Nothing is
// ever buffered whole. It is not safe for concurrent use, as no
// ResponseWriter is.
//
// Probes are reused (see release): the common answer, held back and sent,
// allocates nothing here.
type retryProbe struct {
	w         http.ResponseWriter
	saved     http.Header // w's headers before the attempt, put back by discard
	savedVals []string    // the backing of saved's values
	status    int
	buf       []byte // the answer held back, in a buffer of maxProbe bytes
	committed bool
	escaped   bool // Unwrap was called: what it was given may outlive the request
}

// probes keeps retry probes with their buffers for reuse.
var probes = sync.Pool{New: func() any {
	return &retryProbe{saved: make(http.Header), buf: make([]byte, 0, maxProbe)}
}}

// newRetryProbe returns a probe in front of w, which its caller gives back
// with release once the next handler has returned.
func newRetryProbe(w http.ResponseWriter) *retryProbe {
	p := probes.Get().(*retryProbe)
	p.w = w
	for k, vs := range w.Header() {
		if vs == nil { // a nil value suppresses a header net/http would add
			p.saved[k] = nil
			continue
		}
		n := len(p.savedVals)
		p.savedVals = append(p.savedVals, vs...)
		p.saved[k] = p.savedVals[n:len(p.savedVals):len(p.savedVals)]
	}
	return p
}

// release gives p back for reuse. Its caller must not use p again, nor must
// anything else: a probe that was unwrapped (to hijack the connection, say)
// is not reused, since what took w may keep it.
func (p *retryProbe) release() {
	if p.escaped {
		return
	}
	clear(p.saved)
	clear(p.savedVals) // keep no header values alive
	*p = retryProbe{saved: p.saved, savedVals: p.savedVals[:0], buf: p.buf[:0]}
	probes.Put(p)
}

// discard drops the attempt held back: w's headers are again what they were
// before it, and nothing of it is sent.
func (p *retryProbe) discard() {
	if p.committed {
		return
	}
	h := p.w.Header()
	clear(h)
	for k, vs := range p.saved {
		h[k] = slices.Clone(vs) // saved's values are reused after release
	}
	p.status, p.buf = 0, p.buf[:0]
}

func (p *retryProbe) Header() http.Header { return p.w.Header() }

func (p *retryProbe) WriteHeader(status int) {
	switch {
	case p.committed || p.status != 0:
	case status < 200: // informational (103 Early Hints): not the answer, pass it on
		p.w.WriteHeader(status)
	default:
		p.status = status
	}
}

func (p *retryProbe) Write(b []byte) (int, error) {
	if p.committed {
		return p.w.Write(b)
	}
	if p.status == 0 {
		p.status = http.StatusOK
	}
	if len(p.buf)+len(b) <= maxProbe {
		p.buf = append(p.buf, b...)
		return len(b), nil
	}
	if err := p.commit(); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// Flush flushes a committed answer; before that there is nothing to flush.
func (p *retryProbe) Flush() {
	if p.committed {
		_ = http.NewResponseController(p.w).Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (p *retryProbe) Unwrap() http.ResponseWriter {
	p.escaped = true
	return p.w
}

// commit sends what was held back; from then on writes go straight through.
func (p *retryProbe) commit() error {
	if p.committed {
		return nil
	}
	p.committed = true
	if p.status == 0 {
		p.status = http.StatusOK
	}
	p.w.WriteHeader(p.status)
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.w.Write(p.buf)
	p.buf = p.buf[:0]
	return err
}

// code returns WeBank's code from a complete answer that is still held back,
// and "" if there is none: the answer was committed, is not JSON, or is
// encoded in a way other than gzip.
func (p *retryProbe) code() string {
	body, ok := p.body()
	if !ok {
		return ""
	}
	return codeOf(body)
}

// retryCode returns WeBank's code from a complete answer that is still held
// back if it is one of codes, and "" otherwise, as codes[p.code()] would
// tell. Decoding the JSON costs more than signing the request, and nearly
// every answer is not a retry, so an answer in which no code can be WeBank's
// code (see mayHoldAny) is not decoded.
func (p *retryProbe) retryCode(codes map[string]bool) string {
	body, ok := p.body()
	if !ok {
		return ""
	}
	if !mayHoldAny(body, codes) {
		return ""
	}
	if code := codeOf(body); codes[code] {
		return code
	}
	return ""
}

// body returns the complete answer that is still held back, decompressed,
// and false if there is none: the answer was committed, or is encoded in a
// way other than gzip.
func (p *retryProbe) body() ([]byte, bool) {
	if p.committed || len(p.buf) == 0 {
		return nil, false
	}
	body := p.buf
	switch enc := strings.ToLower(p.w.Header().Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(body))
		} else {
			err = zr.Reset(bytes.NewReader(body))
		}
		if err != nil {
			return nil, false
		}
		defer gzipReaders.Put(zr)
		body, err = io.ReadAll(io.LimitReader(zr, maxProbe+1))
		if err != nil || len(body) > maxProbe {
			return nil, false
		}
	default:
		return nil, false
	}
	return body, true
}

// gzipReaders keeps decompressors for reading gzipped answers: making one
// allocates tens of kilobytes.
var gzipReaders sync.Pool

// codeOf returns WeBank's code from the JSON answer body, and "" if it has
// none.
func codeOf(body []byte) string {
	var v struct {
		Code json.RawMessage `json:"code"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	code, _ := jsonScalar(v.Code)
	return code
}

// mayHoldAny reports whether the JSON text body may hold one of codes as
// WeBank's code, as codeOf reads it: it is false only if it cannot. Where
// body has no backslash escape, a member named code is spelled in it as
// "code" in four ASCII bytes, in any case: encoding/json matches names
// regardless of case, and no other character folds to c, o, d or e. Its
// value then holds an ASCII code only if it is a string spelled as the
// code, or a number that starts as the code does (see valueMayHold).
// Members named code at any depth are read, which only errs towards
// decoding.
func mayHoldAny(body []byte, codes map[string]bool) bool {
	if codes[""] || bytes.IndexByte(body, '\\') >= 0 { // an escape could spell a name or a code
		return true
	}
	return codeMembersMayHold(body, 'd', codes) || codeMembersMayHold(body, 'D', codes)
}

// codeMembersMayHold reports whether a member named code, spelled with d as
// its third letter, may hold one of codes (see mayHoldAny). Finding the d
// first is fast: it is a rare byte in WeBank's answers.
func codeMembersMayHold(body []byte, d byte, codes map[string]bool) bool {
	for at := 0; ; {
		j := bytes.IndexByte(body[at:], d)
		if j < 0 {
			return false
		}
		j += at
		at = j + 1
		i := j - 3 // where the name's opening quote would be
		if i < 0 || j+2 >= len(body) || body[i] != '"' || body[j+2] != '"' ||
			body[i+1]|0x20 != 'c' || body[i+2]|0x20 != 'o' || body[j+1]|0x20 != 'e' {
			continue
		}
		if valueMayHold(body[j+3:], codes) {
			return true
		}
	}
}

// valueMayHold reports whether rest, what follows a member's name, is its
// value and may be one of codes: a string spelled as one, or a number that
// starts as one does; or any value, if a code is not ASCII.
func valueMayHold(rest []byte, codes map[string]bool) bool {
	rest = trimJSONSpace(rest)
	if len(rest) == 0 || rest[0] != ':' {
		return false // not a member's name
	}
	rest = trimJSONSpace(rest[1:])
	for c := range codes {
		for i := 0; i < len(c); i++ {
			if c[i] >= utf8.RuneSelf { // JSON decoding turns invalid UTF-8 into U+FFFD
				return true
			}
		}
	}
	if len(rest) > 0 && rest[0] == '"' {
		end := bytes.IndexByte(rest[1:], '"')
		return end >= 0 && codes[string(rest[1:1+end])]
	}
	for c := range codes {
		if bytes.HasPrefix(rest, []byte(c)) {
			return true
		}
	}
	return false
}

// trimJSONSpace returns b without the JSON whitespace it starts with.
func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

// probeAcceptEncoding narrows a client's Accept-Encoding to what the probe
// can read: gzip if the client accepts it, else none (identity).
func probeAcceptEncoding(ae string) string {
	for rest := ae; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := 1.0
		if _, v, ok := strings.Cut(strings.ReplaceAll(params, " ", ""), "q="); ok {
			q, _ = strconv.ParseFloat(v, 64)
		}
		if q > 0 {
			return "gzip"
		}
	}
	return "identity"
}

var _ http.Flusher = (*retryProbe)(nil)
