package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Cluster mode: a server node that drains closes its connections with
// 1012 and the seats move to another node; the resumed joined says how
// many of the seat's frames the server handled (read), so the client
// writes the others again; after a node crashed the room is hosted anew
// and the resumed joined says gap: signals may have been lost both ways,
// and the calls not connected are recovered. These tests play the server
// with a fakeServer (frame by frame) or a fakeRoom (a relaying server).

// TestClusterDrain: a connection closed with 1012 is resumed at once (no
// backoff before the first attempt, unlike a dropped one), with the
// resume token and the number of frames read on the old connection; the
// call goes on on the same PeerConnection, and neither member sees the
// other leave.
func TestClusterDrain(t *testing.T) {
	tests := []struct {
		name      string
		code      int // close code; 0: the connection drops
		wantWaits bool
	}{
		{name: "1012 service restart", code: websocket.CloseServiceRestart},
		{name: "dropped", wantWaits: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			room := newFakeRoom(t)
			var waits atomic.Int32
			cfgB := config(t, room.srv.URL, "drain", "b")
			cfgB.hooks = &hooks{backoff: func() { waits.Add(1) }}
			a, la := joinLogged(t, ctx, config(t, room.srv.URL, "drain", "a"))
			b, lb := joinLogged(t, ctx, cfgB)
			waitChannel(t, ctx, a, b)
			pc := b.PeerConnection("a")

			room.mu.Lock()
			token := room.seats["b"].token
			room.seats["b"].conn.end(fakeOut{close: true, code: tt.code, text: "node draining"})
			room.mu.Unlock()
			_, i := lb.waitType(t, ctx, EventSignalingLost, 0)
			lb.waitType(t, ctx, EventSignalingResumed, i)

			if n := waits.Load(); (n > 0) != tt.wantWaits {
				t.Errorf("%d backoff waits before the resume, want any: %v", n, tt.wantWaits)
			}
			room.mu.Lock()
			resumes := slices.Clone(room.resumes)
			room.mu.Unlock()
			if len(resumes) != 1 {
				t.Fatalf("resumes %+v, want 1", resumes)
			}
			r := resumes[0]
			if r.id != "b" || r.token != token || r.received == nil || int(*r.received) != r.oldSent {
				t.Errorf("resume %+v (received %v), want b with token %q and received %d", r, r.received, token, r.oldSent)
			}
			if got := b.PeerConnection("a"); got != pc || !b.connected("a") {
				t.Errorf("b's PeerConnection with a was replaced or is not connected")
			}
			exchange(t, ctx, la, lb, 0, 0)
			noneOf(t, la, EventPeerLeft, EventSignalingLost, EventError)
			noneOf(t, lb, EventPeerLeft, EventSeatLost, EventSignalingClosed, EventError)
		})
	}
}

// joinLogged joins with cfg and collects the peer's events.
func joinLogged(t *testing.T, ctx context.Context, cfg Config) (*Peer, *eventLog) {
	t.Helper()
	p, err := Join(ctx, cfg)
	if err != nil {
		t.Fatalf("%s: %v", cfg.ID, err)
	}
	return p, collect(t, p)
}

// text is the relayed message whose data is the JSON string s.
func text(s string) *signal.Message {
	return &signal.Message{Type: signal.TypeMessage, Data: json.RawMessage(strconv.Quote(s))}
}

// frameText returns the JSON string data of a relayed message, or a
// description of the frame.
func frameText(m *signal.Message) string {
	var s string
	if m.Type != signal.TypeMessage || json.Unmarshal(m.Data, &s) != nil {
		return fmt.Sprintf("(%s %s)", m.Type, m.Data)
	}
	return s
}

// expectTexts reads len(want) frames from c and checks that they are the
// relayed messages want, in order.
func expectTexts(t *testing.T, ctx context.Context, c *fakeConn, want []string) {
	t.Helper()
	var got []string
	for range want {
		got = append(got, frameText(c.recv(t, ctx)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("frames %q, want %q", got, want)
	}
}

// names returns prefix+i for i in from..to.
func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, prefix+strconv.Itoa(i))
	}
	return out
}

// resumeOn takes the resume join on the fake server's next connection,
// checks its token and received, queues text("queued") while the peer
// waits for the answer, and answers with a resumed joined carrying read
// (none when read < 0) and gap. It returns the connection.
func resumeOn(t *testing.T, ctx context.Context, f *fakeServer, token string, received uint64, read int, gap bool, p *Peer) *fakeConn {
	t.Helper()
	c := f.next(t, ctx)
	j := c.recv(t, ctx)
	if j.Type != signal.TypeJoin || j.Resume != token || j.Received == nil || *j.Received != received {
		t.Fatalf("first frame on the new connection: %+v, want a resume join with token %q, received %d", j, token, received)
	}
	// The peer is reconnecting: what it queues now waits for the joined.
	p.out.push(text("queued"))
	joined := map[string]any{"type": "joined", "ref": j.Ref, "room": j.Room, "id": p.ID(), "capacity": 2,
		"peers": []string{}, "iceServers": []any{}, "resume": token + "+", "resumed": true}
	if read >= 0 {
		joined["read"] = read
	}
	if gap {
		joined["gap"] = true
	}
	c.send(t, joined)
	return c
}

// TestClusterResend: the peer numbers the frames it writes on its seat
// and keeps the latest; after a resume it writes again, in order and
// before anything new, those after the joined's read; without read (an
// older server) nothing. The count then agrees with the server's: a
// second resume whose read is every frame written sends nothing again.
func TestClusterResend(t *testing.T) {
	const n = 5
	tests := []struct {
		name string
		read int // -1: no read
		want []string
	}{
		{name: "none handled", read: 0, want: names("m", 1, n)},
		{name: "some handled", read: 3, want: names("m", 4, n)},
		{name: "all handled", read: n},
		{name: "older server", read: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			f := newFakeServer(t)
			p, l, c1 := fakeJoin(t, ctx, f, config(t, f.URL, "resend", "a"))
			for _, s := range names("m", 1, n) {
				p.out.push(text(s))
			}
			expectTexts(t, ctx, c1, names("m", 1, n))
			c1.closeWith(websocket.CloseServiceRestart, "draining")

			c2 := resumeOn(t, ctx, f, "t0", 1, tt.read, false, p)
			expectTexts(t, ctx, c2, append(slices.Clone(tt.want), "queued"))

			// Every frame was handled: nothing goes out again.
			c2.end(fakeOut{close: true})
			c3 := resumeOn(t, ctx, f, "t0+", 1, n+1, false, p)
			expectTexts(t, ctx, c3, []string{"queued"})
			for _, e := range l.all() {
				if e.Type == EventSignalingResumed && e.Gap {
					t.Errorf("resumed with a gap: %v", e)
				}
			}
			noneOf(t, l, EventSeatLost, EventError, EventSignalingClosed)
		})
	}
}

// TestClusterResendGap: when the frames to write again are no longer all
// kept (at most keptFramesMax frames and keptBytesMax bytes), or read is
// beyond what the peer wrote, the resume is a gap: nothing is written
// again, EventSignalingResumed has Gap, and the count goes on from read.
// At the bound exactly, every frame is written again.
func TestClusterResendGap(t *testing.T) {
	big := strings.Repeat("x", 2000)
	tests := []struct {
		name    string
		n       int    // frames written before the drain
		pad     string // appended to each frame's text
		read    int
		wantGap bool
	}{
		{name: "read beyond sent", n: 3, read: 5, wantGap: true},
		{name: "frames past the count kept", n: keptFramesMax + 10, read: 9, wantGap: true},
		{name: "frames past the bytes kept", n: 200, pad: big, read: 0, wantGap: true},
		{name: "every frame kept", n: keptFramesMax + 10, read: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			f := newFakeServer(t)
			p, l, c1 := fakeJoin(t, ctx, f, config(t, f.URL, "gap", "a"))
			sent := names("m", 1, tt.n)
			for i := range sent {
				sent[i] += tt.pad
				p.out.push(text(sent[i]))
			}
			expectTexts(t, ctx, c1, sent)
			c1.closeWith(websocket.CloseServiceRestart, "draining")

			c2 := resumeOn(t, ctx, f, "t0", 1, tt.read, false, p)
			want := []string{"queued"}
			if !tt.wantGap {
				want = append(slices.Clone(sent[tt.read:]), want...)
			}
			expectTexts(t, ctx, c2, want)
			e, _ := l.waitType(t, ctx, EventSignalingResumed, 0)
			if e.Gap != tt.wantGap {
				t.Errorf("resumed: gap %v, want %v", e.Gap, tt.wantGap)
			}

			// The count went on from read (after a gap) or from the
			// frames written again: read+1 frames are now handled.
			total := tt.n + 1
			if tt.wantGap {
				total = tt.read + 1
			}
			c2.end(fakeOut{close: true})
			c3 := resumeOn(t, ctx, f, "t0+", 1, total, false, p)
			expectTexts(t, ctx, c3, []string{"queued"})
			if n := l.count(EventSignalingResumed); n != 2 {
				t.Fatalf("%d resumes, want 2", n)
			}
			_, i := l.waitType(t, ctx, EventSignalingResumed, 0)
			if e, _ := l.waitType(t, ctx, EventSignalingResumed, i+1); e.Gap {
				t.Errorf("second resume: gap, want none")
			}
			noneOf(t, l, EventSeatLost, EventError, EventSignalingClosed)
		})
	}
}

// TestClusterGapRecovery: a pair whose negotiation is stuck when the room
// is hosted anew, signals lost: the answer (the offerer waits in
// have-local-offer), or every candidate (both are stable, and ICE has
// nothing to check). After the resume with a gap (gap: true, or a read
// beyond what the offerer wrote), the offerer offers again (the same
// offer, or one with an ICE restart), the answerer answers it although it
// answered before, and the call connects on the same PeerConnections.
func TestClusterGapRecovery(t *testing.T) {
	isAnswerFromA := func(from string, m *signal.Message) bool { return from == "a" && m.Type == signal.TypeAnswer }
	isCandidate := func(_ string, m *signal.Message) bool { return m.Type == signal.TypeCandidate }
	tests := []struct {
		name      string
		drop      func(from string, m *signal.Message) bool
		stuck     string // what has been dropped when the pair is stuck: "from type"
		gap       bool   // the resumed joined says gap
		readAhead bool   // b's resumed joined has a read beyond what b wrote
		wantState webrtc.SignalingState
	}{
		{name: "answer lost, gap", drop: isAnswerFromA, stuck: "a answer", gap: true, wantState: webrtc.SignalingStateHaveLocalOffer},
		{name: "candidates lost, gap", drop: isCandidate, stuck: "a candidate", gap: true, wantState: webrtc.SignalingStateStable},
		{name: "answer lost, read beyond", drop: isAnswerFromA, stuck: "a answer", readAhead: true, wantState: webrtc.SignalingStateHaveLocalOffer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			room := newFakeRoom(t)
			room.mu.Lock()
			room.drop = tt.drop
			room.mu.Unlock()
			tb := newTrace()
			a, la := joinLogged(t, ctx, config(t, room.srv.URL, "gap", "a"))
			b, lb := joinLogged(t, ctx, traced(config(t, room.srv.URL, "gap", "b"), tb))
			room.wait(t, ctx, tt.stuck+" dropped", func() bool { return slices.Contains(room.dropped, tt.stuck) })
			if tt.wantState == webrtc.SignalingStateStable {
				tb.wait(t, ctx, "the answer for b", func() bool {
					return slices.ContainsFunc(tb.received, func(m signal.Message) bool { return m.Type == signal.TypeAnswer })
				})
				waitStable(t, ctx, b.PeerConnection("a"))
			}
			pcA, pcB := a.PeerConnection("b"), b.PeerConnection("a")
			if s := pcB.SignalingState(); s != tt.wantState || b.connected("a") {
				t.Fatalf("b is %s (connected %v), want %s and not connected", s, b.connected("a"), tt.wantState)
			}

			// The room is hosted anew: both connections end.
			room.mu.Lock()
			room.drop = nil
			if tt.gap {
				room.rehostLocked()
			}
			if tt.readAhead {
				room.read = func(id string, handled uint64) uint64 {
					if id == "b" {
						return handled + 1000
					}
					return handled
				}
			}
			for _, id := range []string{"a", "b"} {
				room.seats[id].conn.end(fakeOut{close: true, code: websocket.CloseServiceRestart, text: "node gone"})
			}
			room.mu.Unlock()

			e, _ := lb.waitType(t, ctx, EventSignalingResumed, 0)
			if !e.Gap {
				t.Errorf("b resumed without a gap")
			}
			waitChannel(t, ctx, a, b)
			exchange(t, ctx, la, lb, 0, 0)
			if a.PeerConnection("b") != pcA || b.PeerConnection("a") != pcB {
				t.Errorf("a PeerConnection was replaced")
			}
			noneOf(t, la, EventPeerLeft, EventSeatLost, EventError)
			noneOf(t, lb, EventPeerLeft, EventSeatLost, EventError)
		})
	}
}

// waitStable waits until pc's signaling state is stable. (The peer does
// not use pc's signaling state callback.)
func waitStable(t *testing.T, ctx context.Context, pc *webrtc.PeerConnection) {
	t.Helper()
	stable := make(chan struct{}, 1)
	pc.OnSignalingStateChange(func(s webrtc.SignalingState) {
		if s == webrtc.SignalingStateStable {
			select {
			case stable <- struct{}{}:
			default:
			}
		}
	})
	if pc.SignalingState() == webrtc.SignalingStateStable {
		return
	}
	select {
	case <-stable:
	case <-ctx.Done():
		t.Fatalf("waiting for a stable signaling state: %v", ctx.Err())
	}
}

// TestClusterDuplicates: after a gap a member may get signals twice. A
// connected pair gets every signal relayed so far again, in order (the
// offer, the answer, every candidate): the answerer answers the offer
// again, the offerer ignores the answers it gets with no offer pending,
// and the candidates are added again; no error, and the call goes on.
func TestClusterDuplicates(t *testing.T) {
	ctx := testContext(t)
	room := newFakeRoom(t)
	ta, tb := newTrace(), newTrace()
	a, la := joinLogged(t, ctx, traced(config(t, room.srv.URL, "dup", "a"), ta))
	b, lb := joinLogged(t, ctx, traced(config(t, room.srv.URL, "dup", "b"), tb))
	waitChannel(t, ctx, a, b)
	exchange(t, ctx, la, lb, 0, 0)

	room.mu.Lock()
	again := slices.Clone(room.relayed)
	for _, f := range again {
		room.deliverLocked(room.seats[f.to], f.frame)
	}
	room.mu.Unlock()
	var offers, answers int
	for _, f := range again {
		switch f.frame["type"] {
		case signal.TypeOffer:
			offers++
		case signal.TypeAnswer:
			answers++
		}
	}
	if offers != 1 || answers != 1 || len(again) < 3 {
		t.Fatalf("relayed %d offers, %d answers, %d frames; want 1, 1 and candidates", offers, answers, len(again))
	}
	// a answers the offer again: b gets that answer too, and a marker
	// after it, by when b has handled every duplicate.
	room.wait(t, ctx, "a's second answer", func() bool {
		n := 0
		for _, f := range room.relayed {
			if f.to == "b" && f.frame["type"] == signal.TypeAnswer {
				n++
			}
		}
		return n == 2
	})
	room.mu.Lock()
	room.deliverLocked(room.seats["b"], map[string]any{"type": "message", "from": "a", "data": "marker"})
	room.mu.Unlock()
	tb.wait(t, ctx, "b's marker", func() bool {
		return slices.ContainsFunc(tb.received, func(m signal.Message) bool { return string(m.Data) == `"marker"` })
	})

	if !a.connected("b") || !b.connected("a") {
		t.Errorf("the call is no longer connected")
	}
	exchange(t, ctx, la, lb, len(la.all()), len(lb.all()))
	noneOf(t, la, EventPeerLeft, EventError)
	noneOf(t, lb, EventPeerLeft, EventError)
}
