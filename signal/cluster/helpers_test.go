package cluster

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/cluster/clustertest"
)

// testTimeout bounds every NATS operation of a test.
const testTimeout = 10 * time.Second

// testCtx is a context that ends with the test or after testTimeout.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// quietLog discards log output.
func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// dial connects to url as a node would, closing the connection when the
// test ends.
func dial(t testing.TB, url, name string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := connect(testCtx(t), NATSOptions{URLs: url, Name: name, Logger: quietLog()})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// newJS starts an embedded NATS server with JetStream and connects to it.
func newJS(t testing.TB) (url string, js jetstream.JetStream) {
	t.Helper()
	url, _ = clustertest.NATS(t)
	_, js = dial(t, url, "test")
	return url, js
}

// startTestNode starts a node on natsURL (lease 1 s, resume window a
// minute), serving on a random port until the test ends.
func startTestNode(tb testing.TB, natsURL string) *Node {
	tb.Helper()
	n, err := New(testCtx(tb), Config{NATS: NATSOptions{URLs: natsURL}, Lease: time.Second, Logger: quietLog()},
		signal.Config{Logger: quietLog(), ResumeWindow: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(n.Handler())
	tb.Cleanup(func() { _ = n.Close(); hs.Close() })
	return n
}
