package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// The protocol's rules, with every room's members on different nodes of a
// 3-node cluster: a client cannot tell it is not on a single server.

// errCode returns the protocol error code carried by err, or "".
func errCode(err error) string {
	var pe *signal.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// expectError waits for the next error on c and checks its code.
func expectError(t *testing.T, c *signal.Client, code string) *signal.Message {
	t.Helper()
	m := recvType(t, c, signal.TypeError)
	if m.Code != code {
		t.Fatalf("got error %s (%s), want %s", m.Code, m.Message, code)
	}
	return m
}

// sendData sends a message with data to (every other member when to is
// empty).
func sendData(t *testing.T, c *signal.Client, to, data string) {
	t.Helper()
	if err := c.Send(&signal.Message{Type: signal.TypeMessage, To: to, Data: json.RawMessage(data)}); err != nil {
		t.Fatal(err)
	}
}

// expectData waits for the next relayed message on c and checks it.
func expectData(t *testing.T, c *signal.Client, from, data string) {
	t.Helper()
	m := recvType(t, c, signal.TypeMessage)
	if m.From != from || string(m.Data) != data {
		t.Fatalf("got message from %s: %s; want from %s: %s", m.From, m.Data, from, data)
	}
}

// waitClosed waits for c's connection to end and returns its close code
// (0 without a close frame).
func waitClosed(t *testing.T, c *signal.Client) int {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("the connection was not closed")
	}
	if ce, ok := c.CloseError(); ok {
		return ce.Code
	}
	return 0
}

// pair puts a on node x and b on node y in a new room, a creating it:
// the room is hosted on x, b's frames cross NATS.
func pair(t *testing.T, x, y *testNode, room string) (a, b *signal.Client, aID, bID string) {
	t.Helper()
	a, b = dial(t, x.URL), dial(t, y.URL)
	am := join(t, a, room, nil)
	if am.Type != signal.TypeCreated {
		t.Fatalf("first join of %s: %s", room, am.Type)
	}
	bm := join(t, b, room, nil)
	if bm.Type != signal.TypeJoined {
		t.Fatalf("second join of %s: %s", room, bm.Type)
	}
	if pj := recvType(t, a, signal.TypePeerJoined); pj.ID != bm.ID {
		t.Fatalf("peer-joined %s, want %s", pj.ID, bm.ID)
	}
	return a, b, am.ID, bm.ID
}

func TestProtocolAcrossNodes(t *testing.T) {
	const admin = "admin-secret"
	scfg := signal.Config{ResumeWindow: 2 * time.Second, MaxMessageBytes: 4096, ConnBufferBytes: 1 << 20,
		AdminToken: admin, Rate: rate.Inf}
	_, nodes := startCluster(t, 3, scfg)
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]

	t.Run("created joined peer-joined", func(t *testing.T) {
		a, b := dial(t, n0.URL), dial(t, n1.URL)
		am := join(t, a, "p-create", &signal.JoinOptions{Ref: "r1"})
		if am.Type != signal.TypeCreated || am.Capacity != 2 || am.Resume == "" || am.Ref != "r1" || am.Room != "p-create" {
			t.Fatalf("created: %+v", am)
		}
		bm := join(t, b, "p-create", nil)
		if bm.Type != signal.TypeJoined || len(bm.Peers) != 1 || bm.Peers[0] != am.ID || bm.Capacity != 2 {
			t.Fatalf("joined: %+v", bm)
		}
		if pj := recvType(t, a, signal.TypePeerJoined); pj.ID != bm.ID || pj.Room != "p-create" {
			t.Fatalf("peer-joined: %+v", pj)
		}
	})

	t.Run("full then another room", func(t *testing.T) {
		pair(t, n0, n1, "p-full")
		c := dial(t, n2.URL)
		m, err := c.Join(t.Context(), "p-full", &signal.JoinOptions{Ref: "f"})
		if !errors.Is(err, signal.ErrRoomFull) || m.Capacity != 2 || m.Ref != "f" {
			t.Fatalf("third join: %+v %v, want full", m, err)
		}
		// Still connected, in no room: it can join elsewhere.
		if m := join(t, c, "p-full-other", nil); m.Type != signal.TypeCreated {
			t.Fatalf("join after full: %+v", m)
		}
	})

	t.Run("capacity", func(t *testing.T) {
		a := dial(t, n0.URL)
		if m := join(t, a, "p-cap", &signal.JoinOptions{Capacity: 3}); m.Capacity != 3 {
			t.Fatalf("created %+v", m)
		}
		for _, n := range []*testNode{n1, n2} {
			c := dial(t, n.URL)
			if m := join(t, c, "p-cap", &signal.JoinOptions{Capacity: 9}); m.Type != signal.TypeJoined || m.Capacity != 3 {
				t.Fatalf("joined %+v", m)
			}
		}
		d := dial(t, n1.URL)
		if m, err := d.Join(t.Context(), "p-cap", nil); !errors.Is(err, signal.ErrRoomFull) || m.Capacity != 3 {
			t.Fatalf("fourth: %+v %v", m, err)
		}
		e := dial(t, n2.URL)
		if _, err := e.Join(t.Context(), "p-cap-bad", &signal.JoinOptions{Capacity: 1}); errCode(err) != "invalid-capacity" {
			t.Fatalf("capacity 1: %v", err)
		}
	})

	t.Run("requested id and id-taken", func(t *testing.T) {
		a, b := dial(t, n0.URL), dial(t, n1.URL)
		if m := join(t, a, "p-id", &signal.JoinOptions{ID: "alice"}); m.ID != "alice" {
			t.Fatalf("created %+v", m)
		}
		if _, err := b.Join(t.Context(), "p-id", &signal.JoinOptions{ID: "alice"}); errCode(err) != "id-taken" {
			t.Fatalf("same id: %v, want id-taken", err)
		}
		if m := join(t, b, "p-id", &signal.JoinOptions{ID: "bob"}); m.ID != "bob" || m.Peers[0] != "alice" {
			t.Fatalf("joined %+v", m)
		}
	})

	t.Run("to a member and unknown-peer", func(t *testing.T) {
		a, b, aID, bID := pair(t, n0, n1, "p-to")
		sendData(t, a, bID, `{"x":1}`)
		expectData(t, b, aID, `{"x":1}`)
		sendData(t, b, aID, `"back"`)
		expectData(t, a, bID, `"back"`)
		sendData(t, b, "nobody", `1`)
		expectError(t, b, "unknown-peer")
		sendData(t, b, bID, `1`)
		expectError(t, b, "unknown-peer")
	})

	t.Run("broadcast to members on 3 nodes", func(t *testing.T) {
		cs := make([]*signal.Client, 3)
		ids := make([]string, 3)
		for i, n := range nodes {
			cs[i] = dial(t, n.URL)
			m := join(t, cs[i], "p-bcast", &signal.JoinOptions{Capacity: 3})
			ids[i] = m.ID
		}
		sendData(t, cs[1], "", `"all"`)
		expectData(t, cs[0], ids[1], `"all"`)
		expectData(t, cs[2], ids[1], `"all"`)
		// The sender does not get its own: its next message is this one.
		sendData(t, cs[2], ids[1], `"you"`)
		expectData(t, cs[1], ids[2], `"you"`)
	})

	t.Run("order per sender and receiver", func(t *testing.T) {
		a, b, aID, bID := pair(t, n0, n1, "p-order")
		const count = 200
		go func() {
			for i := 1; i <= count; i++ {
				_ = a.Send(&signal.Message{Type: signal.TypeMessage, To: bID, Data: json.RawMessage(fmt.Sprint(i))})
			}
		}()
		for i := 1; i <= count; i++ {
			sendData(t, b, aID, fmt.Sprint(-i))
		}
		for i := 1; i <= count; i++ {
			expectData(t, b, aID, fmt.Sprint(i))
		}
		for i := 1; i <= count; i++ {
			expectData(t, a, bID, fmt.Sprint(-i))
		}
	})

	t.Run("peer-left left and disconnected", func(t *testing.T) {
		a, b, _, bID := pair(t, n0, n1, "p-left")
		if err := b.Send(&signal.Message{Type: signal.TypeLeave}); err != nil {
			t.Fatal(err)
		}
		if pl := recvType(t, a, signal.TypePeerLeft); pl.ID != bID || pl.Reason != signal.ReasonLeft {
			t.Fatalf("peer-left %+v, want left", pl)
		}
		c := dial(t, n2.URL)
		cm := join(t, c, "p-left", nil)
		recvType(t, a, signal.TypePeerJoined)
		_ = c.Close()
		if pl := recvType(t, a, signal.TypePeerLeft); pl.ID != cm.ID || pl.Reason != signal.ReasonDisconnected {
			t.Fatalf("peer-left %+v, want disconnected", pl)
		}
	})

	t.Run("peer-left timeout after the resume window", func(t *testing.T) {
		a, b, _, bID := pair(t, n0, n1, "p-timeout")
		start := time.Now()
		b.Abort()
		pl := recvType(t, a, signal.TypePeerLeft)
		if pl.ID != bID || pl.Reason != signal.ReasonTimeout {
			t.Fatalf("peer-left %+v, want timeout", pl)
		}
		if el := time.Since(start); el < scfg.ResumeWindow-100*time.Millisecond {
			t.Fatalf("peer-left after %v, before the resume window %v", el, scfg.ResumeWindow)
		}
	})

	t.Run("leave then join a room hosted elsewhere", func(t *testing.T) {
		a := dial(t, n0.URL)
		join(t, a, "p-here", nil) // hosted on n0
		b := dial(t, n1.URL)
		bm := join(t, b, "p-there", nil) // hosted on n1
		if err := a.Send(&signal.Message{Type: signal.TypeLeave}); err != nil {
			t.Fatal(err)
		}
		am := join(t, a, "p-there", nil)
		if am.Type != signal.TypeJoined || am.Peers[0] != bm.ID {
			t.Fatalf("joined %+v", am)
		}
		recvType(t, b, signal.TypePeerJoined)
		sendData(t, a, bm.ID, `"moved"`)
		expectData(t, b, am.ID, `"moved"`)
		sendData(t, b, am.ID, `"hi"`)
		expectData(t, a, bm.ID, `"hi"`)
		// And back to a new room, which the gateway's node hosts.
		if err := a.Send(&signal.Message{Type: signal.TypeLeave}); err != nil {
			t.Fatal(err)
		}
		if m := join(t, a, "p-here-again", nil); m.Type != signal.TypeCreated {
			t.Fatalf("created %+v", m)
		}
	})

	t.Run("errors come back", func(t *testing.T) {
		_, b, _, _ := pair(t, n0, n1, "p-errors")
		for _, tc := range []struct{ frame, code string }{
			{`{"type":"offer","sdp":""}`, "invalid-sdp"},
			{`not json`, "bad-json"},
			{`{"type":"dance"}`, "unknown-type"},
			{`{"type":"message"}`, "missing-field"},
			{`{"type":"join","room":"p-errors"}`, "already-joined"},
			{`{"type":"candidate","candidate":7}`, "invalid-candidate"},
		} {
			if err := b.SendRaw([]byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			expectError(t, b, tc.code)
		}
		// Before any join, the gateway's own node answers.
		c := dial(t, n2.URL)
		if err := c.SendRaw([]byte(`{"type":"message","data":1}`)); err != nil {
			t.Fatal(err)
		}
		expectError(t, c, "not-joined")
		if _, err := c.Join(t.Context(), "   ", nil); errCode(err) != "invalid-room" {
			t.Fatalf("bad room: %v", err)
		}
	})

	t.Run("too large frame closes with 1009", func(t *testing.T) {
		a, b, _, bID := pair(t, n0, n1, "p-large")
		big := `{"type":"message","data":"` + strings.Repeat("x", 5000) + `"}`
		_ = b.SendRaw([]byte(big))
		if code := waitClosed(t, b); code != 1009 {
			t.Fatalf("close %d, want 1009", code)
		}
		pl := recvType(t, a, signal.TypePeerLeft)
		if pl.ID != bID || pl.Reason != signal.ReasonDisconnected {
			t.Fatalf("peer-left %+v, want disconnected at once (no seat held)", pl)
		}
	})

	t.Run("resume across nodes", func(t *testing.T) {
		px := signaltest.NewCutProxy(t, n1.Base)
		a := dial(t, n0.URL)
		am := join(t, a, "p-resume", nil)
		b := dial(t, strings.Replace(px.URL, "http", "ws", 1)+"/ws")
		bm := join(t, b, "p-resume", nil)
		recvType(t, a, signal.TypePeerJoined)
		sendData(t, a, bm.ID, `1`)
		expectData(t, b, am.ID, `1`)
		px.CutAll()
		waitClosed(t, b)
		// While b is away: sent to it, kept for it.
		sendData(t, a, bm.ID, `2`)
		sendData(t, a, bm.ID, `3`)
		got := b.Received()
		b2 := dial(t, n2.URL)
		jm := join(t, b2, "p-resume", &signal.JoinOptions{Resume: bm.Resume, Received: &got})
		if !jm.Resumed || jm.ID != bm.ID || jm.Gap || jm.Read == nil || *jm.Read != 0 || jm.Resume == "" || jm.Resume == bm.Resume {
			t.Fatalf("resumed joined %+v", jm)
		}
		expectData(t, b2, am.ID, `2`)
		expectData(t, b2, am.ID, `3`)
		sendData(t, b2, am.ID, `"back"`)
		// a sees no peer-left: its next frame is b's message.
		m, err := a.Recv(t.Context())
		if err != nil || m.Type != signal.TypeMessage || string(m.Data) != `"back"` {
			t.Fatalf("a got %+v %v, want only the message", m, err)
		}
		// The spent token: a second resume with it fails once acknowledged;
		// a wrong one at once.
		c := dial(t, n0.URL)
		if _, err := c.Join(t.Context(), "p-resume", &signal.JoinOptions{Resume: "bogus"}); errCode(err) != "resume-failed" {
			t.Fatalf("resume with a bogus token: %v", err)
		}
	})

	t.Run("admin kick from a third node", func(t *testing.T) {
		a, b, _, bID := pair(t, n0, n1, "p-kick")
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, n2.Base+"/api/rooms/p-kick/peers/"+bID, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("kick: HTTP %d", resp.StatusCode)
		}
		expectError(t, b, "kicked")
		if code := waitClosed(t, b); code != 1008 {
			t.Fatalf("kicked member closed with %d, want 1008", code)
		}
		if pl := recvType(t, a, signal.TypePeerLeft); pl.ID != bID || pl.Reason != signal.ReasonKicked {
			t.Fatalf("peer-left %+v, want kicked", pl)
		}
	})
}

// TestRateLimitAcrossNodes: the rate limit holds on a member whose room
// is hosted on another node, and its error comes back through the tunnel.
func TestRateLimitAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 2, signal.Config{Rate: 2, Burst: 3})
	a, b, aID, _ := pair(t, nodes[0], nodes[1], "rate")
	for i := range 6 {
		sendData(t, b, aID, fmt.Sprint(i))
	}
	m := expectError(t, b, "rate-limited")
	_ = m
	// What went through arrived, in order; what did not, did not.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for i := range 2 {
		if m, err := a.RecvType(ctx, signal.TypeMessage); err != nil || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("a got %+v %v, want %d", m, err, i)
		}
	}
}

// TestAuthAcrossNodes: join tokens checked for a room hosted elsewhere;
// unauthorized without one.
func TestAuthAcrossNodes(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	_, nodes := startCluster(t, 2, signal.Config{AuthSecret: secret})
	a, b := dial(t, nodes[0].URL), dial(t, nodes[1].URL)
	tok := func(room, sub string) string {
		t.Helper()
		s, err := signal.MintToken(secret, room, sub, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if m := join(t, a, "auth", &signal.JoinOptions{Token: tok("auth", "")}); m.Type != signal.TypeCreated {
		t.Fatalf("created %+v", m)
	}
	for _, bad := range []string{"", "not.a.jwt", tok("other", "")} {
		if _, err := b.Join(t.Context(), "auth", &signal.JoinOptions{Token: bad}); errCode(err) != "unauthorized" {
			t.Fatalf("token %q: %v, want unauthorized", bad, err)
		}
	}
	m := join(t, b, "auth", &signal.JoinOptions{Token: tok("*", "bob")})
	if m.Type != signal.TypeJoined || m.ID != "bob" {
		t.Fatalf("joined %+v", m)
	}
}
