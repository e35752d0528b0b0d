package peer

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// TestPeerLeft: when a member leaves (Close sends leave) or its signaling
// connection ends (with a close frame, or dropped and not resumed), the
// other sees peer-left with the reason and its PeerConnection is closed;
// the member can then join again and negotiate anew. (The member that
// leaves does not reconnect by itself here: see resume_test.go for that.)
func TestPeerLeft(t *testing.T) {
	tests := []struct {
		name   string
		resume time.Duration // the server's ResumeWindow
		leave  func(*Peer)
		reason string
	}{
		{name: "leave", leave: func(p *Peer) { _ = p.Close() }, reason: signal.ReasonLeft},
		{name: "close frame", leave: func(p *Peer) { _ = p.currentClient().Close() }, reason: signal.ReasonDisconnected},
		{name: "drop, resume off", resume: -1, leave: func(p *Peer) { p.currentClient().Abort() }, reason: signal.ReasonDisconnected},
		{name: "drop, seat expires", resume: 100 * time.Millisecond, leave: func(p *Peer) { p.currentClient().Abort() }, reason: signal.ReasonTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			srv := signaltest.New(t, signal.Config{ResumeWindow: tt.resume})
			a := join(t, ctx, config(t, srv.URL, "pair", "a"))
			// b does not reconnect: this is about what the server does.
			cfg := config(t, srv.URL, "pair", "b")
			cfg.ResumeWindow = -1
			b := join(t, ctx, cfg)
			waitChannel(t, ctx, a, b)
			pc := a.PeerConnection("b")
			if pc == nil {
				t.Fatal("a has no PeerConnection with b")
			}
			tt.leave(b)
			ev := nextEvent(t, ctx, a, "peer-left", func(e Event) bool { return e.Type == EventPeerLeft })
			if ev.Remote != "b" || ev.Reason != tt.reason {
				t.Errorf("peer-left %s (%s), want b (%s)", ev.Remote, ev.Reason, tt.reason)
			}
			if s := pc.ConnectionState(); s != webrtc.PeerConnectionStateClosed {
				t.Errorf("a's PeerConnection with b is %s after peer-left, want closed", s)
			}
			if a.PeerConnection("b") != nil {
				t.Error("a still lists b")
			}
			if err := a.SendText("b", chat, "x"); err == nil {
				t.Error("SendText to a member that left succeeded")
			}
			_ = b.Close()

			b2 := join(t, ctx, config(t, srv.URL, "pair", "b"))
			waitChannel(t, ctx, a, b2)
			if err := b2.SendText("a", chat, "again"); err != nil {
				t.Fatal(err)
			}
			if e := messages(t, ctx, a, 1)[0]; string(e.Data) != "again" || e.Remote != "b" {
				t.Errorf("a got %q from %s, want \"again\" from b", e.Data, e.Remote)
			}
		})
	}
}
