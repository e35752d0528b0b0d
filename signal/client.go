package signal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// DialOptions configures Dial. A nil *DialOptions is valid.
type DialOptions struct {
	// Header is sent with the WebSocket handshake (e.g. Origin).
	Header http.Header
	// Dialer dials the WebSocket; nil means websocket.DefaultDialer.
	Dialer *websocket.Dialer
	// WriteTimeout is the deadline of each write (default 10 s).
	WriteTimeout time.Duration
	// ReadTimeout is how long the connection may stay silent before the
	// client gives it up as dead (default 45 s: the server pings every 20
	// s by default). Every message and every ping resets it.
	ReadTimeout time.Duration
}

// DefaultClientReadTimeout is the default of DialOptions.ReadTimeout.
const DefaultClientReadTimeout = 45 * time.Second

// Client is a connection to a signaling server speaking protocol v1. Send
// may be called from any goroutine; Recv from one goroutine at a time.
type Client struct {
	ws           *websocket.Conn
	writeTimeout time.Duration
	readTimeout  time.Duration

	wmu sync.Mutex // serializes writes to ws

	received atomic.Uint64 // frames read from the server

	in   chan *Message // owned by readLoop (sender)
	done chan struct{} // closed when readLoop has ended
	err  error         // set by readLoop before done is closed

	closeOnce sync.Once
	closing   chan struct{} // closed by Close
}

// Dial connects to the server's WebSocket endpoint, e.g.
// ws://127.0.0.1:2013/ws.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Client, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	d := opts.Dialer
	if d == nil {
		d = websocket.DefaultDialer
	}
	ws, resp, err := d.DialContext(ctx, url, opts.Header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("signal: dial %s: %w (HTTP %s)", url, err, resp.Status)
		}
		return nil, fmt.Errorf("signal: dial %s: %w", url, err)
	}
	c := &Client{
		ws:           ws,
		writeTimeout: opts.WriteTimeout,
		in:           make(chan *Message, 64),
		done:         make(chan struct{}),
		closing:      make(chan struct{}),
	}
	if c.writeTimeout <= 0 {
		c.writeTimeout = DefaultWriteTimeout
	}
	if c.readTimeout = opts.ReadTimeout; c.readTimeout <= 0 {
		c.readTimeout = DefaultClientReadTimeout
	}
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(c.readTimeout))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.writeTimeout))
		var ne net.Error
		if err == websocket.ErrCloseSent || errors.As(err, &ne) {
			return nil // as gorilla's own handler: the read that follows reports it
		}
		return err
	})
	go c.readLoop()
	return c, nil
}

func (c *Client) readLoop() {
	defer close(c.done)
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.readTimeout))
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.err = fmt.Errorf("%w: %w", ErrClosed, err)
			return
		}
		m := new(Message)
		if err := json.Unmarshal(data, m); err != nil {
			c.err = fmt.Errorf("signal: server sent a frame that is not a message: %w", err)
			_ = c.ws.Close()
			return
		}
		select {
		case c.in <- m:
			c.received.Add(1) // counted once it is the caller's to Recv
		case <-c.closing:
			c.err = ErrClosed
			return
		}
	}
}

// Send writes one message to the server.
func (c *Client) Send(m *Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("signal: encode %s: %w", m.Type, err)
	}
	return c.SendRaw(b)
}

// SendRaw writes one frame as it is. Tests use it to send what Message
// cannot express.
func (c *Client) SendRaw(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return fmt.Errorf("signal: send: %w", err)
	}
	return nil
}

// Recv returns the next message from the server. It returns an error
// wrapping ErrClosed when the connection has ended, and ctx.Err() when ctx
// ends first.
func (c *Client) Recv(ctx context.Context) (*Message, error) {
	select {
	case m := <-c.in:
		return m, nil
	default:
	}
	select {
	case m := <-c.in:
		return m, nil
	case <-c.done:
		// Deliver what arrived before the end.
		select {
		case m := <-c.in:
			return m, nil
		default:
		}
		return nil, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// RecvType returns the next message of type typ, discarding the messages
// of other types that come before it. Its errors are Recv's.
func (c *Client) RecvType(ctx context.Context, typ string) (*Message, error) {
	for {
		m, err := c.Recv(ctx)
		if err != nil || m.Type == typ {
			return m, err
		}
	}
}

// Received returns the number of frames read from the server on this
// connection. A client that resumes its seat on a new connection sends it
// as JoinOptions.Received, so that the server re-sends what it missed.
func (c *Client) Received() uint64 { return c.received.Load() }

// JoinOptions are the optional fields of join.
type JoinOptions struct {
	ID       string // requested peer id
	Capacity int    // capacity, when this join creates the room
	Token    string // join token, for servers with an auth secret
	Ref      string
	// Resume takes back a seat after a dropped connection: the resume
	// token from created or joined. Received is the old connection's
	// Client.Received().
	Resume   string
	Received *uint64
}

// Join sends join and waits for the answer, skipping log messages. It
// returns the created or joined message, ErrRoomFull (wrapped, with the
// full message) when the room is full, or the server's *Error.
func (c *Client) Join(ctx context.Context, room string, opts *JoinOptions) (*Message, error) {
	m := &Message{Type: TypeJoin, Room: room}
	if opts != nil {
		m.ID, m.Capacity, m.Ref, m.Token, m.Resume, m.Received = opts.ID, opts.Capacity, opts.Ref, opts.Token, opts.Resume, opts.Received
	}
	if err := c.Send(m); err != nil {
		return nil, err
	}
	for {
		r, err := c.Recv(ctx)
		if err != nil {
			return nil, err
		}
		switch r.Type {
		case TypeCreated, TypeJoined:
			return r, nil
		case TypeFull:
			return r, fmt.Errorf("%w: %q (capacity %d)", ErrRoomFull, r.Room, r.Capacity)
		case TypeError:
			return nil, r.Error()
		}
	}
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close sends a normal close frame, waits up to a second for the server to
// answer it, and closes the connection. It is safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.wmu.Lock()
		err := c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		if err == nil {
			select {
			case <-c.done:
			case <-time.After(time.Second):
			}
		}
		_ = c.ws.Close()
		<-c.done
	})
	return nil
}

// Abort closes the connection without a close frame, as a network failure
// would.
func (c *Client) Abort() {
	c.closeOnce.Do(func() {
		close(c.closing)
		_ = c.ws.NetConn().Close()
		<-c.done
	})
}

// CloseError returns the close frame the server sent, if the connection
// ended with one.
func (c *Client) CloseError() (*websocket.CloseError, bool) {
	select {
	case <-c.done:
	default:
		return nil, false
	}
	var ce *websocket.CloseError
	if errors.As(c.err, &ce) {
		return ce, true
	}
	return nil, false
}
