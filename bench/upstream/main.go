// Command upstream is the upstream of the load benchmark (bench/run.sh): it
// answers every request as WeBank answers getOcrResult, with one fixed,
// realistic JSON body, so that every request costs it the same whatever
// proxy it came through. It checks nothing, signatures included: the fake
// WeBank does that in the tests, and here it would be work that only the
// signed requests cause.
//
// Usage:
//
//	upstream [-listen 127.0.0.1:18081] [-photo-bytes 307200]
//
// A request whose query holds get_file=1 gets the answer with five photos of
// -photo-bytes raw bytes each (about 2 MB in all by default); any other gets
// the answer without photos (under 1 KB). Every answer carries the header
// X-Upstream-Signed: true or false, whether the query held a sign.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

func main() {
	log.SetPrefix("upstream: ")
	listen := flag.String("listen", "127.0.0.1:18081", "address to listen on")
	photoBytes := flag.Int("photo-bytes", 300<<10, "raw size of each of the five photos answered to get_file=1")
	flag.Parse()

	// The fake's deterministic OCR result, computed once.
	fake := webanktest.New(webanktest.Options{Apps: map[string]string{"IDABENCH": "unused"}, PhotoBytes: *photoBytes})
	small := fake.OCRResultBody("IDABENCH", "ORD20261126001", false, false)
	photos := fake.OCRResultBody("IDABENCH", "ORD20261126001", true, false)
	fake.Close()

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body := small
		if q.Get("get_file") == "1" {
			body = photos
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json;charset=UTF-8"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		// Lets bench/run.sh check that the sidecar's requests arrive signed
		// and the others' do not.
		h["X-Upstream-Signed"] = []string{strconv.FormatBool(q.Has("sign"))}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on http://%s: %d bytes, %d with get_file=1", ln.Addr(), len(small), len(photos))
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
