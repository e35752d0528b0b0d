package peer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/cluster"
	"github.com/rendezvous-rtc/rendezvous/signal/cluster/clustertest"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// A pair of peers against a real cluster (three nodes on an embedded
// NATS, behind a round-robin proxy) whose room's host node is killed in
// the middle of the pair's negotiation: the room is hosted anew on a
// survivor once the node's lease has passed, both members resume with a
// gap, and the peers recover the call (peer/recover.go).

// crashLease is the nodes' lease in these tests: a dead node's rooms are
// hosted anew about this long after it died.
const crashLease = time.Second

// crashRecovery bounds how long after the crash the call must carry
// messages again.
const crashRecovery = 10 * time.Second

// clusterNode is one node of a test cluster, served on a random port of
// 127.0.0.1.
type clusterNode struct {
	*cluster.Node
	http *httptest.Server
}

// startClusterNodes starts an embedded NATS server and count nodes on
// it; the test's cleanup closes them.
func startClusterNodes(t *testing.T, count int) []*clusterNode {
	t.Helper()
	natsURL, _ := clustertest.NATS(t)
	log := testLogger(t, "side", "server")
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var nodes []*clusterNode
	for range count {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		n, err := cluster.New(ctx, cluster.Config{NATS: cluster.NATSOptions{URLs: natsURL}, Lease: crashLease, Logger: log},
			signal.Config{Logger: log})
		cancel()
		if err != nil {
			t.Fatalf("cluster.New: %v", err)
		}
		hs := httptest.NewServer(n.Handler())
		t.Cleanup(func() {
			_ = n.Close()
			hs.Close()
		})
		nodes = append(nodes, &clusterNode{Node: n, http: hs})
	}
	return nodes
}

// kill stops n as kill -9 would: its NATS connection and its clients'
// sockets are cut and its listener closed, nothing is handed over.
func (n *clusterNode) kill() {
	n.Crash()
	n.http.CloseClientConnections()
	n.http.Close()
}

// hostedRooms returns how many rooms each node hosts.
func hostedRooms(nodes []*clusterNode) []int {
	var out []int
	for _, n := range nodes {
		out = append(out, n.Server().Stats().Rooms)
	}
	return out
}

// crashTrigger kills a node from a peer's test hooks the first time the
// peer's run loop is about to handle a matching message, so that the
// peer handles it (and answers it) only once the node is dead.
type crashTrigger struct {
	match func(m *signal.Message) bool
	kill  func()
	once  sync.Once
	at    time.Time     // set before done is closed
	done  chan struct{} // closed once the node is dead
}

// hook records m in tr and kills the node if m is the first match.
func (c *crashTrigger) hook(tr *trace) func(m *signal.Message) {
	return func(m *signal.Message) {
		tr.add(&tr.received, m)
		if !c.match(m) {
			return
		}
		c.once.Do(func() {
			c.at = time.Now()
			c.kill()
			close(c.done)
		})
	}
}

// TestClusterCrash: a pion pair (a creates the room, b joins and offers)
// whose room's host node is killed mid-negotiation, between offer and
// answer (a gets the offer; its answer would go to the dead node) or
// between answer and candidates (b gets the answer; what follows goes to
// the dead node). Both members resume with a gap, under the same ids and
// without seeing each other leave, and the data channel opens and
// carries a message each way within crashRecovery of the kill. It
// reports how long each step took after the kill.
func TestClusterCrash(t *testing.T) {
	isOffer := func(m *signal.Message) bool { return m.Type == signal.TypeOffer && m.From == "b" }
	isAnswer := func(m *signal.Message) bool { return m.Type == signal.TypeAnswer && m.From == "a" }
	tests := []struct {
		name string
		// on is the peer whose run loop kills the host when it is about
		// to handle the first message that matches.
		on    string
		match func(*signal.Message) bool
		// offerAgain: b must send its pending offer again after the
		// resume (the answer to it was lost).
		offerAgain bool
	}{
		{name: "between offer and answer", on: "a", match: isOffer, offerAgain: true},
		{name: "between answer and candidates", on: "b", match: isAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			nodes := startClusterNodes(t, 3)
			host := nodes[0]
			rr := signaltest.NewRoundRobin(t, nodes[0].http.URL, nodes[1].http.URL, nodes[2].http.URL)
			trig := &crashTrigger{match: tt.match, done: make(chan struct{}), kill: func() {
				// New connections go to the survivors only.
				rr.Remove(host.http.URL)
				host.kill()
			}}
			ta, tb := newTrace(), newTrace()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("a queued:\n%sa handled:\n%sb queued:\n%sb handled:\n%s",
						sdpTrail(ta, true), sdpTrail(ta, false), sdpTrail(tb, true), sdpTrail(tb, false))
				}
			})
			cfgA, cfgB := traced(config(t, rr.URL, "crash", "a"), ta), traced(config(t, rr.URL, "crash", "b"), tb)
			if tt.on == "a" {
				cfgA.hooks.received = trig.hook(ta)
			} else {
				cfgB.hooks.received = trig.hook(tb)
			}

			// a's WebSocket lands on nodes[0], whose join claims the room
			// for it; b's on nodes[1].
			a, la := joinLogged(t, ctx, cfgA)
			if got := hostedRooms(nodes); !slices.Equal(got, []int{1, 0, 0}) {
				t.Fatalf("rooms hosted per node %v, want the room on the first node only", got)
			}
			b, lb := joinLogged(t, ctx, cfgB)
			if rr.Count(nodes[0].http.URL) != 1 || rr.Count(nodes[1].http.URL) != 1 {
				t.Fatalf("connections per node %d, %d, %d; want a on the first node and b on the second",
					rr.Count(nodes[0].http.URL), rr.Count(nodes[1].http.URL), rr.Count(nodes[2].http.URL))
			}

			select {
			case <-trig.done:
			case <-ctx.Done():
				t.Fatalf("the host was never killed (no matching message reached %s): %v\na:\n%sb:\n%s", tt.on, ctx.Err(), la, lb)
			}
			crashed := trig.at
			since := func() time.Duration { return time.Since(crashed).Round(time.Millisecond) }
			rctx, cancel := context.WithDeadline(ctx, crashed.Add(crashRecovery))
			defer cancel()

			for _, x := range []struct {
				l         *eventLog
				id, other string
			}{{la, "a", "b"}, {lb, "b", "a"}} {
				e, _ := x.l.waitType(t, rctx, EventSignalingResumed, 0)
				if !e.Gap || e.ID != x.id || !slices.Equal(e.Peers, []string{x.other}) {
					t.Errorf("%s resumed %v, want id %s with gap and peers [%s]", x.id, e, x.id, x.other)
				}
				t.Logf("%s resumed with a gap %v after the kill", x.id, since())
			}
			waitChannel(t, rctx, a, b)
			t.Logf("data channel open on both sides %v after the kill", since())
			exchange(t, rctx, la, lb, 0, 0)
			t.Logf("a message each way %v after the kill", since())

			if got := hostedRooms(nodes[1:]); got[0]+got[1] != 1 {
				t.Errorf("rooms hosted by the survivors %v, want the room on one of them", got)
			}
			if rr.Count(host.http.URL) != 1 {
				t.Errorf("%d connections went to the dead node, want only a's first", rr.Count(host.http.URL))
			}
			if a.ID() != "a" || b.ID() != "b" {
				t.Errorf("ids %q and %q after the crash, want a and b", a.ID(), b.ID())
			}
			offers := offersTo(tb, "a")
			if tt.offerAgain && (len(offers) < 2 || offers[1] != offers[0]) {
				t.Errorf("b's offers to a: %d, want its pending offer sent again after the resume", len(offers))
			}
			t.Logf("b sent a %d offers", len(offers))
			noneOf(t, la, EventPeerLeft, EventSeatLost, EventSignalingClosed, EventError)
			noneOf(t, lb, EventPeerLeft, EventSeatLost, EventSignalingClosed, EventError)
		})
	}
}

// sdpTrail lists the offers and answers tr's peer queued (pushed) or
// handled, with their origin and ICE username fragment, for failures.
func sdpTrail(tr *trace, pushed bool) string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	list := tr.received
	if pushed {
		list = tr.pushed
	}
	var b strings.Builder
	for _, m := range list {
		if m.Type != signal.TypeOffer && m.Type != signal.TypeAnswer {
			continue
		}
		origin, ufrag := "", ""
		for _, line := range strings.Split(m.SDP, "\r\n") {
			switch {
			case origin == "" && strings.HasPrefix(line, "o="):
				origin = line
			case ufrag == "" && strings.HasPrefix(line, "a=ice-ufrag:"):
				ufrag = line
			}
		}
		fmt.Fprintf(&b, "\t%s from %q to %q: %s %s\n", m.Type, m.From, m.To, origin, ufrag)
	}
	return b.String()
}

// offersTo returns the origin (o=) lines of the offers tr's peer queued
// for id, in order: an offer sent again has its first sending's origin
// (session id and version), though not its SDP (candidates gathered
// meanwhile are added).
func offersTo(tr *trace, id string) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, m := range tr.pushed {
		if m.Type != signal.TypeOffer || m.To != id {
			continue
		}
		origin := ""
		for _, line := range strings.Split(m.SDP, "\r\n") {
			if strings.HasPrefix(line, "o=") {
				origin = line
				break
			}
		}
		out = append(out, origin)
	}
	return out
}
