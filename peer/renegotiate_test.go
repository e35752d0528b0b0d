package peer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/rtp/codecs"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// wantFrames is how many whole VP8 frames a received track must deliver.
const wantFrames = 15

// frames is what a receiver assembled of one remote track.
type frames struct {
	from, track   string
	n, keyframes  int
	width, height int   // of the first keyframe
	err           error // why the track's reads ended, after n frames or fewer
}

// frameSink receives remote tracks (Config.OnTrack): it assembles their
// RTP into VP8 frames, checks each frame's header (keyframes: the start
// code and the size), and reports each track once wantFrames frames came,
// and again when its reads end.
type frameSink struct {
	got   chan frames // wantFrames frames of a track
	ended chan frames // a track's reads ended
}

func newFrameSink() *frameSink {
	return &frameSink{got: make(chan frames, 8), ended: make(chan frames, 8)}
}

func (s *frameSink) onTrack(from string, tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	f := frames{from: from, track: tr.ID()}
	sb := samplebuilder.New(64, &codecs.VP8Packet{}, tr.Codec().ClockRate)
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			f.err = err
			s.ended <- f
			return
		}
		sb.Push(pkt)
		for smp := sb.Pop(); smp != nil; smp = sb.Pop() {
			if err := f.add(smp.Data); err != nil {
				f.err = err
				s.ended <- f
				return
			}
			if f.n == wantFrames {
				s.got <- f
			}
		}
	}
}

// add checks one VP8 frame (RFC 6386 9.1: the frame tag; a keyframe's
// start code and size) and counts it. Frames before the first keyframe
// cannot be decoded and are skipped.
func (f *frames) add(b []byte) error {
	if len(b) < 3 {
		return fmt.Errorf("frame %d: %d bytes", f.n, len(b))
	}
	key := b[0]&1 == 0
	if size := int(b[0]>>5) | int(b[1])<<3 | int(b[2])<<11; size > len(b) {
		return fmt.Errorf("frame %d: first partition of %d bytes in a frame of %d", f.n, size, len(b))
	}
	if key {
		if len(b) < 10 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
			return fmt.Errorf("frame %d: keyframe without the start code", f.n)
		}
		if f.keyframes == 0 {
			f.width, f.height = int(b[6])|int(b[7]&0x3f)<<8, int(b[8])|int(b[9]&0x3f)<<8
		}
		f.keyframes++
	}
	if f.keyframes > 0 {
		f.n++
	}
	return nil
}

// wait returns the report of sink's channel ch for track id, failing the
// test on ctx's end.
func (s *frameSink) wait(t *testing.T, ctx context.Context, ch chan frames, id string) frames {
	t.Helper()
	for {
		select {
		case f := <-ch:
			if f.track == id {
				return f
			}
		case <-ctx.Done():
			t.Fatalf("waiting for track %q: %v", id, ctx.Err())
		}
	}
}

// ivfSize returns the frame size of the test IVF.
func ivfSize(t *testing.T) (w, h int) {
	t.Helper()
	f, err := os.Open(ivfPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, hdr, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	return int(hdr.Width), int(hdr.Height)
}

// ivfTrack makes a VP8 track streaming the test IVF until the test ends.
func ivfTrack(t *testing.T, id string) *webrtc.TrackLocalStaticSample {
	t.Helper()
	tr, err := NewVP8Track(id, id+"-stream")
	if err != nil {
		t.Fatal(err)
	}
	streamFile(t, tr)
	return tr
}

// noErrors fails the test for any error event of p read until the end
// of the test; it must be the only reader of p's events.
func noErrors(t *testing.T, p *Peer) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range p.Events() {
			if e.Type == EventError {
				t.Errorf("%s: %v", p.ID(), e)
			}
		}
	}()
	t.Cleanup(func() { _ = p.Close(); <-done })
}

// TestAddTrack: a call with data only; either side (the polite one, b,
// or the impolite one, a; the offering one, b, or the answering one, a)
// adds the test video mid-call. The other side gets the track and
// assembles whole VP8 frames of the IVF's size; after RemoveTrack its
// reads end. Adding the track again renegotiates again.
func TestAddTrack(t *testing.T) {
	wantW, wantH := ivfSize(t)
	for _, sender := range []string{"a", "b"} {
		t.Run("sender "+sender, func(t *testing.T) {
			ctx := testContext(t)
			srv := signaltest.New(t, signal.Config{})
			sinks := map[string]*frameSink{"a": newFrameSink(), "b": newFrameSink()}
			peers := map[string]*Peer{}
			for _, id := range []string{"a", "b"} {
				cfg := config(t, srv.URL, "add", id)
				cfg.OnTrack = sinks[id].onTrack
				peers[id] = join(t, ctx, cfg)
			}
			waitChannel(t, ctx, peers["a"], peers["b"])
			receiver := map[string]string{"a": "b", "b": "a"}[sender]
			for _, p := range peers {
				noErrors(t, p)
			}

			track := ivfTrack(t, "screen")
			if err := peers[sender].AddTrack(track); err != nil {
				t.Fatal(err)
			}
			f := sinks[receiver].wait(t, ctx, sinks[receiver].got, "screen")
			if f.from != sender || f.width != wantW || f.height != wantH {
				t.Errorf("got %d frames from %q of %dx%d, want from %q of %dx%d", f.n, f.from, f.width, f.height, sender, wantW, wantH)
			}

			if err := peers[sender].RemoveTrack(track); err != nil {
				t.Fatal(err)
			}
			if f := sinks[receiver].wait(t, ctx, sinks[receiver].ended, "screen"); f.err == nil {
				t.Error("track ended without an error")
			}
			if err := peers[sender].RemoveTrack(track); err == nil {
				t.Error("RemoveTrack of a removed track: no error")
			}

			// Again: a new m-line, renegotiated the same way.
			if err := peers[sender].AddTrack(track); err != nil {
				t.Fatal(err)
			}
			sinks[receiver].wait(t, ctx, sinks[receiver].got, "screen")
			if err := peers[sender].AddTrack(track); err == nil {
				t.Error("AddTrack twice: no error")
			}
		})
	}
}

// TestAddTrackErrors: AddTrack and RemoveTrack refuse what they cannot do.
func TestAddTrackErrors(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	fixed, err := NewVP8Track("fixed", "s")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(t, srv.URL, "errors", "a")
	cfg.Tracks = []webrtc.TrackLocal{fixed}
	p := join(t, ctx, cfg)
	other, err := NewVP8Track("other", "s")
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxExtraTracks {
		tr, err := NewVP8Track(fmt.Sprint("t", i), "s")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		err  error
	}{
		{"nil track", p.AddTrack(nil)},
		{"a track of Config.Tracks", p.AddTrack(fixed)},
		{"too many tracks", p.AddTrack(other)},
		{"remove a track never added", p.RemoveTrack(other)},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tt.name, tt.err)
		}
	}
	_ = p.Close()
	if err := p.AddTrack(other); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrConfig) {
		t.Errorf("AddTrack after Close: %v", err)
	}
}

// TestGlare: both sides add a track at the same moment. Each peer is
// made to handle the other's offer only once it has sent its own, so
// that the offers cross (glare) every time: the impolite side (a)
// ignores b's offer, the polite side (b) rolls its own back, answers a's,
// and offers again. Both tracks arrive, and nothing fails.
func TestGlare(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	added := make(chan struct{}) // closed once both sides called AddTrack
	var armed atomic.Bool
	var offersMu sync.Mutex
	offers := map[string]int{} // renegotiation offers sent, by sender
	sinks := map[string]*frameSink{"a": newFrameSink(), "b": newFrameSink()}
	peers := map[string]*atomic.Pointer[Peer]{"a": {}, "b": {}}
	for _, id := range []string{"a", "b"} {
		cfg := config(t, srv.URL, "glare", id)
		cfg.OnTrack = sinks[id].onTrack
		cfg.hooks = &hooks{
			pushed: func(m *signal.Message) {
				if armed.Load() && m.Type == signal.TypeOffer {
					offersMu.Lock()
					offers[id]++
					offersMu.Unlock()
				}
			},
			received: func(m *signal.Message) {
				if !armed.Load() || m.Type != signal.TypeOffer {
					return
				}
				// On the run loop: make this side's own offer first.
				select {
				case <-added:
				case <-ctx.Done():
					return
				}
				peers[id].Load().runInbox()
			},
		}
		peers[id].Store(join(t, ctx, cfg))
	}
	a, b := peers["a"].Load(), peers["b"].Load()
	waitChannel(t, ctx, a, b)
	noErrors(t, a)
	noErrors(t, b)

	armed.Store(true)
	if err := a.AddTrack(ivfTrack(t, "from-a")); err != nil {
		t.Fatal(err)
	}
	if err := b.AddTrack(ivfTrack(t, "from-b")); err != nil {
		t.Fatal(err)
	}
	close(added)
	if f := sinks["b"].wait(t, ctx, sinks["b"].got, "from-a"); f.from != "a" {
		t.Errorf("from-a came from %q", f.from)
	}
	if f := sinks["a"].wait(t, ctx, sinks["a"].got, "from-b"); f.from != "b" {
		t.Errorf("from-b came from %q", f.from)
	}
	offersMu.Lock()
	defer offersMu.Unlock()
	// a offered once; b offered, rolled back, and offered again.
	if offers["a"] != 1 || offers["b"] != 2 {
		t.Errorf("renegotiation offers sent: a %d, b %d; want 1 and 2 (glare)", offers["a"], offers["b"])
	}
}

// vnetICETimeouts make a cut link fail ICE in about 1.5 s.
const (
	vnetDisconnected = 500 * time.Millisecond
	vnetFailed       = time.Second
	vnetKeepalive    = 100 * time.Millisecond
)

// TestICERestart: two peers whose ICE runs over pion's virtual network
// (vnet), on one virtual router. Dropping every packet at the router
// fails the connection on both sides (pion has no other way to be
// firewalled here); the impolite side (a) restarts ICE once it sees it
// failed, the link being back meanwhile: the connection recovers and
// the data channel carries messages again, both ways. Signaling is not
// on the virtual network and is not affected.
func TestICERestart(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	router, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	var cut atomic.Bool
	router.AddChunkFilter(func(vnet.Chunk) bool { return !cut.Load() })
	peers := map[string]*Peer{}
	for i, id := range []string{"a", "b"} {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{fmt.Sprintf("10.0.0.%d", i+1)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := router.AddNet(n); err != nil {
			t.Fatal(err)
		}
		var se webrtc.SettingEngine
		se.SetNet(n)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetICETimeouts(vnetDisconnected, vnetFailed, vnetKeepalive)
		api, err := NewAPI(se)
		if err != nil {
			t.Fatal(err)
		}
		cfg := config(t, srv.URL, "restart", id)
		cfg.API = api
		cfg.SettingEngine = nil
		peers[id] = join(t, ctx, cfg)
	}
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	// Stopped after the peers are closed (cleanups run last first).
	t.Cleanup(func() { _ = router.Stop() })
	a, b := peers["a"], peers["b"]
	waitChannel(t, ctx, a, b)

	cut.Store(true)
	start := time.Now()
	nextEvent(t, ctx, a, "connection failed", func(e Event) bool {
		return e.Type == EventConnectionState && e.ConnectionState == webrtc.PeerConnectionStateFailed
	})
	failedAfter := time.Since(start)
	cut.Store(false)
	nextEvent(t, ctx, a, "ICE restart", func(e Event) bool { return e.Type == EventICERestart && e.Remote == "b" })
	nextEvent(t, ctx, a, "connected again", func(e Event) bool {
		return e.Type == EventConnectionState && e.ConnectionState == webrtc.PeerConnectionStateConnected
	})
	t.Logf("failed %v after the cut, connected again %v after the failure", failedAfter.Round(time.Millisecond), (time.Since(start) - failedAfter).Round(time.Millisecond))
	if err := a.SendText("b", chat, "after a"); err != nil {
		t.Fatal(err)
	}
	if got := messages(t, ctx, b, 1); string(got[0].Data) != "after a" {
		t.Errorf("b got %q", got[0].Data)
	}
	if err := b.SendText("a", chat, "after b"); err != nil {
		t.Fatal(err)
	}
	if got := messages(t, ctx, a, 1); string(got[0].Data) != "after b" {
		t.Errorf("a got %q", got[0].Data)
	}
}

// swapPT swaps payload types x and y in the video m-line of a
// description (its format list, rtpmap, fmtp, rtcp-fb, RTX apt), as a
// browser's different numbering would.
func swapPT(desc string, x, y string) string {
	lines := strings.Split(desc, "\r\n")
	swap := func(tok string) string {
		switch tok {
		case x:
			return y
		case y:
			return x
		}
		return tok
	}
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "m=video "):
			f := strings.Fields(l)
			for j := 3; j < len(f); j++ {
				f[j] = swap(f[j])
			}
			lines[i] = strings.Join(f, " ")
		case strings.HasPrefix(l, "a=rtpmap:"), strings.HasPrefix(l, "a=fmtp:"), strings.HasPrefix(l, "a=rtcp-fb:"):
			key, rest, _ := strings.Cut(l, ":")
			pt, tail, _ := strings.Cut(rest, " ")
			if after, ok := strings.CutPrefix(tail, "apt="); ok {
				tail = "apt=" + swap(after)
			}
			lines[i] = key + ":" + swap(pt) + " " + tail
		}
	}
	return strings.Join(lines, "\r\n")
}

// TestRollback: the emulated rollback (pion refuses a real one) takes a
// PeerConnection with an offer pending back to stable, and the other
// side's colliding offer then applies, even when it numbers its codecs
// differently (pion registers every remote m-line's payload types and
// refuses a conflicting one later) or has no m-line of the kind ours adds.
// Without an earlier negotiation there is nothing to roll back to.
func TestRollback(t *testing.T) {
	newPC := func() *webrtc.PeerConnection {
		pc, err := loopbackAPI(t).NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		return pc
	}
	exchange := func(off, ans *webrtc.PeerConnection) {
		t.Helper()
		o, err := off.CreateOffer(nil)
		if err == nil {
			err = off.SetLocalDescription(o)
		}
		if err == nil {
			err = ans.SetRemoteDescription(o)
		}
		var a webrtc.SessionDescription
		if err == nil {
			a, err = ans.CreateAnswer(nil)
		}
		if err == nil {
			err = ans.SetLocalDescription(a)
		}
		if err == nil {
			err = off.SetRemoteDescription(a)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	video := func(id string) webrtc.TrackLocal {
		tr, err := NewVP8Track(id, id)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	tests := []struct {
		name       string
		theirTrack bool // the colliding offer adds a video track too
		swap       bool // and numbers VP8 and VP9 the other way round
	}{
		{name: "their offer adds video, numbered otherwise", theirTrack: true, swap: true},
		{name: "their offer adds video", theirTrack: true},
		{name: "their offer has no video"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			us, them := newPC(), newPC()
			if err := rollback(us, ""); !errors.Is(err, errNoRollback) {
				t.Errorf("rollback before any negotiation: %v, want errNoRollback", err)
			}
			if _, err := them.CreateDataChannel("x", nil); err != nil {
				t.Fatal(err)
			}
			exchange(them, us)
			if _, err := us.AddTrack(video("ours")); err != nil {
				t.Fatal(err)
			}
			ours, err := us.CreateOffer(nil)
			if err == nil {
				err = us.SetLocalDescription(ours)
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.theirTrack {
				if _, err := them.AddTrack(video("theirs")); err != nil {
					t.Fatal(err)
				}
			}
			theirs, err := them.CreateOffer(&webrtc.OfferOptions{ICERestart: !tt.theirTrack}) // (something to offer)
			if err == nil {
				err = them.SetLocalDescription(theirs)
			}
			if err != nil {
				t.Fatal(err)
			}
			incoming := theirs.SDP
			if tt.swap {
				incoming = swapPT(incoming, "96", "98")
			}
			if err := rollback(us, incoming); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			if st := us.SignalingState(); st != webrtc.SignalingStateStable {
				t.Fatalf("signaling %s after the rollback, want stable", st)
			}
			if err := us.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: incoming}); err != nil {
				t.Fatalf("their offer after the rollback: %v", err)
			}
			if _, err := us.CreateAnswer(nil); err != nil {
				t.Fatalf("answer after the rollback: %v", err)
			}
		})
	}
}
