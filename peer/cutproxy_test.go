package peer

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// direction is the way a WebSocket message goes through a cutProxy.
type direction string

const (
	up   direction = "up"   // client to server
	down direction = "down" // server to client
)

// cutRule makes a cutProxy cut the connection it sees the nth (from 1)
// message of type typ go in direction dir on: before forwarding it (the
// message goes down with the connection, as if lost on the network) or
// right after. A silent cut closes only the client's side, as a network
// failure the server does not notice would: the server's side stays open,
// and what the server writes to it is read and dropped. A rule fires once.
type cutRule struct {
	dir    direction
	typ    string
	nth    int
	before bool
	silent bool
}

func (r cutRule) String() string {
	when := "after"
	if r.before {
		when = "before"
	}
	s := fmt.Sprintf("%s %s #%d %s", when, r.typ, r.nth, r.dir)
	if r.silent {
		s += " silent"
	}
	return s
}

// proxyMode says what a cutProxy does with new connections.
type proxyMode int

const (
	modeForward proxyMode = iota // proxy them to the server
	modeRefuse                   // close them at once: the server cannot be reached
	modeHang                     // accept them and never answer: the handshake hangs
)

// forwarded is a data message a cutProxy passed on.
type forwarded struct {
	conn int // the connection's number, from 1
	dir  direction
	msg  signal.Message
}

// cutProxy is a TCP proxy in front of a signaling server. It parses the
// WebSocket frames that go through it without changing them (the HTTP
// handshake, pings, pongs and close frames pass as they are), records the
// data messages it forwards, and cuts a connection abruptly (both TCP
// sockets closed, no close frame) when its rule fires or on demand.
type cutProxy struct {
	URL    string // ws://127.0.0.1:PORT/ws
	ln     net.Listener
	target string

	mu      sync.Mutex
	rule    *cutRule            // guarded by mu; nil when disarmed
	seen    int                 // guarded by mu; messages matching rule so far
	mode    proxyMode           // guarded by mu
	conns   map[*proxyConn]bool // guarded by mu
	hung    []net.Conn          // guarded by mu; connections held in modeHang
	n       int                 // guarded by mu; connections accepted
	log     []forwarded         // guarded by mu
	cuts    int                 // guarded by mu
	changed chan struct{}       // guarded by mu; closed and replaced on every cut or log entry
	closed  bool                // guarded by mu
	wg      sync.WaitGroup      // accept loop and pumps
}

type proxyConn struct {
	n              int
	client, server net.Conn
	once           sync.Once
	silent         atomic.Bool // cut silently: the server's side stays open
}

// cut closes both sides.
func (c *proxyConn) cut() {
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// cutSilently closes the client's side only.
func (c *proxyConn) cutSilently() {
	c.silent.Store(true)
	_ = c.client.Close()
}

// end ends a pump: it cuts both sides unless the cut was silent.
func (c *proxyConn) end() {
	if c.silent.Load() {
		_ = c.client.Close()
		return
	}
	c.cut()
}

func newCutProxy(t testing.TB, wsURL string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostport := strings.TrimPrefix(wsURL, "ws://")
	hostport = hostport[:strings.IndexByte(hostport, '/')]
	p := &cutProxy{
		URL:     "ws://" + ln.Addr().String() + "/ws",
		ln:      ln,
		target:  hostport,
		conns:   make(map[*proxyConn]bool),
		changed: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// arm sets the rule that cuts the next connection it matches.
func (p *cutProxy) arm(r cutRule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule, p.seen = &r, 0
}

// setMode sets what happens to new connections; leaving modeHang closes
// the connections it held.
func (p *cutProxy) setMode(m proxyMode) {
	p.mu.Lock()
	p.mode = m
	hung := p.hung
	if m != modeHang {
		p.hung = nil
	}
	p.mu.Unlock()
	if m != modeHang {
		for _, c := range hung {
			_ = c.Close()
		}
	}
}

// cutAll cuts every open connection now.
func (p *cutProxy) cutAll() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.cuts++
	p.broadcastLocked()
	p.mu.Unlock()
	for _, c := range conns {
		c.cut()
	}
}

// waitCuts waits until the proxy has cut n times.
func (p *cutProxy) waitCuts(t testing.TB, ctx context.Context, n int) {
	t.Helper()
	for {
		p.mu.Lock()
		cuts, changed := p.cuts, p.changed
		p.mu.Unlock()
		if cuts >= n {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %d cuts (%d so far): %v", n, cuts, ctx.Err())
		}
	}
}

// waitHung waits until a connection is held in modeHang.
func (p *cutProxy) waitHung(t testing.TB, ctx context.Context) {
	t.Helper()
	for {
		p.mu.Lock()
		n, changed := len(p.hung), p.changed
		p.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for a connection to hang: %v", ctx.Err())
		}
	}
}

// forwarded returns the data messages forwarded in direction dir.
func (p *cutProxy) forwarded(dir direction) []forwarded {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []forwarded
	for _, f := range p.log {
		if f.dir == dir {
			out = append(out, f)
		}
	}
	return out
}

func (p *cutProxy) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// close stops the proxy: the listener and every connection are closed,
// and its goroutines have ended when it returns. It is safe to call twice.
func (p *cutProxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[*proxyConn]bool{}
	hung := p.hung
	p.hung = nil
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

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode, closed := p.mode, p.closed
		if mode == modeHang && !closed {
			p.hung = append(p.hung, c)
			p.broadcastLocked()
		}
		p.mu.Unlock()
		if closed || mode == modeRefuse {
			_ = c.Close()
			continue
		}
		if mode == modeHang {
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			continue
		}
		p.n++
		pc := &proxyConn{n: p.n, client: c, server: s}
		p.conns[pc] = true
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pump(pc, up, c, s)
		go p.pump(pc, down, s, c)
	}
}

// decide returns the rule that fires for m, or nil.
func (p *cutProxy) decide(dir direction, m *signal.Message) *cutRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rule
	if r == nil || r.dir != dir || r.typ != m.Type {
		return nil
	}
	p.seen++
	if p.seen < r.nth {
		return nil
	}
	p.rule = nil
	p.cuts++
	p.broadcastLocked()
	return r
}

func (p *cutProxy) record(pc *proxyConn, dir direction, m signal.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, forwarded{conn: pc.n, dir: dir, msg: m})
	p.broadcastLocked()
}

func (p *cutProxy) forget(pc *proxyConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, pc)
}

// pump copies src to dst: the HTTP handshake line by line, then whole
// WebSocket messages (with any control frames between their fragments),
// consulting the rule for each data message.
func (p *cutProxy) pump(pc *proxyConn, dir direction, src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		if !pc.silent.Load() {
			p.forget(pc) // close cuts the server's side of a silent cut
		}
	}()
	defer pc.end()
	r := bufio.NewReader(src)
	var hs []byte
	for {
		line, err := r.ReadBytes('\n')
		hs = append(hs, line...)
		if err != nil {
			return
		}
		if string(line) == "\r\n" {
			break
		}
	}
	if _, err := dst.Write(hs); err != nil {
		return
	}
	var pending, payload []byte // raw frames of the message being read; its unmasked payload
	inMessage := false
	// After a silent cut, what the server writes is read and dropped.
	write := func(b []byte) bool {
		if _, err := dst.Write(b); err != nil {
			if dir == down && pc.silent.Load() {
				_, _ = io.Copy(io.Discard, r)
			}
			return false
		}
		return true
	}
	silentCut := func() {
		pc.cutSilently()
		if dir == down {
			_, _ = io.Copy(io.Discard, r)
		}
	}
	for {
		raw, fin, opcode, data, err := readFrame(r)
		if err != nil {
			return
		}
		control := opcode >= 8
		if control && !inMessage {
			if !write(raw) {
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
		rule := p.decide(dir, &m)
		if rule != nil && rule.before {
			if rule.silent {
				silentCut()
			}
			return
		}
		if rule != nil && dir == down {
			// The message and the end of the connection reach the client
			// in one segment: it cannot answer the message before it can
			// know that the connection is gone.
			corkForCut(dst)
		}
		if !write(pending) {
			return
		}
		p.record(pc, dir, m)
		if rule != nil {
			if rule.silent {
				silentCut()
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
	switch n {
	case 126:
		ext := make([]byte, 2)
		if _, err = io.ReadFull(r, ext); err != nil {
			return nil, false, 0, nil, err
		}
		h = append(h, ext...)
		n = uint64(binary.BigEndian.Uint16(ext))
	case 127:
		ext := make([]byte, 8)
		if _, err = io.ReadFull(r, ext); err != nil {
			return nil, false, 0, nil, err
		}
		h = append(h, ext...)
		n = binary.BigEndian.Uint64(ext)
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
