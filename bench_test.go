package webanksign

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
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
				q, err := clientQuery(bc.raw, testAppID)
				if err != nil {
					b.Fatal(err)
				}
				sinkString = signQuery(&q, testAppID, benchVersion, benchTicket)
			}
		})
	}
}

// BenchmarkServeHTTP is the whole handler with a warm ticket, against a
// trivial next handler that answers a fixed, realistic OCR result. The
// "next only" case is the same request without webank_sign: the difference
// is what the handler adds.
func BenchmarkServeHTTP(b *testing.B) {
	fake := webanktest.NewServer(webanktest.Options{Apps: map[string]string{testAppID: testSecret}})
	b.Cleanup(fake.Close)
	body := fake.OCRResultBody(testAppID, "ORD20261126001", false, false)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(body)
		return err
	})

	b.Setenv("WBS_BENCH_SECRET", testSecret)
	h := &Handler{AppID: testAppID, Secret: "{env.WBS_BENCH_SECRET}", BaseURL: fake.URL}
	ctx, err := caddy.ProvisionContext(&caddy.Config{
		StorageRaw: json.RawMessage(fmt.Sprintf(`{"module":"file_system","root":%q}`, b.TempDir())),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Provision(ctx); err != nil {
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

	// Caddy gives every request a fresh replacer, where the handler sets its
	// placeholders.
	r0 := httptest.NewRequest(http.MethodGet, "/api/server/getOcrResult?"+benchQuery, nil)
	request := func() *http.Request {
		return r0.WithContext(context.WithValue(r0.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	}
	serve := func(b *testing.B, h caddyhttp.Handler) {
		w := httptest.NewRecorder()
		r := request()
		if err := h.ServeHTTP(w, r); err != nil {
			b.Fatal(err)
		}
		if w.Code != http.StatusOK || w.Body.Len() != len(body) {
			b.Fatalf("answer: %d, %d bytes; want 200, %d bytes: %s", w.Code, w.Body.Len(), len(body), w.Body.Bytes())
		}
	}
	signed := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return h.ServeHTTP(w, r, next)
	})
	serve(b, signed) // fetches the ticket

	b.Run("next only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serve(b, next)
		}
	})
	b.Run("webank_sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serve(b, signed)
		}
	})
	b.Run("webank_sign parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w := httptest.NewRecorder()
				if err := h.ServeHTTP(w, request(), next); err != nil || w.Code != http.StatusOK {
					b.Errorf("answer: %d, %v", w.Code, err)
					return
				}
			}
		})
	})
}
