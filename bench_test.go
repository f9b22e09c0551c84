package webanksign

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// Benchmarks of the per-request work. They measure and assert nothing about
// time; run them with
//
//	go test -run '^$' -bench . -benchmem
//
// bench/ holds the load benchmark of a whole sidecar against plain Caddy.

const (
	benchVersion = "1.0.0"
	benchTicket  = "FxlAe3HFtEy73Um0pJNzIUriwtfnS3KRcPXiesd5ulS4XRAIcT0FbfaP52dwZf5S"
	benchQuery   = "order_no=ORD20261126001&get_file=1"
)

var sinkString string

func BenchmarkSign(b *testing.B) {
	b.ReportAllocs()
	const nonce = "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T"
	for b.Loop() {
		sinkString = sign(testAppID, "ORD20261126001", benchVersion, benchTicket, nonce)
	}
}

func BenchmarkNewNonce(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkString = newNonce()
	}
}

// BenchmarkQueryRewrite is what a request costs the signer: checking the
// client's query, a nonce, the sign and the signed query.
func BenchmarkQueryRewrite(b *testing.B) {
	for _, bc := range []struct{ name, raw string }{
		{"typical", benchQuery},
		{"order_no only", "order_no=ORD20261126001"},
		{"client sign and app_id", "app_id=" + testAppID + "&order_no=ORD20261126001&get_native=1&sign=DEADBEEF&nonce=x"},
		{"escaped", "order%5Fno=ORD20261126001&note=a+b%2Fc"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				q, err := clientQueryFor(bc.raw, testAppID)
				if err != nil {
					b.Fatal(err)
				}
				sinkString = signQuery(&q, testAppID, benchVersion, benchTicket)
			}
		})
	}
}

// BenchmarkBodyRewrite is what a JSON request costs the signer: checking
// the client's body, a nonce, the sign and the signed body, for each value
// set.
func BenchmarkBodyRewrite(b *testing.B) {
	photo := strings.Repeat("QUJD", 1<<18) // 1 MiB of base64
	for _, bc := range []struct {
		name string
		set  valueSet
		body string
	}{
		{"queryfacerecord", setOrderNo, `{"orderNo":"FACE20261126001","getFile":"1","queryVersion":"1.0"}`},
		{"getAdvFaceId", setUserID, `{"orderNo":"FACE20261126001","userId":"U20261126001","name":"\u5f20\u4e09","idNo":"43000000000000000X"}`},
		{"getAdvFaceId 1 MiB photo", setUserID, `{"orderNo":"FACE20261126001","userId":"U20261126001","name":"\u5f20\u4e09","idNo":"43000000000000000X","sourcePhotoStr":"` + photo + `","sourcePhotoType":"1"}`},
		{"geth5faceid", setH5FaceID, `{"orderNo":"FACE20261126001","userId":"U20261126001","name":"\u5f20\u4e09","idNo":"43000000000000000X"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			data := []byte(bc.body)
			for b.Loop() {
				var cb checkedBody
				if err := parseBody(data, bc.set, &cb); err != nil {
					b.Fatal(err)
				}
				sinkBytes = signBody(&cb, testAppID, benchVersion, benchTicket)
			}
		})
	}
}

var sinkBytes []byte

// BenchmarkServeHTTP is the whole handler with a warm ticket, against a
// trivial next handler that answers a fixed, realistic OCR result. The
// "next only" case is the same request without webank_sign: the difference
// is what the handler adds.
func BenchmarkServeHTTP(b *testing.B) {
	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	b.Cleanup(fake.Close)
	body := fake.OCRResultBody(testAppID, "ORD20261126001", false, false)
	answer := func(body []byte, enc string) caddyhttp.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "application/json")
			if enc != "" {
				w.Header().Set("Content-Encoding", enc)
			}
			w.WriteHeader(http.StatusOK)
			_, err := w.Write(body)
			return err
		}
	}
	next := answer(body, "")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(body)
	_ = zw.Close()
	nextGzip := answer(gz.Bytes(), "gzip")

	b.Setenv("WBS_BENCH_SECRET", testSecret)
	h := &Handler{AppOptions: AppOptions{AppID: testAppID, Secret: "{env.WBS_BENCH_SECRET}", BaseURL: fake.URL}}
	if err := h.Provision(testContext(b)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	if err := h.Validate(); err != nil {
		b.Fatal(err)
	}
	// Caddy's default logger, which Provision took, logs at debug level; a
	// deployment logs at info, where the per-request debug line costs only
	// its level check.
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.InfoLevel))

	// Caddy gives every request a fresh replacer with the HTTP placeholders
	// mapped, where the handler adds its own.
	r0 := httptest.NewRequest(http.MethodGet, "/api/server/getOcrResult?"+benchQuery, nil)
	rGzip := r0.Clone(context.Background())
	rGzip.Header.Set("Accept-Encoding", "gzip")
	request := func(r *http.Request) *http.Request {
		r = r.WithContext(r.Context())
		caddyhttp.NewTestReplacer(r)
		return r
	}
	serveTo := func(b *testing.B, w http.ResponseWriter, rec *httptest.ResponseRecorder, h caddyhttp.Handler, r *http.Request, want int) {
		if err := h.ServeHTTP(w, request(r)); err != nil {
			b.Fatal(err)
		}
		if rec.Code != http.StatusOK || rec.Body.Len() != want {
			b.Fatalf("answer: %d, %d bytes; want 200, %d bytes: %s", rec.Code, rec.Body.Len(), want, rec.Body.Bytes())
		}
	}
	serve := func(b *testing.B, h caddyhttp.Handler, r *http.Request, want int) {
		w := httptest.NewRecorder()
		serveTo(b, w, w, h, r, want)
	}
	sign := func(next caddyhttp.Handler) caddyhttp.Handler {
		return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return h.ServeHTTP(w, r, next)
		})
	}
	serve(b, sign(next), r0, len(body)) // fetches the ticket

	for _, bc := range []struct {
		name string
		h    caddyhttp.Handler
		r    *http.Request
		want int
	}{
		{"next only", next, r0, len(body)},
		{"webank_sign", sign(next), r0, len(body)},
		// A client that accepts gzip, and an upstream that uses it: the
		// retry probe decompresses the answer to read its code.
		{"next only gzip", nextGzip, rGzip, gz.Len()},
		{"webank_sign gzip", sign(nextGzip), rGzip, gz.Len()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				serve(b, bc.h, bc.r, bc.want)
			}
		})
	}
	// queryfacerecord's JSON POST: the body is read, checked and re-written.
	// Each iteration makes its request, since the body is consumed. The
	// writer takes read deadlines, as a server's does (a bare recorder
	// would cost body_timeout's deadline two allocations for its error).
	const faceBody = `{"orderNo":"FACE20261126001","getFile":"1","queryVersion":"1.0"}`
	jsonRequest := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/api/v2/base/queryfacerecord", strings.NewReader(faceBody))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	for _, bc := range []struct {
		name string
		h    caddyhttp.Handler
	}{{"next only json", next}, {"webank_sign json", sign(next)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				serveTo(b, deadlineRecorder{w}, w, bc.h, jsonRequest(), len(body))
			}
		})
	}
	b.Run("webank_sign parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w := httptest.NewRecorder()
				if err := h.ServeHTTP(w, request(r0), next); err != nil || w.Code != http.StatusOK {
					b.Errorf("answer: %d, %v", w.Code, err)
					return
				}
			}
		})
	})
}

// deadlineRecorder is a recorder that takes read deadlines, as a server's
// ResponseWriter does, and ignores them.
type deadlineRecorder struct{ *httptest.ResponseRecorder }

func (deadlineRecorder) SetReadDeadline(time.Time) error { return nil }
