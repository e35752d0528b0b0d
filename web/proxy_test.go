package web_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// direction is the way a WebSocket message goes through a cutProxy.
type direction string

const (
	up   direction = "up"   // page to server
	down direction = "down" // server to page
)

// cutRule makes a cutProxy cut the WebSocket it sees the nth (from 1)
// message of type typ go in direction dir on: before forwarding it (the
// message is lost with the connection) or right after. It fires once.
type cutRule struct {
	dir    direction
	typ    string
	nth    int
	before bool
}

func (r cutRule) String() string {
	when := "after"
	if r.before {
		when = "before"
	}
	return fmt.Sprintf("cut %s %s #%d %s", when, r.typ, r.nth, r.dir)
}

// proxyMode says what a cutProxy does with new connections.
type proxyMode int

const (
	modeForward proxyMode = iota // proxy them to the server
	modeRefuse                   // close them at once: the server cannot be reached
)

// forwarded is a WebSocket data message a cutProxy passed on.
type forwarded struct {
	conn int // the WebSocket's number, from 1
	dir  direction
	typ  string
	from string
	to   string
	raw  string
}

// cutProxy is a TCP proxy in front of a test server, for pages to load
// from: they then open their WebSocket (/ws on their own origin) through
// it too. Plain HTTP connections are copied as they are. On a WebSocket
// connection it parses the frames without changing them (pings, pongs and
// close frames pass as they are), records the data messages, and cuts the
// connection abruptly (both TCP sockets closed, no close frame) when its
// rule fires or on demand: for the page and for the server, the network
// failed.
type cutProxy struct {
	URL    string // http://127.0.0.1:PORT
	ln     net.Listener
	target string // the server's host:port

	mu      sync.Mutex
	rule    *cutRule            // guarded by mu; nil when disarmed
	seen    int                 // guarded by mu; messages matching rule so far
	mode    proxyMode           // guarded by mu
	ws      map[*proxyConn]bool // guarded by mu; open WebSocket connections
	all     map[*proxyConn]bool // guarded by mu; every open connection
	nws     int                 // guarded by mu; WebSocket connections so far
	log     []forwarded         // guarded by mu
	cuts    int                 // guarded by mu
	changed chan struct{}       // guarded by mu; closed and replaced on every cut or log entry
	closed  bool                // guarded by mu
	wg      sync.WaitGroup
}

type proxyConn struct {
	n              int // WebSocket number; 0 for plain HTTP
	client, server net.Conn
	once           sync.Once
}

func (c *proxyConn) cut() {
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// newCutProxy starts a proxy in front of hs; it stops when the test ends.
func newCutProxy(t testing.TB, hs *httptest.Server) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{
		URL:     "http://" + ln.Addr().String(),
		ln:      ln,
		target:  strings.TrimPrefix(hs.URL, "http://"),
		ws:      make(map[*proxyConn]bool),
		all:     make(map[*proxyConn]bool),
		changed: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// arm sets the rule that cuts the next WebSocket it matches.
func (p *cutProxy) arm(r cutRule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule, p.seen = &r, 0
}

func (p *cutProxy) setMode(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

// cutAll cuts every open WebSocket now.
func (p *cutProxy) cutAll() {
	p.mu.Lock()
	var conns []*proxyConn
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

// waitCuts waits until the proxy has cut n times.
func (p *cutProxy) waitCuts(t testing.TB, n int) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		p.mu.Lock()
		cuts, changed := p.cuts, p.changed
		p.mu.Unlock()
		if cuts >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("timed out after %s waiting for the proxy to cut (%d cuts, want %d)", waitTimeout, cuts, n)
		}
	}
}

// messages returns the data messages of type typ forwarded in direction dir.
func (p *cutProxy) messages(dir direction, typ string) []forwarded {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []forwarded
	for _, f := range p.log {
		if f.dir == dir && f.typ == typ {
			out = append(out, f)
		}
	}
	return out
}

// wsConns returns the number of WebSocket connections so far.
func (p *cutProxy) wsConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nws
}

// transcript lists what the proxy forwarded, for failure reports.
func (p *cutProxy) transcript() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, f := range p.log {
		fmt.Fprintf(&b, "  ws#%d %-4s %s", f.conn, f.dir, f.typ)
		if f.from != "" {
			fmt.Fprintf(&b, " from %s", f.from)
		}
		if f.to != "" {
			fmt.Fprintf(&b, " to %s", f.to)
		}
		if f.typ != "offer" && f.typ != "answer" && len(f.raw) < 200 {
			fmt.Fprintf(&b, " %s", f.raw)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (p *cutProxy) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// close stops the proxy: the listener and every connection are closed,
// and its goroutines have ended when it returns.
func (p *cutProxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.all
	p.all = map[*proxyConn]bool{}
	p.mu.Unlock()
	_ = p.ln.Close()
	for c := range conns {
		c.cut()
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
		refuse := p.closed || p.mode == modeRefuse
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pc := &proxyConn{client: c, server: s}
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
// a WebSocket (Chromium opens a connection of its own for each).
func (p *cutProxy) serve(pc *proxyConn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.all, pc)
		delete(p.ws, pc)
		p.mu.Unlock()
	}()
	defer pc.cut()
	rc := bufio.NewReader(pc.client)
	head, err := readHead(rc)
	if err != nil {
		return
	}
	if _, err := pc.server.Write(head); err != nil {
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
	resp, err := readHead(rs)
	if err != nil {
		return
	}
	if _, err := pc.client.Write(resp); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pump(pc, down, rs, pc.client)
	}()
	p.pump(pc, up, rc, pc.server)
	pc.cut()
	<-done
}

// readHead reads an HTTP request or response head, up to the empty line.
func readHead(r *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := r.ReadBytes('\n')
		head = append(head, line...)
		if err != nil {
			return nil, err
		}
		if string(line) == "\r\n" {
			return head, nil
		}
		if len(head) > 64<<10 {
			return nil, fmt.Errorf("HTTP head too long")
		}
	}
}

// decide says whether to cut pc before or after forwarding a message of
// type typ in direction dir.
func (p *cutProxy) decide(dir direction, typ string) (cut, before bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rule
	if r == nil || r.dir != dir || r.typ != typ {
		return false, false
	}
	p.seen++
	if p.seen < r.nth {
		return false, false
	}
	p.rule = nil
	p.cuts++
	p.broadcastLocked()
	return true, r.before
}

func (p *cutProxy) record(f forwarded) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, f)
	p.broadcastLocked()
}

// pump copies WebSocket frames from r to dst, whole messages at a time
// (with any control frames between their fragments), consulting the rule
// for each data message.
func (p *cutProxy) pump(pc *proxyConn, dir direction, r *bufio.Reader, dst net.Conn) {
	// When one way ends, so does the other.
	defer pc.cut()
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
		var m struct{ Type, From, To string }
		_ = json.Unmarshal(payload, &m)
		cut, before := p.decide(dir, m.Type)
		if cut && before {
			return
		}
		if cut && dir == down {
			// The message and the end of the connection reach the page in
			// one segment: it cannot answer the message before it can
			// know that the connection is gone.
			corkForCut(dst)
		}
		if _, err := dst.Write(pending); err != nil {
			return
		}
		p.record(forwarded{conn: pc.n, dir: dir, typ: m.Type, from: m.From, to: m.To, raw: string(payload)})
		if cut {
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
