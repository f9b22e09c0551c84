package main

import (
	"fmt"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// relay puts WeBank's distance between the clients and the fake: a
// toxiproxy proxy on 127.0.0.1 whose latency toxics delay every byte by
// oneWay in each direction.
//
// A relay in user space cannot delay TCP's own handshake: the kernel answers
// the client's SYN at once, so a new connection to it is ready in
// microseconds where a real one to WeBank takes a round trip before the
// client can send its first byte. With connectRTT, the relay adds that round
// trip back where the client sees it: the first bytes the server sends on
// each connection come one round trip (2 × oneWay) later. In TLS and in HTTP
// the client speaks first, so this is, as the client sees it, exactly a
// connect that takes one round trip. Without it, a new connection costs one
// round trip less than on a real network.
type relay struct {
	proxy *toxiproxy.Proxy
}

// startRelay starts a relay on 127.0.0.1 to upstream. The caller must call
// close.
func startRelay(name, upstream string, oneWay time.Duration, connectRTT bool) (*relay, error) {
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, err
	}
	ms := oneWay.Milliseconds()
	toxicsJSON := []string{
		fmt.Sprintf(`{"name":"to_webank","type":"latency","stream":"upstream","attributes":{"latency":%d}}`, ms),
		fmt.Sprintf(`{"name":"from_webank","type":"latency","stream":"downstream","attributes":{"latency":%d}}`, ms),
	}
	if connectRTT {
		toxicsJSON = append(toxicsJSON,
			fmt.Sprintf(`{"name":"tcp_handshake","type":"%s","stream":"downstream","attributes":{"delay":%d}}`, connectToxicType, 2*ms))
	}
	for _, j := range toxicsJSON {
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(j)); err != nil {
			p.Stop()
			return nil, fmt.Errorf("relay %s: %v", name, err)
		}
	}
	return &relay{proxy: p}, nil
}

// addr returns the host:port r listens on.
func (r *relay) addr() string { return r.proxy.Listen }

// close stops r and closes every connection through it.
func (r *relay) close() { r.proxy.Stop() }

// connectToxicType is the toxiproxy type name of connectToxic.
const connectToxicType = "bench_tcp_handshake"

func init() { toxics.Register(connectToxicType, new(connectToxic)) }

// connectToxic holds back the first chunk of bytes of each connection's
// stream for Delay milliseconds, and passes the rest as they come. On the
// downstream (server to client) stream it stands for the round trip of TCP's
// handshake; see relay.
type connectToxic struct {
	Delay int64 `json:"delay"` // milliseconds
}

// Pipe runs once per connection and stream, so first is per connection.
func (t *connectToxic) Pipe(stub *toxics.ToxicStub) {
	first := true
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if first {
				first = false
				select {
				case <-time.After(time.Duration(t.Delay) * time.Millisecond):
				case <-stub.Interrupt:
					stub.Output <- c // toxiproxy's own toxics drop nothing either
					return
				}
			}
			stub.Output <- c
		}
	}
}
