package signal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testMaxPayload is the frame size limit of the frameConns in these tests.
const testMaxPayload = 1 << 20

// chunkConn is a net.Conn that serves data in chunks of the given sizes
// (cycling), then io.EOF.
type chunkConn struct {
	net.Conn
	data   []byte
	chunks []int
	i      int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.chunks) > 0 {
		n = max(1, c.chunks[c.i%len(c.chunks)])
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// clientFrame builds a masked client frame, a message's last.
func clientFrame(op byte, payload []byte) []byte { return clientFragment(true, op, payload) }

// clientFragment builds a masked client frame; fin says whether it is a
// message's last.
func clientFragment(fin bool, op byte, payload []byte) []byte {
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := []byte{1, 2, 3, 4}
	b = append(b, mask...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

// frameBoundaries returns the offsets where frames end in stream.
func frameBoundaries(t testing.TB, stream []byte) map[int]bool {
	ends := map[int]bool{}
	for off := 0; off < len(stream); {
		total, _, err := frameLen(stream[off:], testMaxPayload)
		if total == 0 || err != nil {
			break
		}
		off += int(total)
		ends[off] = true
	}
	return ends
}

// readAllCapped reads fc to EOF with reads of size sizes (cycling) and
// checks that no read crosses a frame end.
func readAllCapped(t testing.TB, fc *frameConn, stream []byte, sizes []int) []byte {
	ends := frameBoundaries(t, stream)
	var out []byte
	for i := 0; ; i++ {
		size := 1
		if len(sizes) > 0 {
			size = max(1, sizes[i%len(sizes)])
		}
		p := make([]byte, size)
		n, err := fc.Read(p)
		for k := len(out) + 1; k < len(out)+n; k++ {
			if ends[k] {
				t.Fatalf("a read of %d bytes at %d crosses the frame end at %d", n, len(out), k)
			}
		}
		out = append(out, p[:n]...)
		if err != nil {
			return out
		}
	}
}

func TestFrameConnStopsAtFrameEnds(t *testing.T) {
	var stream []byte
	for _, f := range [][]byte{
		clientFrame(1, []byte(`{"type":"leave"}`)),
		clientFrame(opPong, []byte("42")),
		clientFrame(1, bytes.Repeat([]byte("x"), 300)),
		clientFrame(1, bytes.Repeat([]byte("y"), 70000)),
		clientFrame(opPing, nil),
		clientFrame(1, nil),
	} {
		stream = append(stream, f...)
	}
	for _, tt := range []struct {
		name          string
		chunks, reads []int
	}{
		{"one byte at a time", []int{1}, []int{1}},
		{"socket chunks of 7, reads of 128", []int{7}, []int{128}},
		{"all at once, reads of 512", []int{1 << 20}, []int{512}},
		{"mixed", []int{3, 5000, 1, 60}, []int{2, 700, 128, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFrameConn(&chunkConn{data: stream, chunks: tt.chunks}, testMaxPayload, 10*time.Second)
			if got := readAllCapped(t, fc, stream, tt.reads); !bytes.Equal(got, stream) {
				t.Fatalf("read %d bytes, want the %d-byte stream unchanged", len(got), len(stream))
			}
		})
	}
}

func TestAwaitDataFrameHandlesControlFrames(t *testing.T) {
	data := clientFrame(1, []byte("hello"))
	stream := append(append(append(clientFrame(opPing, []byte("p1")), clientFrame(opPong, []byte("17"))...), data...), clientFrame(opPong, nil)...)
	fc := newFrameConn(&chunkConn{data: stream, chunks: []int{3}}, testMaxPayload, 10*time.Second)
	var pings, pongs []string
	onPing := func(b []byte) error { pings = append(pings, string(b)); return nil }
	onPong := func(b []byte) error { pongs = append(pongs, string(b)); return nil }
	if err := fc.awaitDataFrame(onPing, onPong); err != nil {
		t.Fatal(err)
	}
	if len(pings) != 1 || pings[0] != "p1" || len(pongs) != 1 || pongs[0] != "17" {
		t.Fatalf("pings %q pongs %q", pings, pongs)
	}
	// What remains for gorilla starts with the data frame, and stops at its end.
	got := make([]byte, 0, len(data))
	for len(got) < len(data) {
		p := make([]byte, 64)
		n, err := fc.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("gorilla would read %x, want %x", got, data)
	}
	// The trailing pong is handled by the next wait, which then reports EOF.
	if err := fc.awaitDataFrame(onPing, onPong); !errors.Is(err, io.EOF) || len(pongs) != 2 {
		t.Fatalf("err %v, pongs %q", err, pongs)
	}
}

// TestAwaitDataFrameLeavesBadFramesToGorilla: control frames that break the
// rules are not consumed here.
func TestAwaitDataFrameLeavesBadFramesToGorilla(t *testing.T) {
	unmasked := []byte{0x80 | opPing, 0}
	fragmented := clientFrame(opPing, nil)
	fragmented[0] &^= 0x80
	tooLong := clientFrame(opPong, bytes.Repeat([]byte("z"), 126))
	for name, frame := range map[string][]byte{"unmasked": unmasked, "not final": fragmented, "too long": tooLong} {
		fc := newFrameConn(&chunkConn{data: frame, chunks: []int{100}}, testMaxPayload, 10*time.Second)
		called := false
		if err := fc.awaitDataFrame(func([]byte) error { called = true; return nil }, func([]byte) error { called = true; return nil }); err != nil || called {
			t.Errorf("%s: err %v, handled %v; want it left for gorilla", name, err, called)
		}
	}
}

// writesConn records each Write it gets.
type writesConn struct {
	net.Conn
	writes []string
}

func (c *writesConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func TestWriteBatching(t *testing.T) {
	wc := &writesConn{}
	fc := newFrameConn(wc, testMaxPayload, 10*time.Second)
	fc.beginBatch()
	for _, s := range []string{"one", "two", "three"} {
		if _, err := fc.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if len(wc.writes) != 0 {
		t.Fatalf("%q written before flush", wc.writes)
	}
	if err := fc.flush(); err != nil {
		t.Fatal(err)
	}
	// Outside a batch, writes go straight through.
	if _, err := fc.Write([]byte("now")); err != nil {
		t.Fatal(err)
	}
	if want := []string{"onetwothree", "now"}; len(wc.writes) != 2 || wc.writes[0] != want[0] || wc.writes[1] != want[1] {
		t.Fatalf("writes %q, want %q", wc.writes, want)
	}
	// A big batch is flushed early.
	fc.beginBatch()
	big := bytes.Repeat([]byte("b"), flushAtBytes)
	if _, err := fc.Write(big); err != nil {
		t.Fatal(err)
	}
	if len(wc.writes) != 3 {
		t.Fatalf("a %d-byte batch was not flushed early", len(big))
	}
	_ = fc.flush()
}

// deadlineConn counts write deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

func TestWriteDeadlineCoalescing(t *testing.T) {
	dc := &deadlineConn{}
	fc := newFrameConn(dc, testMaxPayload, 10*time.Second)
	base := time.Now()
	for _, d := range []time.Duration{10 * time.Second, 10*time.Second + 100*time.Millisecond, 10*time.Second + 900*time.Millisecond} {
		_ = fc.SetWriteDeadline(base.Add(d))
	}
	if len(dc.set) != 1 {
		t.Fatalf("%d deadlines set for three within a second of each other, want 1", len(dc.set))
	}
	_ = fc.SetWriteDeadline(base.Add(12 * time.Second)) // a second or more later: set
	_ = fc.SetWriteDeadline(base.Add(time.Second))      // earlier: always set
	_ = fc.SetWriteDeadline(time.Time{})                // none: always set
	if len(dc.set) != 4 || !dc.set[3].IsZero() {
		t.Fatalf("deadlines set: %v", dc.set)
	}
	// With a short write timeout the slack is a quarter of it, so that a
	// write never inherits a deadline that has passed.
	dc = &deadlineConn{}
	fc = newFrameConn(dc, testMaxPayload, 200*time.Millisecond)
	_ = fc.SetWriteDeadline(base.Add(200 * time.Millisecond))
	_ = fc.SetWriteDeadline(base.Add(240 * time.Millisecond)) // within 50 ms: left
	_ = fc.SetWriteDeadline(base.Add(500 * time.Millisecond)) // the first has passed by then: set
	if len(dc.set) != 2 {
		t.Fatalf("deadlines set with a 200 ms timeout: %v", dc.set)
	}
}

func TestAcked(t *testing.T) {
	c := &conn{s: &Server{}}
	c.recent = [][]byte{[]byte("4"), []byte("5"), []byte("6")}
	c.recentBase, c.recentBytes = 4, 3
	c.acked(2) // older than what is kept
	if len(c.recent) != 3 {
		t.Fatalf("recent %d", len(c.recent))
	}
	c.acked(5)
	if len(c.recent) != 1 || string(c.recent[0]) != "6" || c.recentBase != 6 {
		t.Fatalf("after ack 5: %q base %d", c.recent, c.recentBase)
	}
	c.acked(99)
	if c.recent != nil || c.recentBytes != 0 {
		t.Fatalf("after ack 99: %q, %d bytes", c.recent, c.recentBytes)
	}
}

func TestReplay(t *testing.T) {
	b := seatBacklog{recent: [][]byte{[]byte("10"), []byte("11"), []byte("12")}, recentBase: 10, unsent: [][]byte{[]byte("u")}}
	for _, tt := range []struct {
		received *uint64
		want     string
	}{
		{nil, "u"},
		{ptr(uint64(9)), "10 11 12 u"},
		{ptr(uint64(10)), "11 12 u"},
		{ptr(uint64(12)), "u"},
		{ptr(uint64(50)), "u"},
	} {
		var got []string
		for _, f := range b.replay(tt.received) {
			got = append(got, string(f))
		}
		if s := join(got); s != tt.want {
			t.Errorf("replay(%v) = %q, want %q", tt.received, s, tt.want)
		}
	}
}

func TestBacklogLost(t *testing.T) {
	b := seatBacklog{recent: [][]byte{[]byte("10")}, recentBase: 10}
	for _, tt := range []struct {
		received *uint64
		lost     bool
	}{{nil, false}, {ptr(uint64(8)), true}, {ptr(uint64(9)), false}, {ptr(uint64(12)), false}} {
		if got := b.lost(tt.received); got != tt.lost {
			t.Errorf("lost(%v) = %v, want %v", tt.received, got, tt.lost)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func join(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	return b.String()
}

// FuzzFrameConn feeds arbitrary streams through frameConn in arbitrary
// chunks: what gorilla reads is the stream unchanged, and no read crosses
// a frame end.
func FuzzFrameConn(f *testing.F) {
	f.Add(clientFrame(1, []byte(`{"type":"join","room":"x"}`)), uint8(3), uint8(100))
	f.Add(append(clientFrame(opPong, []byte("7")), clientFrame(1, bytes.Repeat([]byte("a"), 200))...), uint8(1), uint8(1))
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 9}, uint8(5), uint8(5))
	f.Fuzz(func(t *testing.T, stream []byte, chunk, read uint8) {
		fc := newFrameConn(&chunkConn{data: stream, chunks: []int{int(chunk)}}, testMaxPayload, 10*time.Second)
		got := readAllCapped(t, fc, stream, []int{int(read)})
		if !bytes.HasPrefix(stream, got) {
			t.Fatalf("read bytes that are not the stream's")
		}
		// Everything up to the last complete header is delivered.
		if len(got) < len(stream) {
			if total, _, err := frameLen(stream[len(got):], testMaxPayload); err == nil && total != 0 && total <= int64(len(stream)-len(got)) {
				t.Fatalf("stopped at %d of %d with a whole frame left", len(got), len(stream))
			}
		}
		fc2 := newFrameConn(&chunkConn{data: stream, chunks: []int{int(chunk)}}, testMaxPayload, 10*time.Second)
		_ = fc2.awaitDataFrame(func([]byte) error { return nil }, func([]byte) error { return nil })
	})
}

// TestPipelinedFramesThroughServer writes a join, a ping, a pong and a
// relayed message in one TCP write: the server handles each, in order.
func TestPipelinedFramesThroughServer(t *testing.T) {
	s := NewServer(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	defer s.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	peer, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := peer.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"pipe"}`)); err != nil {
		t.Fatal(err)
	}
	var created Message
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := peer.ReadJSON(&created); err != nil || created.Type != TypeCreated {
		t.Fatalf("peer: %+v %v", created, err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	pongs := make(chan string, 1)
	ws.SetPongHandler(func(data string) error { pongs <- data; return nil })
	var stream []byte
	stream = append(stream, clientFrame(1, []byte(`{"type":"join","room":"pipe"}`))...)
	stream = append(stream, clientFrame(opPing, []byte("hi"))...)
	stream = append(stream, clientFrame(opPong, []byte("1"))...)
	stream = append(stream, clientFrame(1, []byte(`{"type":"message","data":"piped"}`))...)
	if _, err := ws.NetConn().Write(stream); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m Message
	if err := ws.ReadJSON(&m); err != nil || m.Type != TypeJoined {
		t.Fatalf("got %+v %v, want joined", m, err)
	}
	// The pong was written before anything the server says after the
	// message that followed the ping.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"sync","ref":"s"}`)); err != nil {
		t.Fatal(err)
	}
	if err := ws.ReadJSON(&m); err != nil || m.Ref != "s" {
		t.Fatalf("got %+v %v, want the sync error", m, err)
	}
	select {
	case p := <-pongs:
		if p != "hi" {
			t.Fatalf("pong %q, want hi", p)
		}
	default:
		t.Fatal("no pong for the pipelined ping")
	}
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var got Message
		if err := peer.ReadJSON(&got); err != nil {
			t.Fatal(err)
		}
		if got.Type == TypeMessage {
			if string(got.Data) != `"piped"` {
				t.Fatalf("data %s", got.Data)
			}
			break
		}
	}
}

// TestIdleHandoff: connections that go quiet move to small idle
// goroutines, and keep relaying, answering pings and timing out from
// there; over TCP, and over in-process connections (DialInProcess, as the
// Socket.IO gateway opens them), which wait on their own signal.
func TestIdleHandoff(t *testing.T) {
	for _, inProcess := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "in-process"}[inProcess], func(t *testing.T) {
			testIdleHandoff(t, inProcess)
		})
	}
}

func testIdleHandoff(t *testing.T, inProcess bool) {
	// A pong timeout of 1 s, which a loaded machine running the race
	// detector meets (300 ms did not always), and pings often enough that
	// idle connections answer several, not so often that the pongs pass
	// the control frame rate (10/s).
	s := NewServer(Config{PingInterval: 150 * time.Millisecond, PongTimeout: time.Second, ResumeWindow: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.idleLinger = 5 * time.Millisecond
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	defer s.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	wsDialer := websocket.DefaultDialer
	if inProcess {
		wsDialer = &websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return s.DialInProcess(ctx, "192.0.2.1:1")
		}}
	}
	dial := func() *Client {
		t.Helper()
		c, err := Dial(t.Context(), url, &DialOptions{Dialer: wsDialer})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a, b := dial(), dial()
	if _, err := a.Join(t.Context(), "idle", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(t.Context(), "idle", nil); err != nil {
		t.Fatal(err)
	}
	waitIdle := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for s.idleConns.Load() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d idle connections, want %d", s.idleConns.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	recv := func(c *Client, typ string) *Message {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		for {
			m, err := c.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type == typ {
				return m
			}
		}
	}
	recv(a, TypePeerJoined)
	// Both go idle, well past several ping rounds, and stay connected.
	waitIdle(2)
	// Not synchronisation: longer than the pong timeout, which only the
	// pongs that the idle goroutines read put off.
	time.Sleep(1200 * time.Millisecond)
	waitIdle(2)
	for round := range 3 {
		if err := a.Send(&Message{Type: TypeMessage, Data: []byte(fmt.Sprint(round))}); err != nil {
			t.Fatal(err)
		}
		if m := recv(b, TypeMessage); string(m.Data) != fmt.Sprint(round) {
			t.Fatalf("got %s", m.Data)
		}
		waitIdle(2)
	}
	// A client that stops answering pings times out from the idle goroutine.
	mute, _, err := wsDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	// No close frame: the idle goroutine sees the connection end.
	b.Abort()
	recv(a, TypePeerLeft) // b; its seat is free now
	if err := mute.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"idle"}`)); err != nil {
		t.Fatal(err)
	}
	recv(a, TypePeerJoined) // mute
	if m := recv(a, TypePeerLeft); m.Reason != ReasonTimeout {
		t.Fatalf("peer-left %+v, want timeout", m)
	}
}

// TestTLS runs the protocol over wss: frameConn then reads through
// tls.Conn, without the buffer-free wait.
func TestTLS(t *testing.T) {
	s := NewServer(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewTLSServer(s.Handler())
	defer hs.Close()
	defer s.Close()
	url := "wss" + strings.TrimPrefix(hs.URL, "https") + "/ws"
	d := &websocket.Dialer{TLSClientConfig: hs.Client().Transport.(*http.Transport).TLSClientConfig}
	opts := &DialOptions{Dialer: d}
	a, err := Dial(t.Context(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Dial(t.Context(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.Join(t.Context(), "tls", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(t.Context(), "tls", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := b.Send(&Message{Type: TypeMessage, Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; {
		m, err := a.Recv(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != TypeMessage {
			continue
		}
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("got %s, want %d", m.Data, i)
		}
		i++
	}
}

// TestClientGivesUpOnSilentServer: a server that stops sending anything,
// pings included, is given up after DialOptions.ReadTimeout.
func TestClientGivesUpOnSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	up := websocket.Upgrader{}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_, _, _ = ws.ReadMessage() // never answers; returns when the client closes
	})}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	c, err := Dial(t.Context(), "ws://"+ln.Addr().String()+"/", &DialOptions{ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Recv(t.Context())
	var ne net.Error
	if !errors.Is(err, ErrClosed) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Recv: %v, want a timeout wrapped in ErrClosed", err)
	}
}
