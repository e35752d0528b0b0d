package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// proxiedPair starts a server with srvCfg and joins a (which creates room
// "resume" and answers) and b (which joins and offers), each through its
// own signaltest.CutProxy and with its own trace. Before a joins, arm(pa,
// pb) may arm a proxy. cfgA and cfgB, when set, adjust the peers' configs.
type proxiedPair struct {
	ctx    context.Context
	srv    *signaltest.Server
	a, b   *Peer
	la, lb *eventLog
	pa, pb *signaltest.CutProxy
	ta, tb *trace
}

func newProxiedPair(t *testing.T, srvCfg signal.Config, arm func(pa, pb *signaltest.CutProxy), adjust func(id string, cfg *Config)) *proxiedPair {
	t.Helper()
	x := &proxiedPair{ctx: testContext(t), ta: newTrace(), tb: newTrace()}
	if srvCfg.Logger == nil {
		srvCfg.Logger = testLogger(t, "server", "")
	}
	x.srv = signaltest.New(t, srvCfg)
	x.pa, x.pb = signaltest.NewCutProxy(t, x.srv.URL), signaltest.NewCutProxy(t, x.srv.URL)
	if arm != nil {
		arm(x.pa, x.pb)
	}
	cfgA, cfgB := traced(config(t, x.pa.URL, "resume", "a"), x.ta), traced(config(t, x.pb.URL, "resume", "b"), x.tb)
	if adjust != nil {
		adjust("a", &cfgA)
		adjust("b", &cfgB)
	}
	var err error
	if x.a, err = Join(x.ctx, cfgA); err != nil {
		t.Fatalf("a: %v", err)
	}
	x.la = collect(t, x.a)
	if x.b, err = Join(x.ctx, cfgB); err != nil {
		t.Fatalf("b: %v", err)
	}
	x.lb = collect(t, x.b)
	return x
}

// noneOf fails the test if l has any event of the given types.
func noneOf(t *testing.T, l *eventLog, types ...EventType) {
	t.Helper()
	for _, typ := range types {
		if n := l.count(typ); n > 0 {
			t.Errorf("%s: %d %s events, want none; events:\n%s", l.p.ID(), n, typ, l)
		}
	}
}

// TestResumeCut cuts the signaling connection of one member of a pair
// abruptly (no close frame) at each step of the negotiation. Every time
// the member resumes its seat, the call connects and a message goes each
// way, the other member never sees it leave or come back, and no signal
// is lost or duplicated (see checkSignals; "lossless" cases are those
// where the cut member has nothing in flight when cut).
//
// What a member writes into its connection just before the cut, before
// it can know, is lost: the protocol has the server re-send what the
// client missed, but nothing tells the client which of its own frames the
// server read. Candidates lost that way do not matter (ICE finds the
// address from the connectivity checks), but a lost offer or answer would
// leave the call unconnected, so no case cuts a member while it may be
// writing one: for instance the answering member is not cut when the
// offerer's first candidate reaches it, since it is then answering.
func TestResumeCut(t *testing.T) {
	tests := []struct {
		who      string // "a" creates the room and answers; "b" joins and offers
		rule     signaltest.CutRule
		lossless bool
	}{
		// After join.
		{who: "a", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeCreated, Nth: 1}, lossless: true},
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeJoined, Nth: 1}, lossless: true},
		// After the offer (before the answer and candidates).
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Up, Type: signal.TypeOffer, Nth: 1}},
		{who: "a", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeOffer, Nth: 1, Before: true}, lossless: true},
		{who: "a", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeOffer, Nth: 1}, lossless: true},
		// After the answer.
		{who: "a", rule: signaltest.CutRule{Dir: signaltest.Up, Type: signal.TypeAnswer, Nth: 1}},
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeAnswer, Nth: 1, Before: true}},
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeAnswer, Nth: 1}},
		// During candidates.
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Up, Type: signal.TypeCandidate, Nth: 1}},
		{who: "a", rule: signaltest.CutRule{Dir: signaltest.Up, Type: signal.TypeCandidate, Nth: 1}},
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeCandidate, Nth: 1, Before: true}},
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeCandidate, Nth: 1}},
		// Silent cuts: the server still has the old connection open when
		// the member resumes, and replaces it.
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeJoined, Nth: 1, Silent: true}, lossless: true},
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Up, Type: signal.TypeOffer, Nth: 1, Silent: true}},
		{who: "a", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeOffer, Nth: 1, Before: true, Silent: true}, lossless: true},
		{who: "a", rule: signaltest.CutRule{Dir: signaltest.Up, Type: signal.TypeAnswer, Nth: 1, Silent: true}},
		{who: "b", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeAnswer, Nth: 1, Silent: true}},
		{who: "a", rule: signaltest.CutRule{Dir: signaltest.Up, Type: signal.TypeCandidate, Nth: 1, Silent: true}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s", tt.who, tt.rule), func(t *testing.T) {
			t.Parallel()
			x := newProxiedPair(t, signal.Config{}, func(pa, pb *signaltest.CutProxy) {
				if tt.who == "a" {
					pa.Arm(tt.rule)
				} else {
					pb.Arm(tt.rule)
				}
			}, nil)
			cutP, cutL, otherL := x.pa, x.la, x.lb
			if tt.who == "b" {
				cutP, cutL, otherL = x.pb, x.lb, x.la
			}
			// (ICE may connect before some signals, so the rule may fire
			// after the channel opened.)
			if err := cutP.WaitCuts(x.ctx, 1); err != nil {
				t.Fatal(err)
			}
			waitChannel(t, x.ctx, x.a, x.b)
			exchange(t, x.ctx, x.la, x.lb, 0, 0)
			_, lost := cutL.waitType(t, x.ctx, EventSignalingLost, 0)
			cutL.waitType(t, x.ctx, EventSignalingResumed, lost)

			checkSignals(t, x.ctx, x.a, x.ta, x.pa, x.b, x.tb, tt.who != "a" || tt.lossless)
			checkSignals(t, x.ctx, x.b, x.tb, x.pb, x.a, x.ta, tt.who != "b" || tt.lossless)

			noneOf(t, otherL, EventPeerLeft, EventSignalingLost, EventSeatLost, EventSignalingClosed, EventError)
			noneOf(t, cutL, EventPeerLeft, EventSeatLost, EventSignalingClosed, EventError)
			for _, l := range []*eventLog{cutL, otherL} {
				if n := l.count(EventJoined); n != 1 {
					t.Errorf("%s: %d joined events, want 1", l.p.ID(), n)
				}
			}
			if n := cutL.count(EventSignalingLost); n != 1 {
				t.Errorf("%s: %d signaling-lost events, want 1", cutL.p.ID(), n)
			}
		})
	}
}

// TestResumeMidNegotiation is the case: the WebSocket of the
// answering member drops after the offer, before its answer and
// candidates (which it makes while disconnected, so they wait in its
// queue), while the other member's candidates keep coming (the server
// holds them). The call connects and no signal is lost: each side gets
// exactly what the other queued, in order.
func TestResumeMidNegotiation(t *testing.T) {
	x := newProxiedPair(t, signal.Config{}, func(pa, _ *signaltest.CutProxy) {
		pa.Arm(signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeOffer, Nth: 1})
	}, nil)
	e, lost := x.la.waitType(t, x.ctx, EventSignalingLost, 0)
	if !errors.Is(e.Err, ErrSignalingClosed) {
		t.Errorf("signaling-lost error %v, want ErrSignalingClosed", e.Err)
	}
	x.la.waitType(t, x.ctx, EventSignalingResumed, lost)
	waitChannel(t, x.ctx, x.a, x.b)
	exchange(t, x.ctx, x.la, x.lb, 0, 0)
	checkSignals(t, x.ctx, x.a, x.ta, x.pa, x.b, x.tb, true)
	checkSignals(t, x.ctx, x.b, x.tb, x.pb, x.a, x.ta, true)
	noneOf(t, x.lb, EventPeerLeft, EventSignalingLost, EventError)
	noneOf(t, x.la, EventSeatLost, EventPeerLeft, EventError)

	// What a made while disconnected went out on the new connection.
	var answerConn int
	for _, f := range x.pa.Forwarded(signaltest.Up, signal.TypeAnswer) {
		answerConn = f.Conn
	}
	if answerConn != 2 {
		t.Errorf("a's answer went out on connection %d, want 2 (after the resume)", answerConn)
	}
}

// TestResumeTwice: a seat can be resumed again and again, and signaling
// works after each resume (a relayed message gets through).
func TestResumeTwice(t *testing.T) {
	x := newProxiedPair(t, signal.Config{}, nil, nil)
	waitChannel(t, x.ctx, x.a, x.b)
	from := 0
	for i := range 3 {
		x.pb.CutAll()
		_, lost := x.lb.waitType(t, x.ctx, EventSignalingLost, from)
		_, from = x.lb.waitType(t, x.ctx, EventSignalingResumed, lost)
		data := fmt.Sprintf(`"after resume %d"`, i)
		x.b.out.push(&signal.Message{Type: signal.TypeMessage, To: "a", Data: []byte(data)})
		x.ta.wait(t, x.ctx, "the relayed message", func() bool {
			return slices.ContainsFunc(x.ta.received, func(m signal.Message) bool { return string(m.Data) == data })
		})
	}
	exchange(t, x.ctx, x.la, x.lb, 0, 0)
	noneOf(t, x.la, EventPeerLeft, EventError)
	noneOf(t, x.lb, EventSeatLost, EventPeerLeft, EventError)
}

// TestResumeSeatLost: when the seat cannot be resumed, the member closes
// its PeerConnections, joins the room again as a newcomer, and the call is
// negotiated anew: the server has resume off, or released the seat when
// its (tiny) window ended before the member could reconnect, or the
// member's own window passed while the server was unreachable. The member
// that lost its seat may be the one that answered: it then offers.
func TestResumeSeatLost(t *testing.T) {
	secret := []byte("auth secret")
	tests := []struct {
		name         string
		srv          signal.Config
		clientWindow time.Duration      // b's Config.ResumeWindow
		unreachable  bool               // the server cannot be reached until the seat is gone
		cutA         signaltest.CutRule // cut a instead of b, with this rule
		wantServer   string             // the peer-left reason the remaining member sees
		wantRefused  bool               // the seat-lost error is the server's resume-failed
	}{
		{name: "server resume off", srv: signal.Config{ResumeWindow: -1}, wantServer: signal.ReasonDisconnected, wantRefused: true},
		{name: "server window passed", srv: signal.Config{ResumeWindow: 20 * time.Millisecond}, unreachable: true, wantServer: signal.ReasonTimeout, wantRefused: true},
		{name: "server window passed, join tokens", srv: signal.Config{ResumeWindow: 20 * time.Millisecond, AuthSecret: secret}, unreachable: true, wantServer: signal.ReasonTimeout, wantRefused: true},
		{name: "client window passed", srv: signal.Config{ResumeWindow: 20 * time.Millisecond}, clientWindow: 50 * time.Millisecond, unreachable: true, wantServer: signal.ReasonTimeout},
		{name: "answerer, mid-negotiation", srv: signal.Config{ResumeWindow: -1}, cutA: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeOffer, Nth: 1, Before: true}, wantServer: signal.ReasonDisconnected, wantRefused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			midNegotiation := tt.cutA.Type != ""
			x := newProxiedPair(t, tt.srv, func(pa, _ *signaltest.CutProxy) {
				if midNegotiation {
					pa.Arm(tt.cutA)
				}
			}, func(id string, cfg *Config) {
				if tt.srv.AuthSecret != nil {
					tok, err := signal.MintToken(secret, "resume", id, 0, time.Hour)
					if err != nil {
						t.Fatal(err)
					}
					cfg.Token = tok
				}
				if id == "b" {
					cfg.ResumeWindow = tt.clientWindow
				}
			})
			// lost is the member that loses its seat, kept the one that
			// stays.
			lost, kept, lostP := x.lb, x.la, x.pb
			if midNegotiation {
				lost, kept, lostP = x.la, x.lb, x.pa
			} else {
				waitChannel(t, x.ctx, x.a, x.b)
			}
			lostID, keptID := lost.p.ID(), kept.p.ID()
			oldPC := lost.p.PeerConnection(keptID)
			if tt.unreachable {
				lostP.SetMode(signaltest.Refuse)
			}
			if !midNegotiation {
				lostP.CutAll()
			}

			_, i := lost.waitType(t, x.ctx, EventSignalingLost, 0)
			if tt.unreachable {
				// The seat is gone for the server (and, with its own window
				// passed, for the member) before the member gets through.
				kept.waitType(t, x.ctx, EventPeerLeft, 0)
				if tt.clientWindow > 0 {
					lost.waitType(t, x.ctx, EventSeatLost, i)
				}
				lostP.SetMode(signaltest.Forward)
			}
			e, i := lost.waitType(t, x.ctx, EventSeatLost, i)
			if !errors.Is(e.Err, ErrSeatLost) {
				t.Errorf("seat-lost error %v, want ErrSeatLost", e.Err)
			}
			if refused := errors.Is(e.Err, &signal.Error{Code: signal.CodeResumeFailed}); refused != tt.wantRefused {
				t.Errorf("seat-lost error %v: resume-failed %v, want %v", e.Err, refused, tt.wantRefused)
			}
			if oldPC != nil {
				e, i = lost.waitType(t, x.ctx, EventPeerLeft, i)
				if e.Remote != keptID || e.Reason != ReasonSeatLost {
					t.Errorf("%s: peer-left %s (%s), want %s (%s)", lostID, e.Remote, e.Reason, keptID, ReasonSeatLost)
				}
				if s := oldPC.ConnectionState(); s.String() != "closed" {
					t.Errorf("the old PeerConnection is %s, want closed", s)
				}
			}
			e, i = lost.waitType(t, x.ctx, EventJoined, i)
			if e.ID != lostID || e.Created || len(e.Peers) != 1 || e.Peers[0] != keptID {
				t.Errorf("%s: joined again %+v, want as %s with peers [%s]", lostID, e, lostID, keptID)
			}

			e, j := kept.waitType(t, x.ctx, EventPeerLeft, 0)
			if e.Remote != lostID || e.Reason != tt.wantServer {
				t.Errorf("%s: peer-left %s (%s), want %s (%s)", keptID, e.Remote, e.Reason, lostID, tt.wantServer)
			}
			_, j = kept.waitType(t, x.ctx, EventPeerJoined, j)
			waitChannel(t, x.ctx, x.a, x.b)
			if pc := lost.p.PeerConnection(keptID); pc == nil || pc == oldPC {
				t.Errorf("%s has no new PeerConnection with %s", lostID, keptID)
			}
			fromA, fromB := i, j
			if lost == x.lb {
				fromA, fromB = j, i
			}
			exchange(t, x.ctx, x.la, x.lb, fromA, fromB)
			noneOf(t, lost, EventSignalingResumed, EventError, EventSignalingClosed)
			noneOf(t, kept, EventError, EventSignalingLost)
		})
	}
}

// TestReconnectClose: Close while the peer is reconnecting returns at
// once, whether the server refuses connections (the peer waits between
// attempts) or a connection hangs in its handshake; nothing leaks
// (TestMain checks goroutines). The other member keeps its call until
// then.
func TestReconnectClose(t *testing.T) {
	for _, mode := range []signaltest.Mode{signaltest.Refuse, signaltest.Hang} {
		t.Run(map[signaltest.Mode]string{signaltest.Refuse: "refused", signaltest.Hang: "hanging"}[mode], func(t *testing.T) {
			t.Parallel()
			x := newProxiedPair(t, signal.Config{}, nil, nil)
			waitChannel(t, x.ctx, x.a, x.b)
			x.pb.SetMode(mode)
			x.pb.CutAll()
			_, i := x.lb.waitType(t, x.ctx, EventSignalingLost, 0)
			if mode == signaltest.Hang {
				if err := x.pb.WaitHung(x.ctx); err != nil {
					t.Fatal(err)
				}
			}
			exchange(t, x.ctx, x.la, x.lb, 0, i)
			start := time.Now()
			if err := x.b.Close(); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Close took %s while reconnecting", d)
			}
			noneOf(t, x.lb, EventSignalingResumed, EventSeatLost, EventSignalingClosed, EventError)
		})
	}
}

// TestNoReconnect: a connection the server closes on purpose, with a close
// frame, is not reconnected: another connection resumed the seat (4001
// replaced), an operator kicked the member (1008), or reconnecting is off
// (Config.ResumeWindow < 0). The peer reports signaling-closed and its run
// loop ends; established calls keep working, unless the member was kicked.
func TestNoReconnect(t *testing.T) {
	const admin = "admin token"
	tests := []struct {
		name   string
		window time.Duration // b's ResumeWindow
		end    func(t *testing.T, x *proxiedPair)
		code   int  // the close code b sees; 0 for none
		kicked bool // a sees b leave (kicked) and the call ends
	}{
		{name: "replaced", code: signal.CloseReplaced, end: func(t *testing.T, x *proxiedPair) {
			c, err := signal.Dial(x.ctx, x.srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			m, err := c.Join(x.ctx, "resume", &signal.JoinOptions{Resume: x.b.resume})
			if err != nil || !m.Resumed || m.ID != "b" {
				t.Fatalf("resume from another connection: %+v, %v", m, err)
			}
		}},
		{name: "kicked", code: websocket.ClosePolicyViolation, kicked: true, end: func(t *testing.T, x *proxiedPair) {
			req, err := http.NewRequestWithContext(x.ctx, http.MethodDelete, x.srv.HTTP.URL+"/api/rooms/resume/peers/b", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("kick: HTTP %s", resp.Status)
			}
		}},
		{name: "reconnecting off", window: -1, end: func(t *testing.T, x *proxiedPair) { x.pb.CutAll() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := newProxiedPair(t, signal.Config{AdminToken: admin}, nil, func(id string, cfg *Config) {
				if id == "b" {
					cfg.ResumeWindow = tt.window
				}
			})
			waitChannel(t, x.ctx, x.a, x.b)
			tt.end(t, x)
			e, _ := x.lb.waitType(t, x.ctx, EventSignalingClosed, 0)
			if !errors.Is(e.Err, ErrSignalingClosed) {
				t.Errorf("signaling-closed error %v, want ErrSignalingClosed", e.Err)
			}
			var ce *websocket.CloseError
			if tt.code != 0 && (!errors.As(e.Err, &ce) || ce.Code != tt.code) {
				t.Errorf("signaling-closed error %v, want close code %d", e.Err, tt.code)
			}
			select {
			case <-x.b.runDone:
			case <-x.ctx.Done():
				t.Fatal("b's run loop did not end")
			}
			noneOf(t, x.lb, EventSignalingLost, EventSignalingResumed, EventSeatLost)
			if tt.kicked {
				e, _ := x.la.waitType(t, x.ctx, EventPeerLeft, 0)
				if e.Remote != "b" || e.Reason != signal.ReasonKicked {
					t.Errorf("a: peer-left %s (%s), want b (kicked)", e.Remote, e.Reason)
				}
				e, _ = x.lb.waitType(t, x.ctx, EventError, 0)
				if !errors.Is(e.Err, &signal.Error{Code: signal.CodeKicked}) {
					t.Errorf("b: error %v, want the server's kicked", e.Err)
				}
				return
			}
			exchange(t, x.ctx, x.la, x.lb, 0, 0)
		})
	}
}
