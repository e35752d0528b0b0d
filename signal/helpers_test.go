package signal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

func TestMain(m *testing.M) {
	// net/http lingers up to 500 ms on a connection it closed for a bad request.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait"))
}

// wait bounds every wait for a message in these tests.
const wait = 10 * time.Second

// tc is a test client: a signal.Client with assertions.
type tc struct {
	t *testing.T
	*signal.Client
}

func start(t *testing.T, cfg signal.Config) *signaltest.Server {
	t.Helper()
	var s *signaltest.Server
	// Runs after signaltest's cleanup has shut the server down: every byte
	// the server counted as buffered has been released.
	t.Cleanup(func() {
		if b := s.Stats().Buffered; b != 0 {
			t.Errorf("after Close the server still counts %d bytes buffered", b)
		}
	})
	s = signaltest.New(t, cfg)
	return s
}

func dial(t *testing.T, s *signaltest.Server) *tc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := signal.Dial(ctx, s.URL, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &tc{t: t, Client: c}
}

// send sends a raw JSON frame.
func (c *tc) send(frame string) {
	c.t.Helper()
	if err := c.SendRaw([]byte(frame)); err != nil {
		c.t.Fatalf("send %s: %v", frame, err)
	}
}

func (c *tc) sendf(format string, args ...any) {
	c.t.Helper()
	c.send(fmt.Sprintf(format, args...))
}

// next returns the next message, failing the test after wait.
func (c *tc) next() *signal.Message {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	m, err := c.Recv(ctx)
	if err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	return m
}

// expect returns the next message and fails unless it has type typ.
func (c *tc) expect(typ string) *signal.Message {
	c.t.Helper()
	m := c.next()
	if m.Type != typ {
		c.t.Fatalf("got %s, want %s: %+v", m.Type, typ, m)
	}
	return m
}

// expectError returns the next message and fails unless it is an error
// with code and ref.
func (c *tc) expectError(code, ref string) *signal.Message {
	c.t.Helper()
	m := c.expect(signal.TypeError)
	if m.Code != code || m.Ref != ref {
		c.t.Fatalf("got error %q ref %q (%s), want %q ref %q", m.Code, m.Ref, m.Message, code, ref)
	}
	if m.Message == "" {
		c.t.Fatalf("error %q has no message", code)
	}
	return m
}

// join joins room and returns created or joined.
func (c *tc) join(room string) *signal.Message {
	c.t.Helper()
	c.sendf(`{"type":"join","room":%q}`, room)
	m := c.next()
	if m.Type != signal.TypeCreated && m.Type != signal.TypeJoined {
		c.t.Fatalf("join %q: got %+v", room, m)
	}
	return m
}

// sync proves that everything sent to c before now has been received: it
// asks the server for an error (leave while... or an unknown type) and
// expects it to be the next message.
func (c *tc) sync() {
	c.t.Helper()
	c.send(`{"type":"sync-probe","ref":"sync"}`)
	c.expectError(signal.CodeUnknownType, "sync")
}

// pair starts two clients in a fresh room: a created it, b joined it.
func pair(t *testing.T, s *signaltest.Server, room string) (a, b *tc, aid, bid string) {
	t.Helper()
	a, b = dial(t, s), dial(t, s)
	aid = a.join(room).ID
	bid = b.join(room).ID
	if m := a.expect(signal.TypePeerJoined); m.ID != bid {
		t.Fatalf("peer-joined id %q, want %q", m.ID, bid)
	}
	return a, b, aid, bid
}

// closed waits for c's connection to end and returns the close frame the
// server sent, if any.
func (c *tc) closed() *websocket.CloseError {
	c.t.Helper()
	select {
	case <-c.Done():
	case <-time.After(wait):
		c.t.Fatal("connection still open")
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		_, err := c.Recv(ctx)
		cancel()
		if err == nil {
			continue // drain messages that arrived before the close
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce
		}
		return nil
	}
}

// rawDial opens a bare WebSocket connection, for clients that misbehave
// (never read, never answer pings, send binary frames).
func rawDial(t *testing.T, s *signaltest.Server, header http.Header) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(s.URL, header)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial: %v %s", err, status)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

// dialStatus tries to open a WebSocket and returns the HTTP status.
func dialStatus(t *testing.T, s *signaltest.Server, header http.Header) int {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(s.URL, header)
	if err == nil {
		_ = ws.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

func health(t *testing.T, s *signaltest.Server) (status string, conns, rooms int) {
	t.Helper()
	resp, err := http.Get(s.HTTP.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Status      string `json:"status"`
		Connections int    `json:"connections"`
		Rooms       int    `json:"rooms"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.Status, h.Connections, h.Rooms
}

// eventually polls cond until it holds or wait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const minimalSDP = "v=0\r\no=- 4215775240449105457 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"

func sdpJSON() string {
	b, _ := json.Marshal(minimalSDP)
	return string(b)
}

// rawJoin sends join for room on a bare WebSocket and returns the created
// or joined it gets.
func rawJoin(t *testing.T, ws *websocket.Conn, room string) *signal.Message {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"join","room":%q}`, room)); err != nil {
		t.Fatal(err)
	}
	var m signal.Message
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	if err := ws.ReadJSON(&m); err != nil || (m.Type != signal.TypeCreated && m.Type != signal.TypeJoined) {
		t.Fatalf("join %q: %+v %v", room, m, err)
	}
	return &m
}
