package deploy

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// The Caddy image's environment (caddy:2 on Docker Hub): where its Caddy
// keeps its data and config.
var imageEnv = map[string]string{"XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": "/config"}

// root stands for a pod's file system: the paths the sidecar mounts are
// directories under it, and the Caddyfile's paths are rewritten to match.
type root struct {
	dir string
	p   pod
}

func newRoot(t *testing.T, p pod) root {
	t.Helper()
	r := root{dir: t.TempDir(), p: p}
	for _, vm := range p.mounts {
		if err := os.MkdirAll(r.path(vm.MountPath), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range p.spec.Volumes {
		if v.Secret == nil {
			continue
		}
		for _, item := range v.Secret.Items {
			writeFile(t, filepath.Join(r.path(p.mounts[v.Name].MountPath), item.Path), testSecret+"\n", 0o400)
		}
	}
	return r
}

// path maps an absolute path of the pod to the root.
func (r root) path(p string) string { return filepath.Join(r.dir, p) }

// rewrite maps every mount path named in s to the root.
func (r root) rewrite(s string) string {
	for _, vm := range r.p.mounts {
		s = strings.ReplaceAll(s, vm.MountPath+"/", r.path(vm.MountPath)+"/")
	}
	return s
}

// sidecarEnv is the environment the test runs the sidecar with: the
// manifest's, the image's, and the test's own app, fake WeBank and ports.
type sidecarEnv struct {
	vars                       map[string]string
	port, probePort, adminPort int
}

func newSidecarEnv(t *testing.T, r root, fake *webanktest.Server) sidecarEnv {
	t.Helper()
	e := sidecarEnv{vars: r.p.env(t, "127.0.0.1", ""), port: freePort(t), probePort: freePort(t), adminPort: freePort(t)}
	for k, v := range imageEnv {
		e.vars[k] = r.path(v)
	}
	e.vars["WEBANK_APP_ID"] = testAppID
	e.vars["WEBANK_BASE_URL"], e.vars["WEBANK_UPSTREAM"] = fake.URL, fake.URL
	e.vars["WEBANK_SIGN_PORT"] = fmt.Sprint(e.port)
	e.vars["WEBANK_SIGN_PROBE_PORT"] = fmt.Sprint(e.probePort)
	e.vars["WEBANK_SIGN_ADMIN"] = addr(e.adminPort)
	return e
}

func (e sidecarEnv) list() []string {
	l := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	for k, v := range e.vars {
		l = append(l, k+"="+v)
	}
	return l
}

// appURL is the app's WEBANK_URL with the test's port for the sidecar's.
func (e sidecarEnv) appURL(t *testing.T, p pod) string {
	t.Helper()
	for _, e2 := range p.spec.Containers[0].Env {
		if e2.Name == "WEBANK_URL" {
			u, err := url.Parse(e2.Value)
			if err != nil {
				t.Fatal(err)
			}
			u.Host = addr(e.port)
			return u.String()
		}
	}
	t.Fatalf("the app container has no WEBANK_URL")
	return ""
}

func (e sidecarEnv) probe(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", e.probePort, path)
}

// TestKubernetesPod runs the single-replica recipe's Caddyfile, from its
// ConfigMap, in an in-process Caddy with the environment the Deployment
// gives the sidecar (the pod IP being 127.0.0.1 here), against the fake
// WeBank: its probes answer on their paths, the app's URL signs, and the
// metrics that the pod's Prometheus annotations point at hold every metric
// the dashboard and the alert rules use. What it cannot show: a kubelet
// probing a real pod IP, and the image (no cluster or container engine on
// the CI machines).
func TestKubernetesPod(t *testing.T) {
	p := loadPod(t, "kubernetes")
	fake := newFake(t, webanktest.Options{Grace: -1}) // a rotated token is stale at once: the retry is seen
	r := newRoot(t, p)
	env := newSidecarEnv(t, r, fake)
	cfg := adapt(t, r.rewrite(p.caddyfile), env.vars)
	if err := caddy.Load(cfg.raw, true); err != nil {
		t.Fatalf("loading the sidecar's config: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})

	wantGet(t, env.probe(p.sidecar.StartupProbe.HTTPGet.Path), 200)
	wantGet(t, env.probe(p.sidecar.LivenessProbe.HTTPGet.Path), 200)
	if body := wantGet(t, env.probe(p.sidecar.ReadinessProbe.HTTPGet.Path), 200); !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("readiness answered %q, want webank_sign_health's ok", body)
	}

	app := env.appURL(t, p)
	// A launch and a callback check, answered by the sidecar with the
	// app's token.
	if code, body := post(t, app+"/webank/sdk_sign", `{"user_id":"POD_U1"}`); code != 200 || !strings.Contains(body, `"sign":"`) {
		t.Errorf("sdk_sign answered %d %q, want 200 and a sign", code, body)
	}
	forged := `{"order_no":"POD001","code":"0","sign":"` + strings.Repeat("A", 40) + `"}`
	if code, body := post(t, app+"/webank/verify", forged); code != 200 || !strings.Contains(body, `"valid":false`) {
		t.Errorf("verify of a forged callback answered %d %q, want 200 and valid false", code, body)
	}
	for _, orderNo := range []string{"POD001", "POD002"} {
		if body := wantGet(t, app+"/api/server/getOcrResult?order_no="+orderNo, 200); !strings.Contains(body, `"code":"0"`) {
			t.Errorf("signed request answered %q, want WeBank's code 0", body)
		}
		fake.RotateToken(testAppID) // the second request is rejected once, then retried
	}
	if n := fake.TokenCalls(); n != 2 {
		t.Errorf("token calls = %d, want 2 (the first, and the retry's)", n)
	}
	records, _ := filepath.Glob(filepath.Join(r.path("/data"), "caddy", "webank_sign", testAppID, "*.ticket"))
	if len(records) != 1 {
		t.Errorf("ticket records under the data volume: %v, want one", records)
	}

	t.Run("dashboard and rules metrics exported", func(t *testing.T) {
		metrics := wantGet(t, env.probe(p.annotations["prometheus.io/path"]), 200)
		wantNoLeak(t, "/metrics", metrics, fake)
		checkMetricsUsed(t, metrics)
	})
}
