package web_test

// Cluster mode in a real browser: a server node that drains closes its
// WebSockets with 1012 and the seat moves to another node; the resumed
// joined says how many of the seat's frames the server handled (read),
// and signal.js sends the others again; after a node crashed the room is
// hosted anew and the resumed joined says gap, and signal.js recovers the
// calls that are not connected. The server is played by the test
// (scriptedServer, and clusterRoom on top of it for calls).

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// frameJSON returns m as JSON with sorted keys, to compare frames.
func frameJSON(t *testing.T, m map[string]any) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClusterDrainResend: the server closes the page's WebSocket with
// 1012 after handling one of the frames the page sent; the page resumes
// at once (no backoff: its reconnecting event has delay 0) with its token
// and the frames it received, sends nothing but the resume join until
// joined, then sends again, in order, the frames after the joined's read,
// and after them what it queued meanwhile.
func TestClusterDrainResend(t *testing.T) {
	srv := newScriptedServer(t)
	p := openPage(t, "page", srv.URL+"/")
	p.join("drain", "Dana", dataOnly)
	c := srv.acceptCreated(t, "drain", "dana")
	p.joined()

	p.exec(`(() => { const c = window.rendezvous.client; for (const n of [1, 2, 3]) c.relay({n}); })()`)
	// Every frame the page sent after its join (the app may send some of
	// its own), up to the third relay.
	var sent []string
	for relays := 0; relays < 3; {
		m := c.recv(t)
		if m["type"] == "message" {
			relays++
		}
		sent = append(sent, frameJSON(t, m))
	}
	const read = 1 // the server handled the first frame only
	if err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseServiceRestart, "draining"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	c2 := srv.accept(t)
	resume := c2.recv(t)
	if resume["type"] != "join" || resume["resume"] != "token-1" || resume["received"] != float64(1) {
		t.Fatalf("first message on the new WebSocket %v, want a join with resume token-1 and received 1", resume)
	}
	p.exec(`window.rendezvous.client.relay({n: "queued"})`)
	c2.send(t, map[string]any{"type": "joined", "ref": resume["ref"], "room": "drain", "id": "dana",
		"capacity": 2, "peers": []any{}, "iceServers": []any{}, "resume": "token-2", "resumed": true, "read": read})
	want := append(slices.Clone(sent[read:]), frameJSON(t, map[string]any{"type": "message", "data": map[string]any{"n": "queued"}}))
	var got []string
	for range want {
		got = append(got, frameJSON(t, c2.recv(t)))
	}
	if !slices.Equal(got, want) {
		t.Errorf("after the resume the page sent\n%s\nwant\n%s", got, want)
	}
	p.waitEvent("resumed", "")
	r := evaluate[struct {
		Delay  float64
		Resent int
		Gap    bool
	}](p, `(() => { const ev = window.rendezvous.events;
		const rc = ev.find(e => e.type === "reconnecting"), rs = ev.find(e => e.type === "resumed");
		return {Delay: rc.delay, Resent: rs.resent, Gap: rs.gap}; })()`)
	if r.Delay != 0 || r.Resent != len(sent)-read || r.Gap {
		t.Errorf("reconnecting delay %v, resumed resent %d gap %v; want 0, %d, false", r.Delay, r.Resent, r.Gap, len(sent)-read)
	}
	p.noEvents("seatlost", "disconnected", "error")
}

// clusterRoom plays a server with one room on a scriptedServer, for calls
// between pages: joins (ids p1, p2, ...), resumes (the seat's new
// WebSocket replaces the old one; the resumed joined carries read, the
// seat's frames handled), relaying with from, and frames held for a
// member without a WebSocket until it resumes. A test may lose signals
// (drop) and host the room anew (rehostLocked: what was held is lost,
// resumes report a gap).
type clusterRoom struct {
	t   *testing.T
	srv *scriptedServer

	mu      sync.Mutex
	seats   map[string]*clusterSeat                  // guarded by mu; by id
	order   []string                                 // guarded by mu; ids in join order
	tokens  int                                      // guarded by mu
	drop    func(from string, m map[string]any) bool // guarded by mu
	dropped []string                                 // guarded by mu: "from type" of each frame drop lost
	gap     bool                                     // guarded by mu: resumes report gap
	conns   []*clusterConn                           // guarded by mu
	changed chan struct{}                            // guarded by mu; closed and replaced on every change

	quit chan struct{}
	wg   sync.WaitGroup
}

type clusterSeat struct {
	id, token string
	conn      *clusterConn // nil while the member has no WebSocket
	handled   int
	held      []map[string]any
}

// clusterConn is a scriptedConn with a writer of its own, so that the
// room queues frames under its lock and never writes under it.
type clusterConn struct {
	*scriptedConn
	out   chan clusterOut // closed after the last item
	ended bool            // guarded by clusterRoom.mu: out is closed
	done  chan struct{}   // closed when the writer has ended
}

// clusterOut is a frame, or (end set) the end of the WebSocket: a close
// frame with code, or none (code 0).
type clusterOut struct {
	frame []byte
	end   bool
	code  int
}

func newClusterRoom(t *testing.T, srv *scriptedServer) *clusterRoom {
	r := &clusterRoom{t: t, srv: srv, seats: map[string]*clusterSeat{}, changed: make(chan struct{}), quit: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case sc := <-srv.conns:
				c := &clusterConn{scriptedConn: sc, out: make(chan clusterOut, 1024), done: make(chan struct{})}
				go c.write()
				r.mu.Lock()
				r.conns = append(r.conns, c)
				r.mu.Unlock()
				r.wg.Add(1)
				go r.serve(c)
			case <-r.quit:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(r.quit)
		r.mu.Lock()
		conns := r.conns
		for _, c := range conns {
			r.endLocked(c, 0)
		}
		r.mu.Unlock()
		for _, c := range conns {
			<-c.done
		}
		r.wg.Wait()
	})
	return r
}

// write writes c's frames until its end.
func (c *clusterConn) write() {
	defer close(c.done)
	for o := range c.out {
		if o.end {
			if o.code != 0 {
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(o.code, "node going away"), time.Now().Add(time.Second))
			}
			_ = c.ws.Close()
			return
		}
		if c.ws.WriteMessage(websocket.TextMessage, o.frame) != nil {
			_ = c.ws.Close()
			return
		}
	}
}

// sendLocked queues frame on c; it reports false when c has ended.
// r.mu must be held.
func (r *clusterRoom) sendLocked(c *clusterConn, frame map[string]any) bool {
	if c.ended {
		return false
	}
	b, err := json.Marshal(frame)
	if err != nil {
		r.t.Errorf("cluster room: %v", err)
		return true
	}
	select {
	case c.out <- clusterOut{frame: b}:
	default:
		r.t.Errorf("cluster room: the queue of a WebSocket is full")
	}
	return true
}

// endLocked ends c after its queued frames: with a close frame with
// code, or abruptly (code 0). r.mu must be held.
func (r *clusterRoom) endLocked(c *clusterConn, code int) {
	if c.ended {
		return
	}
	c.ended = true
	c.out <- clusterOut{end: true, code: code} // blocks only while the writer drains a full queue
	close(c.out)
}

// deliverLocked sends frame to seat's WebSocket, or holds it while it has
// none. r.mu must be held.
func (r *clusterRoom) deliverLocked(seat *clusterSeat, frame map[string]any) {
	if seat.conn != nil && r.sendLocked(seat.conn, frame) {
		return
	}
	seat.held = append(seat.held, frame)
}

func (r *clusterRoom) changedLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// wait waits until cond, called with r.mu held, holds.
func (r *clusterRoom) wait(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			r.t.Fatalf("cluster room: waiting for %s", what)
		}
	}
}

// rehostLocked hosts the room anew, as after a node crashed: what it held
// is lost, every WebSocket ends with 1012, and resumes report gap. r.mu
// must be held.
func (r *clusterRoom) rehostLocked() {
	r.gap = true
	for _, s := range r.seats {
		s.held = nil
		if s.conn != nil {
			r.endLocked(s.conn, websocket.CloseServiceRestart)
		}
	}
}

// serve plays the server on c.
func (r *clusterRoom) serve(c *clusterConn) {
	defer r.wg.Done()
	var seat *clusterSeat
	for m := range c.in {
		r.mu.Lock()
		if seat == nil {
			seat = r.takeLocked(c, m)
		} else {
			r.handleLocked(seat, c, m)
		}
		r.changedLocked()
		r.mu.Unlock()
	}
	r.mu.Lock()
	if seat != nil && seat.conn == c {
		seat.conn = nil
	}
	r.endLocked(c, 0)
	r.changedLocked()
	r.mu.Unlock()
}

// takeLocked handles c's first frame, which must be a join: a new seat or
// a resume. r.mu must be held.
func (r *clusterRoom) takeLocked(c *clusterConn, j map[string]any) *clusterSeat {
	if j["type"] != "join" {
		r.t.Errorf("cluster room: first frame %v, want a join", j)
		r.endLocked(c, 0)
		return nil
	}
	r.tokens++
	token := fmt.Sprintf("token-%d", r.tokens)
	if j["resume"] != nil {
		var seat *clusterSeat
		for _, s := range r.seats {
			if s.token == j["resume"] {
				seat = s
			}
		}
		if seat == nil {
			r.sendLocked(c, map[string]any{"type": "error", "code": "resume-failed", "message": "no such seat", "ref": j["ref"]})
			return nil
		}
		if seat.conn != nil {
			r.endLocked(seat.conn, 4001)
		}
		seat.conn, seat.token = c, token
		joined := map[string]any{"type": "joined", "ref": j["ref"], "room": j["room"], "id": seat.id, "capacity": 2,
			"peers": r.othersLocked(seat.id), "iceServers": []any{}, "resume": token, "resumed": true}
		if r.gap {
			joined["gap"] = true
		} else {
			joined["read"] = seat.handled
		}
		r.sendLocked(c, joined)
		for _, f := range seat.held {
			r.sendLocked(c, f)
		}
		seat.held = nil
		return seat
	}
	id := fmt.Sprintf("p%d", len(r.order)+1)
	typ := "created"
	if len(r.order) > 0 {
		typ = "joined"
	}
	peers := r.othersLocked(id)
	for _, o := range r.order {
		r.deliverLocked(r.seats[o], map[string]any{"type": "peer-joined", "room": j["room"], "id": id})
	}
	seat := &clusterSeat{id: id, token: token, conn: c}
	r.seats[id] = seat
	r.order = append(r.order, id)
	r.sendLocked(c, map[string]any{"type": typ, "ref": j["ref"], "room": j["room"], "id": id, "capacity": 2,
		"peers": peers, "iceServers": []any{}, "resume": token})
	return seat
}

// othersLocked returns the ids other than id, in join order.
func (r *clusterRoom) othersLocked(id string) []string {
	out := []string{}
	for _, o := range r.order {
		if o != id {
			out = append(out, o)
		}
	}
	return out
}

// handleLocked relays m from seat's WebSocket c. r.mu must be held.
func (r *clusterRoom) handleLocked(seat *clusterSeat, c *clusterConn, m map[string]any) {
	if seat == nil || seat.conn != c {
		return
	}
	seat.handled++
	typ, _ := m["type"].(string)
	if r.drop != nil && r.drop(seat.id, m) {
		r.dropped = append(r.dropped, seat.id+" "+typ)
		return
	}
	frame := map[string]any{"type": typ, "from": seat.id}
	switch typ {
	case "offer", "answer":
		frame["sdp"] = m["sdp"]
	case "candidate":
		frame["candidate"] = m["candidate"]
	case "message":
		frame["data"] = m["data"]
	default:
		return // leave and the rest: not needed here
	}
	to, _ := m["to"].(string)
	for _, id := range r.order {
		if id != seat.id && (to == "" || to == id) {
			r.deliverLocked(r.seats[id], frame)
		}
	}
}

// TestClusterGapRecovery: two pages whose call is stuck when the room is
// hosted anew, signals lost: the answer (the offerer waits in
// have-local-offer), or every candidate (both are stable and ICE has
// nothing to check). After the resumes with gap, the offerer offers again
// with an ICE restart, the other page answers although it answered
// before, and the call connects on the same peer connections; chat goes
// both ways over the data channel.
func TestClusterGapRecovery(t *testing.T) {
	tests := []struct {
		name  string
		drop  func(from string, m map[string]any) bool
		stuck string // dropped when the call is stuck
		state string // p2's signaling state then
	}{
		{name: "answer lost", drop: func(from string, m map[string]any) bool { return from == "p1" && m["type"] == "answer" },
			stuck: "p1 answer", state: "have-local-offer"},
		{name: "candidates lost", drop: func(_ string, m map[string]any) bool { return m["type"] == "candidate" },
			stuck: "p1 candidate", state: "stable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptedServer(t)
			room := newClusterRoom(t, srv)
			room.mu.Lock()
			room.drop = tt.drop
			room.mu.Unlock()
			a := openPage(t, "p1", srv.URL+"/")
			b := openPage(t, "p2", srv.URL+"/")
			a.join("gap", "Ada", dataOnly)
			a.joined()
			b.join("gap", "Bo", dataOnly)
			b.joined()
			room.wait(tt.stuck+" dropped", func() bool { return slices.Contains(room.dropped, tt.stuck) })
			b.waitFor("p2 "+tt.state, fmt.Sprintf(`(() => { const p = window.rendezvous.client.peers.get("p1");
				return !!p && p.pc.signalingState === %s && p.pc.connectionState !== "connected"; })()`, jsString(tt.state)))
			for _, p := range []*page{a, b} {
				p.exec(`(() => { const c = window.rendezvous.client; window.firstPC = [...c.peers.values()][0].pc; })()`)
			}

			room.mu.Lock()
			room.drop = nil
			room.rehostLocked()
			room.mu.Unlock()

			a.waitConnected("p2")
			b.waitConnected("p1")
			for _, p := range []*page{a, b} {
				p.waitEvent("resumed", "e.gap === true")
				if !evaluate[bool](p, `[...window.rendezvous.client.peers.values()][0].pc === window.firstPC`) {
					t.Errorf("%s: the peer connection was replaced", p.name)
				}
				p.noEvents("peerleft", "seatlost", "disconnected", "error")
			}
			b.waitEvent("icerestart", `e.id === "p1"`)
			chatBothWays(a, b, "Ada", "Bo", "p1", "p2", "after the gap")
		})
	}
}
