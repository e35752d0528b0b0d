package peer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds each test's waits; on loopback everything takes well
// under a second, -race included.
const testTimeout = 30 * time.Second

const chat = "chat"

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func loopbackAPI(t testing.TB) *webrtc.API {
	t.Helper()
	api, err := LoopbackAPI()
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// config is a loopback Config with one data channel, "chat". With
// PEER_TEST_DEBUG set in the environment, the peer logs to the test's log
// at debug level.
func config(t testing.TB, url, room, id string) Config {
	t.Helper()
	return Config{
		URL:          url,
		Room:         room,
		ID:           id,
		API:          loopbackAPI(t),
		DataChannels: []DataChannelConfig{{Label: chat}},
		Logger:       testLogger(t, "peer", id),
	}
}

// testLogger logs to t at debug level when PEER_TEST_DEBUG is set, and
// returns nil otherwise.
func testLogger(t testing.TB, args ...any) *slog.Logger {
	if os.Getenv("PEER_TEST_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With(args...)
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// join joins and closes the peer at the end of the test.
func join(t testing.TB, ctx context.Context, cfg Config) *Peer {
	t.Helper()
	p, err := Join(ctx, cfg)
	if err != nil {
		t.Fatalf("join %s as %q: %v", cfg.Room, cfg.ID, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// nextEvent reads p's events until one satisfies match, discarding the
// others.
func nextEvent(t testing.TB, ctx context.Context, p *Peer, what string, match func(Event) bool) Event {
	t.Helper()
	for {
		select {
		case e, ok := <-p.Events():
			if !ok {
				t.Fatalf("%s: events closed while waiting for %s", p.ID(), what)
			}
			if match(e) {
				return e
			}
		case <-ctx.Done():
			t.Fatalf("%s: waiting for %s: %v", p.ID(), what, ctx.Err())
		}
	}
}

// messages reads p's events until n messages arrived and returns them.
func messages(t testing.TB, ctx context.Context, p *Peer, n int) []Event {
	t.Helper()
	var got []Event
	for len(got) < n {
		got = append(got, nextEvent(t, ctx, p, fmt.Sprintf("message %d of %d", len(got)+1, n), func(e Event) bool {
			return e.Type == EventMessage
		}))
	}
	return got
}

// waitChannel waits until the chat channel between a and b is open on
// both sides.
func waitChannel(t testing.TB, ctx context.Context, a, b *Peer) {
	t.Helper()
	if _, err := a.WaitDataChannel(ctx, b.ID(), chat); err != nil {
		t.Fatalf("%s: %v", a.ID(), err)
	}
	if _, err := b.WaitDataChannel(ctx, a.ID(), chat); err != nil {
		t.Fatalf("%s: %v", b.ID(), err)
	}
}

// pair starts a server and joins two peers, a (which creates the room and
// answers) and b (which offers), and waits for their chat channel.
func pair(t testing.TB) (ctx context.Context, srv *signaltest.Server, a, b *Peer) {
	t.Helper()
	ctx = testContext(t)
	srv = signaltest.New(t, signal.Config{})
	a = join(t, ctx, config(t, srv.URL, "pair", "a"))
	b = join(t, ctx, config(t, srv.URL, "pair", "b"))
	waitChannel(t, ctx, a, b)
	return ctx, srv, a, b
}
