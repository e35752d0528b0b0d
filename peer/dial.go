package peer

import (
	"context"
	"net"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// link is a signaling connection: the client, and the TCP connection
// under it.
type link struct {
	*signal.Client
	tcp net.Conn // nil if unknown
}

// closedByServer reports whether the server's end of the connection is
// known to be closed although the client's reader may not have seen it
// yet. A message written then would be lost; the outbox keeps it instead.
func (l *link) closedByServer() bool {
	return l.tcp != nil && closedByServer(l.tcp)
}

// dial is signal.Dial with cancellation: gorilla's dialer applies only the
// context's deadline to the WebSocket handshake, so a server that accepts
// the TCP connection and never answers would hold the dial (and Close)
// until then. Here the connection being dialed is closed as soon as ctx
// is done. It also keeps the TCP connection, for closedByServer.
func dial(ctx context.Context, url string, opts *signal.DialOptions) (*link, error) {
	o := signal.DialOptions{}
	if opts != nil {
		o = *opts
	}
	d := websocket.DefaultDialer
	if o.Dialer != nil {
		d = o.Dialer
	}
	dd := *d
	netDial := dd.NetDialContext
	switch {
	case netDial != nil:
	case dd.NetDial != nil:
		nd := dd.NetDial
		netDial = func(_ context.Context, network, addr string) (net.Conn, error) { return nd(network, addr) }
	default:
		var nd net.Dialer
		netDial = nd.DialContext
	}
	var mu sync.Mutex
	var conns []net.Conn // guarded by mu
	cancelled := false   // guarded by mu
	dd.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := netDial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if cancelled {
			_ = c.Close()
			return nil, context.Canceled
		}
		conns = append(conns, c)
		return c, nil
	}
	o.Dialer = &dd
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		cancelled = true
		for _, c := range conns {
			_ = c.Close()
		}
	})
	c, err := signal.Dial(ctx, url, &o)
	if !stop() && err == nil {
		// ctx ended just as the dial succeeded: the connection is closed.
		c.Abort()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	l := &link{Client: c}
	mu.Lock()
	if len(conns) > 0 {
		l.tcp = conns[len(conns)-1]
	}
	mu.Unlock()
	return l, nil
}
