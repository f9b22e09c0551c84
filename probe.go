package webanksign

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"maps"
	"net/http"
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
// to. It holds back the status, the headers and up to maxProbe bytes of body.
// If the answer ends within that, the handler reads WeBank's code from it and
// either discards it (to retry with a new ticket) or sends it; a longer answer
// is sent as soon as it outgrows the buffer and streams from there. Nothing
// is ever buffered whole. It is not safe for concurrent use, as no
// ResponseWriter is.
type retryProbe struct {
	w         http.ResponseWriter
	header    http.Header // the next handler's view of the headers until committed
	status    int
	buf       []byte
	committed bool
}

// newRetryProbe returns a probe in front of w. The next handler starts from
// a copy of w's headers, as it would writing to w; w's own are untouched
// until the answer is committed, so a discarded attempt leaves no trace.
func newRetryProbe(w http.ResponseWriter) *retryProbe {
	return &retryProbe{w: w, header: w.Header().Clone()}
}

func (p *retryProbe) Header() http.Header {
	if p.committed {
		return p.w.Header()
	}
	return p.header
}

func (p *retryProbe) WriteHeader(status int) {
	if p.committed || p.status != 0 {
		return
	}
	if status < 200 { // informational (103 Early Hints): not the answer, pass it on
		base := p.w.Header().Clone() // w's headers are untouched until the commit
		setHeader(p.w.Header(), p.header)
		p.w.WriteHeader(status)
		setHeader(p.w.Header(), base)
		return
	}
	p.status = status
}

// setHeader makes dst a copy of src.
func setHeader(dst, src http.Header) {
	clear(dst)
	maps.Copy(dst, src.Clone())
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
func (p *retryProbe) Unwrap() http.ResponseWriter { return p.w }

// commit sends what was held back; from then on writes go straight through.
func (p *retryProbe) commit() error {
	if p.committed {
		return nil
	}
	p.committed = true
	dst := p.w.Header()
	clear(dst)
	maps.Copy(dst, p.header) // no copy of p.header needed: it is not used again
	if p.status == 0 {
		p.status = http.StatusOK
	}
	p.w.WriteHeader(p.status)
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.w.Write(p.buf)
	p.buf = nil
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
// code (see mayHoldCode) is not decoded.
func (p *retryProbe) retryCode(codes map[string]bool) string {
	body, ok := p.body()
	if !ok {
		return ""
	}
	may := false
	for c := range codes {
		if may = mayHoldCode(body, c); may {
			break
		}
	}
	if !may {
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
	switch enc := strings.ToLower(p.header.Get("Content-Encoding")); enc {
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

// mayHoldCode reports whether the JSON text body may hold code as the value
// of a member. It is false only if it cannot: where body has no backslash
// escape, a string value equal to an ASCII code appears as "code" in it, and
// a number value as code after a ':' and perhaps whitespace.
func mayHoldCode(body []byte, code string) bool {
	for i := 0; i < len(code); i++ {
		if code[i] >= utf8.RuneSelf { // JSON decoding turns invalid UTF-8 into U+FFFD
			return true
		}
	}
	if code == "" || bytes.IndexByte(body, '\\') >= 0 {
		return true
	}
	for at := 0; ; {
		i := bytes.Index(body[at:], []byte(code))
		if i < 0 {
			return false
		}
		i += at
		end := i + len(code)
		if i > 0 && body[i-1] == '"' && end < len(body) && body[end] == '"' {
			return true
		}
		if before := bytes.TrimRight(body[:i], " \t\r\n"); len(before) > 0 && before[len(before)-1] == ':' {
			return true
		}
		at = i + 1
	}
}

// probeAcceptEncoding narrows a client's Accept-Encoding to what the probe
// can read: gzip if the client accepts it, else none (identity).
func probeAcceptEncoding(ae string) string {
	for _, part := range strings.Split(ae, ",") {
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
