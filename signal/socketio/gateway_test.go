package socketio_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio/siotest"
)

// TestRoomFlow: the origin's events between two Socket.IO clients, with
// the origin's flaw fixed: created, join + ready to the member already
// there, joined + ready to the newcomer, full for a third, message both
// ways as the JSON sent (key order kept), bye → message 'bye' to the
// other, and a rejoin.
func TestRoomFlow(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{})
	a, b, c := e.dialSIO(""), e.dialSIO(""), e.dialSIO("")
	aID := a.JoinRoom("demo", true)
	bID := b.JoinRoom("demo", false)
	if aID == bID || aID == "" {
		t.Fatalf("ids %q and %q", aID, bID)
	}
	a.Expect(socketio.EventJoin, `"demo"`)
	a.Expect(socketio.EventReady, `"demo"`)

	c.Connect("")
	c.Emit(socketio.EventCreateOrJoin, `"demo"`)
	c.Expect(socketio.EventFull, `"demo"`)

	// Relayed as sent: the keys stay in their order, the number as written.
	a.Emit(socketio.EventMessage, `{"type":"offer","z":1,"a":[1.50,{"y":true,"b":null}]}`)
	b.Expect(socketio.EventMessage, `{"type":"offer","z":1,"a":[1.50,{"y":true,"b":null}]}`)
	b.Emit(socketio.EventMessage, `"got user media"`)
	a.Expect(socketio.EventMessage, `"got user media"`)

	b.Emit(socketio.EventBye)
	a.Expect(socketio.EventMessage, `"bye"`)
	b.Emit(socketio.EventCreateOrJoin, `"demo"`)
	b.Expect(socketio.EventJoined, `"demo"`)
	b.Expect(socketio.EventReady, `"demo"`)
	a.Expect(socketio.EventJoin, `"demo"`)
	a.Expect(socketio.EventReady, `"demo"`)

	// A disconnect is a bye too.
	b.Close()
	a.Expect(socketio.EventMessage, `"bye"`)
}

// TestMount: mounted on a gorilla/mux router beside the server's handler,
// the endpoint and protocol v1 both work.
func TestMount(t *testing.T) {
	e := newMuxEnv(t, signal.Config{}, socketio.Config{})
	s := e.dialSIO("")
	s.JoinRoom("mounted", true)
	v := e.dialV1()
	v.send(`{"type":"join","room":"mounted"}`)
	v.expect(signal.TypeJoined)
	s.Expect(socketio.EventJoin)
	if code, _ := e.get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
}

// TestRoomOnly: a message reaches the members of the sender's room and no
// one else (the origin broadcast it to every connection).
func TestRoomOnly(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{})
	a, b := e.dialSIO(""), e.dialSIO("")
	a.JoinRoom("one", true)
	b.JoinRoom("one", false)
	a.Expect(socketio.EventJoin)
	a.Expect(socketio.EventReady)
	other := e.dialSIO("")
	other.JoinRoom("two", true)
	lone := e.dialSIO("")
	lone.Connect("") // in no room

	a.Emit(socketio.EventMessage, `"for one only"`)
	b.Expect(socketio.EventMessage, `"for one only"`)
	// Whatever the server had sent them before b got the message would
	// come before the answer to what they send now.
	for _, c := range []*siotest.Client{other, lone} {
		c.Emit(socketio.EventBye)
		if c == other {
			c.Emit(socketio.EventMessage, `1`) // now in no room
		}
		c.ExpectError("not-joined")
	}
}

// TestMixedRoom: a Socket.IO member and a protocol v1 member share a room:
// messages both ways as sent, v1 offers and candidates in the codelab's
// shape, leave and disconnect both ways.
func TestMixedRoom(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{})
	s := e.dialSIO("")
	sID := s.JoinRoom("mixed", true)
	v := e.dialV1()
	v.send(`{"type":"join","room":"mixed"}`)
	j := v.expect(signal.TypeJoined)
	if len(j.Peers) != 1 || j.Peers[0] != sID {
		t.Fatalf("v1 joined with peers %v, want [%s]", j.Peers, sID)
	}
	s.Expect(socketio.EventJoin, `"mixed"`)
	s.Expect(socketio.EventReady, `"mixed"`)

	s.Emit(socketio.EventMessage, `{"z":"last","a":12345678901234567890}`)
	m := v.expect(signal.TypeMessage)
	if m.From != sID || string(m.Data) != `{"z":"last","a":12345678901234567890}` {
		t.Fatalf("v1 got message from %q data %s", m.From, m.Data)
	}
	v.send(`{"type":"message","data":{"n":1.0e3,"b":[]}}`)
	s.Expect(socketio.EventMessage, `{"n":1.0e3,"b":[]}`)

	sdp := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	q, _ := json.Marshal(sdp)
	v.send(`{"type":"offer","sdp":` + string(q) + `}`)
	s.Expect(socketio.EventMessage, `{"type":"offer","sdp":`+string(q)+`}`)
	v.send(`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`)
	s.Expect(socketio.EventMessage, `{"type":"candidate","label":0,"id":"0","candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}`)
	v.send(`{"type":"candidate","candidate":null}`) // end of candidates: the codelab sends none
	v.send(`{"type":"answer","sdp":` + string(q) + `}`)
	s.Expect(socketio.EventMessage, `{"type":"answer","sdp":`+string(q)+`}`)

	v.send(`{"type":"leave"}`)
	s.Expect(socketio.EventMessage, `"bye"`)
	v.send(`{"type":"join","room":"mixed"}`)
	v.expect(signal.TypeJoined)
	s.Expect(socketio.EventJoin)
	s.Expect(socketio.EventReady)

	s.Emit(socketio.EventBye)
	if pl := v.expect(signal.TypePeerLeft); pl.ID != sID || pl.Reason != signal.ReasonLeft {
		t.Fatalf("peer-left %+v", pl)
	}
	s.Emit(socketio.EventCreateOrJoin, `"mixed"`)
	s.Expect(socketio.EventJoined, `"mixed"`)
	v.expect(signal.TypePeerJoined)
	s.Close()
	if pl := v.expect(signal.TypePeerLeft); pl.Reason != signal.ReasonDisconnected {
		t.Fatalf("after the Socket.IO client went away: %+v", pl)
	}
}

// TestV1Rules: protocol v1's rules apply to Socket.IO clients: room names,
// a message with no data, the frame size limit (the connection ends with
// the reason), unknown events, and errors are answered with the error
// event.
func TestV1Rules(t *testing.T) {
	e := newEnv(t, signal.Config{MaxMessageBytes: 4096}, socketio.Config{MaxMessageBytes: 8192, ClientLog: true})
	a := e.dialSIO("")
	a.Connect("")
	a.Emit(socketio.EventCreateOrJoin, `"bad\u0000room"`)
	a.ExpectError("invalid-room")
	a.Emit(socketio.EventCreateOrJoin, `{"not":"a string"}`)
	a.ExpectError("invalid-room")
	a.Emit(socketio.EventCreateOrJoin)
	a.ExpectError("missing-field")
	a.Emit("make me a sandwich", `1`)
	a.ExpectError("unknown-event")
	a.Emit(socketio.EventMessage, `"alone"`)
	a.ExpectError("not-joined")

	a.Emit(socketio.EventCreateOrJoin, `"rules"`)
	// With ClientLog, the server's log messages come as the origin's.
	ev := a.NextEvent()
	if ev.Name != socketio.EventLog || !strings.HasPrefix(ev.Arg(0), `["Message from server:",`) {
		t.Fatalf("got %s %s, want the log event", ev.Name, ev.Args)
	}
	a.Expect(socketio.EventCreated, `"rules"`)
	a.Emit(socketio.EventMessage)
	a.ExpectError("missing-field")
	a.Emit(socketio.EventMessage, `"`+strings.Repeat("x", 5000)+`"`) // over the v1 frame limit
	a.ExpectError("too-big")
	rest := a.ExpectEnd()
	if len(rest) == 0 || !contains(rest, "41") {
		t.Fatalf("before the end: %q, want a DISCONNECT packet", rest)
	}

	// The server goes on serving.
	b := e.dialSIO("")
	b.JoinRoom("rules again", true)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestAuth: with an auth secret, create or join needs a join token, from
// the Socket.IO auth payload or the query string.
func TestAuth(t *testing.T) {
	secret := []byte("s3cret")
	e := newEnv(t, signal.Config{AuthSecret: secret}, socketio.Config{})
	tok, err := signal.MintToken(secret, "vip", "", 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	none := e.dialSIO("")
	none.Connect("")
	none.Emit(socketio.EventCreateOrJoin, `"vip"`)
	none.ExpectError("unauthorized")

	auth := e.dialSIO("")
	auth.Connect(`{"token":"` + tok + `"}`)
	auth.Emit(socketio.EventCreateOrJoin, `"vip"`)
	auth.Expect(socketio.EventCreated, `"vip"`)

	query := e.dialSIO("token=" + tok)
	query.Connect("")
	query.Emit(socketio.EventCreateOrJoin, `"vip"`)
	query.Expect(socketio.EventJoined, `"vip"`)

	other := e.dialSIO("token=" + tok)
	other.Connect("")
	other.Emit(socketio.EventCreateOrJoin, `"elsewhere"`)
	other.ExpectError("unauthorized")
}

// TestJoinTimeout: a Socket.IO client that joins no room is disconnected
// by the server's join timeout, and told why.
func TestJoinTimeout(t *testing.T) {
	e := newEnv(t, signal.Config{JoinTimeout: 200 * time.Millisecond}, socketio.Config{})
	a := e.dialSIO("")
	a.Connect("")
	a.ExpectError("closed")
	if rest := a.ExpectEnd(); !contains(rest, "41") {
		t.Fatalf("got %q, want a DISCONNECT packet", rest)
	}
}

// TestV1ReadTimeout: a client whose protocol v1 connection hears nothing
// (not even a ping) for V1ReadTimeout is disconnected and told why; one
// whose server pings more often than that stays. (The server here pings
// every 100 ms, or every 10 s, and V1ReadTimeout is 400 ms.)
func TestV1ReadTimeout(t *testing.T) {
	quiet := newEnv(t, signal.Config{PingInterval: 10 * time.Second, PongTimeout: 20 * time.Second},
		socketio.Config{V1ReadTimeout: 400 * time.Millisecond})
	a := quiet.dialSIO("")
	a.JoinRoom("quiet", true)
	start := time.Now()
	a.ExpectError("closed")
	if rest := a.ExpectEnd(); !contains(rest, "41") {
		t.Fatalf("got %q, want a DISCONNECT packet", rest)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("disconnected after %s, want about 400ms", d)
	}

	pinged := newEnv(t, signal.Config{PingInterval: 100 * time.Millisecond, PongTimeout: time.Second},
		socketio.Config{V1ReadTimeout: 400 * time.Millisecond})
	b := pinged.dialSIO("")
	b.JoinRoom("pinged", true)
	// Not synchronisation: the time in which a read timeout of 400 ms
	// would have ended the session three times over.
	time.Sleep(1200 * time.Millisecond)
	b.Emit(socketio.EventMessage, `1`)
	b.Emit(socketio.EventCreateOrJoin, `"again"`)
	b.ExpectError("already-joined")
}

// TestAddressLimits: the protocol v1 per-address limit refuses a second
// Socket.IO connection (connect_error), and the gateway's own limit
// refuses a handshake past its per-address sessions (HTTP 429).
func TestAddressLimits(t *testing.T) {
	e := newEnv(t, signal.Config{MaxConnsPerIP: 1}, socketio.Config{MaxSessionsPerIP: 2})
	a := e.dialSIO("")
	a.JoinRoom("lim", true)
	b := e.dialSIO("")
	p := b.Connect("")
	if !strings.HasPrefix(p, "44{") || !strings.Contains(p, "too-many-connections") {
		t.Fatalf("second connect: %q, want CONNECT_ERROR too-many-connections", p)
	}
	if _, err := e.tryDialSIO("", nil); err == nil || !strings.Contains(err.Error(), "HTTP 429") {
		t.Fatalf("third session: %v, want HTTP 429", err)
	}
	if code, _ := e.get("/socket.io/?EIO=4&transport=polling"); code != http.StatusTooManyRequests {
		t.Fatalf("polling handshake past the limit: %d", code)
	}
	// The first goes on, and its slot frees when it leaves.
	a.Emit(socketio.EventMessage, `1`)
	b.Close()
	a.Close()
	eventually(t, "the sessions to be released", func() bool { return e.gw.Sessions() == 0 })
	e.dialSIO("").JoinRoom("lim", true)
}

// TestOrigins: browsers from other origins than the server's own and
// those allowed get HTTP 403.
func TestOrigins(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{AllowedOrigins: []string{"https://app.example.org"}})
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{e.url, true},
		{"https://app.example.org", true},
		{"https://evil.example.org", false},
	} {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		_, err := e.tryDialSIO("", h)
		if (err == nil) != tt.ok {
			t.Errorf("origin %q: %v", tt.origin, err)
		}
		code, _ := e.do(http.MethodGet, "/socket.io/?EIO=4&transport=polling", nil, h)
		if want := map[bool]int{true: 200, false: 403}[tt.ok]; code != want {
			t.Errorf("polling from origin %q: %d, want %d", tt.origin, code, want)
		}
	}
}

// TestClientBundle: /socket.io/socket.io.js serves -socketio-client's file,
// or redirects to the CDN copy of the pinned version.
func TestClientBundle(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{})
	req, _ := http.NewRequest(http.MethodGet, e.url+"/socket.io/socket.io.js", nil)
	noFollow := &http.Client{Transport: httpClient.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != socketio.ClientCDNURL {
		t.Fatalf("without a file: %d to %q, want 302 to %s", resp.StatusCode, resp.Header.Get("Location"), socketio.ClientCDNURL)
	}
	if socketio.ClientCDNURL != "https://cdn.socket.io/"+socketio.ClientVersion+"/socket.io.min.js" {
		t.Fatalf("CDN URL %s", socketio.ClientCDNURL)
	}

	file := filepath.Join(t.TempDir(), "socket.io.min.js")
	body := "/*! bundle */ var io = function(){};\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, signal.Config{}, socketio.Config{ClientFile: file})
	for _, p := range []string{"/socket.io/socket.io.js", "/socket.io/socket.io.min.js"} {
		code, got := e2.get(p)
		if code != http.StatusOK || got != body {
			t.Fatalf("GET %s: %d %q", p, code, got)
		}
	}
	// The bundle the Node tests install, when they have.
	if real := filepath.Join(nodeDir, "node_modules", "sio4", "dist", "socket.io.min.js"); fileExists(real) {
		want, _ := os.ReadFile(real)
		e3 := newEnv(t, signal.Config{}, socketio.Config{ClientFile: real})
		if code, got := e3.get("/socket.io/socket.io.js"); code != http.StatusOK || got != string(want) {
			t.Fatalf("GET the npm bundle: %d, %d bytes, want %d", code, len(got), len(want))
		}
	}
	if _, err := socketio.New(e2.srv, socketio.Config{ClientFile: filepath.Join(t.TempDir(), "missing.js")}); err == nil {
		t.Fatal("New with a missing client file succeeded")
	}
}

// TestPipelinedConnect: an event sent right behind the CONNECT packet,
// before its answer, is handled once the socket is connected (the library
// alone would close the connection: it answers CONNECT before it records
// the socket).
func TestPipelinedConnect(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{})
	a := e.dialSIO("")
	a.Send("40")
	a.Emit(socketio.EventCreateOrJoin, `"pipelined"`)
	if p := a.Next(); !strings.HasPrefix(p, "40{") {
		t.Fatalf("connect: %q", p)
	}
	a.Expect(socketio.EventCreated, `"pipelined"`)

	p := e.openPolling()
	if code := p.post("40\x1e" + siotest.EventPacket(socketio.EventCreateOrJoin, `"pipelined"`)); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	got := ""
	for !strings.Contains(got, `42["joined"`) {
		code, body := p.poll()
		if code != http.StatusOK {
			t.Fatalf("poll: %d %q after %q", code, body, got)
		}
		got += body + "\x1e"
	}
	if !strings.HasPrefix(got, "40{") {
		t.Fatalf("polled %q", got)
	}
}

// TestLongPoll: a long poll outlives the HTTP server's read timeout (the
// signal server's ReadTimeout, which bounds reading a request, not the
// wait for its answer): it lasts until the server's ping.
func TestLongPoll(t *testing.T) {
	e := newEnv(t, signal.Config{ReadTimeout: 300 * time.Millisecond}, socketio.Config{PingInterval: time.Second, PingTimeout: 5 * time.Second})
	p := e.openPolling()
	if code := p.post("40"); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	if code, body := p.poll(); code != http.StatusOK || !strings.HasPrefix(body, "40{") {
		t.Fatalf("poll: %d %q", code, body)
	}
	for i := 0; i < 2; i++ {
		start := time.Now()
		code, body := p.poll() // held until the ping, a second on
		if code != http.StatusOK || body != "2" {
			t.Fatalf("long poll after %s: %d %q, want the ping", time.Since(start), code, body)
		}
		if code := p.post("3"); code != http.StatusOK {
			t.Fatalf("pong: %d", code)
		}
	}
	if code := p.post(siotest.EventPacket(socketio.EventCreateOrJoin, `"long"`)); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	if code, body := p.poll(); code != http.StatusOK || !strings.HasPrefix(body, `42["created","long"`) {
		t.Fatalf("poll: %d %q", code, body)
	}
}

// TestSlowConsumer: a client that stops reading while messages keep coming
// is dropped once its queue is full; its room sees it leave.
func TestSlowConsumer(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{SendQueue: 4})
	p := e.openPolling()
	p.post("40" + "\x1e" + siotest.EventPacket(socketio.EventCreateOrJoin, `"slow"`))
	got := ""
	for !strings.Contains(got, `42["created"`) {
		code, body := p.poll()
		if code != http.StatusOK {
			t.Fatalf("poll: %d %q", code, body)
		}
		got += body
	}
	v := e.dialV1()
	v.send(`{"type":"join","room":"slow"}`)
	v.expect(signal.TypeJoined)
	// The poller polls no more: join, ready and these wait for it.
	for i := 0; i < 5; i++ {
		v.send(`{"type":"message","data":"unread"}`)
	}
	if pl := v.expect(signal.TypePeerLeft); pl.Reason != signal.ReasonDisconnected {
		t.Fatalf("peer-left %+v", pl)
	}
	if code, body := p.poll(); code == http.StatusOK && !strings.Contains(body, "1") {
		t.Fatalf("poll after the drop: %d %q", code, body)
	}
}

// TestShutdown: Shutdown disconnects every client; their rooms see them
// leave, and new sessions are refused.
func TestShutdown(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{})
	a := e.dialSIO("")
	a.JoinRoom("bye all", true)
	v := e.dialV1()
	v.send(`{"type":"join","room":"bye all"}`)
	v.expect(signal.TypeJoined)
	a.Expect(socketio.EventJoin)
	a.Expect(socketio.EventReady)
	if err := e.gw.Close(); err != nil {
		t.Fatal(err)
	}
	a.ExpectEnd()
	v.expect(signal.TypePeerLeft)
	if code, _ := e.get("/socket.io/?EIO=4&transport=polling"); code != http.StatusServiceUnavailable {
		t.Fatalf("handshake after shutdown: %d", code)
	}
	if e.gw.Sessions() != 0 {
		t.Fatalf("%d sessions after shutdown", e.gw.Sessions())
	}
}

// TestBadInput: malformed Engine.IO and Socket.IO packets end the
// sender's connection (or are refused with an HTTP error), nothing
// reaches the members of other rooms, and the server goes on serving.
func TestBadInput(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{MaxMessageBytes: 4096})
	x, y := e.dialSIO(""), e.dialSIO("")
	x.JoinRoom("watch", true)
	y.JoinRoom("watch", false)
	x.Expect(socketio.EventJoin)
	x.Expect(socketio.EventReady)

	for _, bad := range []string{
		"",                                       // no Engine.IO packet type
		"x",                                      // unknown Engine.IO packet type
		"4",                                      // an empty Socket.IO packet
		"4x",                                     // unknown Socket.IO packet type
		"42",                                     // an event without its array
		`42["message"`,                           // cut short
		`42{"message":1}`,                        // not an array
		`42[]`,                                   // no event name
		`42[1,2]`,                                // an event name that is not a string
		`42["message",1] junk`,                   // trailing garbage
		`42/admin,["message",1]`,                 // a namespace it is not connected to
		`4212345678901234567890123["message",1]`, // an ack id past 64 bits
		`451-["message",{"_placeholder":true,"num":0}]`, // a binary event
		"40",   // CONNECT again
		"44{}", // CONNECT_ERROR from a client
	} {
		c := e.dialSIO("")
		c.JoinRoom("bad "+bad, true)
		c.Send(bad)
		c.ExpectEnd()
		c.Close()
	}
	// A binary frame.
	c := e.dialSIO("")
	c.JoinRoom("bad binary", true)
	_ = c.WriteBinary([]byte{4, 1, 2, 3})
	c.ExpectEnd()
	// An over-long WebSocket message.
	c = e.dialSIO("")
	c.JoinRoom("bad long", true)
	c.Emit(socketio.EventMessage, `"`+strings.Repeat("x", 8000)+`"`)
	c.ExpectEnd()
	// An acknowledgement for nothing is ignored.
	c = e.dialSIO("")
	c.JoinRoom("bad ack", true)
	c.Send(`43[]`)
	c.Emit(socketio.EventCreateOrJoin, `"bad ack"`)
	c.ExpectError("already-joined")

	// Polling.
	p := e.openPolling()
	p.post("40")
	if code, _ := e.post(p.path(), strings.Repeat("x", 9000)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized POST: %d, want 413", code)
	}
	chunked := io.MultiReader(strings.NewReader(strings.Repeat("x", 5000)), strings.NewReader(strings.Repeat("y", 5000)))
	if code, _ := e.do(http.MethodPost, p.path(), io.NopCloser(chunked), nil); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized chunked POST: %d, want 413", code)
	}
	for _, tt := range []struct {
		method, path, body string
	}{
		{http.MethodGet, "/socket.io/?EIO=4&transport=polling&sid=nosuchsession", ""},
		{http.MethodGet, "/socket.io/?EIO=4&transport=polling&sid=" + strings.Repeat("a", 100), ""},
		{http.MethodGet, "/socket.io/?EIO=4&transport=carrier-pigeon", ""},
		{http.MethodPost, "/socket.io/?EIO=4&transport=polling", "40"}, // a handshake must be a GET
		{http.MethodGet, "/socket.io/?EIO=4&transport=websocket", ""},  // without the upgrade
	} {
		var body io.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		if code, got := e.do(tt.method, tt.path, body, nil); code != http.StatusBadRequest {
			t.Errorf("%s %s: %d %q, want 400", tt.method, tt.path, code, got)
		}
	}
	// A malformed payload ends the session.
	p = e.openPolling()
	p.post("40")
	p.poll()
	p.post("42[\"message\"\x1ezz\x1e")
	if !p.closed() {
		t.Error("the session is still open after a malformed payload")
	}

	// Nothing reached the watchers: the answer to this is the first thing
	// either gets.
	for _, w := range []*siotest.Client{x, y} {
		w.Emit(socketio.EventCreateOrJoin, `"watch"`)
		w.ExpectError("already-joined")
	}
	x.Emit(socketio.EventMessage, `"still here"`)
	y.Expect(socketio.EventMessage, `"still here"`)
	e.dialSIO("").JoinRoom("after", true)
}

// TestFloods: a client that floods events is cut off by the protocol v1
// rate limit, one that floods faster than they are handled by the event
// backlog; the members of other rooms see nothing of it and the server
// goes on serving.
func TestFloods(t *testing.T) {
	e := newEnv(t, signal.Config{}, socketio.Config{})
	x, y := e.dialSIO(""), e.dialSIO("")
	x.JoinRoom("watch", true)
	y.JoinRoom("watch", false)
	x.Expect(socketio.EventJoin)
	x.Expect(socketio.EventReady)

	// Over the rate limit: 50/s, a burst of 200, cut off after 400 refused.
	f, g := e.dialSIO(""), e.dialSIO("")
	f.JoinRoom("flood", true)
	g.JoinRoom("flood", false)
	f.Expect(socketio.EventJoin)
	f.Expect(socketio.EventReady)
	start := time.Now()
	for i := 0; i < 2000; i++ {
		if err := f.Write(siotest.EventPacket(socketio.EventMessage, `"spam"`)); err != nil {
			break // closed already
		}
	}
	f.ExpectEnd() // by the rate limit (error, DISCONNECT) or the backlog
	n := 0
	for {
		ev := g.NextEvent()
		if ev.Name == socketio.EventMessage && ev.Arg(0) == `"bye"` {
			break
		}
		n++
	}
	// The burst, and what the rate let through meanwhile.
	if max := signal.DefaultBurst + int(signal.DefaultRate*time.Since(start).Seconds()) + 1; n > max {
		t.Errorf("the flooder's partner got %d messages, more than the rate limit's %d", n, max)
	}

	// Faster than handled: a polling body of 100 events, with a backlog
	// of 4.
	e2 := newEnv(t, signal.Config{}, socketio.Config{EventBacklog: 4})
	p := e2.openPolling()
	p.post("40")
	p.poll()
	var b strings.Builder
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteByte(0x1e)
		}
		b.WriteString(siotest.EventPacket(socketio.EventMessage, `1`))
	}
	p.post(b.String())
	if !p.closed() {
		t.Error("the session is still open after a flood")
	}

	for _, w := range []*siotest.Client{x, y} {
		w.Emit(socketio.EventCreateOrJoin, `"watch"`)
		w.ExpectError("already-joined")
	}
	e.dialSIO("").JoinRoom("after", true)
	e2.dialSIO("").JoinRoom("after", true)
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}
