// Package fleet runs several real Caddy processes with webank_sign, sharing
// one storage (a directory, or a real Redis through caddy-storage-redis, the
// storage module a fleet deploys), in front of the fake WeBank,
// and checks that the fleet behaves as one signer: one token fetch per
// refresh period whatever the replica count, no failed request, no
// signature the fake rejects, and nothing secret at rest or in the logs.
package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webanksign/caddy-webanksign/caddytest/leakcheck"
	"github.com/webanksign/caddy-webanksign/webanktest"
)

const (
	appID     = "IDAFLEET"
	secret    = "fleet-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO"
	secretEnv = "WBS_FLEET_SECRET"
	ocrPath   = "/api/server/getOcrResult"

	// Lifetimes scaled down from WeBank's (2 h token, 1 h ticket, 20 min
	// refresh, 60 s overlap) so that several refresh periods pass in seconds.
	refresh = 3 * time.Second
	ttl     = 10 * time.Second
	grace   = 4 * time.Second
)

// caddyBin is the Caddy binary built once for the test binary in TestMain.
var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wbs-fleet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "github.com/webanksign/caddy-webanksign/caddytest/caddycmd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building caddy for the fleet tests:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// replica is one Caddy process of the fleet.
type replica struct {
	t       *testing.T
	name    string
	url     string // http://127.0.0.1:port
	admin   string // 127.0.0.1:port
	cfgPath string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// fleet is the fake WeBank and the replicas that share one storage.
type fleet struct {
	t        *testing.T
	fake     *webanktest.Server
	storage  string // the "storage" JSON of every replica
	replicas []*replica
	client   *http.Client
}

func newFleet(t *testing.T, storage string) *fleet {
	t.Helper()
	t.TempDir() // registered first, removed last: the log check below reads the replicas' logs
	fake := webanktest.NewServer(webanktest.Options{
		Apps: map[string]string{appID: secret}, TokenTTL: ttl, TicketTTL: ttl, Grace: grace, PhotoBytes: 1024,
	})
	f := &fleet{t: t, fake: fake, storage: storage, client: &http.Client{Timeout: 20 * time.Second}}
	t.Cleanup(func() {
		for _, r := range f.replicas {
			r.stop()
		}
		fake.Close()
		f.checkLogs()
	})
	return f
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start starts a new replica and waits until it serves.
func (f *fleet) start(name string) *replica {
	t := f.t
	t.Helper()
	dir := t.TempDir()
	r := &replica{t: t, name: name, admin: freeAddr(t), cfgPath: filepath.Join(dir, "caddy.json"),
		logPath: filepath.Join(dir, "caddy.log"), exited: make(chan struct{})}
	site := freeAddr(t)
	r.url = "http://" + site
	cfg := fmt.Sprintf(`{
	"admin": {"listen": %q, "config": {"persist": false}},
	"logging": {"logs": {"default": {"level": "DEBUG", "writer": {"output": "file", "filename": %q}}}},
	"storage": %s,
	"apps": {"http": {"servers": {"sidecar": {
		"listen": [%q],
		"automatic_https": {"disable": true},
		"routes": [{
			"match": [{"path": [%q]}],
			"handle": [
				{"handler": "webank_sign", "app_id": %q, "secret": "{env.%s}", "base_url": %q, "refresh": %q},
				{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
			]
		}]
	}}}}
}`, r.admin, r.logPath, f.storage, site, ocrPath, appID, secretEnv, f.fake.URL, refresh.String(),
		strings.TrimPrefix(f.fake.URL, "http://"))
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(caddyBin, "run", "--config", r.cfgPath)
	// GOMAXPROCS is pinned so that what scales with it, such as the size
	// of go-redis's pool (see TestStorageOutageMidRun), is the same on
	// every machine: each replica is a 2-CPU sidecar.
	r.cmd.Env = append(os.Environ(), secretEnv+"="+secret, "GOMAXPROCS=2",
		"HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, io.Discard
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	f.replicas = append(f.replicas, r)

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		select {
		case <-r.exited:
			logs, _ := os.ReadFile(r.logPath)
			t.Fatalf("replica %s exited at start: %.2000s", name, logs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not start within 30s", name)
		}
	}
}

// stop stops the replica: an interrupt, then a kill if it lingers.
func (r *replica) stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
}

// get sends one unsigned request to replica r.
func (f *fleet) get(r *replica, orderNo string) (int, []byte, error) {
	resp, err := f.client.Get(r.url + ocrPath + "?order_no=" + orderNo)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func (f *fleet) mustGet(r *replica, orderNo string) {
	f.t.Helper()
	status, body, err := f.get(r, orderNo)
	if err != nil || status != http.StatusOK || !bytes.Contains(body, []byte(`"code":"0"`)) {
		f.t.Fatalf("%s: %v %d %.200s", r.name, err, status, body)
	}
}

// traffic sends requests round-robin over the replicas from a few workers,
// each paced at one request every few milliseconds (steady traffic, not a
// load test: the other test packages share the machine), until done reports
// true or limit passes. It returns the request count and the failures.
func (f *fleet) traffic(done func() bool, limit time.Duration) (int, []string) {
	deadline := time.Now().Add(limit)
	var mu sync.Mutex
	var failures []string
	count := 0
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pace := time.NewTicker(5 * time.Millisecond)
			defer pace.Stop()
			for i := 0; !done() && time.Now().Before(deadline); i++ {
				<-pace.C
				r := f.replicas[(w+i)%len(f.replicas)]
				status, body, err := f.get(r, fmt.Sprintf("W%dN%d", w, i))
				mu.Lock()
				count++
				if err != nil || status != http.StatusOK || !bytes.Contains(body, []byte(`"code":"0"`)) {
					failures = append(failures, fmt.Sprintf("%s: %v %d %.160s", r.name, err, status, body))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return count, failures
}

// steady runs traffic over the fleet across several refresh periods and
// checks that the fleet fetched like one sidecar: one token per period.
func (f *fleet) steady(periods int) {
	t := f.t
	t.Helper()
	start := time.Now()
	first := f.fake.TokenCalls()
	target := first + int64(periods)
	count, failures := f.traffic(func() bool { return f.fake.TokenCalls() >= target }, time.Duration(periods+4)*refresh)
	elapsed := time.Since(start)
	tokens := f.fake.TokenCalls() - first
	t.Logf("%d replicas: %d requests, %d token fetches in %v (refresh every %v)", len(f.replicas), count, tokens, elapsed.Round(time.Millisecond), refresh)
	if tokens < int64(periods) {
		t.Errorf("only %d token fetches in %v; the refresher did not run", tokens, elapsed)
	}
	// One sidecar fetches once per refresh period, plus the period under
	// way: that many, and no more, for the whole fleet.
	if max := int64(elapsed/refresh) + 1; tokens > max {
		t.Errorf("%d token fetches in %v, more than one sidecar's %d", tokens, elapsed, max)
	}
	// The last token's ticket call may still be on its way.
	for deadline := time.Now().Add(5 * time.Second); f.fake.TicketCalls() < f.fake.TokenCalls() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // polling a counter
	}
	if f.fake.TicketCalls() != f.fake.TokenCalls() {
		t.Errorf("ticket calls %d != token calls %d", f.fake.TicketCalls(), f.fake.TokenCalls())
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed; first: %s", len(failures), count, failures[0])
	}
	f.wantClean()
}

func (f *fleet) wantClean() {
	f.t.Helper()
	if n := f.fake.BadSignatures(); n != 0 {
		f.t.Errorf("fake saw %d bad signatures", n)
	}
	if n := f.fake.StaleTickets(); n != 0 {
		f.t.Errorf("fake saw %d requests signed with a dead ticket", n)
	}
	if n := f.fake.ReusedNonces(); n != 0 {
		f.t.Errorf("fake saw %d reused nonces", n)
	}
}

// checkLogs fails the test if any replica's log holds the secret, a token
// or ticket the fake issued, a sign, or anything shaped like them.
func (f *fleet) checkLogs() {
	forbidden := leakcheck.Forbidden(secret, f.fake.Fake)
	for _, r := range f.replicas {
		logs, err := os.ReadFile(r.logPath)
		if err != nil || len(logs) == 0 {
			f.t.Errorf("%s: no log to check (%v)", r.name, err)
			continue
		}
		for _, leak := range leakcheck.Find(logs, forbidden) {
			f.t.Errorf("%s: log holds %s", r.name, leak)
		}
	}
}

// countLog counts the lines of r's log whose message is msg.
func (r *replica) countLog(msg string) int {
	logs, _ := os.ReadFile(r.logPath)
	return bytes.Count(logs, []byte(`"msg":`+mustJSON(msg)))
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func fileStorage(dir string) string {
	return fmt.Sprintf(`{"module": "file_system", "root": %q}`, dir)
}

// redisStorage is caddy-storage-redis on the Redis at addr, as the Caddyfile
// `storage redis { address <addr>; key_prefix fleet }` gives. Its lock
// (see TestDeadLockHolderTakenOver) is not configurable.
func redisStorage(addr string) string {
	return fmt.Sprintf(`{"module": "redis", "address": [%q], "key_prefix": "fleet"}`, addr)
}

func TestFleetOnFileStorage(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			dir := t.TempDir()
			f := newFleet(t, fileStorage(dir))
			for i := range n {
				f.start(fmt.Sprintf("r%d", i))
			}
			f.steady(4)
			f.wantNothingInTheClear(dir)
		})
	}
}

func TestFleetOnRedis(t *testing.T) {
	srv := startRedis(t)
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			f := newFleet(t, redisStorage(srv.Addr))
			for i := range n {
				f.start(fmt.Sprintf("r%d", i))
			}
			f.steady(4)
		})
	}
}

// wantNothingInTheClear fails if any file under dir holds a token or ticket.
func (f *fleet) wantNothingInTheClear(dir string) {
	f.t.Helper()
	values := f.fake.IssuedValues()
	found := 0
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		if strings.HasSuffix(path, ".ticket") {
			found++
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				f.t.Errorf("%s holds a token or ticket in the clear", path)
			}
		}
		return nil
	})
	if found == 0 {
		f.t.Errorf("no ticket record under %s: the check proved nothing", dir)
	}
}

// A replica that starts, or restarts, with a valid ticket in storage uses it
// and fetches nothing; so does a config reload.
func TestRestartAndReloadFetchNothing(t *testing.T) {
	f := newFleet(t, fileStorage(t.TempDir()))
	a := f.start("a")
	f.mustGet(a, "FIRST1")
	a.stop()
	b := f.start("b")
	f.mustGet(b, "AFTER1")
	cfg, err := os.ReadFile(b.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+b.admin+"/load", "application/json", bytes.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %s", resp.Status)
	}
	f.mustGet(b, "AFTER2")
	if got := f.fake.TokenCalls(); got != 1 {
		t.Errorf("token calls = %d, want 1 across a restart and a reload", got)
	}
	if b.countLog("ticket adopted from storage") == 0 {
		t.Errorf("the restarted replica did not say it adopted the stored ticket")
	}
	f.wantClean()
}

// A lock whose holder died (it stops renewing) is taken over once it
// expires, and the refresh it blocked happens exactly once. The lock is
// planted right after a refresh, with a TTL longer than the refresh period,
// so that the next refresh must wait for it.
//
// caddy-storage-redis (storage.go, v1.8.1) takes a lock with bsm/redislock
// (SET NX PX, a random token) for a fixed lockTTL of 5s, renews it every
// 3s while held, releases it by compare-and-delete, and, while another holds
// it, tries again every second (webank_sign asks sooner: it bounds each Lock
// by its storage poll, refresh/4 here, and reads storage in between). None
// of this is configurable. A holder that dies stops renewing, so its lock
// outlives it by at most 5s: the planted lock is that worst case, a holder
// that died right after renewing.
func TestDeadLockHolderTakenOver(t *testing.T) {
	srv := startRedis(t)
	f := newFleet(t, redisStorage(srv.Addr))
	a, b := f.start("a"), f.start("b")
	f.mustGet(a, "WARM1")
	f.mustGet(b, "WARM2")
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	_, lock := storageKeys(f.fake.URL)

	// Run up to a refresh and let it finish (its ticket stored, its lock
	// released), then plant the dead holder's lock.
	tokens := f.fake.TokenCalls()
	f.traffic(func() bool { return f.fake.TokenCalls() > tokens && f.fake.TicketCalls() >= f.fake.TokenCalls() }, 3*refresh)
	f.traffic(func() bool { return false }, 200*time.Millisecond)
	const held = 5 * time.Second // caddy-storage-redis's lockTTL
	if err := rdb.Set(context.Background(), lock, "a-dead-owner", held).Err(); err != nil {
		t.Fatal(err)
	}
	planted := time.Now()
	tokens = f.fake.TokenCalls()
	count, failures := f.traffic(func() bool { return f.fake.TokenCalls() > tokens }, held+3*refresh)
	took := time.Since(planted)
	// Let any second fetch show before counting.
	f.traffic(func() bool { return false }, refresh/2)
	if got := f.fake.TokenCalls(); got != tokens+1 {
		t.Errorf("token calls went from %d to %d; want exactly one refresh after the takeover", tokens, got)
	}
	if took < held-500*time.Millisecond {
		t.Errorf("the refresh came %v after the lock was planted, before it expired (%v)", took, held)
	}
	if bound := held + 2*time.Second; took > bound {
		t.Errorf("the lock was taken over %v after it was planted, more than %v", took, bound)
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed; first: %s", len(failures), count, failures[0])
	}
	t.Logf("refresh %v after a dead holder's lock (TTL %v) was planted", took.Round(time.Millisecond), held)
	f.wantClean()
}

// Redis going away mid-run: requests keep being signed from memory (and
// refreshed without the lock), the replica warns, and puts its ticket back
// in Redis when Redis is back. One replica: with storage gone, replicas
// cannot agree on a token, which README says.
//
// Two things here are caddy-storage-redis's, not webank_sign's. Its Load
// answers fs.ErrNotExist for any failed GET (storage.go, loadStorageData:
// `if data == nil || errors.Is(err, redis.Nil)`), so a Redis that is down
// reads as one that holds no record: webank_sign's storage poll sees
// storage come back each time, its next lock fails again, and the replica
// warns at each poll that tries the lock, not once per outage. And it
// keeps go-redis's defaults, whose pool tries each failed connection 5
// times, 100ms apart, and each command 4 times, until as many connections
// as the pool holds have failed (10 per CPU); until then a storage call
// takes about 2s, longer than webank_sign's lock wait in these tests
// (refresh/4), which reads as a busy lock. That delays the first refreshes
// of an outage by several seconds here: two took about 14.5s on a 2-CPU
// replica, where two refresh periods are 6s. With the default 20m refresh
// the lock wait is 15s, and each refresh fails over to the unlocked fetch
// at once.
func TestStorageOutageMidRun(t *testing.T) {
	srv := startRedis(t)
	f := newFleet(t, redisStorage(srv.Addr))
	a := f.start("a")
	f.mustGet(a, "WARM1")
	srv.Stop()
	down := time.Now()
	tokens := f.fake.TokenCalls()
	count, failures := f.traffic(func() bool { return f.fake.TokenCalls() >= tokens+2 }, 7*refresh)
	downFor := time.Since(down)
	if len(failures) > 0 {
		t.Errorf("with Redis down, %d of %d requests failed; first: %s", len(failures), count, failures[0])
	}
	if f.fake.TokenCalls() < tokens+2 {
		t.Errorf("%d refreshes while Redis was down, want 2", f.fake.TokenCalls()-tokens)
	}
	const warning = "storage unavailable; tickets are kept in memory only until it works again"
	// At least once, and at most once per storage poll: never per request.
	n := a.countLog(warning)
	if polls := int(downFor/(refresh/4)) + 1; n == 0 || n > polls {
		t.Errorf("warned %d times about storage over %d requests in %v, want 1 to %d", n, count, downFor.Round(time.Millisecond), polls)
	}
	t.Logf("warned %d times about storage in %v while Redis was down", n, downFor.Round(time.Millisecond))

	srv.Restart() // empty
	back := time.Now()
	// The replica stores its ticket again at its next storage poll (a
	// quarter of refresh), once go-redis has reconnected (about a second).
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	record, _ := storageKeys(f.fake.URL)
	stored := func() bool { n, err := rdb.Exists(context.Background(), record).Result(); return err == nil && n == 1 }
	count, failures = f.traffic(stored, 4*refresh)
	if !stored() {
		t.Errorf("the replica did not store its ticket in Redis within %v of Redis coming back", 4*refresh)
	} else {
		t.Logf("ticket stored in Redis again %v after it came back", time.Since(back).Round(time.Millisecond))
	}
	if len(failures) > 0 {
		t.Errorf("after Redis came back, %d of %d requests failed; first: %s", len(failures), count, failures[0])
	}
	f.wantClean()
}

// storageKeys returns the Redis keys, under the fleet's key_prefix, of the
// ticket record and the storage lock that webank_sign uses for appID and
// the fake at fakeURL.
func storageKeys(fakeURL string) (record, lock string) {
	sum := sha256.Sum256([]byte(fakeURL))
	base := hex.EncodeToString(sum[:8])
	return "fleet/webank_sign/" + appID + "/" + base + ".ticket", "fleet/locks/webank_sign_" + appID + "_" + base
}
