package signaltest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Direction is the way a WebSocket message goes through a CutProxy.
type Direction string

// The directions of a message.
const (
	Up   Direction = "up"   // client to server
	Down Direction = "down" // server to client
)

// CutRule makes a CutProxy cut the WebSocket connection on which it sees
// the Nth message (counted from 1 over all connections since the rule was
// armed) of type Type go in direction Dir: before forwarding it (the
// message is lost with the connection, as on a failing network) or right
// after. A rule fires once.
//
// A cut closes both TCP connections without a close frame. A Silent cut
// closes only the client's, as a network failure the server does not
// notice would: the server's connection stays open, and what the server
// writes to it is read and dropped.
type CutRule struct {
	Dir    Direction
	Type   string
	Nth    int
	Before bool
	Silent bool
}

// String describes r, as in "before offer #1 down silent".
func (r CutRule) String() string {
	when := "after"
	if r.Before {
		when = "before"
	}
	s := fmt.Sprintf("%s %s #%d %s", when, r.Type, r.Nth, r.Dir)
	if r.Silent {
		s += " silent"
	}
	return s
}

// Mode says what a CutProxy does with new connections.
type Mode int

// The modes of a CutProxy.
const (
	Forward Mode = iota // proxy them to the server (the default)
	Refuse              // close them at once: the server cannot be reached
	Hang                // accept them and never answer: the handshake hangs
)

// Forwarded is a WebSocket data message a CutProxy passed on.
type Forwarded struct {
	Conn int // the WebSocket connection's number, from 1
	Dir  Direction
	Msg  signal.Message
}

// CutProxy is a TCP proxy in front of a server, which cuts WebSocket
// connections abruptly when a CutRule fires or on demand. Plain HTTP
// connections (a browser loading a page from the proxy, which then opens
// its WebSocket on its own origin, through the proxy too) are copied as
// they are. On a WebSocket connection the proxy parses the frames without
// changing them (the handshake, pings, pongs and close frames pass as
// they are) and records the data messages it forwards.
//
// Its methods are safe for concurrent use.
type CutProxy struct {
	// URL is the target URL given to NewCutProxy with the proxy's host
	// and port: ws://127.0.0.1:PORT/ws for a server's WebSocket URL,
	// http://127.0.0.1:PORT for its HTTP URL.
	URL string

	ln     net.Listener
	target string // host:port

	mu      sync.Mutex
	rule    *CutRule       // guarded by mu; nil when disarmed
	seen    int            // guarded by mu; messages matching rule so far
	mode    Mode           // guarded by mu
	all     map[*conn]bool // guarded by mu; every open connection
	ws      map[*conn]bool // guarded by mu; open WebSocket connections
	nws     int            // guarded by mu; WebSocket connections so far
	hung    []net.Conn     // guarded by mu; connections held in Hang mode
	log     []Forwarded    // guarded by mu
	cuts    int            // guarded by mu
	changed chan struct{}  // guarded by mu; closed and replaced on every change waited for
	closed  bool           // guarded by mu
	wg      sync.WaitGroup // the accept loop and a serve per connection
}

// NewCutProxy starts a proxy in front of the server at target, a URL of
// which only the host and port count (a Server's URL or HTTP.URL), and
// closes it when the test ends.
func NewCutProxy(tb testing.TB, target string) *CutProxy {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		tb.Fatalf("signaltest: proxy target %q is not a URL with a host", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &CutProxy{
		ln:      ln,
		target:  u.Host,
		all:     make(map[*conn]bool),
		ws:      make(map[*conn]bool),
		changed: make(chan struct{}),
	}
	u.Host = ln.Addr().String()
	p.URL = u.String()
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Arm sets the rule that cuts the next connection it matches, replacing
// any rule that has not fired.
func (p *CutProxy) Arm(r CutRule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule, p.seen = &r, 0
}

// SetMode sets what happens to new connections; leaving Hang closes the
// connections held.
func (p *CutProxy) SetMode(m Mode) {
	p.mu.Lock()
	p.mode = m
	var release []net.Conn
	if m != Hang {
		release, p.hung = p.hung, nil
	}
	p.mu.Unlock()
	for _, c := range release {
		_ = c.Close()
	}
}

// CutAll cuts every open WebSocket connection now; it counts as one cut.
func (p *CutProxy) CutAll() {
	p.mu.Lock()
	conns := make([]*conn, 0, len(p.ws))
	for c := range p.ws {
		conns = append(conns, c)
	}
	p.cuts++
	p.broadcastLocked()
	p.mu.Unlock()
	for _, c := range conns {
		c.cut()
	}
}

// errClosed is returned by waits on a closed proxy.
var errClosed = errors.New("signaltest: the proxy is closed")

// WaitCuts waits until the proxy has cut n times (rules fired and CutAll
// calls), the proxy is closed, or ctx is done.
func (p *CutProxy) WaitCuts(ctx context.Context, n int) error {
	cuts, err := p.wait(ctx, func() int { return p.cuts }, n)
	if err != nil {
		return fmt.Errorf("waiting for %d cuts (%d so far): %w", n, cuts, err)
	}
	return nil
}

// WaitHung waits until the proxy holds a connection in Hang mode, the
// proxy is closed, or ctx is done.
func (p *CutProxy) WaitHung(ctx context.Context) error {
	if _, err := p.wait(ctx, func() int { return len(p.hung) }, 1); err != nil {
		return fmt.Errorf("waiting for a connection to hang: %w", err)
	}
	return nil
}

// wait waits until count(), called with mu held, is at least n, and
// returns its last value.
func (p *CutProxy) wait(ctx context.Context, count func() int, n int) (int, error) {
	for {
		p.mu.Lock()
		c, closed, changed := count(), p.closed, p.changed
		p.mu.Unlock()
		switch {
		case c >= n:
			return c, nil
		case closed:
			return c, errClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return c, ctx.Err()
		}
	}
}

// Forwarded returns the data messages of type typ ("" for any) the proxy
// forwarded in direction dir, in order.
func (p *CutProxy) Forwarded(dir Direction, typ string) []Forwarded {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Forwarded
	for _, f := range p.log {
		if f.Dir == dir && (typ == "" || f.Msg.Type == typ) {
			out = append(out, f)
		}
	}
	return out
}

// Conns returns the number of WebSocket connections the proxy has
// forwarded so far.
func (p *CutProxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nws
}

// Transcript lists the data messages the proxy forwarded, a line each,
// for failure reports.
func (p *CutProxy) Transcript() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, f := range p.log {
		m := f.Msg
		fmt.Fprintf(&b, "  ws#%d %-4s %s", f.Conn, f.Dir, m.Type)
		if m.From != "" {
			fmt.Fprintf(&b, " from %s", m.From)
		}
		if m.To != "" {
			fmt.Fprintf(&b, " to %s", m.To)
		}
		if m.SDP == "" {
			if j, _ := json.Marshal(m); len(j) < 200 {
				fmt.Fprintf(&b, " %s", j)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Close stops the proxy: the listener and every connection are closed,
// and its goroutines have ended when it returns. It is safe to call more
// than once.
func (p *CutProxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns, hung := p.all, p.hung
	p.all, p.hung = map[*conn]bool{}, nil
	p.broadcastLocked()
	p.mu.Unlock()
	_ = p.ln.Close()
	for c := range conns {
		c.cut()
	}
	for _, c := range hung {
		_ = c.Close()
	}
	p.wg.Wait()
}

func (p *CutProxy) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// conn is a proxied connection.
type conn struct {
	n              int // WebSocket number; 0 for plain HTTP
	client, server net.Conn
	once           sync.Once
	silent         atomic.Bool // cut silently: the server's side stays open
}

// cut closes both sides.
func (c *conn) cut() {
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// cutSilently closes the client's side only.
func (c *conn) cutSilently() {
	c.silent.Store(true)
	_ = c.client.Close()
}

// end ends a pump: it cuts both sides unless the cut was silent.
func (c *conn) end() {
	if c.silent.Load() {
		_ = c.client.Close()
		return
	}
	c.cut()
}

func (p *CutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode, closed := p.mode, p.closed
		if mode == Hang && !closed {
			p.hung = append(p.hung, c)
			p.broadcastLocked()
		}
		p.mu.Unlock()
		if mode == Hang && !closed {
			continue
		}
		if closed || mode == Refuse {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pc := &conn{client: c, server: s}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pc.cut()
			continue
		}
		p.all[pc] = true
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(pc)
	}
}

// serve proxies one connection: its first request decides whether it is
// a WebSocket (browsers open a connection of its own for each).
func (p *CutProxy) serve(pc *conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.all, pc)
		delete(p.ws, pc)
		p.mu.Unlock()
	}()
	defer pc.cut()
	rc := bufio.NewReader(pc.client)
	head, err := passHead(rc, pc.server)
	if err != nil {
		return
	}
	if !bytes.Contains(bytes.ToLower(head), []byte("\r\nupgrade: websocket")) {
		// Plain HTTP: copy both ways until either side is done.
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(pc.client, pc.server); done <- struct{}{} }()
		go func() { _, _ = io.Copy(pc.server, rc); done <- struct{}{} }()
		<-done
		pc.cut()
		<-done
		return
	}
	p.mu.Lock()
	p.nws++
	pc.n = p.nws
	p.ws[pc] = true
	p.mu.Unlock()
	rs := bufio.NewReader(pc.server)
	if _, err := passHead(rs, pc.client); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pump(pc, Down, rs, pc.client)
	}()
	p.pump(pc, Up, rc, pc.server)
	<-done
}

// passHead reads an HTTP request or response head from r, up to the
// empty line, writes it to dst and returns it.
func passHead(r *bufio.Reader, dst net.Conn) ([]byte, error) {
	var head []byte
	for {
		line, err := r.ReadBytes('\n')
		head = append(head, line...)
		if err != nil {
			return nil, err
		}
		if string(line) == "\r\n" {
			_, err := dst.Write(head)
			return head, err
		}
		if len(head) > 64<<10 {
			return nil, errors.New("HTTP head too long")
		}
	}
}

// decide returns the rule that fires for a message of type typ going in
// direction dir, or nil.
func (p *CutProxy) decide(dir Direction, typ string) *CutRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rule
	if r == nil || r.Dir != dir || r.Type != typ {
		return nil
	}
	p.seen++
	if p.seen < r.Nth {
		return nil
	}
	p.rule = nil
	p.cuts++
	p.broadcastLocked()
	return r
}

func (p *CutProxy) record(f Forwarded) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, f)
}

// pump copies WebSocket frames from r to dst, whole messages at a time
// (with any control frames between their fragments), consulting the rule
// for each data message. When it ends, so does the other way, unless the
// cut was silent: then what the server writes is read and dropped.
func (p *CutProxy) pump(pc *conn, dir Direction, r *bufio.Reader, dst net.Conn) {
	defer pc.end()
	drop := func() {
		if dir == Down && pc.silent.Load() {
			_, _ = io.Copy(io.Discard, r)
		}
	}
	var pending, payload []byte // raw frames of the message being read; its unmasked payload
	inMessage := false
	for {
		raw, fin, opcode, data, err := readFrame(r)
		if err != nil {
			return
		}
		control := opcode >= 8
		if control && !inMessage {
			if _, err := dst.Write(raw); err != nil {
				drop()
				return
			}
			continue
		}
		pending = append(pending, raw...)
		if control {
			continue
		}
		inMessage = true
		payload = append(payload, data...)
		if !fin {
			continue
		}
		var m signal.Message
		_ = json.Unmarshal(payload, &m)
		rule := p.decide(dir, m.Type)
		if rule != nil && !rule.Before && dir == Down {
			// The message and the end of the connection reach the client
			// in one segment: it cannot answer the message before it can
			// know that the connection is gone.
			Cork(dst)
		}
		if rule == nil || !rule.Before {
			if _, err := dst.Write(pending); err != nil {
				drop()
				return
			}
			p.record(Forwarded{Conn: pc.n, Dir: dir, Msg: m})
		}
		if rule != nil {
			if rule.Silent {
				pc.cutSilently()
				drop()
			}
			return
		}
		pending, payload, inMessage = pending[:0], payload[:0], false
	}
}

// readFrame reads one WebSocket frame and returns it as it was sent, with
// its unmasked payload.
func readFrame(r *bufio.Reader) (raw []byte, fin bool, opcode byte, payload []byte, err error) {
	h := make([]byte, 2, 14)
	if _, err = io.ReadFull(r, h); err != nil {
		return nil, false, 0, nil, err
	}
	fin, opcode = h[0]&0x80 != 0, h[0]&0x0f
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	if n >= 126 { // an extended length: 16 bits (126) or 64 (127)
		ext := make([]byte, 2+6*(n-126))
		if _, err = io.ReadFull(r, ext); err != nil {
			return nil, false, 0, nil, err
		}
		h = append(h, ext...)
		n = 0
		for _, b := range ext {
			n = n<<8 | uint64(b)
		}
	}
	var key []byte
	if masked {
		key = make([]byte, 4)
		if _, err = io.ReadFull(r, key); err != nil {
			return nil, false, 0, nil, err
		}
		h = append(h, key...)
	}
	if n > 1<<20 {
		return nil, false, 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return nil, false, 0, nil, err
	}
	raw = append(h, payload...)
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return raw, fin, opcode, payload, nil
}
