package peer

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// proxy forwards TCP connections to a server; kill cuts every connection
// at once, like a crash of the server's host, without any close frame or
// peer-left.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn // guarded by mu
	killed bool       // guarded by mu
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, wsURL string) (*proxy, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostport := strings.TrimPrefix(wsURL, "ws://")
	hostport = hostport[:strings.IndexByte(hostport, '/')]
	p := &proxy{ln: ln, target: hostport}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.kill)
	return p, "ws://" + ln.Addr().String() + "/ws"
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.killed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
}

// kill closes the listener and every connection, and waits for the
// proxy's goroutines. It is safe to call twice.
func (p *proxy) kill() {
	p.mu.Lock()
	p.killed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

// TestSignalingLost: once the data channel is open, losing the signaling
// server (a graceful shutdown, which sends peer-left "shutdown" and a close
// frame, or a crash that cuts the connections) does not end the call:
// messages still flow both ways. After the shutdown the peers report
// server-shutdown; after the cut they report signaling-lost; either way
// they keep trying to reconnect, and Close stops that promptly.
func TestSignalingLost(t *testing.T) {
	tests := []struct {
		name     string
		shutdown bool
	}{
		{name: "server shutdown", shutdown: true},
		{name: "connections cut", shutdown: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			srv := signaltest.New(t, signal.Config{})
			px, url := newProxy(t, srv.URL)
			a := join(t, ctx, config(t, url, "lost", "a"))
			b := join(t, ctx, config(t, url, "lost", "b"))
			waitChannel(t, ctx, a, b)

			if tt.shutdown {
				if err := srv.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				px.kill()
			}
			// On shutdown the server tells the members still in the room
			// (peer-left "shutdown"); the connection must survive it.
			want := EventSignalingLost
			if tt.shutdown {
				want = EventServerShutdown
			}
			for _, p := range []*Peer{a, b} {
				nextEvent(t, ctx, p, string(want), func(e Event) bool {
					if e.Type == EventPeerLeft && e.Reason != signal.ReasonShutdown {
						t.Errorf("%s: peer-left reason %q, want %q", p.ID(), e.Reason, signal.ReasonShutdown)
					}
					if e.Type == EventSignalingClosed || e.Type == EventSignalingLost || e.Type == EventServerShutdown {
						if e.Type != want {
							t.Errorf("%s: %s, want %s", p.ID(), e.Type, want)
						}
						if !errors.Is(e.Err, ErrSignalingClosed) {
							t.Errorf("%s: %s error %v, want ErrSignalingClosed", p.ID(), e.Type, e.Err)
						}
						return true
					}
					return false
				})
				if p.PeerConnection(other(p, a, b).ID()) == nil {
					t.Errorf("%s dropped its connection", p.ID())
				}
			}
			for i, x := range [][2]*Peer{{a, b}, {b, a}, {a, b}} {
				want := strings.Repeat("after the server ", i+1)
				if err := x[0].SendText(x[1].ID(), chat, want); err != nil {
					t.Fatal(err)
				}
				if e := messages(t, ctx, x[1], 1)[0]; string(e.Data) != want {
					t.Fatalf("%s got %q, want %q", x[1].ID(), e.Data, want)
				}
			}
			for _, p := range []*Peer{a, b} {
				start := time.Now()
				_ = p.Close()
				if d := time.Since(start); d > time.Second {
					t.Errorf("%s: Close took %s", p.ID(), d)
				}
			}
		})
	}
}

func other(p, a, b *Peer) *Peer {
	if p == a {
		return b
	}
	return a
}
