package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// fakeQueue bounds the frames waiting in each direction of a fakeConn.
const fakeQueue = 1024

// fakeServer is a protocol v1 server that a test plays itself, frame by
// frame: each WebSocket connection it accepts on 127.0.0.1 is handed to
// the test (next), which reads the client's frames (recv) and writes the
// server's (send, closeWith, drop). Everything is closed at the end of
// the test.
type fakeServer struct {
	URL   string
	conns chan *fakeConn // accepted, for next

	mu     sync.Mutex
	all    []*fakeConn // guarded by mu
	closed bool        // guarded by mu
	done   chan struct{}
}

// fakeConn is one connection to a fakeServer.
type fakeConn struct {
	ws    *websocket.Conn
	in    chan *signal.Message // the client's frames; closed when the connection ends
	out   chan fakeOut         // the server's frames, for the writer
	ended chan struct{}        // closed when the reader and the writer have ended
	sent  int                  // frames queued by send; only the test's goroutine that sends uses it
	mu    sync.Mutex
	stop  bool // guarded by mu: out is closed
}

// fakeOut is a frame for the writer, or (close set) the end of the
// connection: a close frame with code and text, or none (code 0).
type fakeOut struct {
	frame []byte
	close bool
	code  int
	text  string
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	f := &fakeServer{conns: make(chan *fakeConn, 16), done: make(chan struct{})}
	var up websocket.Upgrader
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &fakeConn{ws: ws, in: make(chan *signal.Message, fakeQueue), out: make(chan fakeOut, fakeQueue), ended: make(chan struct{})}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			_ = ws.Close()
			return
		}
		f.all = append(f.all, c)
		f.mu.Unlock()
		c.start(f.done)
		select {
		case f.conns <- c:
		case <-f.done:
		}
	}))
	t.Cleanup(func() {
		f.mu.Lock()
		f.closed = true
		all := f.all
		f.mu.Unlock()
		close(f.done)
		for _, c := range all {
			c.end(fakeOut{close: true})
			<-c.ended
		}
		hs.Close()
	})
	f.URL = "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	return f
}

// endAll ends every connection, abruptly.
func (f *fakeServer) endAll() {
	f.mu.Lock()
	all := f.all
	f.mu.Unlock()
	for _, c := range all {
		c.end(fakeOut{close: true})
	}
}

// next returns the next connection the server accepted.
func (f *fakeServer) next(t testing.TB, ctx context.Context) *fakeConn {
	t.Helper()
	select {
	case c := <-f.conns:
		return c
	case <-ctx.Done():
		t.Fatalf("waiting for a connection to the fake server: %v", ctx.Err())
		return nil
	}
}

// start runs the connection's reader and writer.
func (c *fakeConn) start(done <-chan struct{}) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(c.in)
		for {
			_, data, err := c.ws.ReadMessage()
			if err != nil {
				return
			}
			m := new(signal.Message)
			if err := json.Unmarshal(data, m); err != nil {
				m = &signal.Message{Type: "(not a message)", Message: string(data)}
			}
			select {
			case c.in <- m:
			case <-done:
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for o := range c.out {
			if o.close {
				if o.code != 0 {
					_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(o.code, o.text), time.Now().Add(time.Second))
				}
				_ = c.ws.Close()
				return
			}
			if err := c.ws.WriteMessage(websocket.TextMessage, o.frame); err != nil {
				_ = c.ws.Close()
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(c.ended)
	}()
}

// queue hands o to the writer; it reports false when the connection has
// ended or its queue is full.
func (c *fakeConn) queue(o fakeOut) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop {
		return false
	}
	if o.close {
		c.stop = true
		c.out <- o // the last item: fits, or the writer frees room
		close(c.out)
		return true
	}
	select {
	case c.out <- o:
		return true
	default:
		return false
	}
}

// send writes v as one frame (after the frames sent before it).
func (c *fakeConn) send(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Errorf("fake server: %v", err)
		return
	}
	if !c.queue(fakeOut{frame: b}) {
		t.Errorf("fake server: cannot send %s: the connection ended or its queue is full", b)
		return
	}
	c.sent++
}

// end ends the connection after the frames sent before: with a close
// frame (code, text) in o, or abruptly (code 0).
func (c *fakeConn) end(o fakeOut) { c.queue(o) }

// closeWith closes the connection with a close frame, after the frames
// sent before it.
func (c *fakeConn) closeWith(code int, text string) {
	c.end(fakeOut{close: true, code: code, text: text})
}

// recv returns the client's next frame.
func (c *fakeConn) recv(t testing.TB, ctx context.Context) *signal.Message {
	t.Helper()
	select {
	case m, ok := <-c.in:
		if !ok {
			t.Fatal("fake server: the connection ended while waiting for a frame")
		}
		return m
	case <-ctx.Done():
		t.Fatalf("fake server: waiting for a frame: %v", ctx.Err())
		return nil
	}
}

// fakeJoin joins cfg's room through f, whose test plays the server: it
// answers the join with created (id cfg.ID, resume token "t0").
func fakeJoin(t *testing.T, ctx context.Context, f *fakeServer, cfg Config) (*Peer, *eventLog, *fakeConn) {
	t.Helper()
	type result struct {
		p   *Peer
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := Join(ctx, cfg)
		done <- result{p, err}
	}()
	c := f.next(t, ctx)
	if m := c.recv(t, ctx); m.Type != signal.TypeJoin || m.Resume != "" {
		t.Fatalf("first frame %+v, want a join", m)
	}
	c.send(t, map[string]any{"type": "created", "room": cfg.Room, "id": cfg.ID, "capacity": 2, "iceServers": []any{}, "resume": "t0"})
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.p, collect(t, r.p), c
}

// fakeRoom plays a whole server with one room on a fakeServer, for calls
// between real peers: joins, resumes (the seat's new connection replaces
// the old one; the resumed joined carries read, the seat's frames
// handled), relaying with from, and frames held for a member whose
// connection is gone until it resumes. A test may lose signals (drop),
// make resumes report other reads (read), and host the room anew
// (rehostLocked: the frames held are lost, resumes report a gap).
type fakeRoom struct {
	t   testing.TB
	srv *fakeServer

	mu      sync.Mutex
	seats   map[string]*fakeSeat                      // guarded by mu; by id
	order   []string                                  // guarded by mu; ids in join order
	tokens  int                                       // guarded by mu; resume tokens handed out
	drop    func(from string, m *signal.Message) bool // guarded by mu: loses the signals it returns true for
	gap     bool                                      // guarded by mu: resumes get gap: true
	read    func(id string, handled uint64) uint64    // guarded by mu: the read of a resume; nil: handled
	dropped []string                                  // guarded by mu: "from type", what drop lost
	relayed []fakeRelayed                             // guarded by mu: the frames relayed, in order
	resumes []fakeResume                              // guarded by mu
	changed chan struct{}                             // guarded by mu; closed and replaced on every change
	quit    chan struct{}                             // closed at the end of the test
	wg      sync.WaitGroup                            // the room's goroutines
}

// fakeRelayed is a frame a fakeRoom relayed to member to.
type fakeRelayed struct {
	to    string
	frame map[string]any
}

// fakeSeat is a member of a fakeRoom.
type fakeSeat struct {
	id, token string
	conn      *fakeConn // nil while the member has no connection
	last      *fakeConn // the latest connection
	handled   uint64    // frames handled from the seat's connections after its join
	held      []any     // frames for the member while it has no connection
}

// fakeResume records a resume: the join's fields, and the frames the
// server sent on the connection it replaces.
type fakeResume struct {
	id, token string
	received  *uint64
	oldSent   int
	conns     int // the connection's number among the server's connections
}

// newFakeRoom serves room on a new fakeServer until the test ends. drop
// and read may be set before the first join, under mu afterwards.
func newFakeRoom(t *testing.T) *fakeRoom {
	r := &fakeRoom{t: t, srv: newFakeServer(t), seats: map[string]*fakeSeat{}, changed: make(chan struct{}), quit: make(chan struct{})}
	accepted := 0
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case c := <-r.srv.conns:
				accepted++
				r.wg.Add(1)
				go r.serve(c, accepted)
			case <-r.quit:
				return
			}
		}
	}()
	// (Before the server's cleanup, which waits for the connections.)
	t.Cleanup(func() {
		close(r.quit)
		r.srv.endAll()
		r.wg.Wait()
	})
	return r
}

// changedLocked wakes waiters. r.mu must be held.
func (r *fakeRoom) changedLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// wait waits until cond, called with r.mu held, holds.
func (r *fakeRoom) wait(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("fake room: waiting for %s: %v", what, ctx.Err())
		}
	}
}

// conn returns the current connection of member id.
func (r *fakeRoom) conn(id string) *fakeConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.seats[id]; s != nil {
		return s.conn
	}
	return nil
}

// serve plays the server on connection c (the n-th accepted).
func (r *fakeRoom) serve(c *fakeConn, n int) {
	defer r.wg.Done()
	var j *signal.Message
	select {
	case j = <-c.in:
	case <-r.quit:
		return
	}
	if j == nil || j.Type != signal.TypeJoin {
		if j != nil {
			r.t.Errorf("fake room: first frame %+v, want a join", j)
		}
		c.end(fakeOut{close: true})
		return
	}
	seat := r.take(c, j, n)
	if seat == nil {
		return
	}
	for m := range c.in {
		r.handle(seat, c, m)
	}
	r.mu.Lock()
	if seat.conn == c {
		seat.conn = nil
	}
	r.changedLocked()
	r.mu.Unlock()
}

// take handles the join j on c: a new seat, or a resume.
func (r *fakeRoom) take(c *fakeConn, j *signal.Message, n int) *fakeSeat {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.changedLocked()
	r.tokens++
	token := fmt.Sprintf("t%d", r.tokens)
	if j.Resume != "" {
		var seat *fakeSeat
		for _, s := range r.seats {
			if s.token == j.Resume {
				seat = s
			}
		}
		if seat == nil {
			c.send(r.t, map[string]any{"type": "error", "code": signal.CodeResumeFailed, "message": "no such seat", "ref": j.Ref})
			c.end(fakeOut{close: true, code: websocket.CloseNormalClosure})
			return nil
		}
		rec := fakeResume{id: seat.id, token: j.Resume, received: j.Received, conns: n}
		rec.oldSent = seat.last.sent
		if seat.conn != nil {
			seat.conn.end(fakeOut{close: true, code: signal.CloseReplaced, text: "replaced"})
		}
		r.resumes = append(r.resumes, rec)
		seat.conn, seat.last, seat.token = c, c, token
		joined := map[string]any{"type": "joined", "ref": j.Ref, "room": j.Room, "id": seat.id, "capacity": 2,
			"peers": r.othersLocked(seat.id), "iceServers": []any{}, "resume": token, "resumed": true}
		switch {
		case r.gap:
			joined["gap"] = true
		case r.read != nil:
			joined["read"] = r.read(seat.id, seat.handled)
			seat.handled = joined["read"].(uint64)
		default:
			joined["read"] = seat.handled
		}
		c.send(r.t, joined)
		for _, f := range seat.held {
			c.send(r.t, f)
		}
		seat.held = nil
		return seat
	}
	seat := &fakeSeat{id: j.ID, token: token, conn: c, last: c}
	typ := "created"
	if len(r.order) > 0 {
		typ = "joined"
	}
	peers := r.othersLocked(j.ID)
	for _, id := range r.order {
		r.deliverLocked(r.seats[id], map[string]any{"type": "peer-joined", "room": j.Room, "id": j.ID})
	}
	r.seats[j.ID] = seat
	r.order = append(r.order, j.ID)
	c.send(r.t, map[string]any{"type": typ, "ref": j.Ref, "room": j.Room, "id": j.ID, "capacity": 2, "peers": peers, "iceServers": []any{}, "resume": token})
	return seat
}

// othersLocked returns the ids of the members other than id, in join
// order. r.mu must be held.
func (r *fakeRoom) othersLocked(id string) []string {
	var out []string
	for _, o := range r.order {
		if o != id {
			out = append(out, o)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// deliverLocked sends frame to seat's connection, or holds it while the
// seat has none. r.mu must be held.
func (r *fakeRoom) deliverLocked(seat *fakeSeat, frame any) {
	if seat.conn != nil {
		b, err := json.Marshal(frame)
		if err != nil {
			r.t.Errorf("fake room: %v", err)
			return
		}
		if seat.conn.queue(fakeOut{frame: b}) {
			seat.conn.sent++
			return
		}
		// Its connection has ended; the room has not seen it yet.
	}
	seat.held = append(seat.held, frame)
}

// rehost makes the room lose what it held, as a room hosted anew after a
// node crashed: the next resumes get gap: true. r.mu must be held.
func (r *fakeRoom) rehostLocked() {
	r.gap = true
	for _, s := range r.seats {
		s.held = nil
	}
}

// handle relays m, from seat's connection c.
func (r *fakeRoom) handle(seat *fakeSeat, c *fakeConn, m *signal.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.changedLocked()
	if seat.conn != c {
		return // replaced: a real server would still relay for a second; not needed here
	}
	seat.handled++
	if r.drop != nil && r.drop(seat.id, m) {
		r.dropped = append(r.dropped, seat.id+" "+m.Type)
		return
	}
	frame := map[string]any{"type": m.Type, "from": seat.id}
	switch m.Type {
	case signal.TypeOffer, signal.TypeAnswer:
		frame["sdp"] = m.SDP
	case signal.TypeCandidate:
		frame["candidate"] = json.RawMessage(m.Candidate)
		if len(m.Candidate) == 0 {
			frame["candidate"] = nil
		}
	case signal.TypeMessage:
		frame["data"] = json.RawMessage(m.Data)
	default:
		return // leave and the rest: not needed here
	}
	for _, id := range r.order {
		if id != seat.id && (m.To == "" || m.To == id) {
			r.deliverLocked(r.seats[id], frame)
			r.relayed = append(r.relayed, fakeRelayed{to: id, frame: frame})
		}
	}
}

// countDropped returns how many frames drop lost that match "from type".
func (r *fakeRoom) countDropped(what string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(slices.DeleteFunc(slices.Clone(r.dropped), func(s string) bool { return s != what }))
}
