package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

func TestCrossNodeRelay(t *testing.T) {
	_, nodes := startCluster(t, 3, signal.Config{})
	alice := dial(t, nodes[0].URL)
	bob := dial(t, nodes[1].URL)
	a := join(t, alice, "demo", nil)
	if a.Type != signal.TypeCreated {
		t.Fatalf("alice got %s", a.Type)
	}
	b := join(t, bob, "demo", nil)
	if b.Type != signal.TypeJoined || len(b.Peers) != 1 || b.Peers[0] != a.ID {
		t.Fatalf("bob got %+v", b)
	}
	if pj := recvType(t, alice, signal.TypePeerJoined); pj.ID != b.ID {
		t.Fatalf("alice saw %+v", pj)
	}
	if err := bob.Send(&signal.Message{Type: signal.TypeMessage, Data: json.RawMessage(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	m := recvType(t, alice, signal.TypeMessage)
	if m.From != b.ID || string(m.Data) != `{"n":1}` {
		t.Fatalf("alice got %+v", m)
	}
	if err := alice.Send(&signal.Message{Type: signal.TypeMessage, To: b.ID, Data: json.RawMessage(`2`)}); err != nil {
		t.Fatal(err)
	}
	if m := recvType(t, bob, signal.TypeMessage); m.From != a.ID || string(m.Data) != `2` {
		t.Fatalf("bob got %+v", m)
	}
	carol := dial(t, nodes[2].URL)
	if _, err := carol.Join(t.Context(), "demo", nil); !errors.Is(err, signal.ErrRoomFull) {
		t.Fatalf("carol: %v, want full", err)
	}
}

// TestDrainMovesRooms drains the node that hosts a room and whose gateway
// holds one member: both members are closed with 1012, resume on other
// nodes with their tokens, and find everything that was sent to them,
// once, with no peer-left.
func TestDrainMovesRooms(t *testing.T) {
	_, nodes := startCluster(t, 3, signal.Config{})
	alice := dial(t, nodes[0].URL)
	bob := dial(t, nodes[1].URL)
	a := join(t, alice, "demo", nil)
	b := join(t, bob, "demo", nil)
	recvType(t, alice, signal.TypePeerJoined)
	send := func(c *signal.Client, to string, n int) {
		t.Helper()
		if err := c.Send(&signal.Message{Type: signal.TypeMessage, To: to, Data: json.RawMessage(fmt.Sprint(n))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		send(alice, b.ID, i)
		send(bob, a.ID, i)
	}
	for i := 1; i <= 5; i++ {
		if m := recvType(t, bob, signal.TypeMessage); string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("bob got %s, want %d", m.Data, i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	if err := nodes[0].Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	t.Logf("drain took %v", time.Since(start))
	for _, c := range []*signal.Client{alice, bob} {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("a client was not closed by the drain")
		}
		if ce, ok := c.CloseError(); !ok || ce.Code != signal.CloseServiceRestart {
			t.Fatalf("close %v, want 1012", ce)
		}
	}
	// Bob's frames still in flight at the drain were not handled: the
	// resumed joined says how many were (read), and bob sends the rest
	// again, as peer/ and signal.js do.
	bob2 := dial(t, nodes[1].URL)
	rb := bob.Received()
	jb := join(t, bob2, "demo", &signal.JoinOptions{Resume: b.Resume, Received: &rb})
	if !jb.Resumed || jb.ID != b.ID || jb.Read == nil || *jb.Read > 5 {
		t.Fatalf("bob resumed with %+v", jb)
	}
	for i := int(*jb.Read) + 1; i <= 5; i++ {
		send(bob2, a.ID, i)
	}
	// What alice's client read before the cut it keeps; the rest comes
	// again after her resume: 1…5 once each, in order, either way.
	got := 0
	for got < 5 {
		m, err := alice.Recv(ctx)
		if err != nil {
			break
		}
		if m.Type == signal.TypeMessage {
			got++
			if string(m.Data) != fmt.Sprint(got) {
				t.Fatalf("alice got %s, want %d", m.Data, got)
			}
		}
	}
	alice2 := dial(t, nodes[2].URL)
	ra := alice.Received()
	ja := join(t, alice2, "demo", &signal.JoinOptions{Resume: a.Resume, Received: &ra})
	if !ja.Resumed || ja.ID != a.ID || ja.Read == nil || *ja.Read != 5 {
		t.Fatalf("alice resumed with %+v (read %v)", ja, ja.Read)
	}
	for got < 5 {
		m := recvType(t, alice2, signal.TypeMessage)
		if got++; string(m.Data) != fmt.Sprint(got) {
			t.Fatalf("alice got %s again or out of order, want %d", m.Data, got)
		}
	}
	send(bob2, a.ID, 6)
	if m := recvType(t, alice2, signal.TypeMessage); string(m.Data) != "6" {
		t.Fatalf("alice got %s after the move, want 6", m.Data)
	}
}

// TestCrashRehostsRooms kills the host of a room: after its lease, the
// room is re-hosted with the same ids, both members resume (one from the
// dead node's gateway, one from a live one) with gap, and relay again.
func TestCrashRehostsRooms(t *testing.T) {
	_, nodes := startCluster(t, 3, signal.Config{})
	alice := dial(t, nodes[0].URL)
	bob := dial(t, nodes[1].URL)
	a := join(t, alice, "demo", nil)
	b := join(t, bob, "demo", nil)
	recvType(t, alice, signal.TypePeerJoined)
	start := time.Now()
	nodes[0].Crash()
	nodes[0].http.CloseClientConnections()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, c := range []*signal.Client{alice, bob} {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("a client was not closed after the crash")
		}
	}
	t.Logf("bob's gateway closed him %v after the crash", time.Since(start))
	resume := func(url string, old *signal.Client, tok string) *signal.Message {
		t.Helper()
		for {
			c := dial(t, url)
			r := old.Received()
			m, err := c.Join(ctx, "demo", &signal.JoinOptions{Resume: tok, Received: &r})
			if err == nil {
				return m
			}
			if ctx.Err() != nil {
				t.Fatalf("resume: %v", err)
			}
			_ = c.Close()
			time.Sleep(100 * time.Millisecond) // the client's backoff between attempts
		}
	}
	jb := resume(nodes[1].URL, bob, b.Resume)
	ja := resume(nodes[2].URL, alice, a.Resume)
	t.Logf("both resumed %v after the crash", time.Since(start))
	if !ja.Resumed || !ja.Gap || ja.ID != a.ID || !jb.Resumed || !jb.Gap || jb.ID != b.ID {
		t.Fatalf("resumed %+v / %+v", ja, jb)
	}
}

// TestGatewayCrashHoldsSeat: when the node holding a member's WebSocket
// dies (not the room's host), the host holds the member's seat as soon as
// the node's lease has passed, and the member resumes through another
// node without a gap.
func TestGatewayCrashHoldsSeat(t *testing.T) {
	_, nodes := startCluster(t, 3, signal.Config{PongTimeout: time.Minute})
	alice := dial(t, nodes[0].URL)
	bob := dial(t, nodes[1].URL)
	a := join(t, alice, "gw", nil)
	b := join(t, bob, "gw", nil)
	recvType(t, alice, signal.TypePeerJoined)
	nodes[1].Crash()
	nodes[1].http.CloseClientConnections()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		st, ok := nodes[0].Server().Snapshot("gw")
		if !ok {
			t.Fatal("the room is gone from its host")
		}
		held := false
		for _, s := range st.Seats {
			held = held || s.ID == b.ID && !s.Connected
		}
		if held {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the host still has bob connected through the dead node")
		case <-time.After(20 * time.Millisecond): // polling the host's state
		}
	}
	t.Logf("bob's seat held %v after his gateway died (pong timeout 1m)", time.Since(start).Round(time.Millisecond))
	bob2 := dial(t, nodes[2].URL)
	r := bob.Received()
	jb := join(t, bob2, "gw", &signal.JoinOptions{Resume: b.Resume, Received: &r})
	if !jb.Resumed || jb.Gap || jb.ID != b.ID || jb.Read == nil {
		t.Fatalf("bob resumed with %+v", jb)
	}
	if err := bob2.Send(&signal.Message{Type: signal.TypeMessage, To: a.ID, Data: json.RawMessage(`"back"`)}); err != nil {
		t.Fatal(err)
	}
	if m := recvType(t, alice, signal.TypeMessage); string(m.Data) != `"back"` {
		t.Fatalf("alice got %s", m.Data)
	}
}

// TestClaimsLimitedPerClient: every room a client creates is a directory
// write, so one client's new rooms are limited (a burst of 20, then 5 a
// second): its joins of new rooms past the burst wait.
func TestClaimsLimitedPerClient(t *testing.T) {
	_, nodes := startCluster(t, 1, signal.Config{})
	c := dial(t, nodes[0].URL)
	start := time.Now()
	const rooms = 30 // 10 past the burst: at least 2 s at 5 a second
	for i := range rooms {
		join(t, c, fmt.Sprintf("claim-%d", i), nil)
		if err := c.Send(&signal.Message{Type: signal.TypeLeave}); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 1800*time.Millisecond {
		t.Fatalf("%d new rooms took %v: not limited", rooms, took)
	}
	// Another client is not slowed by the first one's limit.
	d := dial(t, nodes[0].URL)
	start = time.Now()
	join(t, d, "claim-other", nil)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("another client's new room took %v", took)
	}
}

// TestGatewayMessageTimeout: a client that begins a message and does not
// finish it within the message timeout is closed by its gateway (1008),
// pongs or not, as a single server closes it; its room mate on another
// node sees it leave.
func TestGatewayMessageTimeout(t *testing.T) {
	_, nodes := startCluster(t, 2, signal.Config{MessageTimeout: 300 * time.Millisecond})
	alice := dial(t, nodes[0].URL)
	join(t, alice, "slow", nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, nodes[1].URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"slow"}`)); err != nil {
		t.Fatal(err)
	}
	recvType(t, alice, signal.TypePeerJoined)
	// Half a message: a first fragment, never the last.
	w, err := ws.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(`{"type":"message","data":"` + strings.Repeat("x", 8<<10))); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("closed with %d %q, want 1008", ce.Code, ce.Text)
			}
			break
		}
		if err != nil {
			t.Fatalf("read: %v, want close 1008", err)
		}
	}
	t.Logf("closed %v after the half message", time.Since(start).Round(time.Millisecond))
	if pl := recvType(t, alice, signal.TypePeerLeft); pl.Reason != signal.ReasonDisconnected {
		t.Fatalf("alice saw %+v", pl)
	}
}
