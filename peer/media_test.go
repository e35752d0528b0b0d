package peer

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

const ivfPath = "../testdata/testsrc.ivf"

// streamFile streams the test IVF to track, looping, until the test ends.
func streamFile(t *testing.T, track *webrtc.TrackLocalStaticSample) {
	t.Helper()
	f, err := os.Open(ivfPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- StreamIVF(ctx, track, f, true) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("StreamIVF: %v", err)
		}
		_ = f.Close()
	})
}

type trackResult struct {
	mime    string
	packets int
	bytes   int
	err     error
}

// TestMedia: one peer streams the test IVF; the other gets OnTrack with VP8
// and receives RTP packets, whichever side offers.
func TestMedia(t *testing.T) {
	tests := []struct {
		name          string
		senderOffers  bool
		receiverAsks  []webrtc.RTPCodecType // Config.Receive of the receiver
		wantTrackFrom string
	}{
		{name: "sender offers", senderOffers: true},
		{name: "receiver offers recvonly", senderOffers: false, receiverAsks: []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			srv := signaltest.New(t, signal.Config{})
			track, err := NewVP8Track("video", "testsrc")
			if err != nil {
				t.Fatal(err)
			}
			streamFile(t, track)

			const wantPackets = 60
			got := make(chan trackResult, 1)
			sender := config(t, srv.URL, "media", "sender")
			sender.Tracks = []webrtc.TrackLocal{track}
			receiver := config(t, srv.URL, "media", "receiver")
			receiver.Receive = tt.receiverAsks
			receiver.OnTrack = func(from string, tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				res := trackResult{mime: tr.Codec().MimeType}
				for res.packets < wantPackets {
					pkt, _, err := tr.ReadRTP()
					if err != nil {
						res.err = err
						break
					}
					res.packets++
					res.bytes += len(pkt.Payload)
				}
				select {
				case got <- res:
				default:
				}
			}
			var rp *Peer
			if tt.senderOffers {
				rp = join(t, ctx, receiver)
				join(t, ctx, sender)
			} else {
				join(t, ctx, sender)
				rp = join(t, ctx, receiver)
			}
			ev := nextEvent(t, ctx, rp, "track", func(e Event) bool { return e.Type == EventTrack })
			if ev.Remote != "sender" || ev.Track.Kind() != webrtc.RTPCodecTypeVideo {
				t.Errorf("track event from %q kind %s, want video from sender", ev.Remote, ev.Track.Kind())
			}
			select {
			case res := <-got:
				if res.err != nil {
					t.Fatalf("after %d packets: %v", res.packets, res.err)
				}
				if res.mime != webrtc.MimeTypeVP8 {
					t.Errorf("codec %s, want %s", res.mime, webrtc.MimeTypeVP8)
				}
				if res.bytes == 0 {
					t.Error("packets carry no payload")
				}
			case <-ctx.Done():
				t.Fatal("no RTP packets received")
			}
		})
	}
}
