package signal

import (
	"context"
	"errors"
	"net"
	"sync"
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
// not used.
func (s *Server) DialInProcess(ctx context.Context, remote string) (net.Conn, error) {
	l := s.inProcess()
	if l == nil {
		return nil, ErrServerClosed
	}
	client, server := net.Pipe()
	select {
	case l.conns <- &addrConn{Conn: server, remote: pipeAddr(remote)}:
		return client, nil
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

// addrConn is a net.Conn that reports another remote address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

// pipeAddr is the address of an in-process connection.
type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }
