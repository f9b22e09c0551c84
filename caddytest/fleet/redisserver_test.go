package fleet

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisStartTimeout bounds how long startRedis and Restart wait for
// redis-server to answer.
const redisStartTimeout = 10 * time.Second

// redisServer is a redis-server process for a test, listening on 127.0.0.1.
// It keeps nothing on disk, so a restart starts empty. Its methods are safe
// for concurrent use, but Restart, like startRedis, must be called from the
// test's goroutine since it may end the test.
type redisServer struct {
	// Addr is where the server listens, as 127.0.0.1:port. It stays the
	// same across Stop and Restart.
	Addr string

	tb  testing.TB
	dir string // the working directory of redis-server; stays empty

	mu   sync.Mutex    // protects proc
	proc *redisProcess // nil while stopped
}

// startRedis starts redis-server on 127.0.0.1 and a free port, waits until
// it answers, and registers a cleanup with tb that stops it. If
// redis-server is not installed, it skips the test, or fails it when the
// environment variable CI is set.
func startRedis(tb testing.TB) *redisServer {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		const hint = "redis-server not installed (apt-get install redis-server)"
		if os.Getenv("CI") != "" {
			tb.Fatal(hint)
		}
		tb.Skip(hint)
	}
	s := &redisServer{tb: tb, dir: tb.TempDir()}
	tb.Cleanup(s.Stop)
	// Another process may take the free port before redis-server binds
	// it, so try a few ports.
	var err error
	for range 3 {
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err = s.start(); err == nil {
			return s
		}
	}
	tb.Fatalf("starting redis-server: %v", err)
	return nil
}

// Stop kills the server and waits for it to exit. Stopping a stopped server
// does nothing.
func (s *redisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// Restart stops the server if it is running and starts it again, empty, at
// the same address. It fails the test if the server does not come back.
// Clients that failed to reach the stopped server may take a moment to
// reconnect: after as many failed dials as its pool has connections,
// go-redis waits for a background probe, made once a second.
func (s *redisServer) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.tb.Fatalf("restarting redis-server: %v", err)
	}
}

// start runs redis-server at s.Addr and waits until it answers.
func (s *redisServer) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command("redis-server",
		"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "yes")
	cmd.Dir = s.dir
	p := &redisProcess{cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		_ = cmd.Wait() // the exit status is of no interest: we kill it
		close(p.exited)
	}()

	deadline := time.Now().Add(redisStartTimeout)
	for !answers(s.Addr, cmd.Process.Pid) {
		select {
		case <-p.exited:
			return &redisStartError{out: p.out.String()}
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return &redisStartError{out: "no answer within " + redisStartTimeout.String()}
		}
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// redisProcess is a running redis-server.
type redisProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	out    bytes.Buffer  // stdout and stderr; read only after exited is closed
}

// kill kills p and waits for it to exit.
func (p *redisProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// redisStartError is redis-server failing to start, with its output.
type redisStartError struct{ out string }

func (e *redisStartError) Error() string { return "redis-server did not start: " + e.out }

// answers reports whether the redis-server at addr is the process pid: a
// newly started redis-server that failed to bind its port could otherwise
// be mistaken for another that holds the port.
func answers(addr string, pid int) bool {
	conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("INFO server\r\n")); err != nil {
		return false
	}
	// the answer is a bulk string: $<length>\r\n<text>\r\n
	r := bufio.NewReader(conn)
	header, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(header, "$") {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(header[1:]))
	if err != nil {
		return false
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(r, info); err != nil {
		return false
	}
	return strings.Contains(string(info), "\r\nprocess_id:"+strconv.Itoa(pid)+"\r\n")
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
