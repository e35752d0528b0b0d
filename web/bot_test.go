package web_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/peer"
)

// testVideo is the VP8 clip the bot streams.
var testVideo = filepath.Join("..", "testdata", "testsrc.ivf")

// bot is a Go peer (package peer) in the test process: it streams
// testdata/testsrc.ivf, echoes every data channel message and counts the
// video RTP it receives.
type bot struct {
	p *peer.Peer

	mu       sync.Mutex
	videoRTP map[string]int // video RTP packets received, by member
	codecs   map[string]string
	echoed   atomic.Int64
}

// startBot joins room on the server at wsURL as member "bot". It leaves
// when the test ends.
func startBot(t testing.TB, wsURL, room string) *bot {
	t.Helper()
	track, err := peer.NewVP8Track("video", "rendezvous-bot")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(testVideo)
	if err != nil {
		t.Fatalf("the bot's video: %v", err)
	}
	b := &bot{videoRTP: map[string]int{}, codecs: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	cfg := peer.Config{
		URL:          wsURL,
		Room:         room,
		ID:           "bot",
		API:          botAPI(t),
		Tracks:       []webrtc.TrackLocal{track},
		Receive:      []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio},
		DataChannels: []peer.DataChannelConfig{{Label: "rendezvous"}},
		OnTrack: func(remote string, tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			b.mu.Lock()
			b.codecs[remote+"/"+tr.Kind().String()] = tr.Codec().MimeType
			b.mu.Unlock()
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				if tr.Kind() == webrtc.RTPCodecTypeVideo && len(pkt.Payload) > 0 {
					b.mu.Lock()
					b.videoRTP[remote]++
					b.mu.Unlock()
				}
			}
		},
	}
	jctx, jcancel := context.WithTimeout(ctx, waitTimeout)
	defer jcancel()
	p, err := peer.Join(jctx, cfg)
	if err != nil {
		cancel()
		_ = f.Close()
		t.Fatalf("bot: join %q: %v", room, err)
	}
	b.p = p
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := peer.StreamIVF(ctx, track, f, true); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("bot: stream %s: %v", testVideo, err)
		}
	}()
	go func() {
		defer wg.Done()
		for e := range p.Events() {
			if e.Type != peer.EventMessage {
				continue
			}
			var err error
			if e.IsString {
				err = p.SendText(e.Remote, e.Label, string(e.Data))
			} else {
				err = p.Send(e.Remote, e.Label, e.Data)
			}
			if err == nil {
				b.echoed.Add(1)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = p.Close() // closes Events, ending the echo loop
		wg.Wait()
		_ = f.Close()
	})
	return b
}

// videoPackets returns the number of video RTP packets received from
// member id.
func (b *bot) videoPackets(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.videoRTP[id]
}

func (b *bot) codec(id, kind string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.codecs[id+"/"+kind]
}

// waitGo polls cond every 20 ms until it is true, failing the test after
// waitTimeout.
func waitGo(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitBotVideo waits until the bot receives video RTP from member id, and
// more after that.
func (b *bot) waitVideo(t testing.TB, id string) {
	t.Helper()
	waitGo(t, "the bot to receive video RTP from "+id, func() bool { return b.videoPackets(id) > 0 })
	n := b.videoPackets(id)
	waitGo(t, "more video RTP from "+id, func() bool { return b.videoPackets(id) > n+10 })
}

// TestBot: a page calls the Go bot, in both roles: the page joining
// second (it offers) and the bot joining second (it offers). Either way
// they connect, the bot echoes chat, the page decodes the bot's VP8 video
// and the bot receives the page's camera.
func TestBot(t *testing.T) {
	srv := newServer(t)
	t.Run("page-offers", func(t *testing.T) {
		b := startBot(t, srv.URL, "bot-first")
		p := openPage(t, "page", srv.HTTP.URL+"/")
		p.join("bot-first", "Pat", withMedia)
		id := p.joined()
		p.waitConnected("bot")
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := b.p.WaitConnected(ctx, id); err != nil {
			t.Fatalf("bot: connection to the page: %v", err)
		}
		checkBotCall(t, p, b, id)
		t.Logf("page (second to join): %v", p.metrics("bot"))
		p.viewport(1280, 800)
		p.waitFor("bitrates", `/Mb\/s|kb\/s/.test(document.querySelector('.tile.remote[data-peer="bot"] .stats').textContent)`)
		p.screenshot(t, "bot.png")
	})
	t.Run("bot-offers", func(t *testing.T) {
		p := openPage(t, "page", srv.HTTP.URL+"/")
		p.join("page-first", "Pat", withMedia)
		id := p.joined()
		b := startBot(t, srv.URL, "page-first")
		p.waitConnected("bot")
		checkBotCall(t, p, b, id)
	})
}

func checkBotCall(t *testing.T, p *page, b *bot, id string) {
	t.Helper()
	p.sendChat("ping from the browser")
	p.waitChat("bot (echo)", "ping from the browser")
	p.waitVideo("bot")
	p.waitFor("the bot's tile to show video", `document.querySelector('.tile.remote[data-peer="bot"]').dataset.video === "on"`)
	b.waitVideo(t, id)
	if c := b.codec(id, "video"); c != webrtc.MimeTypeVP8 {
		t.Errorf("the bot receives the page's video as %q, want %s", c, webrtc.MimeTypeVP8)
	}
	if b.echoed.Load() == 0 {
		t.Error("the bot echoed nothing")
	}
	size := evaluate[string](p, `(() => { const v = document.querySelector('.tile.remote[data-peer="bot"] video'); return v.videoWidth + "x" + v.videoHeight; })()`)
	t.Logf("the page shows the bot's video at %s; the bot got %d video RTP packets from the page; candidate pair %s",
		size, b.videoPackets(id), p.selectedPair("bot"))
}

// botAPI gives the bot loopback-only ICE (peer.LoopbackAPI): Chromium,
// started with --allow-loopback-in-peer-connection, offers 127.0.0.1
// candidates, and loopback works on every machine, including containers
// whose only interface is lo. (With pion's default settings the bot also
// connects here, over eth0, but takes 2-3 s longer.)
func botAPI(t testing.TB) *webrtc.API {
	t.Helper()
	api, err := peer.LoopbackAPI()
	if err != nil {
		t.Fatal(err)
	}
	return api
}
