package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/cluster/clustertest"
)

// TestClusterFlagsReachNode: -nats (or RENDEZVOUS_NATS) turns cluster mode
// on, and -node-id, -cluster-name and -cluster-secret reach it: the node
// reports its id and the cluster in /healthz, keeps its rooms in the
// named cluster's bucket, and a resume token minted by one node resumes
// on another node of the same secret.
func TestClusterFlagsReachNode(t *testing.T) {
	natsURL, _ := clustertest.NATS(t)
	secret := strings.Repeat("s", 32)
	for _, via := range []string{"flag", "env"} {
		t.Run(via, func(t *testing.T) {
			settings := func(id, secret string) ([]string, map[string]string) {
				set := map[string]string{"nats": natsURL, "node-id": id, "cluster-name": "c_" + via,
					"cluster-secret": secret, "lease": "1s", "nats-replicas": "1"}
				var args []string
				env := map[string]string{}
				for k, v := range set {
					if via == "flag" {
						args = append(args, "-"+k+"="+v)
					} else {
						env["RENDEZVOUS_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))] = v
					}
				}
				return args, env
			}
			a1, e1 := settings("one-"+via, secret)
			one := startServer(t, a1, e1)
			a2, e2 := settings("two-"+via, secret)
			two := startServer(t, a2, e2)

			var h struct {
				Status, Node, NATS string
				Nodes              []struct{ ID string }
			}
			// Node two read every heartbeat in the bucket when it started:
			// it sees one and itself.
			resp, err := http.Get(two.url("/healthz"))
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err != nil || h.Status != "ok" || h.Node != "two-"+via || h.NATS != "connected" || len(h.Nodes) != 2 {
				t.Fatalf("healthz %+v (%v), want node two-%s, connected, 2 nodes", h, err, via)
			}

			ctx, cancel := context.WithTimeout(context.Background(), soon)
			defer cancel()
			c1, err := signal.Dial(ctx, "ws://"+one.addr+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			j, err := c1.Join(ctx, "flags", nil)
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(natsURL)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			if _, err := js.KeyValue(ctx, "c_"+via+"_rooms"); err != nil {
				t.Fatalf("the cluster's rooms bucket c_%s_rooms: %v", via, err)
			}
			// The seat moves to node two on a cut: its token verifies there.
			c1.Abort()
			c2, err := signal.Dial(ctx, "ws://"+two.addr+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			r := c1.Received()
			j2, err := c2.Join(ctx, "flags", &signal.JoinOptions{Resume: j.Resume, Received: &r})
			if err != nil || !j2.Resumed || j2.ID != j.ID {
				t.Fatalf("resume on the other node: %+v %v", j2, err)
			}
			// A room moves with its seats when its host drains; the node it
			// moves to checks the seats' tokens with its own secret: a
			// node of another secret refuses them, so the flag is what
			// signs them (not the key kept in the bucket).
			a3, e3 := settings("three-"+via, strings.Repeat("t", 32))
			three := startServer(t, a3, e3)
			c3, err := signal.Dial(ctx, "ws://"+three.addr+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c3.Close()
			j3, err := c3.Join(ctx, "moves", nil)
			if err != nil {
				t.Fatal(err)
			}
			three.stop() // SIGTERM: drain; the room moves to one or two
			<-c3.Done()
			if ce, ok := c3.CloseError(); !ok || ce.Code != signal.CloseServiceRestart {
				t.Fatalf("drained with %v, want 1012", ce)
			}
			c4, err := signal.Dial(ctx, "ws://"+one.addr+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c4.Close()
			r = c3.Received()
			_, err = c4.Join(ctx, "moves", &signal.JoinOptions{Resume: j3.Resume, Received: &r})
			if !errors.Is(err, &signal.Error{Code: signal.CodeResumeFailed}) {
				t.Fatalf("resume after moving to a node of another secret: %v, want resume-failed", err)
			}
		})
	}
}

// TestClusterFlagErrors: cluster flags without -nats, bad values, and a
// NATS server that cannot be reached end the command with a message.
func TestClusterFlagErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.creds")
	for _, tt := range []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantErr  string
	}{
		{"creds without nats", []string{"-nats-creds", "x.creds"}, nil, 2, "need cluster mode (-nats)"},
		{"secret without nats", nil, map[string]string{"RENDEZVOUS_CLUSTER_SECRET": strings.Repeat("s", 32)}, 2, "-cluster-secret"},
		{"lease without nats", []string{"-lease", "5s"}, nil, 2, "-lease"},
		{"not a nats URL", []string{"-nats", "http://127.0.0.1:4222"}, nil, 2, "not a nats:// or tls:// URL"},
		{"short secret", []string{"-nats", "nats://127.0.0.1:4222", "-cluster-secret", "short"}, nil, 2, "at least 32"},
		{"short lease", []string{"-nats", "nats://127.0.0.1:4222", "-lease", "100ms"}, nil, 2, "-lease"},
		{"replicas", []string{"-nats", "nats://127.0.0.1:4222", "-nats-replicas", "0"}, nil, 2, "-nats-replicas"},
		{"missing creds", []string{"-nats", "nats://127.0.0.1:4222", "-nats-creds", missing}, nil, 2, "-nats-creds"},
		{"unreachable", []string{"-nats", "nats://127.0.0.1:1"}, nil, 1, "NATS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-addr", "127.0.0.1:0"}, tt.args...)
			code, stderr := runToExit(t, args, tt.env)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d mentioning %q", code, stderr, tt.wantCode, tt.wantErr)
			}
		})
	}
}
