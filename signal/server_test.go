package signal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

var peerIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{11,64}$`) // ≥ 64 bits in base64url

func TestCreateJoinPeerJoined(t *testing.T) {
	s := start(t, signal.Config{})
	a, b := dial(t, s), dial(t, s)

	created := a.join("demo")
	if created.Type != signal.TypeCreated || created.Room != "demo" || created.Capacity != 2 {
		t.Fatalf("first join: got %+v, want created in demo with capacity 2", created)
	}
	if !peerIDPattern.MatchString(created.ID) {
		t.Fatalf("server-assigned id %q is not URL-safe with ≥ 64 bits", created.ID)
	}
	joined := b.join("demo")
	if joined.Type != signal.TypeJoined || joined.Room != "demo" || joined.Capacity != 2 {
		t.Fatalf("second join: got %+v, want joined", joined)
	}
	if len(joined.Peers) != 1 || joined.Peers[0] != created.ID {
		t.Fatalf("joined.peers = %v, want [%s]", joined.Peers, created.ID)
	}
	if joined.ID == created.ID || !peerIDPattern.MatchString(joined.ID) {
		t.Fatalf("second id %q: want a fresh URL-safe id", joined.ID)
	}
	pj := a.expect(signal.TypePeerJoined)
	if pj.Room != "demo" || pj.ID != joined.ID {
		t.Fatalf("peer-joined: got %+v, want id %s", pj, joined.ID)
	}
}

// The wire shape of created and joined: iceServers is always an array,
// peers always present in joined.
func TestCreatedJoinedWireShape(t *testing.T) {
	ice := []signal.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}}
	for _, tt := range []struct {
		name string
		cfg  signal.Config
		want string
	}{
		{"no ice servers", signal.Config{}, `[]`},
		{"ice servers", signal.Config{ICEServers: ice}, `[{"urls":["stun:127.0.0.1:3478"]}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, tt.cfg)
			a, b := rawDial(t, s, nil), rawDial(t, s, nil)
			read := func(ws *websocket.Conn) map[string]json.RawMessage {
				t.Helper()
				_ = ws.SetReadDeadline(time.Now().Add(wait))
				var m map[string]json.RawMessage
				if err := ws.ReadJSON(&m); err != nil {
					t.Fatal(err)
				}
				return m
			}
			_ = a.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"r"}`))
			created := read(a)
			_ = b.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"r"}`))
			joined := read(b)
			for _, m := range []map[string]json.RawMessage{created, joined} {
				if got := string(m["iceServers"]); got != tt.want {
					t.Errorf("%s iceServers = %s, want %s", m["type"], got, tt.want)
				}
			}
			if got, want := string(joined["peers"]), `[`+string(created["id"])+`]`; got != want {
				t.Errorf("joined peers = %s, want %s", got, want)
			}
		})
	}
}

func TestFullAndCapacity(t *testing.T) {
	s := start(t, signal.Config{MaxCapacity: 4})
	a, b, _, _ := pair(t, s, "two")
	_ = a
	_ = b
	c := dial(t, s)
	c.send(`{"type":"join","room":"two","ref":"j1"}`)
	full := c.expect(signal.TypeFull)
	if full.Room != "two" || full.Capacity != 2 || full.Ref != "j1" {
		t.Fatalf("full: got %+v", full)
	}
	// Still connected, in no room: it may join elsewhere.
	c.send(`{"type":"leave","ref":"l"}`)
	c.expectError(signal.CodeNotJoined, "l")
	if m := c.join("elsewhere"); m.Type != signal.TypeCreated {
		t.Fatalf("join after full: %+v", m)
	}

	// A room created with capacity 3 keeps it; later joiners cannot change it.
	m := make([]*tc, 4)
	for i := range m {
		m[i] = dial(t, s)
	}
	m[0].send(`{"type":"join","room":"three","capacity":3}`)
	if got := m[0].expect(signal.TypeCreated); got.Capacity != 3 {
		t.Fatalf("created capacity %d, want 3", got.Capacity)
	}
	m[1].send(`{"type":"join","room":"three","capacity":4}`)
	if got := m[1].expect(signal.TypeJoined); got.Capacity != 3 {
		t.Fatalf("joined capacity %d, want the room's 3", got.Capacity)
	}
	m[2].join("three")
	m[3].send(`{"type":"join","room":"three"}`)
	if got := m[3].expect(signal.TypeFull); got.Capacity != 3 {
		t.Fatalf("full capacity %d, want 3", got.Capacity)
	}
}

func TestCapacityValidation(t *testing.T) {
	s := start(t, signal.Config{MaxCapacity: 5})
	c := dial(t, s)
	for _, capacity := range []string{`1`, `0`, `-3`, `6`, `100`, `2.5`, `"3"`, `true`, `[]`} {
		c.sendf(`{"type":"join","room":"cap","capacity":%s,"ref":"c"}`, capacity)
		c.expectError(signal.CodeInvalidCapacity, "c")
	}
	for _, capacity := range []int{2, 5} {
		c.sendf(`{"type":"join","room":"cap%d","capacity":%d}`, capacity, capacity)
		if got := c.expect(signal.TypeCreated); got.Capacity != capacity {
			t.Fatalf("capacity %d: created with %d", capacity, got.Capacity)
		}
		c.send(`{"type":"leave"}`)
	}
}

func TestRequestedIDs(t *testing.T) {
	s := start(t, signal.Config{MaxCapacity: 4})
	a, b, c := dial(t, s), dial(t, s), dial(t, s)
	a.send(`{"type":"join","room":"ids","id":"alice","capacity":3}`)
	if got := a.expect(signal.TypeCreated); got.ID != "alice" {
		t.Fatalf("id %q, want alice", got.ID)
	}
	b.send(`{"type":"join","room":"ids","id":"alice","ref":"dup"}`)
	b.expectError(signal.CodeIDTaken, "dup")
	for _, id := range []string{`""`, `"has space"`, `"ünï"`, `"a/b"`, `"` + strings.Repeat("x", 65) + `"`, `42`} {
		b.sendf(`{"type":"join","room":"ids","id":%s,"ref":"bad"}`, id)
		b.expectError(signal.CodeInvalidID, "bad")
	}
	long := strings.Repeat("Z", 64)
	b.sendf(`{"type":"join","room":"ids","id":%q}`, long)
	if got := b.expect(signal.TypeJoined); got.ID != long || got.Peers[0] != "alice" {
		t.Fatalf("joined %+v", got)
	}
	// The same id is free in another room.
	c.send(`{"type":"join","room":"other","id":"alice"}`)
	c.expect(signal.TypeCreated)
}

func TestRoomNames(t *testing.T) {
	s := start(t, signal.Config{})
	c := dial(t, s)
	valid := []string{"a", "demo room", "комната", "部屋", "🙂", strings.Repeat("r", 64), " padded "}
	for _, room := range valid {
		c.sendf(`{"type":"join","room":%s}`, mustQuote(room))
		if got := c.expect(signal.TypeCreated); got.Room != room {
			t.Fatalf("room %q: created %q", room, got.Room)
		}
		c.send(`{"type":"leave"}`)
	}
	invalid := map[string]string{
		"empty":            `""`,
		"65 bytes":         `"` + strings.Repeat("r", 65) + `"`,
		"control char":     `"a\u0007b"`,
		"newline":          `"a\nb"`,
		"DEL":              `"a\u007fb"`,
		"only spaces":      `"   "`,
		"only white space": `"\t \u00a0"`,
		"lone surrogate":   `"\ud800"`,
		"not a string":     `7`,
	}
	for name, room := range invalid {
		c.sendf(`{"type":"join","room":%s,"ref":%q}`, room, name)
		c.expectError(signal.CodeInvalidRoom, name)
	}
	// Invalid UTF-8 bytes in the frame itself.
	c.send("{\"type\":\"join\",\"room\":\"a\xffb\",\"ref\":\"utf8\"}")
	c.expectError(signal.CodeInvalidRoom, "utf8")
}

func mustQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestErrorCodes sends each kind of bad message and checks the error code
// and the echoed ref; the connection stays usable after every one.
func TestErrorCodes(t *testing.T) {
	s := start(t, signal.Config{})
	sdp := sdpJSON()
	tests := []struct {
		name   string
		joined bool // send from a member of a two-member room
		frame  string
		code   string
		ref    string
	}{
		{"not json", false, `{"type":`, signal.CodeBadJSON, ""},
		{"not an object", false, `["join"]`, signal.CodeBadJSON, ""},
		{"null", false, `null`, signal.CodeBadJSON, ""},
		{"type not a string", false, `{"type":1,"ref":"r"}`, signal.CodeBadJSON, ""},
		{"ref not a string", false, `{"type":"leave","ref":5}`, signal.CodeBadJSON, ""},
		{"ref too long", false, `{"type":"leave","ref":"` + strings.Repeat("r", 65) + `"}`, signal.CodeBadJSON, ""},
		{"unknown type", false, `{"type":"create or join","ref":"r"}`, signal.CodeUnknownType, "r"},
		{"server type from client", false, `{"type":"joined","ref":"r"}`, signal.CodeUnknownType, "r"},
		{"no type", false, `{"room":"x","ref":"r"}`, signal.CodeMissingField, "r"},
		{"join without room", false, `{"type":"join","ref":"r"}`, signal.CodeMissingField, "r"},
		{"message without data", true, `{"type":"message","ref":"r"}`, signal.CodeMissingField, "r"},
		{"invalid room", false, `{"type":"join","room":"","ref":"r"}`, signal.CodeInvalidRoom, "r"},
		{"invalid id", false, `{"type":"join","room":"x","id":"no spaces","ref":"r"}`, signal.CodeInvalidID, "r"},
		{"invalid capacity", false, `{"type":"join","room":"x","capacity":99,"ref":"r"}`, signal.CodeInvalidCapacity, "r"},
		{"already joined", true, `{"type":"join","room":"again","ref":"r"}`, signal.CodeAlreadyJoined, "r"},
		{"leave when not joined", false, `{"type":"leave","ref":"r"}`, signal.CodeNotJoined, "r"},
		{"message when not joined", false, `{"type":"message","data":1,"ref":"r"}`, signal.CodeNotJoined, "r"},
		{"offer when not joined", false, `{"type":"offer","sdp":` + sdp + `,"ref":"r"}`, signal.CodeNotJoined, "r"},
		{"unknown peer", true, `{"type":"message","to":"nobody","data":1,"ref":"r"}`, signal.CodeUnknownPeer, "r"},
		{"to not a string", true, `{"type":"message","to":3,"data":1,"ref":"r"}`, signal.CodeUnknownPeer, "r"},
		{"offer without sdp", true, `{"type":"offer","ref":"r"}`, signal.CodeInvalidSDP, "r"},
		{"empty sdp", true, `{"type":"answer","sdp":"","ref":"r"}`, signal.CodeInvalidSDP, "r"},
		{"garbage sdp", true, `{"type":"offer","sdp":"hello","ref":"r"}`, signal.CodeInvalidSDP, "r"},
		{"sdp not a string", true, `{"type":"offer","sdp":{},"ref":"r"}`, signal.CodeInvalidSDP, "r"},
		{"candidate missing", true, `{"type":"candidate","ref":"r"}`, signal.CodeInvalidCandidate, "r"},
		{"candidate a string", true, `{"type":"candidate","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","ref":"r"}`, signal.CodeInvalidCandidate, "r"},
		{"candidate without candidate", true, `{"type":"candidate","candidate":{"sdpMid":"0"},"ref":"r"}`, signal.CodeInvalidCandidate, "r"},
		{"candidate.candidate a number", true, `{"type":"candidate","candidate":{"candidate":1},"ref":"r"}`, signal.CodeInvalidCandidate, "r"},
		{"sdpMLineIndex a string", true, `{"type":"candidate","candidate":{"candidate":"","sdpMLineIndex":"0"},"ref":"r"}`, signal.CodeInvalidCandidate, "r"},
	}
	lone := dial(t, s)
	a, b, _, _ := pair(t, s, "errors")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := lone
			if tt.joined {
				c = a
			}
			c.t = t
			c.send(tt.frame)
			c.expectError(tt.code, tt.ref)
			c.sync() // still connected and answering
		})
	}
	// Nothing invalid reached the other member: the next thing b gets is
	// a valid message.
	a.t = t
	a.send(`{"type":"message","data":"after"}`)
	if m := b.expect(signal.TypeMessage); string(m.Data) != `"after"` {
		t.Fatalf("b got %s, want the valid message only", m.Data)
	}
}

func TestBinaryFrameIsBadJSON(t *testing.T) {
	s := start(t, signal.Config{})
	ws := rawDial(t, s, nil)
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"leave","ref":"b"}`)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	var m signal.Message
	if err := ws.ReadJSON(&m); err != nil {
		t.Fatal(err)
	}
	if m.Type != signal.TypeError || m.Code != signal.CodeBadJSON {
		t.Fatalf("got %+v, want bad-json", m)
	}
}

func TestRelay(t *testing.T) {
	s := start(t, signal.Config{MaxCapacity: 3})
	a, b, c := dial(t, s), dial(t, s), dial(t, s)
	a.send(`{"type":"join","room":"relay","capacity":3}`)
	aid := a.expect(signal.TypeCreated).ID
	bid := b.join("relay").ID
	a.expect(signal.TypePeerJoined)
	cid := c.join("relay").ID
	a.expect(signal.TypePeerJoined)
	b.expect(signal.TypePeerJoined)

	sdp := sdpJSON()
	// Addressed: only the target gets it, with from set and to removed.
	a.sendf(`{"type":"offer","to":%q,"sdp":%s,"from":"spoofed"}`, bid, sdp)
	offer := b.expect(signal.TypeOffer)
	if offer.From != aid || offer.SDP != minimalSDP || offer.To != "" {
		t.Fatalf("offer: got %+v", offer)
	}
	b.sendf(`{"type":"answer","to":%q,"sdp":%s}`, aid, sdp)
	if m := a.expect(signal.TypeAnswer); m.From != bid || m.SDP != minimalSDP {
		t.Fatalf("answer: got %+v", m)
	}
	cand := `{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}`
	a.sendf(`{"type":"candidate","to":%q,"candidate":%s}`, cid, cand)
	m := c.expect(signal.TypeCandidate)
	if m.From != aid || string(m.Candidate) != cand {
		t.Fatalf("candidate: got %+v %s", m, m.Candidate)
	}
	ic, err := m.ICECandidate()
	if err != nil || ic == nil || *ic.SDPMid != "0" || *ic.SDPMLineIndex != 0 {
		t.Fatalf("ICECandidate() = %+v, %v", ic, err)
	}
	a.sendf(`{"type":"candidate","to":%q,"candidate":null}`, cid)
	if m := c.expect(signal.TypeCandidate); string(m.Candidate) != "null" {
		t.Fatalf("end of candidates: got %s", m.Candidate)
	}
	// Broadcast: every other member, never the sender.
	c.send(`{"type":"message","data":{"n":[1,2,"three"]},"from":"x"}`)
	for _, r := range []*tc{a, b} {
		m := r.expect(signal.TypeMessage)
		if m.From != cid || string(m.Data) != `{"n":[1,2,"three"]}` {
			t.Fatalf("broadcast: got %+v %s", m, m.Data)
		}
	}
	c.sync() // c got nothing of its own
	// Any JSON value is data.
	for _, data := range []string{`null`, `0`, `"s"`, `[]`, `true`} {
		a.sendf(`{"type":"message","to":%q,"data":%s}`, bid, data)
		if m := b.expect(signal.TypeMessage); string(m.Data) != data {
			t.Fatalf("data %s arrived as %s", data, m.Data)
		}
	}
	// Sending to oneself is not sending to another member.
	a.sendf(`{"type":"message","to":%q,"data":1,"ref":"self"}`, aid)
	a.expectError(signal.CodeUnknownPeer, "self")
}

func TestRelayOrder(t *testing.T) {
	s := start(t, signal.Config{Rate: rate.Inf, SendQueue: 4096})
	a, b, _, _ := pair(t, s, "order")
	const n = 2000
	go func() {
		for i := range n {
			if err := a.SendRaw(fmt.Appendf(nil, `{"type":"message","data":%d}`, i)); err != nil {
				return
			}
		}
	}()
	for i := range n {
		m := b.expect(signal.TypeMessage)
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d arrived as %s", i, m.Data)
		}
	}
}

func TestRoomIsolation(t *testing.T) {
	s := start(t, signal.Config{})
	a1, b1, _, _ := pair(t, s, "one")
	a2, b2, _, b2id := pair(t, s, "two")
	// Broadcast and addressed messages in room one never reach room two,
	// even when addressed to room two's member.
	a1.send(`{"type":"message","data":"one"}`)
	a1.sendf(`{"type":"message","to":%q,"data":"leak","ref":"x"}`, b2id)
	a1.expectError(signal.CodeUnknownPeer, "x")
	if m := b1.expect(signal.TypeMessage); string(m.Data) != `"one"` {
		t.Fatalf("b1 got %s", m.Data)
	}
	a2.send(`{"type":"message","data":"two"}`)
	if m := b2.expect(signal.TypeMessage); string(m.Data) != `"two"` {
		t.Fatalf("b2 got %s, want only its own room's message", m.Data)
	}
	b2.sync()
	a2.sync()
	// Same member ids in different rooms stay apart too.
	x, y := dial(t, s), dial(t, s)
	x.send(`{"type":"join","room":"three","id":"same"}`)
	x.expect(signal.TypeCreated)
	y.send(`{"type":"join","room":"four","id":"same"}`)
	y.expect(signal.TypeCreated)
	x.send(`{"type":"message","data":1,"to":"same","ref":"self"}`)
	x.expectError(signal.CodeUnknownPeer, "self")
	y.sync()
}

func TestLeaveRejoinAndRoomDeletion(t *testing.T) {
	s := start(t, signal.Config{})
	a, b, aid, bid := pair(t, s, "lr")
	if _, _, rooms := health(t, s); rooms != 1 {
		t.Fatalf("rooms = %d, want 1", rooms)
	}
	a.send(`{"type":"leave"}`)
	if m := b.expect(signal.TypePeerLeft); m.ID != aid || m.Reason != signal.ReasonLeft || m.Room != "lr" {
		t.Fatalf("peer-left: %+v", m)
	}
	// a is in no room now; relaying fails, re-joining works.
	a.send(`{"type":"message","data":1,"ref":"r"}`)
	a.expectError(signal.CodeNotJoined, "r")
	j := a.join("lr")
	if j.Type != signal.TypeJoined || len(j.Peers) != 1 || j.Peers[0] != bid {
		t.Fatalf("re-join: %+v", j)
	}
	b.expect(signal.TypePeerJoined)
	a.send(`{"type":"leave"}`)
	b.expect(signal.TypePeerLeft)
	b.send(`{"type":"leave"}`)
	b.sync()
	if _, _, rooms := health(t, s); rooms != 0 {
		t.Fatalf("rooms = %d after everyone left, want 0", rooms)
	}
	// The name is free again: the next joiner creates it.
	if m := b.join("lr"); m.Type != signal.TypeCreated {
		t.Fatalf("after deletion: %+v", m)
	}
}

func TestDisconnectPeerLeft(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    signal.Config
		close  func(*tc)
		reason string
	}{
		// A close frame is a deliberate goodbye: the seat goes at once.
		{"close frame", signal.Config{}, func(c *tc) { _ = c.Close() }, signal.ReasonDisconnected},
		// A drop without a close frame, with resume off.
		{"network drop, no resume", signal.Config{ResumeWindow: -1}, func(c *tc) { c.Abort() }, signal.ReasonDisconnected},
		// With resume, a drop holds the seat; when the window ends, peer-left timeout.
		{"network drop, window ends", signal.Config{ResumeWindow: 50 * time.Millisecond}, func(c *tc) { c.Abort() }, signal.ReasonTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, tt.cfg)
			a, b, aid, _ := pair(t, s, "dc")
			tt.close(a)
			if m := b.expect(signal.TypePeerLeft); m.ID != aid || m.Reason != tt.reason {
				t.Fatalf("peer-left: %+v, want reason %s", m, tt.reason)
			}
		})
	}
}

func TestSlowConsumerDropped(t *testing.T) {
	s := start(t, signal.Config{Rate: rate.Inf, SendQueue: 16})
	slow := rawDial(t, s, nil) // never reads after joining
	if err := slow.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"slow","capacity":3}`)); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(wait))
	if _, created, err := slow.ReadMessage(); err != nil || !strings.Contains(string(created), `"created"`) {
		t.Fatalf("slow client's join: %s %v", created, err)
	}
	w := dial(t, s)
	m := w.join("slow")
	if m.Type != signal.TypeJoined || len(m.Peers) != 1 {
		t.Fatalf("join: %+v, want joined with the slow member", m)
	}
	slowID := m.Peers[0]
	big := `{"type":"message","data":"` + strings.Repeat("x", 60<<10) + `"}`
	// Send until the server gives up on the slow member: its socket buffers
	// fill first, then its queue of 16, then it is dropped.
	deadline := time.Now().Add(wait)
	for {
		if time.Now().After(deadline) {
			t.Fatal("slow consumer was never dropped")
		}
		w.send(big)
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		got, err := w.Recv(ctx)
		cancel()
		if err != nil {
			continue // nothing yet
		}
		if got.Type != signal.TypePeerLeft || got.ID != slowID || got.Reason != signal.ReasonSlow {
			t.Fatalf("got %+v, want peer-left slow for %s", got, slowID)
		}
		break
	}
	// The room keeps working for the others.
	a := dial(t, s)
	if j := a.join("slow"); len(j.Peers) != 1 {
		t.Fatalf("joined %+v, want only the fast member left", j)
	}
	w.expect(signal.TypePeerJoined)
	a.send(`{"type":"message","data":"still here"}`)
	if m := w.expect(signal.TypeMessage); string(m.Data) != `"still here"` {
		t.Fatalf("got %s", m.Data)
	}
	// The server closed the slow connection.
	_ = slow.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := slow.ReadMessage()
		if err == nil {
			continue
		}
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			t.Fatal("slow connection still open")
		}
		break
	}
}

func TestOversizedFrameCloses1009(t *testing.T) {
	s := start(t, signal.Config{MaxMessageBytes: 1024})
	a, b, aid, _ := pair(t, s, "big")
	a.sendf(`{"type":"message","data":%q}`, strings.Repeat("y", 900)) // fits
	b.expect(signal.TypeMessage)
	a.sendf(`{"type":"message","data":%q}`, strings.Repeat("y", 2000))
	if ce := a.closed(); ce == nil || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("close = %v, want 1009", ce)
	}
	if m := b.expect(signal.TypePeerLeft); m.ID != aid || m.Reason != signal.ReasonDisconnected {
		t.Fatalf("peer-left: %+v", m)
	}
}

func TestRateLimit(t *testing.T) {
	// One token per 1000 s: after the burst, every message is over the rate.
	s := start(t, signal.Config{Rate: 0.001, Burst: 5})
	a, b, _, _ := pair(t, s, "rate") // the join used one token
	for i := range 10 {
		a.sendf(`{"type":"message","data":%d,"ref":"m%d"}`, i, i)
	}
	for i := range 4 {
		if m := b.expect(signal.TypeMessage); string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("b got %s, want %d", m.Data, i)
		}
	}
	// One error for the window; the window's other refusals are silent.
	a.expectError(signal.CodeRateLimited, "m4")
	// The limit is per connection: b still has its burst. Its message is
	// the next thing a gets: no error came for m5…m9.
	b.send(`{"type":"message","data":"b"}`)
	a.expect(signal.TypeMessage)
}

// TestRateAbuseClosed: a flood far over the rate is closed (1008) after
// 2×burst refusals within one window, having had one rate-limited error,
// however the refusals interleave with refills.
func TestRateAbuseClosed(t *testing.T) {
	s := start(t, signal.Config{Rate: 0.001, Burst: 5})
	a, b, _, _ := pair(t, s, "flood")
	for i := range 200 {
		if err := a.SendRaw(fmt.Appendf(nil, `{"type":"message","data":%d,"ref":"m%d"}`, i, i)); err != nil {
			break // closed already
		}
	}
	errs := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		m, err := a.Recv(ctx)
		cancel()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("flooding connection ended with %v, want close 1008", err)
			}
			break
		}
		if m.Type == signal.TypeError {
			errs++
		}
	}
	if errs != 1 {
		t.Fatalf("%d rate-limited errors, want 1 per window", errs)
	}
	for range 4 { // the burst's worth went through
		b.expect(signal.TypeMessage)
	}
	if m := b.expect(signal.TypePeerLeft); m.Reason != signal.ReasonDisconnected {
		t.Fatalf("peer-left %+v", m)
	}
}

func TestRateLimitOff(t *testing.T) {
	s := start(t, signal.Config{Rate: rate.Inf, SendQueue: 1024})
	a, b, _, _ := pair(t, s, "norate")
	for i := range 500 {
		a.sendf(`{"type":"message","data":%d}`, i)
	}
	for range 500 {
		b.expect(signal.TypeMessage)
	}
}

func TestKeepaliveTimeout(t *testing.T) {
	s := start(t, signal.Config{PingInterval: 50 * time.Millisecond, PongTimeout: 500 * time.Millisecond, ResumeWindow: -1})
	a := dial(t, s) // answers pings: its client reads all the time
	a.join("ka")
	mute := rawDial(t, s, nil) // never reads, so never answers a ping
	if err := mute.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"ka"}`)); err != nil {
		t.Fatal(err)
	}
	a.expect(signal.TypePeerJoined)
	if m := a.expect(signal.TypePeerLeft); m.Reason != signal.ReasonTimeout {
		t.Fatalf("peer-left: %+v, want reason timeout", m)
	}
	// a, which answers pings, is still connected well past the timeout.
	a.sync()
}

func TestMaxConns(t *testing.T) {
	s := start(t, signal.Config{MaxConns: 2})
	a, b := dial(t, s), dial(t, s)
	if got := dialStatus(t, s, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("third connection: HTTP %d, want 503", got)
	}
	_ = a.Close()
	eventually(t, "a slot to free up", func() bool { _, n, _ := health(t, s); return n == 1 })
	c := dial(t, s)
	_ = b
	c.sync()
}

func TestOrigins(t *testing.T) {
	hdr := func(origin string) http.Header { return http.Header{"Origin": {origin}} }
	t.Run("default: own host only", func(t *testing.T) {
		s := start(t, signal.Config{})
		host := strings.TrimPrefix(s.HTTP.URL, "http://")
		for origin, want := range map[string]int{
			"":                           http.StatusSwitchingProtocols, // not a browser
			"http://" + host:             http.StatusSwitchingProtocols,
			"http://evil.example":        http.StatusForbidden,
			"http://" + host + ".evil.x": http.StatusForbidden,
		} {
			h := http.Header{}
			if origin != "" {
				h = hdr(origin)
			}
			if got := dialStatus(t, s, h); got != want {
				t.Errorf("Origin %q: HTTP %d, want %d", origin, got, want)
			}
		}
	})
	t.Run("allowed list", func(t *testing.T) {
		s := start(t, signal.Config{AllowedOrigins: []string{"https://app.example.org", "calls.example.org"}})
		for origin, want := range map[string]int{
			"https://app.example.org":   http.StatusSwitchingProtocols,
			"http://app.example.org":    http.StatusForbidden,
			"https://calls.example.org": http.StatusSwitchingProtocols,
			"http://calls.example.org":  http.StatusSwitchingProtocols,
			"https://other.example.org": http.StatusForbidden,
			// The list adds to the server's own origin.
			"http://" + strings.TrimPrefix(s.HTTP.URL, "http://"): http.StatusSwitchingProtocols,
		} {
			if got := dialStatus(t, s, hdr(origin)); got != want {
				t.Errorf("Origin %q: HTTP %d, want %d", origin, got, want)
			}
		}
	})
}

func TestHealthz(t *testing.T) {
	s := start(t, signal.Config{})
	pair(t, s, "h1")
	dial(t, s).join("h2")
	status, conns, rooms := health(t, s)
	if status != "ok" || conns != 3 || rooms != 2 {
		t.Fatalf("healthz = %s %d %d, want ok 3 2", status, conns, rooms)
	}
}

func TestClientLog(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			s := start(t, signal.Config{ClientLog: on})
			c := dial(t, s)
			c.join("log")
			if on {
				if m := c.expect(signal.TypeLog); !strings.Contains(m.Message, "log") {
					t.Fatalf("log message %q does not name the room", m.Message)
				}
			}
			c.sync()
		})
	}
}

func TestShutdownClosesEveryone1001(t *testing.T) {
	s := start(t, signal.Config{})
	a, b, _, _ := pair(t, s, "bye")
	lone := dial(t, s)
	lone.sync()
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	// Both members hear that the other left because of the shutdown.
	for _, c := range []*tc{a, b} {
		if m := c.expect(signal.TypePeerLeft); m.Reason != signal.ReasonShutdown {
			t.Fatalf("peer-left %+v, want reason shutdown", m)
		}
	}
	for _, c := range []*tc{a, b, lone} {
		if ce := c.closed(); ce == nil || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("close = %v, want 1001 going away", ce)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := dialStatus(t, s, nil); got != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: HTTP %d, want 503", got)
	}
}

// A client that ignores the close frame is closed when the shutdown
// context ends.
func TestShutdownDeadline(t *testing.T) {
	s := start(t, signal.Config{})
	ws := rawDial(t, s, nil) // never reads, so never answers the close
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"x"}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the join", func() bool { _, _, r := health(t, s); return r == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
}
