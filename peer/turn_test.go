package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// turnServer is Debian's coturn (turnserver) running for a test on
// 127.0.0.1, with TURN REST API credentials (use-auth-secret).
type turnServer struct {
	port int
	log  string // its log file
}

// URL returns the server's turn: URL over UDP.
func (s *turnServer) URL() string { return fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", s.port) }

// startTURN starts turnserver with static-auth-secret secret and stops it
// with t.Cleanup. It skips the test when turnserver is not installed,
// unless CI=true: CI must run it.
func startTURN(t *testing.T, secret string) *turnServer {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("turnserver (coturn) is not installed, and CI=true requires the TURN test: apt-get install -y coturn")
		}
		t.Skip("turnserver (coturn) is not installed; to run this test: apt-get install -y coturn")
	}
	dir := t.TempDir()
	var lastErr error
	for range 5 { // the free port may be taken before turnserver binds it
		s, err := runTURN(t, bin, dir, secret, freeUDPPort(t))
		if err == nil {
			return s
		}
		lastErr = err
		t.Logf("turnserver did not start: %v", err)
	}
	t.Fatalf("turnserver did not start: %v", lastErr)
	return nil
}

// freeUDPPort returns a UDP port of 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func runTURN(t *testing.T, bin, dir, secret string, port int) (*turnServer, error) {
	s := &turnServer{port: port, log: filepath.Join(dir, fmt.Sprintf("turn-%d.log", port))}
	conf := filepath.Join(dir, fmt.Sprintf("turn-%d.conf", port))
	lines := []string{
		"listening-ip=127.0.0.1",
		"relay-ip=127.0.0.1",
		fmt.Sprintf("listening-port=%d", port),
		"min-port=49152",
		"max-port=65535",
		"no-tcp", // UDP only: the free port was checked for UDP
		"no-tls",
		"no-dtls",
		"no-tcp-relay",
		"no-cli",
		"use-auth-secret",
		"static-auth-secret=" + secret,
		"realm=rendezvous.test",
		// Peers on loopback only: relaying anywhere else is denied. (The
		// IPv6 ranges leave out ::1 and the IPv4-mapped 127.0.0.0/8, which
		// coturn matches IPv4 peers against.)
		"allow-loopback-peers",
		"denied-peer-ip=0.0.0.0-126.255.255.255",
		"denied-peer-ip=128.0.0.0-255.255.255.255",
		"denied-peer-ip=::2-::fffe:ffff:ffff",
		"denied-peer-ip=::ffff:0:0-::ffff:7eff:ffff",
		"denied-peer-ip=::ffff:8000:0-::ffff:ffff:ffff",
		"denied-peer-ip=::1:0:0:0-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"userdb=" + filepath.Join(dir, fmt.Sprintf("turndb-%d", port)), // no system database
		"pidfile=" + filepath.Join(dir, fmt.Sprintf("turn-%d.pid", port)),
		"log-file=" + s.log,
		"simple-log",
		"no-stdout-log",
		"verbose",
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := awaitSTUN(ctx, port, exited); err != nil {
		stop()
		return nil, fmt.Errorf("%w (exit: %v)\noutput: %s\nlog:\n%s", err, waitErr, out.String(), readFile(s.log))
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("turnserver log:\n%s", readFile(s.log))
		}
	})
	return s, nil
}

// awaitSTUN polls 127.0.0.1:port with STUN binding requests until one is
// answered, the process exits or ctx ends.
func awaitSTUN(ctx context.Context, port int, exited <-chan struct{}) error {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer c.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	buf := make([]byte, 1500)
	for {
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		if _, err := c.WriteTo(req.Raw, to); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				break // timeout (or ICMP port unreachable): ask again
			}
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if res.Decode() == nil && res.Type == stun.BindingSuccess && res.TransactionID == req.TransactionID {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("turnserver exited")
		case <-ctx.Done():
			return fmt.Errorf("no STUN answer on port %d: %w", port, ctx.Err())
		default:
		}
	}
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// relayConfig is config with ICE restricted to TURN relays.
func relayConfig(t *testing.T, url, room, id string, tr *trace) Config {
	cfg := traced(config(t, url, room, id), tr)
	cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	return cfg
}

// TestTURNRelay connects two relay-only peers through a real coturn, with
// the ephemeral credentials the signaling server mints from the shared
// secret: the data channel opens, messages go both ways, and the selected
// candidate pair is relay to relay. With the wrong secret, coturn refuses
// the allocations: no relay candidate is gathered and the connection
// fails.
func TestTURNRelay(t *testing.T) {
	const secret = "turn secret"
	turn := startTURN(t, secret)

	t.Run("relay", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := signaltest.New(t, signal.Config{TURN: signal.TURNConfig{URLs: []string{turn.URL()}, Secret: secret}})
		a := join(t, ctx, relayConfig(t, srv.URL, "turn", "a", newTrace()))
		b := join(t, ctx, relayConfig(t, srv.URL, "turn", "b", newTrace()))
		la, lb := collect(t, a), collect(t, b)
		waitChannel(t, ctx, a, b)
		exchange(t, ctx, la, lb, 0, 0)
		for _, p := range []*Peer{a, b} {
			other := "b"
			if p == b {
				other = "a"
			}
			pair, err := p.PeerConnection(other).SCTP().Transport().ICETransport().GetSelectedCandidatePair()
			if err != nil || pair == nil {
				t.Fatalf("%s: selected pair %v, %v", p.ID(), pair, err)
			}
			t.Logf("%s: selected pair %s", p.ID(), pair)
			if pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
				t.Errorf("%s: selected pair %s, want relay to relay", p.ID(), pair)
			}
			if pair.Local.Address != "127.0.0.1" {
				t.Errorf("%s: relayed address %s, want coturn's 127.0.0.1", p.ID(), pair.Local.Address)
			}
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := signaltest.New(t, signal.Config{TURN: signal.TURNConfig{URLs: []string{turn.URL()}, Secret: "not the secret"}})
		// ICE fails after 1.5 s without a candidate pair.
		se := LoopbackSettingEngine()
		se.SetICETimeouts(500*time.Millisecond, time.Second, 200*time.Millisecond)
		api, err := NewAPI(se)
		if err != nil {
			t.Fatal(err)
		}
		ta, tb := newTrace(), newTrace()
		cfgA, cfgB := relayConfig(t, srv.URL, "turn", "a", ta), relayConfig(t, srv.URL, "turn", "b", tb)
		cfgA.API, cfgB.API = api, api
		a := join(t, ctx, cfgA)
		b := join(t, ctx, cfgB)
		start := time.Now()
		var wg sync.WaitGroup
		for _, x := range [][2]*Peer{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := x[0].WaitConnected(ctx, x[1].ID())
				if !errors.Is(err, ErrRemoteGone) {
					t.Errorf("%s: WaitConnected: %v, want the connection to fail (ErrRemoteGone)", x[0].ID(), err)
				}
			}()
		}
		wg.Wait()
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the connections took %s to fail", d)
		}
		for _, tr := range []*trace{ta, tb} {
			tr.mu.Lock()
			for _, m := range tr.pushed {
				if m.Type == signal.TypeCandidate && sigKey(&m) != "candidate end" {
					t.Errorf("a candidate was gathered: %s", sigKey(&m))
				}
			}
			tr.mu.Unlock()
		}
	})
}
