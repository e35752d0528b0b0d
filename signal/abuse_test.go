package signal_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// Tests of a server under a hostile or broken client (issue 9): every
// buffer bounded in bytes, every wait bounded in time, limits a client
// cannot walk around.

// mute is a client that reads everything but never answers a ping, and
// sends an unsolicited pong now and then, as an attacker that wants the
// server to keep what it wrote for a resume.
type mute struct {
	ws       *websocket.Conn
	received atomic.Int64 // messages read
	closed   chan struct{}
	err      error // why reading ended; set before closed is closed
}

func dialMute(t *testing.T, s *signaltest.Server, room string) *mute {
	t.Helper()
	ws := rawDial(t, s, nil)
	ws.SetPingHandler(func(string) error { return nil }) // no pong
	if err := ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"join","room":%q}`, room)); err != nil {
		t.Fatal(err)
	}
	m := &mute{ws: ws, closed: make(chan struct{})}
	go func() {
		defer close(m.closed)
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				m.err = err
				return
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				m.err = err
				return
			}
			// Now and then an unsolicited pong, which must neither keep the
			// connection alive nor acknowledge anything.
			if m.received.Add(1)%5 == 0 {
				_ = ws.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
			}
		}
	}()
	t.Cleanup(func() { _ = ws.Close(); <-m.closed })
	return m
}

// waitReceived waits until m has read n messages.
func (m *mute) waitReceived(t *testing.T, n int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d messages read", n), func() bool { return m.received.Load() >= n })
}

// closeCode waits for m's connection to end and returns the close code the
// server sent (0: none).
func (m *mute) closeCode(t *testing.T) int {
	t.Helper()
	select {
	case <-m.closed:
	case <-time.After(wait):
		t.Fatal("connection still open")
	}
	var ce *websocket.CloseError
	if errors.As(m.err, &ce) {
		return ce.Code
	}
	return 0
}

// liveHeap returns the bytes of live heap after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// payload returns a message frame whose data is a string of n bytes.
func payload(n int) string {
	return `{"type":"message","data":"` + strings.Repeat("x", n) + `"}`
}

// TestUnacknowledgedFramesBoundedInBytes is issue 9's memory attack: 100
// receivers that read everything, never answer pings and send unsolicited
// pongs, each sent 12 frames of 56 KiB. The server keeps at most
// ConnBufferBytes for each: the live heap grows by less than 100 × that
// (before the fix it kept every frame, 256 of any size, for each).
func TestUnacknowledgedFramesBoundedInBytes(t *testing.T) {
	const (
		conns  = 100
		frames = 12
		size   = 7 * 8192 // relayed frames of whole pages: the heap holds what is counted
		bound  = 256 << 10
	)
	s := start(t, signal.Config{ConnBufferBytes: bound, Rate: rate.Inf, PingInterval: 100 * time.Millisecond})
	mutes := make([]*mute, conns)
	senders := make([]*tc, conns)
	var frame string
	for i := range conns {
		room := fmt.Sprint("noack-", i)
		mutes[i] = dialMute(t, s, room)
		mutes[i].waitReceived(t, 1) // created
		senders[i] = dial(t, s)
		id := senders[i].join(room).ID
		mutes[i].waitReceived(t, 2) // peer-joined
		// The relayed frame is {"type":"message","from":"ID","data":"x…"}.
		frame = payload(size - len(`{"type":"message","from":"`+id+`","data":""}`))
	}
	before := liveHeap()
	// Each receiver reads as fast as it can; the frames go in rounds
	// smaller than the bound, so that none is dropped as slow for what is
	// queued before it is written.
	const round = 3
	for sent := 0; sent < frames; sent += round {
		for _, c := range senders {
			for range round {
				c.send(frame)
			}
		}
		for _, m := range mutes {
			m.waitReceived(t, int64(2+sent+round))
		}
	}
	// Several pings have gone out since, none answered.
	if b := s.Stats().Buffered; b > conns*bound {
		t.Errorf("server buffers %d bytes, over %d × %d", b, conns, bound)
	}
	grown := int64(liveHeap()) - int64(before)
	t.Logf("live heap grew by %.1f MiB for %d receivers (bound %d KiB each; %.1f MiB sent to each)",
		float64(grown)/(1<<20), conns, bound>>10, float64(frames*size)/(1<<20))
	if grown > conns*bound {
		t.Fatalf("live heap grew by %d bytes, over %d × %d", grown, conns, bound)
	}
	// Unsolicited pongs do not keep a connection alive: it times out.
	s2 := start(t, signal.Config{PingInterval: 50 * time.Millisecond, PongTimeout: 300 * time.Millisecond, ResumeWindow: -1})
	m := dialMute(t, s2, "alive")
	m.waitReceived(t, 1)
	done := make(chan struct{})
	defer close(done)
	go func() { // a pong every 50 ms, echoing no ping the server sent
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
				payload := []string{"unsolicited", "999999", "7"}[i%3] // the server's pings carry "1"
				if m.ws.WriteControl(websocket.PongMessage, []byte(payload), time.Now().Add(time.Second)) != nil {
					return
				}
			}
		}
	}()
	m.closeCode(t)
}

// TestNoResumeCopiesWhenResumeIsOff: with resume off, nothing written is
// kept: a receiver that never acknowledges costs nothing once its frames
// are written.
func TestNoResumeCopiesWhenResumeIsOff(t *testing.T) {
	s := start(t, signal.Config{ResumeWindow: -1, Rate: rate.Inf})
	m := dialMute(t, s, "off")
	m.waitReceived(t, 1)
	a := dial(t, s)
	a.join("off")
	for range 20 {
		a.send(payload(8 << 10))
	}
	m.waitReceived(t, 22)
	eventually(t, "nothing buffered", func() bool { return s.Stats().Buffered == 0 })
}

// TestForgedPongAcknowledgesNothing: a pong whose payload is not that of
// a ping the server sent does not count as reading the frames: a resume
// still gets them.
func TestForgedPongAcknowledgesNothing(t *testing.T) {
	s := start(t, signal.Config{PingInterval: time.Hour, PongTimeout: 2 * time.Hour})
	ws := rawDial(t, s, nil)
	ws.SetPingHandler(func(string) error { return nil })
	created := rawJoin(t, ws, "forge")
	b := dial(t, s)
	b.join("forge") // frame 2 for ws: peer-joined
	for i := range 3 {
		b.sendf(`{"type":"message","data":%d}`, i) // frames 3, 4, 5
	}
	b.sync() // relayed before the probe below
	// "Acknowledge" everything, then prove the server has read that pong:
	// the probe's error (frame 6) comes after it.
	if err := ws.WriteControl(websocket.PongMessage, []byte("18446744073709551615"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"probe"}`)); err != nil {
		t.Fatal(err)
	}
	for range 5 { // peer-joined, 3 messages, the probe's error
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	_ = ws.NetConn().(*net.TCPConn).SetLinger(0)
	_ = ws.NetConn().Close()
	eventually(t, "the seat held", func() bool { return s.Stats().Connections == 1 })
	r := dial(t, s)
	r.sendf(`{"type":"join","room":"forge","resume":%q,"received":2}`, created.Resume)
	if j := r.expect(signal.TypeJoined); !j.Resumed {
		t.Fatalf("resume: %+v", j)
	}

	for i := range 3 {
		if m := r.expect(signal.TypeMessage); string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("replayed message %d: %s", i, m.Data)
		}
	}
	r.expectError(signal.CodeUnknownType, "")
}

// TestBufferBudgetDropsLargestFirst: past the server's budget for all
// buffered frames, the connection holding the most is dropped as slow,
// and the others keep going.
func TestBufferBudgetDropsLargestFirst(t *testing.T) {
	const budget = 2 << 20
	s := start(t, signal.Config{BufferBudget: budget, Rate: rate.Inf, SendQueue: 1024, ResumeQueue: 1024})
	type victim struct {
		m    *mute
		from *tc
	}
	var vs []victim
	for i, kib := range []int{900, 300, 300, 300, 600} {
		room := fmt.Sprint("budget-", i)
		m := dialMute(t, s, room)
		m.waitReceived(t, 1)
		from := dial(t, s)
		from.join(room)
		m.waitReceived(t, 2)
		for range kib / 30 {
			from.send(payload(30 << 10))
		}
		if i < 4 { // under budget so far: all of it is read and kept
			m.waitReceived(t, int64(2+kib/30))
		}
		vs = append(vs, victim{m, from})
	}
	// The biggest holder goes; its room mate hears why.
	if code := vs[0].m.closeCode(t); code == websocket.CloseNormalClosure {
		t.Fatalf("largest holder closed normally")
	}
	if p := vs[0].from.expect(signal.TypePeerLeft); p.Reason != signal.ReasonSlow {
		t.Fatalf("peer-left %+v, want slow", p)
	}
	for i, v := range vs[1:] {
		v.from.sync() // no peer-left came before the probe
		select {
		case <-v.m.closed:
			t.Fatalf("holder %d was dropped too: %v", i+1, v.m.err)
		default:
		}
	}
	if b := s.Stats().Buffered; b > budget {
		t.Fatalf("buffered %d after shedding, budget %d", b, budget)
	}
	if v := metric(t, s, "rendezvous_buffer_shed_total"); v < 1 {
		t.Fatalf("rendezvous_buffer_shed_total %v", v)
	}
}

// TestResumedBacklogIsNotSlow: a resume's replayed backlog may be longer
// than the send queue, and larger than the socket takes at once; it does
// not count against the queue's limits, so one more frame does not drop
// the resumed connection as slow.
func TestResumedBacklogIsNotSlow(t *testing.T) {
	const (
		queue = 8
		held  = 3 * queue
		size  = 400 << 10
	)
	s := start(t, signal.Config{SendQueue: queue, Rate: rate.Inf, MaxMessageBytes: 1 << 20,
		ConnBufferBytes: 32 << 20, ResumeQueueBytes: 32 << 20})
	a := dial(t, s)
	created := a.join("backlog")
	b := dial(t, s)
	b.join("backlog")
	a.expect(signal.TypePeerJoined)
	a.Abort() // a drops without a close frame: its seat is held
	eventually(t, "the seat held", func() bool { return s.Stats().Connections == 1 })
	body := strings.Repeat("z", size)
	for i := range held {
		b.sendf(`{"type":"message","data":"%d %s"}`, i, body)
	}
	b.sync()
	// The resuming client's socket takes little, and it reads nothing until
	// one more frame has been queued behind the backlog.
	ws, _, err := smallWindowDialer().Dial(s.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadLimit(2 << 20)
	if err := ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"join","room":"backlog","resume":%q}`, created.Resume)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the resume", func() bool { return metric(t, s, `rendezvous_resumes_total{result="ok"}`) == 1 })
	b.send(`{"type":"message","data":"one more"}`)
	b.sync()
	_ = ws.NetConn().(*net.TCPConn).SetReadBuffer(4 << 20) // now read it all at speed
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	var j signal.Message
	if err := ws.ReadJSON(&j); err != nil || !j.Resumed {
		t.Fatalf("resume: %+v %v", j, err)
	}
	for i := range held + 1 {
		var m signal.Message
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("after %d frames of the backlog: %v", i, err)
		}
		want := fmt.Sprintf(`"%d `, i)
		if i == held {
			want = `"one more"`
		}
		if !strings.HasPrefix(string(m.Data), want) {
			t.Fatalf("frame %d: %.20s, want %s", i, m.Data, want)
		}
	}
	b.sync() // no peer-left slow came
}

// TestJoinTimeout: a connection in no room is closed (1008) after
// JoinTimeout: at first, and again after it leaves its room.
func TestJoinTimeout(t *testing.T) {
	s := start(t, signal.Config{JoinTimeout: 200 * time.Millisecond})
	idle := dial(t, s)
	if ce := idle.closed(); ce == nil || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("idle connection closed with %v, want 1008", ce)
	}
	a := dial(t, s)
	a.join("jt")
	// A connection opened after a joined is closed: a's timeout would
	// have passed by then, and a is still open.
	if ce := dial(t, s).closed(); ce == nil || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("second idle connection closed with %v, want 1008", ce)
	}
	a.sync()
	a.send(`{"type":"leave"}`)
	if ce := a.closed(); ce == nil || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("connection that left closed with %v, want 1008", ce)
	}
	eventually(t, "3 join-timeout closes counted", func() bool {
		return metric(t, s, `rendezvous_connections_closed_total{reason="join-timeout"}`) == 3
	})
}

// TestConnectionsPerAddress: one address may hold MaxConnsPerIP
// connections and make UpgradeBurst upgrades at once; past them upgrades
// get 429, counted in the metrics.
func TestConnectionsPerAddress(t *testing.T) {
	t.Run("open connections", func(t *testing.T) {
		s := start(t, signal.Config{MaxConnsPerIP: 3})
		var first *tc
		for i := range 3 {
			c := dial(t, s)
			if i == 0 {
				first = c
			}
		}
		if got := dialStatus(t, s, nil); got != http.StatusTooManyRequests {
			t.Fatalf("4th connection: HTTP %d, want 429", got)
		}
		_ = first.Close()
		eventually(t, "a free slot", func() bool { return dialStatus(t, s, nil) == http.StatusSwitchingProtocols })
		if v := metric(t, s, `rendezvous_connections_refused_total{reason="per-ip"}`); v < 1 {
			t.Fatalf("per-ip refusals %v", v)
		}
	})
	t.Run("upgrade rate", func(t *testing.T) {
		s := start(t, signal.Config{UpgradeRate: 0.001, UpgradeBurst: 2})
		for range 2 {
			if got := dialStatus(t, s, nil); got != http.StatusSwitchingProtocols {
				t.Fatalf("HTTP %d within the burst", got)
			}
		}
		if got := dialStatus(t, s, nil); got != http.StatusTooManyRequests {
			t.Fatalf("3rd upgrade: HTTP %d, want 429", got)
		}
		if v := metric(t, s, `rendezvous_connections_refused_total{reason="upgrade-rate"}`); v != 1 {
			t.Fatalf("upgrade-rate refusals %v", v)
		}
	})
	t.Run("off", func(t *testing.T) {
		s := start(t, signal.Config{MaxConnsPerIP: -1, UpgradeRate: -1})
		for range 5 {
			dial(t, s)
		}
	})
}

// rawWS opens a WebSocket and returns it with its socket, for writing
// frames by hand.
func rawWS(t *testing.T, s *signaltest.Server) (*websocket.Conn, net.Conn) {
	t.Helper()
	ws := rawDial(t, s, nil)
	return ws, ws.NetConn()
}

// readClose reads ws until the server's close frame, and returns its code
// (0: the connection ended without one).
func readClose(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		_ = ws.Close()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection still open")
		}
		return 0
	}
}

// TestControlFrameFlood: pings and pongs are charged to a limiter; a
// flood of either closes the connection (1008), and another room is not
// disturbed.
func TestControlFrameFlood(t *testing.T) {
	for _, op := range []int{websocket.PingMessage, websocket.PongMessage} {
		t.Run(strconv.Itoa(op), func(t *testing.T) {
			s := start(t, signal.Config{})
			a, b, _, _ := pair(t, s, "calm")
			ws, raw := rawWS(t, s)
			var flood []byte
			for range 1000 {
				flood = append(flood, signal.ClientFragment(true, byte(op), []byte("p"))...)
			}
			go func() { _, _ = raw.Write(flood) }()
			if code := readClose(t, ws); code != websocket.ClosePolicyViolation {
				t.Fatalf("flooding connection closed with %d, want 1008", code)
			}
			a.send(`{"type":"message","data":1}`)
			b.expect(signal.TypeMessage)
			eventually(t, "the control-flood close counted", func() bool {
				return metric(t, s, `rendezvous_connections_closed_total{reason="control-flood"}`) == 1
			})
		})
	}
}

// TestUnfinishedMessageTimesOut: a fragmented message kept open with
// pongs between its fragments is closed (1008) after MessageTimeout; the
// partial message counts in the buffered bytes meanwhile; the room mate
// sees peer-left timeout at once (no seat is held).
func TestUnfinishedMessageTimesOut(t *testing.T) {
	s := start(t, signal.Config{MessageTimeout: 300 * time.Millisecond, PingInterval: 50 * time.Millisecond})
	a := dial(t, s)
	a.join("frag")
	ws, raw := rawWS(t, s)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"frag"}`)); err != nil {
		t.Fatal(err)
	}
	a.expect(signal.TypePeerJoined)
	first := signal.ClientFragment(false, websocket.TextMessage, []byte(`{"type":"message","data":"`+strings.Repeat("x", 30000)))
	if _, err := raw.Write(first); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the partial message counted", func() bool { return s.Stats().Buffered >= 30000 })
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep the connection "alive" with pongs
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
				if _, err := raw.Write(signal.ClientFragment(true, websocket.PongMessage, nil)); err != nil {
					return
				}
			}
		}
	}()
	if code := readClose(t, ws); code != websocket.ClosePolicyViolation {
		t.Fatalf("closed with %d, want 1008", code)
	}
	if m := a.expect(signal.TypePeerLeft); m.Reason != signal.ReasonTimeout {
		t.Fatalf("peer-left %+v, want timeout", m)
	}
	eventually(t, "nothing buffered", func() bool { return s.Stats().Buffered == 0 })
}

// TestHugeFrameLength: a frame whose 64-bit length is near 2^63 is refused
// at its header with 1009, at once; the seat is not held.
func TestHugeFrameLength(t *testing.T) {
	for _, length := range []uint64{1<<63 - 1, 1 << 63, 1<<64 - 1, 70000} {
		t.Run(strconv.FormatUint(length, 16), func(t *testing.T) {
			s := start(t, signal.Config{})
			a := dial(t, s)
			a.join("huge")
			ws, raw := rawWS(t, s)
			if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"huge"}`)); err != nil {
				t.Fatal(err)
			}
			a.expect(signal.TypePeerJoined)
			header := []byte{0x81, 0x80 | 127}
			header = binary.BigEndian.AppendUint64(header, length)
			header = append(header, 1, 2, 3, 4, 'x')
			if _, err := raw.Write(header); err != nil {
				t.Fatal(err)
			}
			if code := readClose(t, ws); code != websocket.CloseMessageTooBig {
				t.Fatalf("closed with %d, want 1009", code)
			}
			if m := a.expect(signal.TypePeerLeft); m.Reason != signal.ReasonDisconnected {
				t.Fatalf("peer-left %+v", m)
			}
		})
	}
}

// TestJoinTokenLimits: tokens over 4 KiB are refused without parsing, and
// a sub that is not a valid id is refused like a bad id.
func TestJoinTokenLimits(t *testing.T) {
	secret := []byte("secret")
	s := start(t, signal.Config{AuthSecret: secret})
	c := dial(t, s)
	c.sendf(`{"type":"join","room":"r","token":%q,"ref":"long"}`, strings.Repeat("a", 5000))
	if m := c.expectError(signal.CodeUnauthorized, "long"); !strings.Contains(m.Message, "4096") {
		t.Fatalf("message %q does not name the limit", m.Message)
	}
	for _, sub := range []string{`mallory","from":"ALICE`, "with space", strings.Repeat("x", 65)} {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"room": "r", "sub": sub, "exp": time.Now().Add(time.Minute).Unix(),
		}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		c.sendf(`{"type":"join","room":"r","token":%q,"ref":"sub"}`, tok)
		c.expectError(signal.CodeUnauthorized, "sub")
	}
}

// TestResumeTokenRotates: every resume gives a new token; the old one no
// longer resumes, and it cannot evict the member who holds the seat.
func TestResumeTokenRotates(t *testing.T) {
	s := start(t, signal.Config{PingInterval: time.Hour, PongTimeout: 2 * time.Hour})
	a := dial(t, s)
	first := a.join("rot").Resume
	b := dial(t, s)
	b.join("rot")
	a.expect(signal.TypePeerJoined)
	a.Abort()
	eventually(t, "the seat held", func() bool { return s.Stats().Connections == 1 })

	// A resume whose joined the client never acknowledged (its connection
	// dropped at once) leaves the token it used good: the client may not
	// have the new one.
	lost := dial(t, s)
	lost.sendf(`{"type":"join","room":"rot","resume":%q}`, first)
	lost.expect(signal.TypeJoined)
	lost.Abort()
	eventually(t, "the seat held", func() bool { return s.Stats().Connections == 1 })

	a2 := dial(t, s)
	a2.sendf(`{"type":"join","room":"rot","resume":%q}`, first)
	j := a2.expect(signal.TypeJoined)
	if !j.Resumed || j.Resume == "" || j.Resume == first {
		t.Fatalf("resumed %+v: want a new resume token", j)
	}
	// Once a2 has acknowledged its joined (the server pings a second
	// after writing; a2 answers, and nothing is kept for it any more),
	// the first token is spent: it neither resumes nor evicts a2.
	eventually(t, "the joined acknowledged", func() bool { return s.Stats().Buffered == 0 })
	x := dial(t, s)
	x.sendf(`{"type":"join","room":"rot","resume":%q,"ref":"old"}`, first)
	x.expectError(signal.CodeResumeFailed, "old")
	a2.sync()
	b.send(`{"type":"message","data":"hi"}`)
	a2.expect(signal.TypeMessage)
	// The new token resumes.
	a2.Abort()
	eventually(t, "the seat held", func() bool { return s.Stats().Connections == 2 })
	a3 := dial(t, s)
	a3.sendf(`{"type":"join","room":"rot","resume":%q}`, j.Resume)
	if j3 := a3.expect(signal.TypeJoined); !j3.Resumed {
		t.Fatalf("resume with the new token: %+v", j3)
	}
}

// TestResumeRefusedAfterJoinTokenExpired: a seat admitted by a join token
// cannot be resumed once that token has expired (past the 5 s leeway).
func TestResumeRefusedAfterJoinTokenExpired(t *testing.T) {
	secret := []byte("secret")
	s := start(t, signal.Config{AuthSecret: secret})
	exp := time.Now().Add(-3500 * time.Millisecond) // expired, but within the leeway
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"room": "exp", "exp": exp.Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	exp = time.Unix(exp.Unix(), 0)
	a := dial(t, s)
	a.sendf(`{"type":"join","room":"exp","token":%q}`, tok)
	created := a.expect(signal.TypeCreated)
	a.Abort()
	time.Sleep(time.Until(exp.Add(5*time.Second + 100*time.Millisecond))) // the token's time runs out
	r := dial(t, s)
	r.sendf(`{"type":"join","room":"exp","resume":%q,"ref":"r"}`, created.Resume)
	if m := r.expectError(signal.CodeResumeFailed, "r"); !strings.Contains(m.Message, "expired") {
		t.Fatalf("message %q", m.Message)
	}
}

// TestResumeOrderUnsentThenHeld: when a connection drops with frames it
// never wrote (its socket was full) and more frames come while its seat is
// held, the resume delivers first the frames written but not received,
// then those never written, then those held: in the order they were sent.
func TestResumeOrderUnsentThenHeld(t *testing.T) {
	const size = 60 << 10
	// Enough frames to fill the server's socket send buffer, with room to
	// spare, so that some stay in the connection's queue.
	n := int(maxSocketBuffer(t)/size) + 40
	s := start(t, signal.Config{ConnBufferBytes: (n + 10) * size, SendQueue: n + 10, ResumeQueue: n + 10,
		ResumeQueueBytes: 4 << 20, Rate: rate.Inf, PingInterval: time.Hour, PongTimeout: 2 * time.Hour})
	// The receiver's socket takes little and is never read after join.
	ws, _, err := smallWindowDialer().Dial(s.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	created := rawJoin(t, ws, "order")
	b := dial(t, s)
	b.join("order")
	body := strings.Repeat("y", size)
	for i := range n {
		b.sendf(`{"type":"message","data":"%d %s"}`, i, body)
	}
	b.sync()
	// Drop without a close frame: RST.
	_ = ws.NetConn().(*net.TCPConn).SetLinger(0)
	_ = ws.NetConn().Close()
	eventually(t, "the seat held", func() bool { return s.Stats().Connections == 1 })
	const held = 5
	for i := n; i < n+held; i++ {
		b.sendf(`{"type":"message","data":"%d"}`, i)
	}
	b.sync()
	r := dial(t, s)
	r.sendf(`{"type":"join","room":"order","resume":%q,"received":1}`, created.Resume)
	if j := r.expect(signal.TypeJoined); !j.Resumed {
		t.Fatalf("resume: %+v", j)
	}
	// peer-joined (frame 2) was written before the messages.
	r.expect(signal.TypePeerJoined)
	for i := range n + held {
		m := r.expect(signal.TypeMessage)
		got, _, _ := strings.Cut(strings.Trim(string(m.Data), `"`), " ")
		if got != strconv.Itoa(i) {
			t.Fatalf("resumed message %d is %q", i, got)
		}
	}
}

// smallWindowDialer dials WebSockets whose socket takes little before it
// is read: its receive buffer is set small before it connects.
func smallWindowDialer() *websocket.Dialer {
	nd := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	return &websocket.Dialer{NetDialContext: nd.DialContext}
}

// maxSocketBuffer returns the most a TCP socket's send buffer may grow to
// plus the peer's receive buffer (Linux's tcp_wmem and tcp_rmem maximums;
// 8 MiB where they cannot be read).
func maxSocketBuffer(t *testing.T) int64 {
	total := int64(0)
	for _, f := range []string{"/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/core/wmem_max"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b))
		if v, err := strconv.ParseInt(fields[len(fields)-1], 10, 64); err == nil && v > total {
			total = v
		}
	}
	if total == 0 {
		total = 4 << 20
	}
	return total + 64<<10
}

// TestHTTPServerTimeouts: the http.Server from HTTPServer closes idle
// keep-alive sockets after IdleTimeout and a request whose body trickles
// after ReadTimeout, and refuses oversized headers.
func TestHTTPServerTimeouts(t *testing.T) {
	srv := signal.NewServer(signal.Config{ReadTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond,
		MaxHeaderBytes: 4 << 10, AdminToken: "t"})
	hs := srv.HTTPServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(srv.Listener(ln)) }()
	t.Cleanup(func() { _ = srv.Close(); _ = hs.Close() })
	addr := ln.Addr().String()

	// closedWithin reports whether the server closes c within d.
	closedWithin := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		return err == nil || !(errors.As(err, &ne) && ne.Timeout())
	}
	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		if !closedWithin(c, wait) {
			t.Fatal("idle keep-alive socket still open")
		}
	})
	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "DELETE /api/rooms/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 1000\r\n\r\n")
		done := make(chan struct{})
		go func() { // one byte every 50 ms, until the server closes
			defer close(done)
			for range 200 {
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		if !closedWithin(c, wait) {
			t.Fatal("socket with a trickling body still open")
		}
		_ = c.Close()
		<-done
	})
	t.Run("oversized headers", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("h", 8<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("HTTP %d, want 431", resp.StatusCode)
		}
	})
	http.DefaultClient.CloseIdleConnections()
}

// metric returns the value of one Prometheus sample (name with labels, as
// /metrics prints it), failing when it is absent.
func metric(t *testing.T, s *signaltest.Server, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape(t, s), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no sample %s in /metrics", sample)
	return 0
}

// TestDialInProcess: a protocol v1 client over an in-process connection
// is a member like any other, and counts against the address it is
// opened for.
func TestDialInProcess(t *testing.T) {
	s := start(t, signal.Config{MaxConnsPerIP: 1})
	dialer := func(remote string) *websocket.Dialer {
		return &websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return s.DialInProcess(ctx, remote)
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := signal.Dial(ctx, "ws://in-process/ws", &signal.DialOptions{Dialer: dialer("192.0.2.7:1234")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := &tc{t: t, Client: c}
	a := dial(t, s)
	a.join("inproc")
	p.join("inproc")
	a.expect(signal.TypePeerJoined)
	p.send(`{"type":"message","data":"through the pipe"}`)
	if m := a.expect(signal.TypeMessage); string(m.Data) != `"through the pipe"` {
		t.Fatalf("got %s", m.Data)
	}
	// A second connection for the same client address is over its limit.
	if _, err := signal.Dial(ctx, "ws://in-process/ws", &signal.DialOptions{Dialer: dialer("192.0.2.7:999")}); err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("second in-process connection from the address: %v, want HTTP 429", err)
	}
	_ = s.Close()
	if _, err := s.DialInProcess(ctx, "192.0.2.7:1"); !errors.Is(err, signal.ErrServerClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestShortWriteTimeoutKeepsRoomMate: with a short -write-timeout, a
// member that reads nothing is closed when a write times out, and the
// member sending to it is not: its own writes get their whole timeout
// (they once inherited a deadline that had passed).
func TestShortWriteTimeoutKeepsRoomMate(t *testing.T) {
	s := start(t, signal.Config{WriteTimeout: 200 * time.Millisecond, ConnBufferBytes: 1 << 30, Rate: rate.Inf, ResumeWindow: -1})
	stuck := rawDial(t, s, nil) // never reads
	if err := stuck.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"wt"}`)); err != nil {
		t.Fatal(err)
	}
	sender := dial(t, s)
	sender.join("wt")
	frame := []byte(payload(60000))
	deadline := time.Now().Add(wait)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the stuck member was never closed")
		}
		if err := sender.SendRaw(frame); err != nil {
			t.Fatalf("the sender was dropped with the stuck member: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		m, err := sender.Recv(ctx)
		cancel()
		if err == nil {
			if m.Type != signal.TypePeerLeft {
				t.Fatalf("got %+v, want peer-left", m)
			}
			break
		}
	}
	sender.sync() // still served
}
