package main

import (
	"context"
	"testing"
	"time"
)

// TestRun runs every measurement of the command once, small and with a
// short distance: every call must be answered with code "0" by the fake
// WeBank, which checks every signature, and the sidecar must start,
// reload and stop. No figure is checked: they are the machine's.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy, a relay and the fake WeBank")
	}
	o := options{
		n:           3,
		burst:       2,
		burstRounds: 2,
		wideBurst:   4,
		wideRounds:  1,
		oneWay:      time.Millisecond,
		connectRTT:  true,
		reloads:     1,
		idleRounds:  1,
		shortIdle:   200 * time.Millisecond,
	}
	if err := run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}
