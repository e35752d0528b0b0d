package signal

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by DialInProcess once the server has shut
// down.
var ErrServerClosed = errors.New("signal: server closed")

// DialInProcess returns a connection to the server's handler that stays in
// this process (a net.Pipe): a gateway for another transport (the
// Socket.IO endpoint) opens a protocol v1 WebSocket over it, so that its
// clients get every rule and limit of protocol v1. The server sees the
// connection as coming from remote ("ip:port", the gateway's client), so
// the per-address limits count it against that client.
//
// Use it as a websocket.Dialer's NetDialContext; the URL's host is then
// not used. Like a TCP connection, an idle in-process connection waits
// for its next message without a read buffer, on a small goroutine.
func (s *Server) DialInProcess(ctx context.Context, remote string) (net.Conn, error) {
	return s.dialPipe(ctx, remote, 0, false)
}

// DialTunnel is DialInProcess for a gateway that has already written
// written frames to its client on the client's connection (a cluster
// gateway that moves a client between servers): the server numbers the
// frames of this connection from written+1, as if they had all gone over
// one connection, so that the client's count of frames read (a resume's
// received) stays true. The connection is not counted against remote's
// address: the gateway counted it.
func (s *Server) DialTunnel(ctx context.Context, remote string, written uint64) (net.Conn, error) {
	return s.dialPipe(ctx, remote, written, true)
}

func (s *Server) dialPipe(ctx context.Context, remote string, written uint64, tunnel bool) (net.Conn, error) {
	l := s.inProcess()
	if l == nil {
		return nil, ErrServerClosed
	}
	client, server := net.Pipe()
	sig := newPipeSignal()
	select {
	case l.conns <- &addrConn{Conn: server, remote: pipeAddr(remote), sig: sig, written: written, tunnel: tunnel}:
		return &pipeClient{Conn: client, sig: sig}, nil
	case <-l.closed:
		return nil, ErrServerClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// inProcess starts the in-process listener and its http.Server on first
// use, and returns it; nil once the server is shutting down.
func (s *Server) inProcess() *pipeListener {
	s.bgmu.Lock()
	defer s.bgmu.Unlock()
	if s.bgClosed {
		return nil
	}
	if s.pipes == nil {
		s.pipes = &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
		hs := s.HTTPServer()
		hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, pipeConnKey{}, c)
		}
		s.bgwg.Add(1)
		go func() {
			defer s.bgwg.Done()
			_ = hs.Serve(s.pipes)
		}()
		s.pipesHTTP = hs
	}
	return s.pipes
}

// pipeListener is a net.Listener whose connections come from
// DialInProcess.
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr("in-process") }

// addrConn is the server's end of an in-process connection: a net.Conn
// that reports the gateway's client as its remote address, and that an
// idle connection can wait on without a read buffer (waitReadable), as on
// a TCP socket (see frameConn's waiter).
type addrConn struct {
	net.Conn
	remote  net.Addr
	sig     *pipeSignal
	written uint64 // frames the gateway wrote to its client before (DialTunnel)
	tunnel  bool   // opened by DialTunnel: the gateway counts the client's address
}

// pipeConnKey is the request context key of the addrConn a request
// came in on (see inProcess).
type pipeConnKey struct{}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

func (c *addrConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.sig.pending.Add(-int64(n))
	return n, err
}

func (c *addrConn) SetReadDeadline(t time.Time) error {
	c.sig.setDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *addrConn) SetDeadline(t time.Time) error {
	c.sig.setDeadline(t)
	return c.Conn.SetDeadline(t)
}

func (c *addrConn) Close() error {
	c.sig.close()
	return c.Conn.Close()
}

// waitReadable returns once the connection has bytes to read, or its
// other end has closed, or it has (nil: the Read that follows reports
// it), or its read deadline has passed (os.ErrDeadlineExceeded).
func (c *addrConn) waitReadable() error { return c.sig.wait() }

// pipeClient is the gateway's end of an in-process connection: its writes
// tell the server's end that there is something to read.
type pipeClient struct {
	net.Conn
	sig *pipeSignal
}

func (c *pipeClient) Write(b []byte) (int, error) {
	c.sig.pending.Add(int64(len(b)))
	c.sig.notify()
	n, err := c.Conn.Write(b)
	c.sig.pending.Add(-int64(len(b) - n)) // what was not written will not be read
	return n, err
}

func (c *pipeClient) Close() error {
	c.sig.close()
	return c.Conn.Close()
}

// pipeSignal is what the two ends of an in-process connection share so
// that the server's end can wait for data without reading (net.Pipe has
// no such wait).
type pipeSignal struct {
	pending atomic.Int64  // bytes the client end is writing or has written that the server end has not read
	wake    chan struct{} // 1 slot: a write began, or the read deadline changed
	closed  chan struct{} // closed when either end closes
	once    sync.Once

	mu       sync.Mutex
	deadline time.Time // guarded by mu: the server end's read deadline
}

func newPipeSignal() *pipeSignal {
	return &pipeSignal{wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (p *pipeSignal) notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pipeSignal) close() { p.once.Do(func() { close(p.closed) }) }

func (p *pipeSignal) setDeadline(t time.Time) {
	p.mu.Lock()
	p.deadline = t
	p.mu.Unlock()
	p.notify()
}

// wait is addrConn.waitReadable. A write that begins after the check of
// pending leaves a token in wake, so the wait cannot miss it.
func (p *pipeSignal) wait() error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if p.pending.Load() > 0 {
			return nil
		}
		p.mu.Lock()
		dl := p.deadline
		p.mu.Unlock()
		var expired <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return os.ErrDeadlineExceeded
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			expired = timer.C
		}
		select {
		case <-p.wake:
		case <-p.closed:
			return nil
		case <-expired:
			// Checked again at the top: the deadline may have moved.
		}
	}
}

// pipeAddr is the address of an in-process connection.
type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }
