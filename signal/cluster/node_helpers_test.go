package cluster_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/cluster"
	"github.com/rendezvous-rtc/rendezvous/signal/cluster/clustertest"
)

// wait bounds every wait of these tests.
const wait = 10 * time.Second

// testNode is one node of a test cluster, served on a random port.
type testNode struct {
	*cluster.Node
	http *httptest.Server
	URL  string // its WebSocket endpoint
	Base string // its HTTP base URL
}

// testLog is quiet unless CLUSTER_DEBUG is set.
func testLog() *slog.Logger {
	if os.Getenv("CLUSTER_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startCluster starts an embedded NATS server and count nodes on it.
func startCluster(t *testing.T, count int, scfg signal.Config) (natsURL string, nodes []*testNode) {
	t.Helper()
	natsURL, _ = clustertest.NATS(t)
	for range count {
		nodes = append(nodes, startNode(t, natsURL, scfg))
	}
	return natsURL, nodes
}

// startNode starts one node on natsURL; the test's cleanup closes it.
func startNode(t *testing.T, natsURL string, scfg signal.Config) *testNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if scfg.Logger == nil {
		scfg.Logger = testLog()
	}
	n, err := cluster.New(ctx, cluster.Config{NATS: cluster.NATSOptions{URLs: natsURL}, Lease: time.Second, Logger: scfg.Logger}, scfg)
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	hs := httptest.NewServer(n.Handler())
	tn := &testNode{Node: n, http: hs, Base: hs.URL, URL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
	t.Cleanup(func() {
		_ = n.Close()
		hs.Close()
	})
	return tn
}

// dial connects a client to url.
func dial(t *testing.T, url string) *signal.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := signal.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recvType waits for the next message of type typ on c.
func recvType(t *testing.T, c *signal.Client, typ string) *signal.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	m, err := c.RecvType(ctx, typ)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	return m
}

// join joins room on c.
func join(t *testing.T, c *signal.Client, room string, opts *signal.JoinOptions) *signal.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	m, err := c.Join(ctx, room, opts)
	if err != nil {
		t.Fatalf("join %s: %v", room, err)
	}
	return m
}
