// Package siotest is a Socket.IO 4.x client for tests, over an Engine.IO 4
// WebSocket (no polling). It is written for the tests rather than for
// real use: it can send what real clients never would (raw Engine.IO
// messages, binary frames, floods), it fails the test on anything
// unexpected, and every wait it makes is bounded.
package siotest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal/socketio"
)

// DefaultWait bounds each wait of a Client (for a packet, for the end of
// the connection, for a write) unless Options.Wait says otherwise.
const DefaultWait = 10 * time.Second

// queue is how many Engine.IO messages a Client holds unread before it
// gives up on the connection.
const queue = 1024

// Options are the optional settings of Dial and TryDial.
type Options struct {
	// Query is added to the Engine.IO URL's query, e.g. "token=x".
	Query string
	// Header is sent with the WebSocket upgrade request.
	Header http.Header
	// Context, if not nil, bounds the dial and every wait of the client
	// as well: a wait fails when it is done.
	Context context.Context
	// Wait bounds each wait of the client; zero means DefaultWait.
	Wait time.Duration
}

// Client is a Socket.IO client connected by Dial or TryDial. Its methods
// that fail the test must be called from the test's goroutine.
type Client struct {
	*conn
	ctx  context.Context
	wait time.Duration
}

// conn is the connection that the Clients of WithContext share.
type conn struct {
	tb  testing.TB
	ws  *websocket.Conn
	wmu sync.Mutex
	in  chan string   // text messages, pings answered
	end chan struct{} // closed when the reader has ended
	err error         // why, once end is closed
}

// Dial opens the Engine.IO WebSocket of the server at baseURL (such as
// http://127.0.0.1:PORT) and reads the open packet, failing the test on
// any error. The client is not yet connected to Socket.IO (see Connect),
// and it is closed when the test ends.
func Dial(tb testing.TB, baseURL string, opts Options) *Client {
	tb.Helper()
	c, _, err := TryDial(tb, baseURL, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TryDial is Dial returning the error of the dial, with the HTTP status
// of the upgrade's answer (0 when there was none), instead of failing the
// test; it still fails the test if the server's first message is not the
// open packet.
func TryDial(tb testing.TB, baseURL string, opts Options) (*Client, int, error) {
	tb.Helper()
	u := "ws" + strings.TrimPrefix(baseURL, "http") + "/socket.io/?EIO=4&transport=websocket"
	if opts.Query != "" {
		u += "&" + opts.Query
	}
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	wait := opts.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	dialCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ws, resp, err := websocket.DefaultDialer.DialContext(dialCtx, u, opts.Header)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
			return nil, resp.StatusCode, fmt.Errorf("dial %s: %w (HTTP %d)", u, err, resp.StatusCode)
		}
		return nil, 0, fmt.Errorf("dial %s: %w", u, err)
	}
	c := &Client{
		conn: &conn{tb: tb, ws: ws, in: make(chan string, queue), end: make(chan struct{})},
		ctx:  ctx,
		wait: wait,
	}
	go c.read()
	tb.Cleanup(c.Close)
	if open := c.Next(); !strings.HasPrefix(open, "0{") {
		tb.Fatalf("open packet: %q", open)
	}
	return c, resp.StatusCode, nil
}

// WithContext returns a Client on the same connection whose waits ctx
// bounds too.
func (c *Client) WithContext(ctx context.Context) *Client {
	return &Client{conn: c.conn, ctx: ctx, wait: c.wait}
}

// Close closes the connection and waits for the client's reader to end.
// It may be called more than once.
func (c *Client) Close() {
	_ = c.ws.Close()
	<-c.end
}

func (c *Client) read() {
	defer close(c.end)
	defer close(c.in)
	for {
		typ, b, err := c.ws.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		if typ != websocket.TextMessage {
			continue
		}
		if string(b) == "2" { // Engine.IO 4: the server pings
			_ = c.Write("3")
			continue
		}
		select {
		case c.in <- string(b):
		default:
			c.err = fmt.Errorf("test client: more than %d packets unread", cap(c.in))
			_ = c.ws.Close()
			return
		}
	}
}

func (c *Client) writeMessage(typ int, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.wait))
	return c.ws.WriteMessage(typ, b)
}

// Write writes one Engine.IO message, returning the error.
func (c *Client) Write(s string) error {
	return c.writeMessage(websocket.TextMessage, []byte(s))
}

// WriteBinary writes b as a binary WebSocket message, which Engine.IO
// clients do not send as such, returning the error.
func (c *Client) WriteBinary(b []byte) error {
	return c.writeMessage(websocket.BinaryMessage, b)
}

// Send writes one Engine.IO message, failing the test on an error.
func (c *Client) Send(s string) {
	c.tb.Helper()
	if err := c.Write(s); err != nil {
		c.tb.Fatalf("send %q: %v", s, err)
	}
}

// Next returns the next Engine.IO message but pings, failing the test
// when the connection ends or no message comes in time.
func (c *Client) Next() string {
	c.tb.Helper()
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	select {
	case s, ok := <-c.in:
		if !ok {
			c.tb.Fatalf("connection ended: %v", c.err)
		}
		return s
	case <-timer.C:
		c.tb.Fatal("no packet within", c.wait)
	case <-c.ctx.Done():
		c.tb.Fatalf("no packet: %v", c.ctx.Err())
	}
	return ""
}

// Connect connects to the main namespace with auth (a JSON object or "")
// and returns the CONNECT packet's answer.
func (c *Client) Connect(auth string) string {
	c.tb.Helper()
	c.Send("40" + auth)
	return c.Next()
}

// Emit sends an event; args are JSON texts.
func (c *Client) Emit(event string, args ...string) {
	c.tb.Helper()
	c.Send(EventPacket(event, args...))
}

// EventPacket returns the Socket.IO EVENT packet of event with args (JSON
// texts) on the main namespace.
func EventPacket(event string, args ...string) string {
	name, _ := json.Marshal(event)
	return "42[" + strings.Join(append([]string{string(name)}, args...), ",") + "]"
}

// Event is an event from the server.
type Event struct {
	// Name is the event's name.
	Name string
	// Args are its arguments.
	Args []json.RawMessage
}

// Arg returns argument i as JSON text, or "<none>" if there is none.
func (ev Event) Arg(i int) string {
	if i >= len(ev.Args) {
		return "<none>"
	}
	return string(ev.Args[i])
}

// String returns the event as name(arg, ...).
func (ev Event) String() string {
	args := make([]string, len(ev.Args))
	for i, a := range ev.Args {
		args[i] = string(a)
	}
	return ev.Name + "(" + strings.Join(args, ", ") + ")"
}

// NextEvent returns the next packet as an event, log events included,
// failing the test unless it is one.
func (c *Client) NextEvent() Event {
	c.tb.Helper()
	p := c.Next()
	if !strings.HasPrefix(p, "42[") {
		c.tb.Fatalf("got %q, want an event", p)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(p[2:]), &raw); err != nil || len(raw) == 0 {
		c.tb.Fatalf("bad event %q: %v", p, err)
	}
	var ev Event
	if err := json.Unmarshal(raw[0], &ev.Name); err != nil {
		c.tb.Fatalf("bad event name in %q", p)
	}
	ev.Args = raw[1:]
	return ev
}

// Expect returns the next event, skipping log events, failing the test
// unless it is name with the given arguments (JSON texts; fewer args
// check a prefix).
func (c *Client) Expect(name string, args ...string) Event {
	c.tb.Helper()
	for {
		ev := c.NextEvent()
		if ev.Name == socketio.EventLog {
			continue
		}
		if ev.Name != name {
			c.tb.Fatalf("got event %s, want %s%q", ev, name, args)
		}
		for i, a := range args {
			if ev.Arg(i) != a {
				c.tb.Fatalf("event %s: argument %d is %s, want %s", ev, i, ev.Arg(i), a)
			}
		}
		return ev
	}
}

// ExpectError reads the next event but logs, failing the test unless it
// is an error event with code and a message.
func (c *Client) ExpectError(code string) {
	c.tb.Helper()
	ev := c.Expect(socketio.EventError)
	var e struct{ Code, Message string }
	if err := json.Unmarshal([]byte(ev.Arg(0)), &e); err != nil || e.Code != code || e.Message == "" {
		c.tb.Fatalf("error event %s, want code %q with a message", ev.Arg(0), code)
	}
}

// ExpectEnd waits for the server to close the connection, skipping what
// comes before; it returns the packets skipped.
func (c *Client) ExpectEnd() []string {
	c.tb.Helper()
	var got []string
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	for {
		select {
		case s, ok := <-c.in:
			if !ok {
				return got
			}
			got = append(got, s)
		case <-timer.C:
			c.tb.Fatalf("connection still open after %s; got %q", c.wait, got)
		case <-c.ctx.Done():
			c.tb.Fatalf("still connected (%v) after %q", c.ctx.Err(), got)
		}
	}
}

// ExpectDisconnect is ExpectEnd failing the test unless a Socket.IO
// DISCONNECT packet came before the end.
func (c *Client) ExpectDisconnect() {
	c.tb.Helper()
	got := c.ExpectEnd()
	for _, g := range got {
		if g == "41" {
			return
		}
	}
	c.tb.Fatalf("the connection ended after %q, without a DISCONNECT packet", got)
}

// CreateOrJoin has the connected client create or join room and returns
// the next event but logs, failing the test unless it is created or
// joined for room with the client's id.
func (c *Client) CreateOrJoin(room string) Event {
	c.tb.Helper()
	r, _ := json.Marshal(room)
	c.Emit(socketio.EventCreateOrJoin, string(r))
	ev := c.NextEvent()
	for ev.Name == socketio.EventLog {
		ev = c.NextEvent()
	}
	if (ev.Name != socketio.EventCreated && ev.Name != socketio.EventJoined) || len(ev.Args) < 2 || ev.Arg(0) != string(r) {
		c.tb.Fatalf("create or join %s: got %s", r, ev)
	}
	return ev
}

// JoinRoom connects the client to the main namespace and has it create
// (if created) or else join room, failing the test unless it does, then
// returns its peer id.
func (c *Client) JoinRoom(room string, created bool) string {
	c.tb.Helper()
	if p := c.Connect(""); !strings.HasPrefix(p, "40{") {
		c.tb.Fatalf("connect: %q", p)
	}
	r, _ := json.Marshal(room)
	c.Emit(socketio.EventCreateOrJoin, string(r))
	if created {
		ev := c.Expect(socketio.EventCreated, string(r))
		return c.unquote(ev.Arg(1))
	}
	ev := c.Expect(socketio.EventJoined, string(r))
	c.Expect(socketio.EventReady, string(r))
	return c.unquote(ev.Arg(1))
}

func (c *Client) unquote(s string) string {
	c.tb.Helper()
	var v string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		c.tb.Fatalf("not a JSON string: %s", s)
	}
	return v
}
