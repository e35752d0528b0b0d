// Package clustertest starts embedded NATS servers for the cluster
// package's tests: a real nats-server in the test process, on a random
// 127.0.0.1 port, stopped when the test ends.
package clustertest

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long a test waits for an embedded server to
// accept connections.
const readyTimeout = 10 * time.Second

// NATS starts a NATS server with JetStream, storing in t.TempDir(), and
// returns its client URL and the server. The server shuts down when the
// test ends.
func NATS(t testing.TB) (url string, srv *server.Server) {
	t.Helper()
	return start(t, true)
}

// NATSWithoutJetStream starts a NATS server with JetStream off, for tests
// of what a node says when JetStream is missing.
func NATSWithoutJetStream(t testing.TB) (url string, srv *server.Server) {
	t.Helper()
	return start(t, false)
}

// start starts one embedded server and registers its shutdown.
func start(t testing.TB, jetStream bool) (string, *server.Server) {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1, // a random free port
		JetStream: jetStream,
		NoLog:     true,
		NoSigs:    true,
	}
	if jetStream {
		opts.StoreDir = t.TempDir()
	}
	srv := run(t, opts)
	return srv.ClientURL(), srv
}

// run starts a server with opts, waits until it accepts connections, and
// registers its shutdown.
func run(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("clustertest: new NATS server: %v", err)
	}
	go srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(readyTimeout) {
		t.Fatalf("clustertest: NATS server not ready within %v", readyTimeout)
	}
	return srv
}

// Restart shuts srv down and starts a new server with the same options on
// the same port and store, as a NATS server restarting in place would:
// connected clients see a disconnect, reconnect, and find file-stored
// streams again and memory-stored ones gone. The new server shuts down
// when the test ends.
func Restart(t testing.TB, srv *server.Server) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      srv.Addr().(*net.TCPAddr).Port,
		JetStream: srv.JetStreamEnabled(),
		NoLog:     true,
		NoSigs:    true,
	}
	if opts.JetStream {
		// The server keeps its streams in StoreDir/jetstream.
		opts.StoreDir = filepath.Dir(srv.StoreDir())
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	return run(t, opts)
}
