package peer

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// rawPeer is a member driven by hand with the raw signal.Client and a bare
// PeerConnection, so that a test controls what is sent in which order.
type rawPeer struct {
	t      *testing.T
	client *signal.Client
	pc     *webrtc.PeerConnection
}

func newRawPeer(t *testing.T, ctx context.Context, url, room, id string) (*rawPeer, *signal.Message) {
	t.Helper()
	c, err := signal.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	m, err := c.Join(ctx, room, &signal.JoinOptions{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := loopbackAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	// Like any real peer, accept the library's data channels.
	pc.OnDataChannel(func(*webrtc.DataChannel) {})
	return &rawPeer{t: t, client: c, pc: pc}, m
}

// recv returns the next message of type typ, skipping the others (the
// library's trickled candidates in particular, which the raw peer ignores
// on purpose).
func (r *rawPeer) recv(ctx context.Context, typ string) *signal.Message {
	r.t.Helper()
	for {
		m, err := r.client.Recv(ctx)
		if err != nil {
			r.t.Fatalf("raw peer waiting for %s: %v", typ, err)
		}
		if m.Type == typ {
			return m
		}
	}
}

// describe sets the local description, waits until every candidate is
// gathered, and sends them all (and end of candidates) to `to` BEFORE the
// description itself.
func (r *rawPeer) describe(ctx context.Context, to string, sd webrtc.SessionDescription) {
	r.t.Helper()
	var cands []webrtc.ICECandidateInit
	gathered := make(chan struct{})
	r.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			close(gathered)
			return
		}
		cands = append(cands, c.ToJSON())
	})
	if err := r.pc.SetLocalDescription(sd); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		r.t.Fatal("gathering did not complete")
	}
	if len(cands) == 0 {
		r.t.Fatal("no local candidate gathered")
	}
	for _, c := range cands {
		b, err := json.Marshal(c)
		if err != nil {
			r.t.Fatal(err)
		}
		r.send(&signal.Message{Type: signal.TypeCandidate, To: to, Candidate: b})
	}
	r.send(&signal.Message{Type: signal.TypeCandidate, To: to, Candidate: signal.CandidateNull})
	r.send(&signal.Message{Type: sd.Type.String(), To: to, SDP: sd.SDP})
}

func (r *rawPeer) send(m *signal.Message) {
	r.t.Helper()
	if err := r.client.Send(m); err != nil {
		r.t.Fatal(err)
	}
}

// TestBufferedCandidates: candidates that arrive before the offer (no
// PeerConnection yet) or before the answer (no remote description yet) are
// buffered and applied after SetRemoteDescription. The raw peer sends all
// its candidates before its description and ignores the library's
// candidates, so the connection can only come up if the library applied
// the early ones: the raw side has no candidate to check, the library's
// checks are its only way to learn an address.
func TestBufferedCandidates(t *testing.T) {
	tests := []struct {
		name      string
		rawOffers bool
	}{
		{name: "before offer", rawOffers: true},
		{name: "before answer", rawOffers: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			srv := signaltest.New(t, signal.Config{})
			var lib *Peer
			var raw *rawPeer
			if tt.rawOffers {
				lib = join(t, ctx, config(t, srv.URL, "buf", "lib"))
				raw, _ = newRawPeer(t, ctx, srv.URL, "buf", "raw")
				if _, err := raw.pc.CreateDataChannel(chat, nil); err != nil {
					t.Fatal(err)
				}
				offer, err := raw.pc.CreateOffer(nil)
				if err != nil {
					t.Fatal(err)
				}
				raw.describe(ctx, "lib", offer)
				answer := raw.recv(ctx, signal.TypeAnswer)
				if err := raw.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
					t.Fatal(err)
				}
			} else {
				raw, _ = newRawPeer(t, ctx, srv.URL, "buf", "raw")
				lib = join(t, ctx, config(t, srv.URL, "buf", "lib"))
				offer := raw.recv(ctx, signal.TypeOffer)
				if err := raw.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}); err != nil {
					t.Fatal(err)
				}
				answer, err := raw.pc.CreateAnswer(nil)
				if err != nil {
					t.Fatal(err)
				}
				raw.describe(ctx, "lib", answer)
			}
			if _, err := lib.WaitDataChannel(ctx, "raw", chat); err != nil {
				t.Fatal(err)
			}
			if err := lib.WaitConnected(ctx, "raw"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
