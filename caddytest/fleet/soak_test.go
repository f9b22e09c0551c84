package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// processStats are what must stay flat over a soak: the goroutines, the
// heap after a collection, and the open file descriptors of a replica.
type processStats struct {
	goroutines int
	heap       uint64
	fds        int
}

func (r *replica) stats(t *testing.T) processStats {
	t.Helper()
	get := func(path string) []byte {
		resp, err := http.Get("http://" + r.admin + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	var st processStats
	head, _, _ := strings.Cut(string(get("/debug/pprof/goroutine?debug=1")), "\n")
	fmt.Sscanf(head, "goroutine profile: total %d", &st.goroutines)
	get("/debug/pprof/heap?gc=1") // collects garbage first
	var vars struct {
		Memstats struct{ HeapAlloc uint64 } `json:"memstats"`
	}
	json.Unmarshal(get("/debug/vars"), &vars)
	st.heap = vars.Memstats.HeapAlloc
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.cmd.Process.Pid))
	st.fds = len(fds)
	if st.goroutines == 0 || st.heap == 0 {
		t.Fatalf("%s: could not read goroutines or heap", r.name)
	}
	return st
}

// Steady traffic through two replicas for about 45 seconds while the token
// is rotated by another party, a refresh is forced, and configs are
// reloaded. No request fails, the fake sees no bad signature, and each
// replica's goroutines, heap and file descriptors end where they started.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	f := newFleet(t, fileStorage(t.TempDir()))
	a, b := f.start("a"), f.start("b")
	f.traffic(func() bool { return false }, time.Second) // warm up: tickets, connections, pools
	f.client.CloseIdleConnections()
	before := map[*replica]processStats{a: a.stats(t), b: b.stats(t)}

	reload := func(r *replica) {
		cfg, _ := os.ReadFile(r.cfgPath)
		resp, err := http.Post("http://"+r.admin+"/load", "application/json", bytes.NewReader(cfg))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("reloading %s: %v %v", r.name, err, resp)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	var forced []int
	script := []struct {
		at time.Duration
		do func()
	}{
		{5 * time.Second, func() { reload(a) }},
		{10 * time.Second, func() { f.fake.RotateToken(appID) }}, // another party takes the token
		{20 * time.Second, func() {
			resp, err := http.Post("http://"+b.admin+"/webank_sign/refresh?app_id="+appID, "", nil)
			if err == nil {
				forced = append(forced, resp.StatusCode)
				resp.Body.Close()
			}
		}},
		{25 * time.Second, func() { reload(b) }},
		{35 * time.Second, func() { reload(a) }},
	}
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, step := range script {
			time.Sleep(time.Until(start.Add(step.at))) // the script's schedule
			step.do()
		}
	}()
	count, failures := f.traffic(func() bool { return false }, 45*time.Second)
	wg.Wait()
	t.Logf("soak: %d requests, %d token fetches, forced refresh answered %v", count, f.fake.TokenCalls(), forced)
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed; first: %s", len(failures), count, failures[0])
	}
	if len(forced) != 1 || (forced[0] != http.StatusOK && forced[0] != http.StatusTooManyRequests) {
		t.Errorf("forced refresh answered %v, want 200 or 429 (within a minute of the rotation's drop)", forced)
	}
	if n := f.fake.BadSignatures(); n != 0 {
		t.Errorf("fake saw %d bad signatures", n)
	}

	f.client.CloseIdleConnections()
	for _, r := range []*replica{a, b} {
		after := r.stats(t)
		was := before[r]
		t.Logf("%s: goroutines %d → %d, heap %d → %d KiB, fds %d → %d", r.name,
			was.goroutines, after.goroutines, was.heap>>10, after.heap>>10, was.fds, after.fds)
		if after.goroutines > was.goroutines+20 {
			t.Errorf("%s: goroutines grew from %d to %d", r.name, was.goroutines, after.goroutines)
		}
		if after.heap > was.heap*3/2+8<<20 {
			t.Errorf("%s: heap grew from %d to %d KiB", r.name, was.heap>>10, after.heap>>10)
		}
		if after.fds > was.fds+10 {
			t.Errorf("%s: file descriptors grew from %d to %d", r.name, was.fds, after.fds)
		}
	}
	f.wantCleanAfterRotation()
}

// wantCleanAfterRotation is wantClean for a run in which another party
// rotated the token: the requests signed with the killed ticket were
// answered 15 by the fake and retried, so stale tickets are expected, but
// never a bad signature or a reused nonce.
func (f *fleet) wantCleanAfterRotation() {
	f.t.Helper()
	if n := f.fake.BadSignatures(); n != 0 {
		f.t.Errorf("fake saw %d bad signatures", n)
	}
	if n := f.fake.ReusedNonces(); n != 0 {
		f.t.Errorf("fake saw %d reused nonces", n)
	}
}
