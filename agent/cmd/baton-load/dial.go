package main

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// sourceAddrs is how many loopback source addresses (127.0.0.1 to
// 127.0.0.N) the agents' connections are spread over. Every agent holds up
// to three connections to the one server port (control stream, reserve
// poll, a keep-alive one), and one source address has only the ephemeral
// port range (about 28,000 ports) to give out.
const sourceAddrs = 16

// spreadSourceAddrs makes every connection dialled through a clone of
// http.DefaultTransport (rpc.New clones it for each agent) come from the
// next of sourceAddrs loopback addresses in turn. Call it before any
// client is made.
func spreadSourceAddrs() {
	var next atomic.Uint32
	t := http.DefaultTransport.(*http.Transport)
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		ip := net.IPv4(127, 0, 0, byte(1+next.Add(1)%sourceAddrs))
		d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
		return d.DialContext(ctx, network, addr)
	}
}
