package signal

import (
	"context"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// HTTPServer returns an http.Server that serves Handler with the limits of
// the configuration: ReadHeaderTimeout and ReadTimeout (a request's
// headers and body must arrive within Config.ReadTimeout), IdleTimeout for
// keep-alive connections, and MaxHeaderBytes. WebSocket connections are
// taken over from it at the upgrade and keep their own deadlines. Serve it
// on Listener(ln).
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          log.New(httpErrorLog{s.log}, "", 0),
	}
}

// httpErrorLog receives net/http's error log: a failing Accept (out of
// file descriptors, say) is logged as a warning, and the rest, which any
// client can cause (TLS handshakes, malformed requests), at debug level.
type httpErrorLog struct{ log *slog.Logger }

func (w httpErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	if strings.Contains(msg, "Accept error") {
		level = slog.LevelWarn // net/http retries at most once a second
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// httpHeadroom is how many connections past Config.MaxConns the listener
// accepts, for plain HTTP requests (health checks, metrics, files) while
// the WebSocket connections are at their limit.
const httpHeadroom = 1024

// Listener wraps ln so that it holds at most Config.MaxConns plus 1024
// connections at once, WebSocket and plain HTTP together; past that,
// Accept waits for one to close and new connections wait in the kernel's
// backlog instead of costing file descriptors. (golang.org/x/net/netutil's
// LimitListener does the same, but its connections hide the *net.TCPConn
// that idle connections wait on; see frameConn.)
func (s *Server) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, s.cfg.MaxConns+httpHeadroom), done: make(chan struct{})}
}

// limitListener is a net.Listener with a bound on the connections it has
// accepted and not yet seen closed.
type limitListener struct {
	net.Listener
	sem       chan struct{} // a token for each open connection
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitedConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn gives its listener's token back when it is closed.
type limitedConn struct {
	net.Conn
	l      *limitListener
	closed atomic.Bool
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		<-c.l.sem
	}
	return err
}
