package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// The fake app the recipes are run with. Its secret is no secret; every
// check of a log looks for it all the same.
const (
	testAppID  = "IDADEPLOY1"
	testSecret = "deploy-test-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
)

// need skips the test for a missing prerequisite, or fails it when the
// environment variable CI is set (as caddytest's Redis tests do), so that
// CI never passes on a check that it did not run.
func need(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (CI is set: required)", args...)
	}
	t.Skipf(format, args...)
}

// binaryFromEnv returns the executable named by the variable key.
func binaryFromEnv(t *testing.T, key, what string) string {
	t.Helper()
	p := os.Getenv(key)
	if p == "" {
		need(t, "%s is not set: no %s to run", key, what)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return abs
}

// tool returns the path of a program on PATH.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		need(t, "%s is not installed", name)
	}
	return p
}

// newFake starts a fake WeBank that knows the test app.
func newFake(t *testing.T, opts webanktest.Options) *webanktest.Server {
	t.Helper()
	opts.Apps = map[string]string{testAppID: testSecret}
	fake := webanktest.NewServer(opts)
	t.Cleanup(fake.Close)
	return fake
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var client = &http.Client{Timeout: 30 * time.Second}

// get sends a GET and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// post sends a POST of a JSON body and returns the status and body.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// wantGet checks that a GET of url answers status.
func wantGet(t *testing.T, url string, status int) string {
	t.Helper()
	got, body := get(t, url)
	if got != status {
		t.Fatalf("GET %s = %d %q, want %d", url, got, body, status)
	}
	return body
}

// waitListening waits until addr accepts TCP connections: a process
// started by a test has no other way to say that it listens.
func waitListening(t *testing.T, addr string, p *process) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if p != nil && p.exited() {
			t.Fatalf("%s exited before listening on %s: %s", p.name, addr, p.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 30s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// process is a program started by a test; it is stopped (SIGTERM, then
// SIGKILL after 10s) when the test ends.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu  sync.Mutex // protects out
	out bytes.Buffer
}

// start runs argv with exactly env (nothing inherited).
func start(t *testing.T, name string, argv, env []string) *process {
	t.Helper()
	p := &process{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = env
	p.cmd.Stdout = lockedWriter{p}
	p.cmd.Stderr = lockedWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			p.stop(10 * time.Second)
		}
	})
	return p
}

type lockedWriter struct{ p *process }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and reports whether the process exited within grace;
// if not, it is killed.
func (p *process) stop(grace time.Duration) bool {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		return false
	}
}

// run runs argv with exactly env and returns its combined output.
func run(t *testing.T, argv, env []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// wantNoLeak fails the test if text holds the secret or any token or
// ticket the fake issued.
func wantNoLeak(t *testing.T, what, text string, fake *webanktest.Server) {
	t.Helper()
	for _, s := range append([]string{testSecret}, fake.IssuedValues()...) {
		if strings.Contains(text, s) {
			t.Errorf("%s holds a secret, token or ticket (%d characters)", what, len(s))
		}
	}
}

// writeFile writes a file, making its directory.
func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
