package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// lease is the nodes' lease in these tests (startNode's).
const lease = time.Second

// crash kills node as kill -9 would: its NATS connection and its
// clients' sockets are cut, nothing is handed over.
func crash(n *testNode) {
	n.Crash()
	n.http.CloseClientConnections()
}

// resumeOn dials url until a resume of room with tok succeeds, with a
// client's backoff between attempts.
func resumeOn(t *testing.T, ctx context.Context, url, room, tok string, got uint64) (*signal.Client, *signal.Message) {
	t.Helper()
	backoff := 50 * time.Millisecond
	for {
		c, err := signal.Dial(ctx, url, nil)
		if err == nil {
			m, err := c.Join(ctx, room, &signal.JoinOptions{Resume: tok, Received: &got})
			if err == nil {
				t.Cleanup(func() { _ = c.Close() })
				return c, m
			}
			_ = c.Close()
			if code := errCode(err); code != "" && code != signal.CodeMoved {
				t.Fatalf("resume of %s: %v", room, err)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("resume of %s: %v", room, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// TestCrashOfHost kills the node that hosts a room and holds one member's
// WebSocket: the room is re-hosted with the same ids; the member on
// another node is told to resume (1012) and resumes with gap; the member
// whose socket died resumes on another node within lease + backoff; a new
// join still works; a room hosted elsewhere notices nothing.
func TestCrashOfHost(t *testing.T) {
	_, nodes := startCluster(t, 3, signal.Config{Capacity: 3})
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	a, b := dial(t, n0.URL), dial(t, n1.URL)
	am := join(t, a, "doomed", nil) // hosted on n0
	bm := join(t, b, "doomed", nil)
	recvType(t, a, signal.TypePeerJoined)
	sendData(t, a, bm.ID, `"before"`)
	expectData(t, b, am.ID, `"before"`)
	// A room hosted on n1, its members on n1 and n2: untouched by n0's end.
	c, d := dial(t, n1.URL), dial(t, n2.URL)
	cm := join(t, c, "safe", nil)
	dm := join(t, d, "safe", nil)
	recvType(t, c, signal.TypePeerJoined)

	start := time.Now()
	crash(n0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	if code := waitClosed(t, b); code != signal.CloseServiceRestart {
		t.Fatalf("b's gateway closed it with %d, want 1012", code)
	}
	t.Logf("b closed with 1012 %v after the crash", time.Since(start).Round(time.Millisecond))
	waitClosed(t, a)

	// a's socket died with n0: it resumes on n2.
	a2, ja := resumeOn(t, ctx, n2.URL, "doomed", am.Resume, a.Received())
	aTook := time.Since(start)
	b2, jb := resumeOn(t, ctx, n1.URL, "doomed", bm.Resume, b.Received())
	t.Logf("a (socket on the dead node) resumed %v after the crash, b %v", aTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if !ja.Resumed || !ja.Gap || ja.ID != am.ID || ja.Read != nil || !jb.Resumed || !jb.Gap || jb.ID != bm.ID {
		t.Fatalf("resumed: a %+v, b %+v; want the same ids with gap", ja, jb)
	}
	if len(ja.Peers) != 1 || ja.Peers[0] != bm.ID {
		t.Fatalf("a's peers after the re-host: %v", ja.Peers)
	}
	if limit := lease + 3*time.Second; aTook > limit {
		t.Errorf("a resumed %v after the crash, over lease + backoff (%v)", aTook, limit)
	}
	sendData(t, a2, bm.ID, `"after"`)
	expectData(t, b2, am.ID, `"after"`)
	sendData(t, b2, am.ID, `"back"`)
	expectData(t, a2, bm.ID, `"back"`)

	// A new member joins the re-hosted room.
	e := dial(t, n1.URL)
	em := join(t, e, "doomed", nil)
	if em.Type != signal.TypeJoined || len(em.Peers) != 2 {
		t.Fatalf("join after the re-host: %+v", em)
	}
	recvType(t, a2, signal.TypePeerJoined)
	recvType(t, b2, signal.TypePeerJoined)

	// The other room saw nothing: no close, no peer-left; it relays.
	for _, cl := range []*signal.Client{c, d} {
		select {
		case <-cl.Done():
			t.Fatal("a member of a room hosted elsewhere was closed")
		default:
		}
	}
	sendData(t, c, dm.ID, `"still"`)
	if m, err := d.Recv(ctx); err != nil || m.Type != signal.TypeMessage || string(m.Data) != `"still"` {
		t.Fatalf("d got %+v %v, want only c's message", m, err)
	}
	sendData(t, d, cm.ID, `"here"`)
	if m, err := c.Recv(ctx); err != nil || m.Type != signal.TypeMessage || string(m.Data) != `"here"` {
		t.Fatalf("c got %+v %v, want only d's message", m, err)
	}
}

// TestCrashRehostsManyRooms kills the host of 50 rooms, each with one
// member's socket on it and one elsewhere, behind a round-robin proxy:
// all 100 members resume, with gap, and relay again. It reports how long
// from the kill until every one had resumed.
func TestCrashRehostsManyRooms(t *testing.T) {
	const rooms = 50
	_, nodes := startCluster(t, 3, signal.Config{})
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	rr := signaltest.NewRoundRobin(t, n0.Base, n1.Base)
	type pair struct{ x, y *resumingClient }
	pairs := make([]pair, rooms)
	var all []*resumingClient
	for i := range pairs {
		room := fmt.Sprintf("many-%d", i)
		x := newResumingClient(t, fmt.Sprintf("x%d", i), rr.URL, room) // on n0: n0 hosts the room
		y := newResumingClient(t, fmt.Sprintf("y%d", i), rr.URL, room) // on n1
		pairs[i] = pair{x, y}
		all = append(all, x, y)
	}
	if rr.Count(n0.Base) != rooms || rr.Count(n1.Base) != rooms {
		t.Fatalf("connections n0 %d, n1 %d: not one member of each room on each", rr.Count(n0.Base), rr.Count(n1.Base))
	}
	if got := n0.Server().Stats().Rooms; got != rooms {
		t.Fatalf("n0 hosts %d rooms, want %d", got, rooms)
	}
	if err := rr.SetBackends(n1.Base, n2.Base); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	crash(n0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	var last time.Time
	for _, c := range all {
		at, err := c.waitResumed(ctx, 1)
		if err != nil {
			t.Fatalf("%v\n%v", err, c)
		}
		if at.After(last) {
			last = at
		}
	}
	t.Logf("kill → all %d members of %d rooms resumed: %v (lease %v)", len(all), rooms, last.Sub(start).Round(time.Millisecond), lease)
	for _, p := range pairs {
		if err := p.x.Send(p.y.ID(), 1); err != nil {
			t.Fatal(err)
		}
		if err := p.y.Send(p.x.ID(), 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pairs {
		if err := p.y.waitFor(ctx, p.x.name, 1); err != nil {
			t.Fatal(err)
		}
		if err := p.x.waitFor(ctx, p.y.name, 1); err != nil {
			t.Fatal(err)
		}
	}
	hosted := n1.Server().Stats().Rooms + n2.Server().Stats().Rooms
	if hosted != rooms {
		t.Errorf("the survivors host %d rooms, want %d", hosted, rooms)
	}
	for _, c := range all {
		others, rs, _, err := c.report()
		if err != nil || len(rs) != 1 || len(others) != 1 || others[0] != "gap" {
			t.Errorf("%s: resumes %v, saw %v, err %v; want one resume with gap", c.name, rs, others, err)
		}
	}
}

// TestPartitionedHostGivesUpItsRooms cuts a room's host off NATS for
// longer than its lease (a network partition, the process alive): the
// other nodes count it dead and re-host its room, and the member on
// another node resumes there. The member whose socket is on the cut-off
// node must end up in that same room too (closed with 1012 and resumed
// elsewhere), not left alone in a copy of the room on the cut-off node:
// a message from its room mate reaches it.
func TestPartitionedHostGivesUpItsRooms(t *testing.T) {
	natsURL, nodes := startCluster(t, 2, signal.Config{})
	// n0 reaches NATS through a proxy that can cut it off.
	natsLink := signaltest.NewRoundRobin(t, natsURL)
	n0 := startNode(t, "nats://"+natsLink.Addr, signal.Config{})
	n1, n2 := nodes[0], nodes[1]
	lb := signaltest.NewRoundRobin(t, n0.Base, n1.Base)
	a := newResumingClient(t, "a", lb.URL, "split") // on n0, which hosts the room
	b := newResumingClient(t, "b", lb.URL, "split") // on n1
	if err := lb.SetBackends(n1.Base, n2.Base); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(b.ID(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	if err := b.waitFor(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}

	// The partition: n0 loses NATS, and cannot reconnect.
	start := time.Now()
	if err := natsLink.SetBackends(); err != nil {
		t.Fatal(err)
	}
	natsLink.CloseBackend(natsURL)
	// The others count n0 dead after its lease: b's gateway closes it
	// with 1012 and b resumes in the re-hosted room.
	if _, err := b.waitResumed(ctx, 1); err != nil {
		t.Fatalf("%v\n%v", err, b)
	}
	t.Logf("b resumed in the re-hosted room %v after the partition", time.Since(start).Round(time.Millisecond))
	// The partition heals.
	if err := natsLink.SetBackends(natsURL); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(a.ID(), 1); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*lease+5*time.Second)
	defer wcancel()
	if err := a.waitFor(wctx, "b", 1); err != nil {
		t.Fatalf("%v\n%v\n%v", err, a, b)
	}
	t.Logf("a reached b's room %v after the partition", time.Since(start).Round(time.Millisecond))
}
