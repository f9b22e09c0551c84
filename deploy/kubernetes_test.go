package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The Kubernetes recipes: a directory of manifests each, checked alike.
var kubernetesDirs = []string{"kubernetes", "kubernetes/fleet"}

const sidecarName = "webank-sign"

// manifests are the objects of one recipe directory.
type manifests struct {
	deployments []*appsv1.Deployment
	configMaps  map[string]*corev1.ConfigMap
}

// decodeManifests decodes every YAML document of the directory's files
// strictly, into the Kubernetes API's own types: an unknown or misplaced
// field, a duplicate key or a value of the wrong type is an error, where
// kubectl would drop it (client-side) or the API server might.
func decodeManifests(dir string) (manifests, error) {
	m := manifests{configMaps: map[string]*corev1.ConfigMap{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return m, fmt.Errorf("no manifests in %s (%v)", dir, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return m, err
		}
		for i, doc := range splitYAML(b) {
			if err := m.decode(doc); err != nil {
				return m, fmt.Errorf("%s, document %d: %w", file, i+1, err)
			}
		}
	}
	return m, nil
}

func (m *manifests) decode(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		d := new(appsv1.Deployment)
		if err := yaml.UnmarshalStrict(doc, d); err != nil {
			return err
		}
		m.deployments = append(m.deployments, d)
	case "v1 ConfigMap":
		cm := new(corev1.ConfigMap)
		if err := yaml.UnmarshalStrict(doc, cm); err != nil {
			return err
		}
		m.configMaps[cm.Name] = cm
	default:
		return fmt.Errorf("%s %s: a kind this check does not decode", tm.APIVersion, tm.Kind)
	}
	return nil
}

// splitYAML splits a stream at its "---" lines, dropping empty documents.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, doc := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
	return docs
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// TestStrictDecodingRefuses checks the checker: the mistakes a strict
// decode is here to catch are refused.
func TestStrictDecodingRefuses(t *testing.T) {
	good, err := os.ReadFile("kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"misspelt field", "readinessProbe:", "readinesProbe:"},
		// port at the probe's level, not under httpGet: valid YAML, a
		// probe with no handler.
		{"misplaced field", "              port: probes\n            periodSeconds: 10\n            timeoutSeconds", "            port: probes\n            periodSeconds: 10\n            timeoutSeconds"},
		{"wrong type", "replicas: 1", "replicas: one"},
		{"duplicate key", "  replicas: 1\n", "  replicas: 1\n  replicas: 2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.from, tc.to, 1)
			if bad == string(good) {
				t.Fatalf("the mutation %q does not apply to deployment.yaml", tc.from)
			}
			var m manifests
			if err := m.decode([]byte(bad)); err == nil {
				t.Errorf("decode accepted the deployment with a %s", tc.name)
			}
		})
	}
}

// pod is what the checks need of a recipe's Deployment.
type pod struct {
	dir       string
	spec      corev1.PodSpec
	sidecar   corev1.Container
	caddyfile string // the Caddyfile the sidecar's --config names, from its ConfigMap
	mounts    map[string]corev1.VolumeMount

	annotations map[string]string // the pod template's
}

// loadPod decodes dir's manifests and checks the Deployment's wiring: the
// sidecar and the app, the volumes and who mounts them, the ConfigMap the
// sidecar reads its Caddyfile from.
func loadPod(t *testing.T, dir string) pod {
	t.Helper()
	m, err := decodeManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.deployments) != 1 {
		t.Fatalf("%s: %d Deployments, want 1", dir, len(m.deployments))
	}
	d := m.deployments[0]
	p := pod{dir: dir, spec: d.Spec.Template.Spec, mounts: map[string]corev1.VolumeMount{}, annotations: d.Spec.Template.Annotations}
	if sel, labels := d.Spec.Selector.MatchLabels, d.Spec.Template.Labels; len(sel) == 0 || !subset(sel, labels) {
		t.Errorf("%s: selector %v does not match the pod's labels %v", dir, sel, labels)
	}

	i := slices.IndexFunc(p.spec.InitContainers, func(c corev1.Container) bool { return c.Name == sidecarName })
	if i < 0 {
		t.Fatalf("%s: no init container %q", dir, sidecarName)
	}
	p.sidecar = p.spec.InitContainers[i]
	if rp := p.sidecar.RestartPolicy; rp == nil || *rp != corev1.ContainerRestartPolicyAlways {
		t.Errorf("%s: the sidecar's restartPolicy is not Always: it would be a plain init container", dir)
	}
	if len(p.spec.Containers) == 0 {
		t.Fatalf("%s: no app container", dir)
	}

	volumes := map[string]corev1.Volume{}
	for _, v := range p.spec.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range p.sidecar.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok {
			t.Errorf("%s: the sidecar mounts %q, which is no volume", dir, vm.Name)
		}
		p.mounts[vm.Name] = vm
	}
	// The app never holds the secret: no other container mounts a Secret.
	for _, c := range append(slices.Clone(p.spec.Containers), p.spec.InitContainers...) {
		for _, vm := range c.VolumeMounts {
			if v := volumes[vm.Name]; v.Secret != nil && c.Name != sidecarName {
				t.Errorf("%s: container %q mounts the secret volume %q", dir, c.Name, vm.Name)
			}
		}
	}

	// The Caddyfile: the --config argument, in a mounted ConfigMap.
	config := p.configPath(t)
	for name, vm := range p.mounts {
		v := volumes[name]
		if v.ConfigMap == nil || filepath.Dir(config) != vm.MountPath {
			continue
		}
		cm, ok := m.configMaps[v.ConfigMap.Name]
		if !ok {
			t.Fatalf("%s: volume %q names ConfigMap %q, which is not among the manifests", dir, name, v.ConfigMap.Name)
		}
		p.caddyfile, ok = cm.Data[filepath.Base(config)]
		if !ok {
			t.Fatalf("%s: ConfigMap %q has no key %q", dir, cm.Name, filepath.Base(config))
		}
	}
	if p.caddyfile == "" {
		t.Fatalf("%s: %s is not in a mounted ConfigMap", dir, config)
	}
	return p
}

// configPath is the Caddyfile path the sidecar's command names.
func (p pod) configPath(t *testing.T) string {
	t.Helper()
	cmd := append(slices.Clone(p.sidecar.Command), p.sidecar.Args...)
	i := slices.Index(cmd, "--config")
	if i < 0 || i+1 >= len(cmd) {
		t.Fatalf("no --config in %v", cmd)
	}
	return cmd[i+1]
}

func subset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}

// probePort resolves a probe's port, by name or number, to a number.
func (p pod) probePort(t *testing.T, pr *corev1.Probe) int {
	t.Helper()
	if pr == nil || pr.HTTPGet == nil {
		t.Fatalf("%s: a probe is not an httpGet", p.dir)
	}
	port := pr.HTTPGet.Port
	if port.Type == intstr.Int {
		return port.IntValue()
	}
	for _, cp := range p.sidecar.Ports {
		if cp.Name == port.StrVal {
			return int(cp.ContainerPort)
		}
	}
	t.Fatalf("%s: probe port %q is not one of the sidecar's ports", p.dir, port.StrVal)
	return 0
}

// env is the sidecar's environment as the manifest sets it, with
// status.podIP given as podIP and secrets' values as secretValue.
func (p pod) env(t *testing.T, podIP, secretValue string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range p.sidecar.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			env[e.Name] = podIP
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = secretValue
		default:
			t.Fatalf("%s: env %s comes from a source this check does not give", p.dir, e.Name)
		}
	}
	return env
}

// adapt adapts the pod's Caddyfile with env, as the sidecar would, and
// returns the JSON config.
func adapt(t *testing.T, caddyfile string, env map[string]string) caddyJSON {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting the Caddyfile: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("adapting the Caddyfile: %s:%d: %s", w.File, w.Line, w.Message)
	}
	var cfg caddyJSON
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.raw = out
	return cfg
}

// caddyJSON is what the checks read of an adapted config.
type caddyJSON struct {
	Storage json.RawMessage `json:"storage"`
	Apps    struct {
		HTTP struct {
			Servers map[string]struct {
				Listen []string          `json:"listen"`
				Routes []json.RawMessage `json:"routes"`
			} `json:"servers"`
		} `json:"http"`
	} `json:"apps"`

	raw []byte
}

// server returns the routes of the server listening on addr.
func (c caddyJSON) server(addr string) ([]json.RawMessage, bool) {
	for _, s := range c.Apps.HTTP.Servers {
		if slices.Contains(s.Listen, addr) {
			return s.Routes, true
		}
	}
	return nil, false
}

// routeFor returns the route matching path exactly.
func routeFor(routes []json.RawMessage, path string) string {
	for _, r := range routes {
		var route struct {
			Match []struct {
				Path []string `json:"path"`
			} `json:"match"`
		}
		json.Unmarshal(r, &route)
		for _, m := range route.Match {
			if slices.Contains(m.Path, path) {
				return string(r)
			}
		}
	}
	return ""
}

// TestKubernetesManifests decodes each recipe strictly and checks, against
// its Caddyfile as the sidecar adapts it, that the probes reach the pod
// IP's listener on the right paths, that the signing listener is loopback
// only and the app is pointed at it, and that the secret and the storage
// are where the volumes put them.
func TestKubernetesManifests(t *testing.T) {
	const podIP = "10.1.2.3" // a pod IP; nothing listens, the config is only adapted
	for _, dir := range kubernetesDirs {
		t.Run(dir, func(t *testing.T) {
			p := loadPod(t, dir)
			cfg := adapt(t, p.caddyfile, p.env(t, podIP, "a-redis-password"))

			for _, s := range cfg.Apps.HTTP.Servers {
				for _, l := range s.Listen {
					if !strings.HasPrefix(l, "127.0.0.1:") && !strings.HasPrefix(l, podIP+":") {
						t.Errorf("a server listens on %s: only loopback and the pod IP are meant", l)
					}
				}
			}

			probes := map[string]struct {
				probe   *corev1.Probe
				handler string
			}{
				"readiness": {p.sidecar.ReadinessProbe, `"handler":"webank_sign_health"`},
				"liveness":  {p.sidecar.LivenessProbe, `"handler":"static_response"`},
				"startup":   {p.sidecar.StartupProbe, `"handler":"static_response"`},
			}
			for name, pr := range probes {
				port := p.probePort(t, pr.probe)
				routes, ok := cfg.server(fmt.Sprintf("%s:%d", podIP, port))
				if !ok {
					t.Errorf("%s probe: nothing listens on the pod IP's port %d", name, port)
					continue
				}
				if r := routeFor(routes, pr.probe.HTTPGet.Path); !strings.Contains(r, pr.handler) {
					t.Errorf("%s probe: %s on port %d is not served by %s", name, pr.probe.HTTPGet.Path, port, pr.handler)
				}
			}

			// Prometheus's pod annotations name the metrics handler.
			scrape := fmt.Sprintf("%s:%s", podIP, p.annotations["prometheus.io/port"])
			routes, _ := cfg.server(scrape)
			if r := routeFor(routes, p.annotations["prometheus.io/path"]); !strings.Contains(r, `"handler":"metrics"`) {
				t.Errorf("prometheus.io annotations: %s%s is not served by the metrics handler", scrape, p.annotations["prometheus.io/path"])
			}

			// The app reaches the signing listener, which is loopback only.
			for _, c := range p.spec.Containers {
				for _, e := range c.Env {
					if e.Name != "WEBANK_URL" {
						continue
					}
					u, err := url.Parse(e.Value)
					if err != nil {
						t.Fatal(err)
					}
					routes, ok := cfg.server(u.Host)
					if !ok || !strings.Contains(string(slices.Concat(routes...)), `"handler":"webank_sign"`) {
						t.Errorf("container %s: WEBANK_URL %s is not the sidecar's signing listener", c.Name, e.Value)
					}
				}
			}

			// The secret is read from the Secret volume's file.
			var secretPath string
			for _, v := range p.spec.Volumes {
				if v.Secret != nil && len(v.Secret.Items) == 1 {
					secretPath = filepath.Join(p.mounts[v.Name].MountPath, v.Secret.Items[0].Path)
				}
			}
			if want := `"secret":"{file.` + secretPath + `}"`; secretPath == "" || !bytes.Contains(cfg.raw, []byte(want)) {
				t.Errorf("the Caddyfile does not read the secret from the Secret volume's file %q", secretPath)
			}

			// file_system storage must be on a writable volume: the root
			// file system is read-only.
			if sc := p.sidecar.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("the sidecar's root file system is writable")
			}
			var storage struct {
				Module string `json:"module"`
				Root   string `json:"root"`
			}
			json.Unmarshal(cfg.Storage, &storage)
			switch storage.Module {
			case "file_system":
				if !p.writable(storage.Root) {
					t.Errorf("storage %s is on no writable volume", storage.Root)
				}
			case "redis":
				if dir != "kubernetes/fleet" {
					t.Errorf("storage redis outside the fleet recipe")
				}
			default:
				t.Errorf("storage %q: neither file_system nor redis", storage.Module)
			}
		})
	}
}

// writable reports whether path is inside a volume the sidecar mounts
// read-write.
func (p pod) writable(path string) bool {
	for _, vm := range p.mounts {
		if !vm.ReadOnly && (path == vm.MountPath || strings.HasPrefix(path, vm.MountPath+"/")) {
			return true
		}
	}
	return false
}

// TestFleetCaddyfileIsTheSameButStorage keeps the two recipes' Caddyfiles
// from drifting apart: only the global storage option may differ.
func TestFleetCaddyfileIsTheSameButStorage(t *testing.T) {
	one, fleet := loadPod(t, "kubernetes"), loadPod(t, "kubernetes/fleet")
	if a, b := withoutStorage(one.caddyfile), withoutStorage(fleet.caddyfile); a != b {
		t.Errorf("the Caddyfiles differ beyond their storage:\n%s\n----\n%s", a, b)
	}
}

// withoutStorage drops the storage option, its block and the comment lines
// just above it.
func withoutStorage(caddyfile string) string {
	lines := strings.Split(caddyfile, "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		if strings.HasPrefix(strings.TrimSpace(lines[i]), "storage ") {
			for len(out) > 0 && strings.HasPrefix(strings.TrimSpace(out[len(out)-1]), "#") {
				out = out[:len(out)-1]
			}
			if strings.HasSuffix(lines[i], "{") {
				for i < len(lines) && strings.TrimSpace(lines[i]) != "}" {
					i++
				}
			}
			continue
		}
		out = append(out, lines[i])
	}
	return strings.Join(out, "\n")
}
