package socketio

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// v1Conn is a session's protocol v1 connection. Its frames are read on the
// session's own goroutine (session.pump), so that a Socket.IO client costs
// no reader goroutine of its own here; they are written from the socket's
// event queue.
type v1Conn struct {
	ws          *websocket.Conn
	readTimeout time.Duration // immutable: Config.V1ReadTimeout

	wmu sync.Mutex // serializes writes

	dmu     sync.Mutex // orders read deadline changes
	closing bool       // guarded by dmu: close has been called
}

// dial opens the protocol v1 connection of a client at remote.
func (g *Gateway) dial(ctx context.Context, remote string) (*v1Conn, error) {
	d := &websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return g.dialer.DialInProcess(ctx, remote)
		},
		HandshakeTimeout: g.cfg.DialTimeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		WriteBufferPool:  g.wpool,
	}
	ws, resp, err := d.DialContext(ctx, "ws://in-process/ws", nil)
	if err != nil {
		if resp != nil {
			_ = resp.Body.Close()
			return nil, &refusedError{status: resp.StatusCode, err: err}
		}
		return nil, err
	}
	// The server's frames are at most its relayed payload plus a little.
	ws.SetReadLimit(4*g.cfg.MaxMessageBytes + 64<<10)
	c := &v1Conn{ws: ws, readTimeout: g.cfg.V1ReadTimeout}
	ws.SetPingHandler(func(data string) error {
		c.extend()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(signal.DefaultWriteTimeout))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
			return nil // as gorilla's own handler: the read that follows reports it
		}
		return err
	})
	c.extend()
	return c, nil
}

// refusedError is a dial the server answered with an HTTP status.
type refusedError struct {
	status int
	err    error
}

func (e *refusedError) Error() string {
	return e.err.Error() + " (HTTP " + http.StatusText(e.status) + ")"
}
func (e *refusedError) Unwrap() error { return e.err }

// refusal turns a failed dial into the code and message of the Socket.IO
// connect error.
func refusal(err error) (code, message string) {
	var re *refusedError
	switch {
	case errors.As(err, &re) && re.status == http.StatusTooManyRequests:
		return "too-many-connections", "too many connections from your address; retry later"
	case errors.Is(err, signal.ErrServerClosed), errors.As(err, &re) && re.status == http.StatusServiceUnavailable:
		return "unavailable", "the server is shutting down or has too many connections; retry later"
	default:
		return "unavailable", "the signaling server cannot be reached; retry later"
	}
}

// extend pushes the read deadline on, unless the connection is closing.
func (c *v1Conn) extend() {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if !c.closing {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.readTimeout))
	}
}

// read returns the next frame.
func (c *v1Conn) read() ([]byte, error) {
	_, b, err := c.ws.ReadMessage()
	if err == nil {
		c.extend()
	}
	return b, err
}

// send writes one frame.
func (c *v1Conn) send(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(signal.DefaultWriteTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, frame)
}

// close sends a normal close frame, so that the members of the room get
// peer-left at once, and gives the server a second to answer it: the
// reader then ends.
func (c *v1Conn) close() {
	c.dmu.Lock()
	if c.closing {
		c.dmu.Unlock()
		return
	}
	c.closing = true
	_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
	c.dmu.Unlock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
}

// abort closes the connection at once.
func (c *v1Conn) abort() { _ = c.ws.NetConn().Close() }

// closeReason returns the close frame that ended the connection, as a
// Socket.IO error code and message.
func closeReason(err error) (code, msg string) {
	code, msg = "closed", "the signaling connection closed"
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.CloseGoingAway:
			code = "shutdown"
		case websocket.CloseMessageTooBig:
			code = "too-big"
		}
		if t := strings.TrimSpace(ce.Text); t != "" {
			msg = t
		}
	}
	return code, msg
}
