package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// benchCase is one way of calling getOcrResult, and what was measured of it.
type benchCase struct {
	label      string
	desc       string
	call       caller
	handshakes *atomic.Int64 // TLS handshakes completed by the server its calls reach

	lat            []time.Duration // one per measured call
	madeHandshakes int64           // TLS handshakes with WeBank made by the measured calls
	cpu            time.Duration   // CPU time of this process during the measured calls
}

// reset forgets what was measured of c.
func (c *benchCase) reset() { c.lat, c.madeHandshakes, c.cpu = nil, 0, 0 }

// orders numbers the calls: every call asks for its own order.
var orders atomic.Int64

// nextOrder returns a new order number.
func nextOrder() string { return fmt.Sprintf("ORD%012d", orders.Add(1)) }

// callFigures is what one call, or one burst of calls, cost.
type callFigures struct {
	lat        time.Duration
	handshakes int64         // TLS handshakes with WeBank
	cpu        time.Duration // of this whole process: client, sidecar, relay and fake
}

// once makes one call of c, alone, and returns its figures.
func (c *benchCase) once(ctx context.Context) (callFigures, error) {
	handshakes, cpu := c.handshakes.Load(), cpuTime()
	start := time.Now()
	err := c.call(ctx, nextOrder())
	lat := time.Since(start)
	return callFigures{lat, c.handshakes.Load() - handshakes, cpuTime() - cpu}, err
}

// record makes one call of c, alone, and keeps its figures.
func (c *benchCase) record(ctx context.Context) error {
	f, err := c.once(ctx)
	if err != nil {
		return fmt.Errorf("%s: %v", c.label, err)
	}
	c.lat = append(c.lat, f.lat)
	c.madeHandshakes += f.handshakes
	c.cpu += f.cpu
	return nil
}

// burst makes size calls of c at once, and keeps their figures if keep.
// Nothing else calls meanwhile, so the handshakes the fake completes are
// c's, but for one kind: Go's transport starts a dial for a call that finds
// no idle connection, and if another connection frees up first, the call
// takes that one and the dial goes on alone, finishing maybe after the
// burst (and then counted in whatever runs next).
func (c *benchCase) burst(ctx context.Context, size int, keep bool) error {
	start := make(chan struct{})
	lat := make([]time.Duration, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i := range size {
		wg.Go(func() {
			<-start
			t := time.Now()
			errs[i] = c.call(ctx, nextOrder())
			lat[i] = time.Since(t)
		})
	}
	handshakes, cpu := c.handshakes.Load(), cpuTime()
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("%s: %v", c.label, err)
		}
	}
	if keep {
		c.lat = append(c.lat, lat...)
		c.madeHandshakes += c.handshakes.Load() - handshakes
		c.cpu += cpuTime() - cpu
	}
	return nil
}

// sequential makes n calls of each case one at a time, interleaved (one of
// each in turn, the order rotating), so that a change in the machine's
// speed weighs on every case alike. Each case first makes one call that is
// not kept: the sidecar's first fetches its ticket, and the pool's first
// opens its connection.
func sequential(ctx context.Context, cases []*benchCase, n int) error {
	for _, c := range cases {
		c.reset()
		if _, err := c.once(ctx); err != nil {
			return fmt.Errorf("%s: warm-up: %v", c.label, err)
		}
	}
	for i := range n {
		for j := range cases {
			if err := cases[(i+j)%len(cases)].record(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// bursts makes rounds bursts of size calls of each case, interleaved as
// sequential does. Each case's first burst is not kept: it fills the pools.
func bursts(ctx context.Context, cases []*benchCase, size, rounds int) error {
	for _, c := range cases {
		c.reset()
		if err := c.burst(ctx, size, false); err != nil {
			return fmt.Errorf("warm-up: %v", err)
		}
	}
	for i := range rounds {
		for j := range cases {
			if err := cases[(i+j)%len(cases)].burst(ctx, size, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// summary is the figures of one case.
type summary struct {
	calls             int
	p50, p99, max     time.Duration
	handshakesPerCall float64
	cpuPerCall        time.Duration
}

// summarize returns c's figures. p50 and p99 are nearest-rank percentiles.
func (c *benchCase) summarize() summary {
	s := slices.Clone(c.lat)
	slices.Sort(s)
	if len(s) == 0 {
		return summary{}
	}
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return summary{
		calls:             len(s),
		p50:               rank(0.50),
		p99:               rank(0.99),
		max:               s[len(s)-1],
		handshakesPerCall: float64(c.madeHandshakes) / float64(len(s)),
		cpuPerCall:        c.cpu / time.Duration(len(s)),
	}
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// printTable prints the figures of cases as a Markdown table.
func printTable(title string, cases []*benchCase) {
	fmt.Printf("\n%s\n\n", title)
	fmt.Println("| case | calls | p50 ms | p99 ms | max ms | TLS handshakes with WeBank per call | CPU µs per call (all of it) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, c := range cases {
		s := c.summarize()
		fmt.Printf("| %s %s | %d | %s | %s | %s | %.2f | %d |\n", c.label, c.desc, s.calls, ms(s.p50), ms(s.p99), ms(s.max),
			s.handshakesPerCall, s.cpuPerCall.Microseconds())
	}
}

// printRatios prints b against a and c, with the targets.
func printRatios(a, b, c *benchCase) {
	sa, sb, sc := a.summarize(), b.summarize(), c.summarize()
	fmt.Printf("\n%s/%s: p50 %.3f, p99 %.3f (target ≤ 0.5)\n", b.label, a.label,
		float64(sb.p50)/float64(sa.p50), float64(sb.p99)/float64(sa.p99))
	fmt.Printf("%s − %s: p50 %+.2f ms, p99 %+.2f ms (target ≤ +1 ms)\n", b.label, c.label,
		float64(sb.p50-sc.p50)/float64(time.Millisecond), float64(sb.p99-sc.p99)/float64(time.Millisecond))
}

// printDiff prints the difference of x's and y's p50 and p99.
func printDiff(x, y *benchCase) {
	sx, sy := x.summarize(), y.summarize()
	fmt.Printf("%s − %s: p50 %+.2f ms, p99 %+.2f ms\n", x.label, y.label,
		float64(sx.p50-sy.p50)/float64(time.Millisecond), float64(sx.p99-sy.p99)/float64(time.Millisecond))
}

// cpuTime returns the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail with these arguments
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// printPaired prints, for two cases measured by sequential (whose i-th
// calls ran one right after the other), the median of the differences of
// their i-th calls and how often the difference exceeded 1 ms. Differences
// taken call by call are spared most of what other work on the machine
// does to both, which the percentiles of each are not.
func printPaired(x, y *benchCase) {
	n := min(len(x.lat), len(y.lat))
	if n == 0 {
		return
	}
	diffs := make([]time.Duration, n)
	over := 0
	for i := range n {
		diffs[i] = x.lat[i] - y.lat[i]
		if diffs[i] > time.Millisecond {
			over++
		}
	}
	slices.Sort(diffs)
	fmt.Printf("%s − %s call by call: median %+.2f ms, over +1 ms in %.0f%% of %d pairs\n", x.label, y.label,
		float64(diffs[(n-1)/2])/float64(time.Millisecond), 100*float64(over)/float64(n), n)
}
