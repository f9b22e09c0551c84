package main

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// reloads reloads the sidecar's config k times and, after each, makes two
// calls through site b, one at a time: whether the first opens a new
// connection to WeBank (a TLS handshake) is what a reload costs. It also
// counts the access tokens fetched, which should be none: the ticket cache
// outlives a reload.
func reloads(ctx context.Context, sc *sidecar, wb *webank, b *benchCase, k int) error {
	fmt.Printf("\n## The first calls through the sidecar (b) after a config reload\n\n")
	fmt.Println("| reload | 1st call ms | its TLS handshakes | 2nd call ms | its TLS handshakes | access tokens fetched |")
	fmt.Println("|---|---|---|---|---|---|")
	if _, err := b.once(ctx); err != nil {
		return fmt.Errorf("%s: warm-up: %v", b.label, err)
	}
	for i := range k {
		tokens := wb.fake.TokenCalls()
		if err := sc.reload(); err != nil {
			return fmt.Errorf("reload: %v", err)
		}
		first, err := b.once(ctx)
		if err != nil {
			return fmt.Errorf("%s after reload: %v", b.label, err)
		}
		second, err := b.once(ctx)
		if err != nil {
			return fmt.Errorf("%s after reload: %v", b.label, err)
		}
		fmt.Printf("| %d | %s | %d | %s | %d | %d |\n", i+1, ms(first.lat), first.handshakes, ms(second.lat), second.handshakes,
			wb.fake.TokenCalls()-tokens)
	}
	return nil
}

// idlePeriods lets three sites idle for longer than the short idle timeout,
// rounds times, and then makes one call through each, one at a time: Caddy's
// defaults (keepalive 2m), Caddy's keepalive shortened, and Caddy's defaults
// against a WeBank that closes idle connections after the short timeout.
// Each round starts with a call through each site, not counted, so that
// each has a connection to lose.
func idlePeriods(ctx context.Context, wb *webank, dflt, short, serverIdle *sidecarSite, o options) error {
	idle := o.shortIdle + o.shortIdle/2
	client := newConnClient(nil)
	cases := []*benchCase{
		{label: "b", desc: "Caddy's defaults (keepalive 2m)", handshakes: &wb.main.handshakes, call: sidecarCaller(client, dflt.url)},
		{label: "b-short", desc: fmt.Sprintf("keepalive %v", o.shortIdle), handshakes: &wb.main.handshakes, call: sidecarCaller(client, short.url)},
		{label: "b-server", desc: fmt.Sprintf("Caddy's defaults, WeBank closes connections idle for %v", o.shortIdle),
			handshakes: &wb.idle.handshakes, call: sidecarCaller(client, serverIdle.url)},
	}
	for range o.idleRounds {
		for _, c := range cases {
			if _, err := c.once(ctx); err != nil {
				return fmt.Errorf("%s: warm-up: %v", c.label, err)
			}
		}
		select { // the idle period is what is measured, not a wait for something
		case <-time.After(idle):
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, c := range cases {
			if err := c.record(ctx); err != nil {
				return err
			}
		}
	}
	printTable(fmt.Sprintf("## The first call after %v idle", idle), cases)
	return nil
}

// runtimeProcs returns GOMAXPROCS.
func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
