package deploy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

const (
	unitPath = "systemd/caddy-webanksign.service"
	// Where README's how-to installs the unit's files.
	unitConfigDir = "/etc/caddy-webanksign"
)

// TestSystemdService runs the command lines of caddy-webanksign.service
// (ExecStart, then ExecReload) with the environment systemd would give
// them: the EnvironmentFile's variables, CREDENTIALS_DIRECTORY holding the
// LoadCredential= secret, STATE_DIRECTORY, NOTIFY_SOCKET for Type=notify.
// /etc/caddy-webanksign is a temporary directory holding
// systemd/Caddyfile, and the binary is the one WEBANK_SIGN_CADDY names
// (.ci/run's ./xcaddy.build output). What it cannot show: systemd itself
// starting the unit, the user, and the sandbox (no systemd runs as PID 1
// here); systemd-analyze verify and security in .ci/run check the unit's
// syntax and hardening level.
func TestSystemdService(t *testing.T) {
	caddyBin := binaryFromEnv(t, "WEBANK_SIGN_CADDY", "caddy binary with the module")
	unit := parseUnit(t, unitPath)
	svc := unit["Service"]
	if got := svc.one(t, "Type"); got != "notify" {
		t.Errorf("Type = %s, want notify", got)
	}
	if svc.one(t, "User") == "" || svc.one(t, "User") == "root" {
		t.Errorf("User = %q, want a dedicated user", svc.one(t, "User"))
	}

	fake := newFake(t, webanktest.Options{})
	tmp := t.TempDir()
	etc := filepath.Join(tmp, "etc")
	mapPath := func(s string) string { return strings.ReplaceAll(s, unitConfigDir, etc) }
	caddyfile, err := os.ReadFile("systemd/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(etc, "Caddyfile"), string(caddyfile), 0o644)

	port, adminPort := freePort(t), freePort(t)
	envFile := mapPath(strings.TrimPrefix(svc.one(t, "EnvironmentFile"), "-"))
	writeFile(t, envFile, fmt.Sprintf(`# as in systemd/environment.example, pointed at the fake
WEBANK_APP_ID=%s
WEBANK_BASE_URL=%s
WEBANK_UPSTREAM=%[2]s
WEBANK_SIGN_PORT=%d
WEBANK_SIGN_ADMIN=127.0.0.1:%d
`, testAppID, fake.URL, port, adminPort), 0o644)

	// LoadCredential=ID:PATH: systemd copies PATH to $CREDENTIALS_DIRECTORY/ID.
	credID, credSource, ok := strings.Cut(svc.one(t, "LoadCredential"), ":")
	if !ok {
		t.Fatalf("LoadCredential = %q, want ID:PATH", svc.one(t, "LoadCredential"))
	}
	writeFile(t, mapPath(credSource), testSecret+"\n", 0o600)
	credDir := filepath.Join(tmp, "run/credentials/caddy-webanksign.service")
	secret, err := os.ReadFile(mapPath(credSource))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(credDir, credID), string(secret), 0o400)

	stateDir := filepath.Join(tmp, "var/lib", svc.one(t, "StateDirectory"))
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}

	notify := listenNotify(t, filepath.Join(tmp, "notify"))
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + stateDir,
		"CREDENTIALS_DIRECTORY=" + credDir,
		"STATE_DIRECTORY=" + stateDir,
		"NOTIFY_SOCKET=" + notify.LocalAddr().String(),
	}
	env = append(env, readEnvironmentFile(t, envFile)...)
	env = append(env, svc.all("Environment")...)

	// What `caddy adapt` shows, and `caddy run` loads: the secret's
	// placeholder, the path expanded; and no formatting warning.
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cfg := adapt(t, string(caddyfile), vars)
	if want := `"secret":"{file.` + filepath.Join(credDir, credID) + `}"`; !strings.Contains(string(cfg.raw), want) {
		t.Errorf("the adapted config does not hold %s", want)
	}

	argv := func(key string) []string {
		fields := strings.Fields(mapPath(svc.one(t, key)))
		if !strings.HasSuffix(fields[0], "/caddy-webanksign") {
			t.Fatalf("%s runs %s, want the installed caddy-webanksign", key, fields[0])
		}
		return append([]string{caddyBin}, fields[1:]...)
	}

	sidecar := start(t, "ExecStart", argv("ExecStart"), env)
	waitNotify(t, notify, sidecar)

	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	wantGet(t, site+"/healthz", 200)
	body := wantGet(t, site+"/api/server/getOcrResult?order_no=SYSTEMD001", 200)
	if !strings.Contains(body, `"code":"0"`) {
		t.Errorf("signed request answered %q, want WeBank's code 0", body)
	}
	if n := fake.TokenCalls(); n != 1 {
		t.Errorf("token calls = %d, want 1", n)
	}
	records, _ := filepath.Glob(filepath.Join(stateDir, "webank_sign", testAppID, "*.ticket"))
	if len(records) != 1 {
		t.Errorf("ticket records in STATE_DIRECTORY: %v, want one", records)
	}

	// ExecReload: its own process, with the same environment.
	if out, err := run(t, argv("ExecReload"), env); err != nil {
		t.Fatalf("ExecReload: %v: %s", err, out)
	}
	waitNotify(t, notify, sidecar)
	wantGet(t, site+"/api/server/getOcrResult?order_no=SYSTEMD002", 200)
	if n := fake.TokenCalls(); n != 1 {
		t.Errorf("token calls after reload = %d, want 1 (the reload keeps the ticket)", n)
	}
	if n := fake.BadSignatures(); n != 0 {
		t.Errorf("fake saw %d bad signatures", n)
	}

	// systemctl stop: SIGTERM, then SIGKILL after TimeoutStopSec.
	grace, err := time.ParseDuration(svc.one(t, "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if !sidecar.stop(grace) {
		t.Errorf("caddy did not stop within TimeoutStopSec=%v of SIGTERM", grace)
	}
	out := sidecar.output()
	if !strings.Contains(out, "CREDENTIALS_DIRECTORY=") {
		t.Errorf("--environ did not print the environment: the leak check below would prove little")
	}
	wantNoLeak(t, "caddy's output (--environ and logs)", out, fake)
}

// unitFile is a unit file's sections, each key's values in order.
type unitFile map[string]unitSection

type unitSection map[string][]string

func (s unitSection) all(key string) []string { return s[key] }

// one returns the key's only value.
func (s unitSection) one(t *testing.T, key string) string {
	t.Helper()
	if len(s[key]) != 1 {
		t.Fatalf("%s: %d values, want 1", key, len(s[key]))
	}
	return s[key][0]
}

// parseUnit reads a unit file (no line continuations: ours has none).
func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	var section string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasSuffix(line, "\\"):
			t.Fatalf("%s:%d: line continuations are not handled here", path, n)
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			u[section] = unitSection{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is no key=value in a section", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// readEnvironmentFile reads KEY=VALUE lines, as systemd's EnvironmentFile=
// does for the simple case (no quotes, no continuations).
func readEnvironmentFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line[0] != '#' {
			env = append(env, line)
		}
	}
	return env
}

// listenNotify opens a socket like systemd's notify socket.
func listenNotify(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitNotify waits for READY=1 on the notify socket, as systemd does for
// Type=notify. Caddy sends READY=1 after a failed load too, preceded by a
// STATUS= with the error: that fails the test.
func waitNotify(t *testing.T, c *net.UnixConn, p *process) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	buf := make([]byte, 4096)
	var status string
	for {
		c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no READY=1 from caddy on NOTIFY_SOCKET: %v; its output: %s", err, p.output())
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			switch {
			case strings.HasPrefix(line, "STATUS="):
				status = line
			case line == "READY=1" && status != "":
				t.Fatalf("caddy notified %s; its output: %s", status, p.output())
			case line == "READY=1":
				return
			}
		}
	}
}

// TestSystemdEnvironmentExample checks that the example environment file
// names the app and holds no secret: it is printed to the journal.
func TestSystemdEnvironmentExample(t *testing.T) {
	env := readEnvironmentFile(t, "systemd/environment.example")
	var appID bool
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.Contains(strings.ToUpper(k), "SECRET") {
			t.Errorf("environment.example sets %s: the environment is printed to the journal", k)
		}
		appID = appID || k == "WEBANK_APP_ID"
	}
	if !appID {
		t.Errorf("environment.example does not set WEBANK_APP_ID")
	}
}
