package cluster

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/rendezvous-rtc/rendezvous/signal/cluster/clustertest"
)

// testLease is short so that the liveness tests take about a second.
const testLease = 600 * time.Millisecond

// startNode starts a registry for node id on its own connection to url.
// rooms, if not nil, is its room count.
func startNode(t *testing.T, url, id string, rooms *atomic.Int64) *nodes {
	t.Helper()
	_, js := dial(t, url, id)
	return startNodeJS(t, js, id, rooms)
}

// startNodeJS starts a registry on js and closes it when the test ends.
func startNodeJS(t *testing.T, js jetstream.JetStream, id string, rooms *atomic.Int64) *nodes {
	t.Helper()
	cfg := nodesConfig{
		Self:  nodeInfo{ID: id, URL: "http://" + id + ".test"},
		Lease: testLease,
		Log:   quietLog(),
	}
	if rooms != nil {
		cfg.Rooms = func() int { return int(rooms.Load()) }
	}
	n, err := newNodes(testCtx(t), js, cfg)
	if err != nil {
		t.Fatalf("newNodes(%s): %v", id, err)
	}
	t.Cleanup(n.close)
	return n
}

// downEvents registers an onDown callback and returns its channel. The
// callback reads the registry, which would deadlock if callbacks ran under
// its lock.
func downEvents(n *nodes) <-chan string {
	ch := make(chan string, 16)
	n.onDown(func(id string) {
		n.alive()
		ch <- id
	})
	return ch
}

// waitFor polls cond every 10 ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// aliveIDs lists the ids n sees alive.
func aliveIDs(n *nodes) string {
	var ids []string
	for _, info := range n.alive() {
		ids = append(ids, info.ID)
	}
	return strings.Join(ids, ",")
}

// expectDown waits for one down event naming id, within d.
func expectDown(t *testing.T, ch <-chan string, id string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case got := <-ch:
		if got != id {
			t.Fatalf("onDown(%q), want %q", got, id)
		}
		return time.Since(start)
	case <-time.After(d):
		t.Fatalf("no onDown(%q) within %v", id, d)
	}
	return 0
}

func TestNodesSeeEachOther(t *testing.T) {
	url, _ := newJS(t)
	a := startNode(t, url, "a", nil)
	if got := aliveIDs(a); got != "a" {
		t.Fatalf("a alone sees %q alive, want itself", got)
	}
	b := startNode(t, url, "b", nil)
	if got := aliveIDs(b); got != "a,b" {
		t.Fatalf("b sees %q alive right after start, want a,b", got)
	}
	waitFor(t, testLease, "a sees b", func() bool { return a.isAlive("b") })
	// Both stay alive across several leases: heartbeats keep them fresh.
	downs := downEvents(a)
	deadline := time.After(3 * testLease)
	for done := false; !done; {
		select {
		case id := <-downs:
			t.Fatalf("onDown(%s) while both nodes beat", id)
		case <-deadline:
			done = true
		}
	}
	if got := aliveIDs(a); got != "a,b" {
		t.Fatalf("after three leases a sees %q, want a,b", got)
	}
	info := a.alive()[1]
	if info.URL != "http://b.test" || info.Started.IsZero() || info.Beat.IsZero() {
		t.Fatalf("b's heartbeat as a sees it: %+v", info)
	}
}

func TestNodesDownAfterLease(t *testing.T) {
	url, _ := newJS(t)
	a := startNode(t, url, "a", nil)
	b := startNode(t, url, "b", nil)
	waitFor(t, testLease, "a sees b", func() bool { return a.isAlive("b") })
	downs := downEvents(a)
	b.close() // crash: no leave, the key stays
	took := expectDown(t, downs, "b", testLease+2*time.Second)
	if took < testLease/3 {
		t.Errorf("b reported down %v after it stopped, sooner than its last heartbeat could expire", took)
	}
	if a.isAlive("b") || aliveIDs(a) != "a" {
		t.Fatalf("b still alive after onDown: %q", aliveIDs(a))
	}
	t.Logf("down reported %v after the heartbeats stopped (lease %v)", took, testLease)
	// Once only.
	select {
	case id := <-downs:
		t.Fatalf("second onDown(%s)", id)
	case <-time.After(testLease):
	}
}

func TestNodesLeave(t *testing.T) {
	url, _ := newJS(t)
	a := startNode(t, url, "a", nil)
	b := startNode(t, url, "b", nil)
	waitFor(t, testLease, "a sees b", func() bool { return a.isAlive("b") })
	downs := downEvents(a)
	if err := b.leave(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	took := expectDown(t, downs, "b", testLease/2)
	t.Logf("down reported %v after leave", took)
	if a.isAlive("b") {
		t.Fatal("b alive after leave")
	}
}

func TestNodesStaleKeyAtStart(t *testing.T) {
	url, _ := newJS(t)
	b := startNode(t, url, "b", nil)
	b.close() // crashed: its key stays in the bucket for a while
	waitFor(t, 3*testLease, "b's last heartbeat ages past a lease", func() bool {
		e, err := b.kv.Get(testCtx(t), "b")
		return err == nil && time.Since(e.Created()) > testLease
	})
	a := startNode(t, url, "a", nil)
	downs := downEvents(a)
	if a.isAlive("b") {
		t.Fatal("a counts b alive from a heartbeat a lease old")
	}
	expectDown(t, downs, "b", testLease)
}

func TestNodesPick(t *testing.T) {
	url, _ := newJS(t)
	var roomsA, roomsB, roomsC atomic.Int64
	roomsA.Store(5)
	roomsB.Store(1)
	roomsC.Store(1)
	a := startNode(t, url, "a", &roomsA)
	b := startNode(t, url, "b", &roomsB)
	c := startNode(t, url, "c", &roomsC)
	waitFor(t, testLease, "a sees b and c", func() bool { return aliveIDs(a) == "a,b,c" })

	// b and c tie with the fewest rooms: picks alternate between them.
	seen := map[string]int{}
	for range 10 {
		id, ok := a.pick()
		if !ok {
			t.Fatal("pick found no node")
		}
		seen[id]++
	}
	if seen["b"] != 5 || seen["c"] != 5 {
		t.Fatalf("picks %v, want b and c five times each", seen)
	}
	if id, _ := a.pick("b"); id != "c" {
		t.Fatalf("pick excluding b = %q, want c", id)
	}

	c.setDraining(true)
	waitFor(t, testLease, "a sees c draining", func() bool {
		for _, info := range a.alive() {
			if info.ID == "c" {
				return info.Draining
			}
		}
		return false
	})
	for range 4 {
		if id, _ := a.pick(); id != "b" {
			t.Fatalf("pick with c draining = %q, want b", id)
		}
	}
	if id, _ := a.pick("b"); id != "a" {
		t.Fatalf("pick excluding b with c draining = %q, want a", id)
	}
	if id, ok := a.pick("a", "b"); ok {
		t.Fatalf("pick excluding a and b with c draining = %q, want none", id)
	}
	// Room counts follow the heartbeats.
	roomsA.Store(0)
	waitFor(t, testLease, "a's room count", func() bool { id, _ := b.pick(); return id == "a" })
	if id, _ := b.pick("a", "c"); id != "b" {
		t.Fatalf("pick = %q, want b", id)
	}
}

func TestNodesBadConfig(t *testing.T) {
	_, js := newJS(t)
	tests := []struct {
		name string
		cfg  nodesConfig
		want string
	}{
		{"empty id", nodesConfig{Self: nodeInfo{ID: ""}}, "node id"},
		{"dot in id", nodesConfig{Self: nodeInfo{ID: "a.b"}}, "node id"},
		{"long id", nodesConfig{Self: nodeInfo{ID: strings.Repeat("x", 65)}}, "node id"},
		{"tiny lease", nodesConfig{Self: nodeInfo{ID: "a"}, Lease: time.Millisecond}, "shorter than"},
		{"replicas", nodesConfig{Self: nodeInfo{ID: "a"}, Replicas: 7}, "replicas"},
		{"prefix", nodesConfig{Self: nodeInfo{ID: "a"}, Prefix: "a b"}, "bucket prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := newNodes(testCtx(t), js, tt.cfg)
			if err == nil {
				n.close()
				t.Fatal("newNodes succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

// TestNodesCloseLeavesNoGoroutines checks that close stops the heartbeat
// and watch loops, the watcher and the callbacks it started.
func TestNodesCloseLeavesNoGoroutines(t *testing.T) {
	url, js := newJS(t)
	other := startNode(t, url, "other", nil)
	waitFor(t, testLease, "other is up", func() bool { return other.isAlive("other") })
	before := goleak.IgnoreCurrent()
	n, err := newNodes(testCtx(t), js, nodesConfig{Self: nodeInfo{ID: "n"}, Lease: testLease, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	downs := downEvents(n)
	other.close()
	expectDown(t, downs, "other", testLease+2*time.Second)
	n.setDraining(true)
	if err := n.leave(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	n.close()
	n.close() // idempotent
	goleak.VerifyNone(t, before)
}

// TestNodesSurviveServerRestart restarts the NATS server: the nodes bucket
// (in memory) is lost; the registries create it again, their watchers
// resume, and a crash after the restart is still noticed.
func TestNodesSurviveServerRestart(t *testing.T) {
	url, srv := clustertest.NATS(t)
	a := startNode(t, url, "a", nil)
	b := startNode(t, url, "b", nil)
	waitFor(t, testLease, "a sees b", func() bool { return a.isAlive("b") })
	clustertest.Restart(t, srv)
	waitFor(t, 10*time.Second, "a sees a and b after the restart", func() bool {
		_, err := a.kv.Get(testCtx(t), "b")
		return err == nil && aliveIDs(a) == "a,b"
	})
	downs := downEvents(a)
	// Stay up over several leases: the watcher delivers fresh heartbeats.
	select {
	case id := <-downs:
		t.Fatalf("onDown(%s) with both nodes beating after the restart", id)
	case <-time.After(3 * testLease):
	}
	b.close()
	expectDown(t, downs, "b", testLease+2*time.Second)
}
