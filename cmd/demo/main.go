// Command demo runs the signing sidecar end to end with no WeBank account:
// it starts the bundled fake WeBank on 127.0.0.1, loads Caddyfile.example
// into an in-process Caddy (with the webank_sign module) pointed at it, sends
// the unsigned requests a legacy app would send, and shows what the fake
// received and what came back. Then it walks one face verification from
// start to finish as an app without the secret runs it: the faceId, the H5
// login URL, the user's browser at WeBank's login page, the check of the
// callback, the result; and an SDK launch.
//
//	go run ./cmd/demo                # the sample requests, then exit
//	go run ./cmd/demo -serve         # keep serving on 127.0.0.1:8080 for curl
//
// It must be run from the repository root (or given -config).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/webanksign/caddy-webanksign"
	"github.com/webanksign/caddy-webanksign/webanktest"
)

const (
	demoAppID  = "IDADEMO1"
	demoSecret = "demo-secret-not-a-real-one-0123456789abcdefghijklmnopqrstuvwxyz"
)

func main() {
	config := flag.String("config", "Caddyfile.example", "the Caddyfile to load")
	serve := flag.Bool("serve", false, "keep serving after the sample requests, until interrupted")
	port := flag.Int("port", 8080, "sidecar port with -serve (without it, a free port is used)")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*config, *serve, *port); err != nil {
		log.Fatal("demo: ", err)
	}
}

func run(configPath string, serve bool, port int) error {
	src, err := os.ReadFile(configPath)
	if err != nil {
		return fmt.Errorf("%v (run from the repository root, or pass -config)", err)
	}
	fake := webanktest.NewServer(webanktest.Options{
		Apps:       map[string]string{demoAppID: demoSecret},
		PhotoBytes: 256 << 10,
	})
	defer fake.Close()
	if !serve {
		if port, err = freePort(); err != nil {
			return err
		}
	}

	// What Caddyfile.example reads from the environment: credentials at run
	// time ({env.*}), addresses when it is adapted ({$*}).
	for k, v := range map[string]string{
		"WEBANK_APP_ID":     demoAppID,
		"WEBANK_SECRET":     demoSecret,
		"WEBANK_BASE_URL":   fake.URL,
		"WEBANK_UPSTREAM":   fake.URL,
		"WEBANK_LOGIN_URL":  fake.URL,
		"WEBANK_SIGN_PORT":  strconv.Itoa(port),
		"WEBANK_SIGN_BIND":  "127.0.0.1",
		"WEBANK_SIGN_ADMIN": "off",
	} {
		os.Setenv(k, v)
	}
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": configPath})
	if err != nil {
		return fmt.Errorf("adapting %s: %v", configPath, err)
	}
	for _, w := range warnings {
		log.Printf("%s:%d: %s", w.File, w.Line, w.Message)
	}
	state, err := os.MkdirTemp("", "webanksign-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	if cfg, err = demoConfig(cfg, state); err != nil {
		return err
	}
	if err := caddy.Load(cfg, true); err != nil {
		return fmt.Errorf("starting caddy: %v", err)
	}
	defer caddy.Stop()

	sidecar := fmt.Sprintf("http://127.0.0.1:%d", port)
	fmt.Printf("fake WeBank  %s   (app_id %s, a demo secret: no account needed)\n", fake.URL, demoAppID)
	fmt.Printf("sidecar      %s   (%s in an in-process Caddy with webank_sign)\n\n", sidecar, configPath)

	for i, req := range []struct{ method, path, body string }{
		{"GET", "/api/server/getOcrResult?order_no=ORD20261126001", ""},
		{"GET", "/api/server/getOcrResult?order_no=ORD20261126002&get_file=1", ""},
		{"GET", "/api/server/getBankCardOcrResult?order_no=CARD20261126001", ""},
		{"GET", "/api/server/sync?order_no=FACE20261126001", ""},
		{"POST", "/api/v2/base/queryfacerecord", `{"orderNo":"FACE20261126002","queryVersion":"1.0"}`},
		{"GET", "/api/server/getOcrResult?order_no=ORD-1;DROP", ""},
		{"GET", "/api/server/getOcrResult?order_no=ORD20261126003&app_id=IDAOTHER", ""},
	} {
		if err := show(fake, sidecar, req.method, req.path, req.body, i == 0); err != nil {
			return err
		}
	}
	if err := walk(fake, sidecar); err != nil {
		return err
	}
	signed := int64(0)
	for _, p := range []string{webanktest.PathOCR, webanktest.PathBankCard, webanktest.PathSync, webanktest.PathFaceRecord, webanktest.PathAdvFaceID} {
		signed += fake.Calls(p)
	}
	fmt.Printf("fake WeBank counted: %d access_token call(s), %d SIGN ticket call(s), %d NONCE ticket(s), %d signed API call(s), %d login(s), %d bad signature(s)\n",
		fake.TokenCalls(), fake.TicketCalls(), fake.NonceTickets(), signed, fake.Logins()+fake.SDKLogins(), fake.BadSignatures())
	if fake.BadSignatures() != 0 || fake.TokenCalls() != 1 || signed != 7 || fake.NonceTickets() != 2 {
		return fmt.Errorf("unexpected counts at the fake WeBank")
	}
	if !serve {
		return nil
	}
	fmt.Printf("\nserving; try:  curl '%s/api/server/getOcrResult?order_no=ORD20261126001'   (Ctrl-C to stop)\n", sidecar)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	return nil
}

// show sends one unsigned request as a legacy app would and prints what
// the fake WeBank received and what the app got back.
func show(fake *webanktest.Server, sidecar, method, path, body string, full bool) error {
	api, _, _ := strings.Cut(path, "?")
	before := len(fake.Requests(api))
	fmt.Printf("legacy app → %s %s %s\n", method, path, body)
	req, err := http.NewRequest(method, sidecar+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if qs := fake.Requests(api); len(qs) > before {
		q := qs[len(qs)-1]
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			v := q.Get(k)
			if k == "sign" {
				v = v[:6] + "…(40 hex, checked by the fake)"
			}
			if strings.HasPrefix(k, "header:") {
				continue
			}
			parts = append(parts, k+"="+v)
		}
		fmt.Printf("  sidecar → WeBank: %s\n", strings.Join(parts, " "))
	} else {
		fmt.Printf("  not forwarded\n")
	}
	fmt.Printf("  ← %s, %d bytes\n", resp.Status, len(answer))
	fmt.Printf("  %s\n\n", summarize(answer, full))
	return nil
}

// summarize shortens photos so that the answer fits a screen, and with
// full false hides the result fields.
func summarize(body []byte, full bool) string {
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return string(body)
	}
	if r, ok := v["result"].(map[string]any); ok {
		for k, x := range r {
			if s, ok := x.(string); ok && len(s) > 256 { // photos

				r[k] = fmt.Sprintf("%s… (%d bytes of base64)", s[:16], len(s))
			}
		}
		if !full {
			v["result"] = fmt.Sprintf("{… %d fields …}", len(r))
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("  ", "  ")
	enc.Encode(v)
	return strings.TrimSpace(out.String())
}

// demoConfig sets Caddy's default log level to WARN for the demo's output,
// keeps Caddy's storage (the demo's ticket) in the directory state, which
// the demo removes, and stops Caddy saving the config: the demo leaves
// nothing behind in the user's home.
func demoConfig(cfg []byte, state string) ([]byte, error) {
	var c map[string]any
	if err := json.Unmarshal(cfg, &c); err != nil {
		return nil, err
	}
	c["logging"] = map[string]any{"logs": map[string]any{"default": map[string]any{"level": "WARN"}}}
	c["storage"] = map[string]any{"module": "file_system", "root": state}
	admin, _ := c["admin"].(map[string]any)
	if admin == nil {
		admin = map[string]any{}
	}
	admin["config"] = map[string]any{"persist": false}
	c["admin"] = admin
	return json.Marshal(c)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
