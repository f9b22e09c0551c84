package deploy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// TestKubernetesFleet runs two replicas of the fleet recipe's sidecar, each
// a caddy process built with the Redis storage module (WEBANK_SIGN_CADDY_FLEET,
// .ci/run's `./xcaddy.build --with github.com/pberkel/caddy-storage-redis`),
// each with its own file system and the environment the Deployment gives it,
// sharing one real redis-server, in front of the fake WeBank. Both become
// ready and sign, and the fake issues one access token in all: the second
// replica adopts the first's ticket from Redis, as the recipe promises. What
// it cannot show: the pods, their image and a Redis in a cluster.
func TestKubernetesFleet(t *testing.T) {
	caddyBin := binaryFromEnv(t, "WEBANK_SIGN_CADDY_FLEET", "caddy binary with the module and github.com/pberkel/caddy-storage-redis")
	redis := startRedis(t)
	p := loadPod(t, "kubernetes/fleet")
	fake := newFake(t, webanktest.Options{})

	var replicas []*process
	for i := range 2 {
		r := newRoot(t, p)
		env := newSidecarEnv(t, r, fake)
		env.vars["REDIS_ADDRESS"] = redis // the manifest's is a cluster Service's name
		writeFile(t, r.path(p.configPath(t)), r.rewrite(p.caddyfile), 0o644)
		argv := slices.Clone(append(p.sidecar.Command, p.sidecar.Args...))
		if argv[0] != "caddy" {
			t.Fatalf("the sidecar runs %s, want the image's caddy", argv[0])
		}
		argv[0] = caddyBin
		for j := range argv {
			argv[j] = r.rewrite(argv[j])
		}
		replica := start(t, fmt.Sprintf("replica %d", i+1), argv, env.list())
		replicas = append(replicas, replica)

		// As the kubelet would: startup, then readiness, then the app's traffic.
		waitListening(t, addr(env.probePort), replica)
		wantGet(t, env.probe(p.sidecar.StartupProbe.HTTPGet.Path), 200)
		if body := wantGet(t, env.probe(p.sidecar.ReadinessProbe.HTTPGet.Path), 200); !strings.Contains(body, `"status":"ok"`) {
			t.Errorf("replica %d: readiness answered %q", i+1, body)
		}
		orderNo := fmt.Sprintf("FLEET%03d", i+1)
		if body := wantGet(t, env.appURL(t, p)+"/api/server/getOcrResult?order_no="+orderNo, 200); !strings.Contains(body, `"code":"0"`) {
			t.Errorf("replica %d: signed request answered %q", i+1, body)
		}
	}
	if n := fake.TokenCalls(); n != 1 {
		t.Errorf("the replicas fetched %d access tokens, want 1: they do not share the ticket", n)
	}
	if n := fake.BadSignatures() + fake.StaleTickets(); n != 0 {
		t.Errorf("fake saw %d bad or stale signatures", n)
	}
	for _, r := range replicas {
		if !r.stop(5 * time.Second) {
			t.Errorf("%s did not stop within 5s of SIGTERM", r.name)
		}
		wantNoLeak(t, r.name+"'s output", r.output(), fake)
	}
}

// startRedis starts redis-server on 127.0.0.1, keeping nothing on disk, and
// returns its address; it is stopped when the test ends.
func startRedis(t *testing.T) string {
	t.Helper()
	bin := tool(t, "redis-server")
	port := freePort(t)
	p := start(t, "redis-server", []string{bin,
		"--bind", "127.0.0.1", "--port", fmt.Sprint(port),
		"--save", "", "--appendonly", "no", "--dir", filepath.Clean(t.TempDir()),
	}, []string{"PATH=/usr/bin:/bin"})
	waitListening(t, addr(port), p)
	return addr(port)
}
