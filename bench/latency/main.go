// Command latency measures getOcrResult's latency as a legacy app sees it,
// with WeBank tens of milliseconds away over TLS (issue 14, target 3).
//
//	bench/latency/run.sh                 # about 2 minutes
//	bench/latency/run.sh -n 100          # shorter
//
// Everything runs in this process, on 127.0.0.1, and stops when it exits:
//
//   - the fake WeBank (webanktest), over HTTPS with httptest's self-signed
//     certificate, checking every signature as WeBank does;
//   - a toxiproxy relay in front of it, delaying every byte by -one-way
//     (20 ms) each way, and with -connect-rtt (the default) a new
//     connection's first answer by one more round trip, the TCP handshake a
//     user-space relay cannot delay (see relay.go);
//   - Caddy with webank_sign and reverse_proxy to the relay over HTTPS,
//     trusting the fake's certificate (tls_trust_pool file), in four sites:
//     Caddy's keep-alive defaults; keepalive_idle_conns_per_host 128;
//     keepalive -short-keepalive; and the defaults against a second fake
//     WeBank server that closes connections idle for -short-keepalive; and
//     a fifth site with reverse_proxy alone, for comparison.
//
// and measures, the ticket warm (each case's first call is not counted):
//
//	a  a client that opens a new HTTPS connection per call, straight to the
//	   relay, signing by itself with a ticket it fetched once
//	b  the same kind of client, unsigned, through the sidecar on loopback
//	   HTTP, a new TCP connection per call
//	c  a client with a perfect keep-alive pool, straight to the relay,
//	   signing by itself
//	b-ka  b's client keeping its connection to the sidecar (sequential only),
//	   which tells the cost of the loopback connection from Caddy's
//	p  plain Caddy: a's client, signing by itself, through a Caddy site with
//	   reverse_proxy alone on loopback HTTP, a new TCP connection per call
//	   (sequentially and in small bursts); b − p is webank_sign's own share
//	   of b − c
//	d  sdk_sign through the sidecar (webank_sign_local), a new TCP
//	   connection per call: one NONCE ticket fetched from WeBank per call
//
// sequentially (interleaved, -n calls each), in bursts of -burst, and b, c
// and d in bursts of -wide-burst (beyond Caddy's 32 idle connections per
// host, and sdk_sign's 16 NONCE fetches at once);
// then the first call after each of -reloads config reloads, and after an
// idle period longer than the short keep-alive. It prints Markdown tables
// of p50, p99, the TLS handshakes with WeBank and the CPU time (of this
// whole process) per call.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	n           int
	burst       int
	burstRounds int
	wideBurst   int
	wideRounds  int
	oneWay      time.Duration
	connectRTT  bool
	reloads     int
	idleRounds  int
	shortIdle   time.Duration
	verbose     bool
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 300, "sequential calls per case")
	flag.IntVar(&o.burst, "burst", 8, "calls at once in a small burst")
	flag.IntVar(&o.burstRounds, "burst-rounds", 40, "small bursts per case")
	flag.IntVar(&o.wideBurst, "wide-burst", 64, "calls at once in a burst beyond Caddy's 32 idle connections per host")
	flag.IntVar(&o.wideRounds, "wide-rounds", 10, "wide bursts per case")
	flag.DurationVar(&o.oneWay, "one-way", 20*time.Millisecond, "delay the relay adds in each direction")
	flag.BoolVar(&o.connectRTT, "connect-rtt", true, "add the TCP handshake's round trip to every new connection through the relay")
	flag.IntVar(&o.reloads, "reloads", 5, "config reloads, each followed by two calls")
	flag.IntVar(&o.idleRounds, "idle-rounds", 3, "idle periods, each followed by one call per site")
	flag.DurationVar(&o.shortIdle, "short-keepalive", 2*time.Second, "the short idle timeout: Caddy's keepalive, and the second fake's")
	flag.BoolVar(&o.verbose, "v", false, "print the sidecar's Caddyfile")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			err = fmt.Errorf("interrupted")
		}
		stop()
		// Not log.Fatal: Caddy has taken over the standard logger.
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

// run sets everything up, measures and prints, and stops everything it
// started before it returns.
func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "webank-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	wb, err := startWeBank(dir, o.shortIdle)
	if err != nil {
		return err
	}
	defer wb.close()
	mainRelay, err := startRelay("webank", wb.main.addr(), o.oneWay, o.connectRTT)
	if err != nil {
		return err
	}
	defer mainRelay.close()
	idleRelay, err := startRelay("webank-idle", wb.idle.addr(), o.oneWay, o.connectRTT)
	if err != nil {
		return err
	}
	defer idleRelay.close()
	// The module fetches tokens and tickets with a client that trusts the
	// system's roots: in this process, the fake's certificate is the one
	// root. Nothing has loaded the system's roots yet.
	os.Setenv("SSL_CERT_FILE", wb.caFile)
	relayURL := "https://" + mainRelay.addr()

	sites := struct{ dflt, wide, short, serverIdle, plain *sidecarSite }{
		dflt:       &sidecarSite{name: "Caddy's keep-alive defaults", upstream: mainRelay.addr(), launches: true},
		wide:       &sidecarSite{name: "more idle connections", upstream: mainRelay.addr(), transport: "keepalive_idle_conns_per_host 128"},
		short:      &sidecarSite{name: "short keep-alive", upstream: mainRelay.addr(), transport: "keepalive " + o.shortIdle.String()},
		serverIdle: &sidecarSite{name: "WeBank closes idle connections", upstream: idleRelay.addr()},
		plain:      &sidecarSite{name: "plain Caddy, no webank_sign", upstream: mainRelay.addr(), plain: true},
	}
	sc, caddyfile, err := startSidecar(dir, []*sidecarSite{sites.dflt, sites.wide, sites.short, sites.serverIdle, sites.plain}, relayURL, wb.caFile)
	if o.verbose || err != nil {
		fmt.Fprintln(os.Stderr, caddyfile)
	}
	if err != nil {
		return err
	}
	defer sc.stop()

	s, err := fetchSigner(ctx, wb.oauth.URL, clientAppID, clientSecret)
	if err != nil {
		return err
	}
	handshakes := &wb.main.handshakes
	a := &benchCase{label: "a", desc: "direct, new HTTPS connection per call", handshakes: handshakes,
		call: directCaller(newConnClient(wb.roots), relayURL, s)}
	b := &benchCase{label: "b", desc: "sidecar, new loopback TCP connection per call", handshakes: handshakes,
		call: sidecarCaller(newConnClient(nil), sites.dflt.url)}
	c := &benchCase{label: "c", desc: "direct, keep-alive pool", handshakes: handshakes,
		call: directCaller(newPoolClient(wb.roots), relayURL, s)}
	bPooled := &benchCase{label: "b-ka", desc: "sidecar, the client keeping its loopback connection", handshakes: handshakes,
		call: sidecarCaller(newPoolClient(nil), sites.dflt.url)}
	d := &benchCase{label: "d", desc: "sidecar's sdk_sign, new loopback TCP connection per call", handshakes: handshakes,
		call: sdkSignCaller(newConnClient(nil), sites.dflt.url)}
	plain := &benchCase{label: "p", desc: "plain Caddy reverse_proxy, the client signing by itself, new loopback TCP connection per call",
		handshakes: handshakes, call: directCaller(newConnClient(nil), sites.plain.url, s)}
	bWide := &benchCase{label: "b128", desc: "sidecar, keepalive_idle_conns_per_host 128", handshakes: handshakes,
		call: sidecarCaller(newConnClient(nil), sites.wide.url)}

	fmt.Printf("# getOcrResult latency: %v each way", o.oneWay)
	if o.connectRTT {
		fmt.Printf(", a new connection's TCP handshake one round trip more")
	}
	fmt.Printf("; GOMAXPROCS %d; %s\n", runtimeProcs(), time.Now().UTC().Format(time.RFC3339))

	started := time.Now()
	nonces := wb.fake.NonceTickets()
	if err := sequential(ctx, []*benchCase{a, b, c, bPooled, plain, d}, o.n); err != nil {
		return err
	}
	printTable("## Sequential, one call at a time (interleaved)", []*benchCase{a, b, c, bPooled, plain, d})
	printRatios(a, b, c)
	printPaired(b, c)
	printPaired(bPooled, c)
	printPaired(plain, c)
	printPaired(b, plain)
	printPaired(d, c)
	printPaired(d, b)
	// Every d call, its warm-up included, and nothing else fetches NONCE tickets.
	fmt.Printf("NONCE tickets issued per sdk_sign call: %.2f\n", float64(wb.fake.NonceTickets()-nonces)/float64(o.n+1))

	if err := bursts(ctx, []*benchCase{a, b, c, plain, d}, o.burst, o.burstRounds); err != nil {
		return err
	}
	printTable(fmt.Sprintf("## Bursts of %d calls at once", o.burst), []*benchCase{a, b, c, plain, d})
	printRatios(a, b, c)
	printDiff(b, plain)

	if err := bursts(ctx, []*benchCase{b, bWide, c, d}, o.wideBurst, o.wideRounds); err != nil {
		return err
	}
	printTable(fmt.Sprintf("## Bursts of %d calls at once (Caddy keeps 32 idle connections per host by default; "+
		"sdk_sign fetches at most 16 NONCE tickets at once, and keeps their connections to WeBank)", o.wideBurst),
		[]*benchCase{b, bWide, c, d})

	if err := reloads(ctx, sc, wb, b, o.reloads); err != nil {
		return err
	}
	if err := idlePeriods(ctx, wb, sites.dflt, sites.short, sites.serverIdle, o); err != nil {
		return err
	}
	if n := wb.fake.BadSignatures(); n != 0 {
		return fmt.Errorf("the fake WeBank counted %d bad signatures", n)
	}
	fmt.Printf("\nmeasured in %s; the fake WeBank saw no bad signature\n", time.Since(started).Round(time.Second))
	return nil
}
