package signaltest

import (
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxRoundRobinConns bounds the connections a RoundRobin holds at once;
// past it new connections are closed at once.
const maxRoundRobinConns = 4096

// rrDialTimeout bounds the dial to a backend.
const rrDialTimeout = 2 * time.Second

// RoundRobin is a TCP proxy that spreads connections over backends in
// turn, as a load balancer in round-robin mode does: each new connection
// goes to the next backend of the list, and bytes are copied both ways
// unchanged (a WebSocket upgrade passes through). A backend that refuses
// the connection is skipped for the next one; with none left the client's
// connection is closed.
//
// Backends can be changed while it runs (SetBackends, Add, Remove), as
// when a node restarts; connections already open stay on their backend
// until either side closes them, or CloseBackend cuts them.
//
// Its methods are safe for concurrent use.
type RoundRobin struct {
	// Addr is the proxy's address, 127.0.0.1:PORT.
	Addr string
	// URL is the proxy's WebSocket endpoint, ws://127.0.0.1:PORT/ws.
	URL string
	// HTTP is the proxy's HTTP base URL, http://127.0.0.1:PORT.
	HTTP string

	ln net.Listener

	mu       sync.Mutex
	backends []string             // guarded by mu: host:port of each backend
	next     int                  // guarded by mu: index of the next backend
	conns    map[*rrConn]struct{} // guarded by mu: open proxied connections
	counts   map[string]int       // guarded by mu: connections sent to each backend so far
	closed   bool                 // guarded by mu
	wg       sync.WaitGroup       // the accept loop and two copiers per connection
}

// rrConn is one proxied connection: the client's and the backend's.
type rrConn struct {
	client, backend net.Conn
	to              string // the backend's host:port
}

// NewRoundRobin starts a round-robin proxy on a random port of 127.0.0.1
// in front of backends (URLs such as http://127.0.0.1:PORT or
// ws://127.0.0.1:PORT/ws, of which the host and port count, or bare
// host:port) and closes it when the test ends.
func NewRoundRobin(tb testing.TB, backends ...string) *RoundRobin {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &RoundRobin{
		ln:     ln,
		Addr:   ln.Addr().String(),
		conns:  make(map[*rrConn]struct{}),
		counts: make(map[string]int),
	}
	p.URL = "ws://" + p.Addr + "/ws"
	p.HTTP = "http://" + p.Addr
	if err := p.SetBackends(backends...); err != nil {
		_ = ln.Close()
		tb.Fatal(err)
	}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// hostPort returns the host:port of a backend given as a URL or as
// host:port.
func hostPort(backend string) (string, error) {
	if strings.Contains(backend, "://") {
		u, err := url.Parse(backend)
		if err != nil || u.Host == "" {
			return "", errors.New("signaltest: backend " + backend + " is not a URL with a host")
		}
		return u.Host, nil
	}
	if _, _, err := net.SplitHostPort(backend); err != nil {
		return "", errors.New("signaltest: backend " + backend + " is neither a URL nor host:port")
	}
	return backend, nil
}

// SetBackends replaces the list of backends; the next connection goes to
// the first.
func (p *RoundRobin) SetBackends(backends ...string) error {
	hps := make([]string, 0, len(backends))
	for _, b := range backends {
		hp, err := hostPort(b)
		if err != nil {
			return err
		}
		hps = append(hps, hp)
	}
	p.mu.Lock()
	p.backends, p.next = hps, 0
	p.mu.Unlock()
	return nil
}

// Add appends a backend to the list.
func (p *RoundRobin) Add(backend string) error {
	hp, err := hostPort(backend)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.backends = append(p.backends, hp)
	p.mu.Unlock()
	return nil
}

// Remove takes a backend out of the list: new connections no longer go
// to it; those open stay. It reports whether the backend was listed.
func (p *RoundRobin) Remove(backend string) bool {
	hp, err := hostPort(backend)
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, b := range p.backends {
		if b == hp {
			p.backends = append(p.backends[:i:i], p.backends[i+1:]...)
			if p.next > i {
				p.next--
			}
			return true
		}
	}
	return false
}

// Backends returns the current list of backends (host:port).
func (p *RoundRobin) Backends() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.backends...)
}

// Count returns how many connections were sent to backend so far.
func (p *RoundRobin) Count(backend string) int {
	hp, err := hostPort(backend)
	if err != nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[hp]
}

// Open returns how many proxied connections are open.
func (p *RoundRobin) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// CloseBackend cuts every open connection to backend (both sides, no
// close frame), as a load balancer does when a backend dies. It returns
// how many it cut.
func (p *RoundRobin) CloseBackend(backend string) int {
	hp, err := hostPort(backend)
	if err != nil {
		return 0
	}
	p.mu.Lock()
	var cut []*rrConn
	for c := range p.conns {
		if c.to == hp {
			cut = append(cut, c)
		}
	}
	p.mu.Unlock()
	for _, c := range cut {
		_ = c.client.Close()
		_ = c.backend.Close()
	}
	return len(cut)
}

// Close stops the proxy, cuts every connection and waits for its
// goroutines.
func (p *RoundRobin) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	all := make([]*rrConn, 0, len(p.conns))
	for c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range all {
		_ = c.client.Close()
		_ = c.backend.Close()
	}
	p.wg.Wait()
}

func (p *RoundRobin) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		full := p.closed || len(p.conns) >= maxRoundRobinConns
		p.mu.Unlock()
		if full {
			_ = c.Close()
			continue
		}
		// The dial happens on the connection's own goroutine, so that a
		// slow backend does not hold the others up.
		p.wg.Add(1)
		go p.serve(c)
	}
}

// pick returns the backends to try for a new connection, the next one
// first, and advances the turn.
func (p *RoundRobin) pick() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.backends)
	if n == 0 {
		return nil
	}
	start := p.next % n
	p.next = (start + 1) % n
	order := make([]string, 0, n)
	for i := range n {
		order = append(order, p.backends[(start+i)%n])
	}
	return order
}

// serve proxies one client connection to the next backend that answers.
func (p *RoundRobin) serve(client net.Conn) {
	defer p.wg.Done()
	var backend net.Conn
	var to string
	for _, hp := range p.pick() {
		b, err := net.DialTimeout("tcp", hp, rrDialTimeout)
		if err == nil {
			backend, to = b, hp
			break
		}
	}
	if backend == nil {
		_ = client.Close()
		return
	}
	c := &rrConn{client: client, backend: backend, to: to}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = client.Close()
		_ = backend.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.counts[to]++
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		pipe(client, backend)
	}()
	pipe(backend, client)
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pipe copies src to dst until either ends, then closes both: the end of
// one side travels to the other as the end of its TCP connection (a
// WebSocket's close handshake has passed through by then).
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}
