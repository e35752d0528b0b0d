package cluster

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal/cluster/clustertest"
)

func TestConnect(t *testing.T) {
	url, _ := clustertest.NATS(t)
	nc, js := dial(t, url, "node-a")
	if !nc.IsConnected() {
		t.Fatal("connection is not connected")
	}
	if _, err := js.AccountInfo(testCtx(t)); err != nil {
		t.Fatalf("JetStream unusable after connect: %v", err)
	}
}

// freeAddr returns a 127.0.0.1 address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestConnectErrors(t *testing.T) {
	noJS, _ := clustertest.NATSWithoutJetStream(t)
	garbage := filepath.Join(t.TempDir(), "garbage.creds")
	if err := os.WriteFile(garbage, []byte("not a creds file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts NATSOptions
		is   error  // errors.Is target, if any
		want string // part of the message
	}{
		{"no url", NATSOptions{URLs: " "}, nil, "no NATS server URL"},
		{"missing creds file", NATSOptions{URLs: noJS, CredsFile: filepath.Join(t.TempDir(), "nope.creds")}, fs.ErrNotExist, "credentials file"},
		{"garbage creds file", NATSOptions{URLs: noJS, CredsFile: garbage}, nil, "connect to NATS at"},
		{"unreachable", NATSOptions{URLs: "nats://" + freeAddr(t)}, nil, "connect to NATS at nats://"},
		{"no JetStream", NATSOptions{URLs: noJS}, nil, "JetStream is not enabled on the NATS server (start nats-server with -js)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = quietLog()
			start := time.Now()
			nc, _, err := connect(testCtx(t), tt.opts)
			if err == nil {
				nc.Close()
				t.Fatal("connect succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if d := time.Since(start); d > connectTimeout {
				t.Errorf("took %v to fail", d)
			}
		})
	}
}
