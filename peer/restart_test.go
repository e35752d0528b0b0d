package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// restartGap is how long the signaling server stays down in
// TestServerRestart, as an operator's restart would.
const restartGap = 3 * time.Second

// fixedServer is a signaling server on a fixed address, which a test can
// stop and start again on the same address. (signaltest picks a new port
// for every server.)
type fixedServer struct {
	t    *testing.T
	addr string

	mu   sync.Mutex
	srv  *signal.Server // guarded by mu; nil while stopped
	http *http.Server   // guarded by mu
	done chan struct{}  // closed when Serve has returned
}

// startFixed starts a server on ln and stops it with t.Cleanup.
func startFixed(t *testing.T, ln net.Listener) *fixedServer {
	f := &fixedServer{t: t, addr: ln.Addr().String()}
	f.serve(ln)
	t.Cleanup(f.stop)
	return f
}

func (f *fixedServer) url() string { return "ws://" + f.addr + "/ws" }

func (f *fixedServer) serve(ln net.Listener) {
	s := signal.NewServer(signal.Config{Logger: testLogger(f.t, "server", f.addr)})
	hs := s.HTTPServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(s.Listener(ln))
	}()
	f.mu.Lock()
	f.srv, f.http, f.done = s, hs, done
	f.mu.Unlock()
}

// stop shuts the server down as SIGTERM does (peer-left "shutdown" and
// 1001 for everyone) and closes its listener.
func (f *fixedServer) stop() {
	f.mu.Lock()
	s, hs, done := f.srv, f.http, f.done
	f.srv = nil
	f.mu.Unlock()
	if s == nil {
		return
	}
	_ = s.Close()
	_ = hs.Close()
	<-done
}

// restart listens on the same address again and serves a new server.
// The port was just released; binding it again is retried briefly.
func (f *fixedServer) restart(ctx context.Context) {
	f.t.Helper()
	for {
		ln, err := net.Listen("tcp", f.addr)
		if err == nil {
			f.serve(ln)
			return
		}
		select {
		case <-ctx.Done():
			f.t.Fatalf("listen on %s again: %v", f.addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestServerRestart: two peers in a call, with a data channel and video,
// live through a restart of the signaling server on the same address. On
// the shutdown both report server-shutdown and keep the call (messages
// flow while the server is down); when the server is back they join the
// room again under the same ids, and find each other: the one back first
// gets created, the other joined with the first in peers and keeps its
// connection (rejoined, Kept), and the first keeps its own on the
// peer-joined (Kept). No PeerConnection is created or negotiated anew;
// messages and media flow after.
func TestServerRestart(t *testing.T) {
	ctx := testContext(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := startFixed(t, ln)

	var prepared atomic.Int32
	packets := [2]*rtpCounter{newRTPCounter(), newRTPCounter()} // received by a, b
	peers := make([]*Peer, 2)
	for i, id := range []string{"a", "b"} {
		cfg := config(t, srv.url(), "restart", id)
		cfg.Prepare = func(string, Role, *webrtc.PeerConnection) error {
			prepared.Add(1)
			return nil
		}
		track, err := NewVP8Track("video", "testsrc-"+id)
		if err != nil {
			t.Fatal(err)
		}
		streamFile(t, track)
		cfg.Tracks = []webrtc.TrackLocal{track}
		cfg.OnTrack = func(_ string, tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				packets[i].add()
			}
		}
		peers[i] = join(t, ctx, cfg)
	}
	a, b := peers[0], peers[1]
	waitChannel(t, ctx, a, b)
	pcA, pcB := a.PeerConnection("b"), b.PeerConnection("a")
	packets[0].wait(t, ctx, 1)
	packets[1].wait(t, ctx, 1)

	srv.stop()
	for _, p := range []*Peer{a, b} {
		e := nextEvent(t, ctx, p, "server-shutdown", func(e Event) bool {
			return e.Type == EventServerShutdown || e.Type == EventSignalingClosed
		})
		if e.Type != EventServerShutdown || !errors.Is(e.Err, ErrSignalingClosed) {
			t.Fatalf("%s: %v, want server-shutdown wrapping ErrSignalingClosed", p.ID(), e)
		}
	}
	sendBoth(t, ctx, a, b, "while the server is down")
	inGap := time.After(restartGap)
	<-inGap
	srv.restart(ctx)

	for _, x := range [][2]*Peer{{a, b}, {b, a}} {
		p, o := x[0], x[1]
		var rejoined, kept bool
		for !rejoined || !kept {
			e := nextEvent(t, ctx, p, "rejoined and the call kept", func(e Event) bool {
				return e.Type == EventRejoined || e.Type == EventPeerJoined || e.Type == EventError ||
					e.Type == EventSignalingClosed || e.Type == EventPeerLeft && e.Reason != signal.ReasonShutdown
			})
			switch e.Type {
			case EventRejoined:
				rejoined = true
				if e.ID != p.cfg.ID {
					t.Errorf("%s: rejoined as %s", p.cfg.ID, e.ID)
				}
				if slices.Contains(e.Peers, o.cfg.ID) {
					kept = slices.Contains(e.Kept, o.cfg.ID)
					if !kept {
						t.Fatalf("%s: %v, want the call with %s kept", p.cfg.ID, e, o.cfg.ID)
					}
				}
			case EventPeerJoined:
				if e.Remote != o.cfg.ID || !slices.Contains(e.Kept, o.cfg.ID) {
					t.Fatalf("%s: %v, want %s back with its call kept", p.cfg.ID, e, o.cfg.ID)
				}
				kept = true
			default:
				t.Fatalf("%s: %v", p.cfg.ID, e)
			}
		}
		if p.ID() != p.cfg.ID {
			t.Errorf("%s: ID() = %s after the restart", p.cfg.ID, p.ID())
		}
	}
	sendBoth(t, ctx, a, b, "after the restart")
	for _, c := range packets {
		c.wait(t, ctx, c.n.Load()+1)
	}

	if a.PeerConnection("b") != pcA || b.PeerConnection("a") != pcB {
		t.Error("a PeerConnection was replaced")
	}
	if n := prepared.Load(); n != 2 {
		t.Errorf("%d negotiations, want 2 (one per side, before the restart)", n)
	}
	for _, p := range []*Peer{a, b} {
		if r := p.Remotes(); len(r) != 1 {
			t.Errorf("%s: remotes %v, want one", p.ID(), r)
		}
	}
}

// sendBoth sends text both ways on the chat channel and checks that it
// arrives.
func sendBoth(t *testing.T, ctx context.Context, a, b *Peer, text string) {
	t.Helper()
	for _, x := range [][2]*Peer{{a, b}, {b, a}} {
		want := fmt.Sprintf("%s: %s", x[0].ID(), text)
		if err := x[0].SendText(x[1].ID(), chat, want); err != nil {
			t.Fatal(err)
		}
		if e := messages(t, ctx, x[1], 1)[0]; string(e.Data) != want {
			t.Fatalf("%s got %q, want %q", x[1].ID(), e.Data, want)
		}
	}
}

// rtpCounter counts RTP packets and wakes waiters on each.
type rtpCounter struct {
	n    atomic.Int64
	more chan struct{} // capacity 1: a packet was counted
}

func newRTPCounter() *rtpCounter { return &rtpCounter{more: make(chan struct{}, 1)} }

func (c *rtpCounter) add() {
	c.n.Add(1)
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// wait waits until the count is at least want.
func (c *rtpCounter) wait(t *testing.T, ctx context.Context, want int64) {
	t.Helper()
	for c.n.Load() < want {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for RTP packet %d: %v", want, ctx.Err())
		case <-c.more:
		}
	}
}
