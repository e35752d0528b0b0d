package peer

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// TestMesh: four members in a room of capacity 4; all six pairs connect
// and a message from each member reaches all the others.
func TestMesh(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	const n = 4
	var peers []*Peer
	for i := range n {
		cfg := config(t, srv.URL, "mesh", fmt.Sprintf("m%d", i))
		if i == 0 {
			cfg.Capacity = n
		}
		peers = append(peers, join(t, ctx, cfg))
	}
	pairs := 0
	for i, a := range peers {
		for _, b := range peers[i+1:] {
			for _, x := range [][2]*Peer{{a, b}, {b, a}} {
				if err := x[0].WaitConnected(ctx, x[1].ID()); err != nil {
					t.Fatalf("%s: %v", x[0].ID(), err)
				}
				if s := x[0].PeerConnection(x[1].ID()).ConnectionState(); s != webrtc.PeerConnectionStateConnected {
					t.Fatalf("%s → %s: state %s", x[0].ID(), x[1].ID(), s)
				}
			}
			waitChannel(t, ctx, a, b)
			pairs++
		}
	}
	if pairs != n*(n-1)/2 {
		t.Fatalf("%d pairs connected, want %d", pairs, n*(n-1)/2)
	}
	for _, p := range peers {
		if got := len(p.Remotes()); got != n-1 {
			t.Errorf("%s has %d remotes, want %d", p.ID(), got, n-1)
		}
		for _, q := range peers {
			if q != p {
				if err := p.SendText(q.ID(), chat, "hello from "+p.ID()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, p := range peers {
		var from []string
		for _, e := range messages(t, ctx, p, n-1) {
			if want := "hello from " + e.Remote; string(e.Data) != want {
				t.Errorf("%s: got %q from %s, want %q", p.ID(), e.Data, e.Remote, want)
			}
			from = append(from, e.Remote)
		}
		slices.Sort(from)
		var want []string
		for _, q := range peers {
			if q != p {
				want = append(want, q.ID())
			}
		}
		if !slices.Equal(from, want) {
			t.Errorf("%s got messages from %v, want %v", p.ID(), from, want)
		}
	}
}
