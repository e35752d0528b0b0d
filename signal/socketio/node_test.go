package socketio_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio"
)

// The Node test folder: package.json pins socket.io-client 1.7.4, 2.5.0
// and 4.8.3 (as sio1, sio2, sio4), package-lock.json their integrity.
const (
	nodeDir     = "testdata/node"
	nodeInstall = "cd signal/socketio/testdata/node && npm ci"
)

// The clients the tests run, and the ways they connect.
var (
	nodeLibs  = []string{"sio1", "sio2", "sio4"}
	nodeModes = []struct {
		name       string
		transports []string // nil: the default, polling then upgrade
	}{
		{"default", nil},
		{"polling", []string{"polling"}},
		{"websocket", []string{"websocket"}},
	}
)

// needNode skips the test when node or the packages are missing, unless
// CI=true, where it fails.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	missing := ""
	switch {
	case err != nil:
		missing = "node is not installed (apt-get install nodejs npm)"
	default:
		for _, lib := range nodeLibs {
			if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", lib, "package.json")); err != nil {
				missing = fmt.Sprintf("the Socket.IO client packages are not installed (%s)", nodeInstall)
				break
			}
		}
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %s", missing)
		}
		t.Skipf("skipping: %s", missing)
	}
	return node
}

// nodeEvent is one line from client.js.
type nodeEvent struct {
	ID        string            `json:"id"`
	Ev        string            `json:"ev"`
	Args      []json.RawMessage `json:"args"`
	Transport string            `json:"transport"`
	Error     string            `json:"error"`
}

func (ev nodeEvent) arg(i int) string {
	if i >= len(ev.Args) {
		return "<none>"
	}
	return string(ev.Args[i])
}

// nodeProc is a running client.js: Socket.IO clients in one Node process.
type nodeProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	wmu   sync.Mutex

	mu      sync.Mutex
	queues  map[string][]nodeEvent // guarded by mu: per client, unread
	upgrade map[string]string      // guarded by mu: per client, the transport it upgraded to
	changed chan struct{}          // guarded by mu: closed and replaced on every line
	ended   bool                   // guarded by mu
	done    chan struct{}          // closed when the reader has ended
}

// nodeLimit bounds a client.js process's life.
const nodeLimit = 2 * time.Minute

func startNode(t *testing.T) *nodeProc {
	t.Helper()
	node := needNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), nodeLimit+10*time.Second)
	cmd := exec.CommandContext(ctx, node, "client.js", fmt.Sprint(nodeLimit.Milliseconds()))
	cmd.Dir = nodeDir
	cmd.Stderr = tbWriter{t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	p := &nodeProc{t: t, cmd: cmd, stdin: stdin, queues: map[string][]nodeEvent{}, upgrade: map[string]string{}, changed: make(chan struct{}), done: make(chan struct{})}
	go p.read(stdout)
	t.Cleanup(func() {
		_ = stdin.Close() // client.js closes its sockets and exits
		select {
		case <-p.done:
		case <-time.After(wait):
			t.Errorf("client.js did not exit within %s", wait)
		}
		cancel()
		_ = cmd.Wait()
	})
	if ev := p.next(""); ev.Ev != "@ready" {
		t.Fatalf("client.js: %+v", ev)
	}
	return p
}

func (p *nodeProc) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev nodeEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			ev = nodeEvent{Ev: "@fatal", Error: "bad line: " + sc.Text()}
		}
		if ev.Ev == "@fatal" {
			p.t.Errorf("client.js: %s", ev.Error)
		}
		p.mu.Lock()
		p.queues[ev.ID] = append(p.queues[ev.ID], ev)
		if ev.Ev == "@upgrade" {
			p.upgrade[ev.ID] = ev.Transport
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.ended = true
	close(p.changed)
	p.mu.Unlock()
}

func (p *nodeProc) send(cmd map[string]any) {
	p.t.Helper()
	b, _ := json.Marshal(cmd)
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("client.js: %v", err)
	}
}

// connect starts client id of lib ("sio1", "sio2", "sio4") on the env with
// the given transports (nil: the default) and extra options.
func (p *nodeProc) connect(id, lib string, e *env, transports []string, extra map[string]any) {
	cmd := map[string]any{"op": "connect", "id": id, "lib": lib, "url": e.url, "transports": transports}
	for k, v := range extra {
		cmd[k] = v
	}
	p.send(cmd)
}

func (p *nodeProc) emit(id, event string, args ...any) {
	if args == nil {
		args = []any{}
	}
	p.send(map[string]any{"op": "emit", "id": id, "event": event, "args": args})
}

// next returns client id's next event, failing after wait.
func (p *nodeProc) next(id string) nodeEvent {
	p.t.Helper()
	timeout := time.After(wait)
	for {
		p.mu.Lock()
		if q := p.queues[id]; len(q) > 0 {
			ev := q[0]
			p.queues[id] = q[1:]
			p.mu.Unlock()
			return ev
		}
		ended, changed := p.ended, p.changed
		p.mu.Unlock()
		if ended {
			p.t.Fatalf("client.js ended; client %q got nothing more", id)
		}
		select {
		case <-changed:
		case <-timeout:
			p.t.Fatalf("client %q: nothing within %s", id, wait)
		}
	}
}

// ignored are the events expect skips: logs, upgrades, and the error event
// that 1.x/2.x clients also raise for every error event they receive.
var ignored = map[string]bool{socketio.EventLog: true, "@upgrade": true, "@error": true}

// expect returns client id's next event that is not ignored, failing
// unless it is ev with the given arguments (JSON texts).
func (p *nodeProc) expect(id, ev string, args ...string) nodeEvent {
	p.t.Helper()
	for {
		got := p.next(id)
		if ignored[got.Ev] && got.Ev != ev {
			continue
		}
		if got.Ev != ev {
			p.t.Fatalf("client %q got %s %s, want %s", id, got.Ev, got.Args, ev)
		}
		for i, a := range args {
			if got.arg(i) != a {
				p.t.Fatalf("client %q event %s: argument %d is %s, want %s", id, ev, i, got.arg(i), a)
			}
		}
		return got
	}
}

// upgraded waits for client id to upgrade its transport and returns the
// transport it upgraded to ("" when it has not within wait).
func (p *nodeProc) upgraded(id string) string {
	timeout := time.After(wait)
	for {
		p.mu.Lock()
		tr, ended, changed := p.upgrade[id], p.ended, p.changed
		p.mu.Unlock()
		if tr != "" || ended {
			return tr
		}
		select {
		case <-changed:
		case <-timeout:
			return ""
		}
	}
}

// upgradedNow returns the transport client id has upgraded to so far.
func (p *nodeProc) upgradedNow(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upgrade[id]
}

// seen returns the events client id has received so far and not read.
func (p *nodeProc) seen(id string) []nodeEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]nodeEvent(nil), p.queues[id]...)
}

// TestNodeClients: real socket.io-client 1.7.4, 2.5.0 and 4.8.3 from npm,
// each with the default options (polling, then the upgrade to WebSocket),
// polling only and WebSocket only, through the origin's flow: created,
// join, joined, ready, full for a third client, message both ways (the
// JSON as sent), only within the room, bye and a rejoin.
func TestNodeClients(t *testing.T) {
	needNode(t)
	for _, lib := range nodeLibs {
		for _, mode := range nodeModes {
			t.Run(lib+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, signal.Config{}, socketio.Config{})
				p := startNode(t)
				for _, id := range []string{"a", "b", "c", "d"} {
					p.connect(id, lib, e, mode.transports, nil)
				}
				for _, id := range []string{"a", "b", "c", "d"} {
					ev := p.expect(id, "@connect")
					if mode.transports != nil && ev.Transport != mode.transports[0] {
						t.Fatalf("%s connected over %s", id, ev.Transport)
					}
				}
				if mode.transports == nil { // polling, then the upgrade
					for _, id := range []string{"a", "b"} {
						if tr := p.upgraded(id); tr != "websocket" {
							t.Fatalf("%s upgraded to %q, want websocket", id, tr)
						}
					}
				}
				room := `"room ` + lib + " " + mode.name + `"`
				p.emit("a", socketio.EventCreateOrJoin, json.RawMessage(room))
				p.expect("a", socketio.EventCreated, room)
				p.emit("b", socketio.EventCreateOrJoin, json.RawMessage(room))
				p.expect("b", socketio.EventJoined, room)
				p.expect("b", socketio.EventReady, room)
				p.expect("a", socketio.EventJoin, room)
				p.expect("a", socketio.EventReady, room)
				p.emit("c", socketio.EventCreateOrJoin, json.RawMessage(room))
				p.expect("c", socketio.EventFull, room)
				p.emit("d", socketio.EventCreateOrJoin, json.RawMessage(`"elsewhere"`))
				p.expect("d", socketio.EventCreated, `"elsewhere"`)

				offer := `{"type":"offer","sdp":"v=0\r\n","z":[1,2.5,{"y":null,"b":true}]}`
				p.emit("a", socketio.EventMessage, json.RawMessage(offer))
				p.expect("b", socketio.EventMessage, offer)
				p.emit("b", socketio.EventMessage, "got user media")
				p.expect("a", socketio.EventMessage, `"got user media"`)
				// Whatever reached c or d before b had the message would come
				// before the answers to what they send now.
				p.emit("c", socketio.EventBye)
				p.expect("c", socketio.EventError)
				p.emit("d", socketio.EventBye)
				p.emit("d", socketio.EventMessage, "anyone?")
				p.expect("d", socketio.EventError)

				p.emit("b", socketio.EventBye)
				p.expect("a", socketio.EventMessage, `"bye"`)
				p.emit("b", socketio.EventCreateOrJoin, json.RawMessage(room))
				p.expect("b", socketio.EventJoined, room)
				p.expect("b", socketio.EventReady, room)
				p.expect("a", socketio.EventJoin, room)
				p.expect("a", socketio.EventReady, room)
				p.emit("a", socketio.EventMessage, "after the rejoin")
				p.expect("b", socketio.EventMessage, `"after the rejoin"`)

				if mode.transports != nil {
					for _, id := range []string{"a", "b"} {
						if tr := p.upgradedNow(id); tr != "" {
							t.Fatalf("%s upgraded to %s with transports %v", id, tr, mode.transports)
						}
					}
				}
				p.send(map[string]any{"op": "close", "id": "b"})
				p.expect("a", socketio.EventMessage, `"bye"`)
				for _, id := range []string{"a", "c", "d"} {
					for _, ev := range p.seen(id) {
						if !ignored[ev.Ev] {
							t.Errorf("%s got %s %s", id, ev.Ev, ev.Args)
						}
					}
				}
			})
		}
	}
}

// idleFor is how long TestNodeIdle leaves its clients idle.
const idleFor = 20 * time.Second

// TestNodeIdle: every client and transport stays connected through 20 s
// of silence with short pings (every second), then still relays both
// ways.
func TestNodeIdle(t *testing.T) {
	needNode(t)
	t.Parallel()
	p := startNode(t)
	e := newEnv(t, signal.Config{}, socketio.Config{PingInterval: time.Second, PingTimeout: 5 * time.Second})
	type pair struct{ a, b, room string }
	var pairs []pair
	for _, lib := range nodeLibs {
		for _, mode := range nodeModes {
			name := lib + "-" + mode.name
			pr := pair{a: name + "-a", b: name + "-b", room: `"idle ` + name + `"`}
			pairs = append(pairs, pr)
			p.connect(pr.a, lib, e, mode.transports, nil)
			p.connect(pr.b, lib, e, mode.transports, nil)
		}
	}
	for _, pr := range pairs {
		p.expect(pr.a, "@connect")
		p.expect(pr.b, "@connect")
		p.emit(pr.a, socketio.EventCreateOrJoin, json.RawMessage(pr.room))
		p.expect(pr.a, socketio.EventCreated, pr.room)
		p.emit(pr.b, socketio.EventCreateOrJoin, json.RawMessage(pr.room))
		p.expect(pr.b, socketio.EventJoined, pr.room)
		p.expect(pr.b, socketio.EventReady, pr.room)
		p.expect(pr.a, socketio.EventJoin, pr.room)
		p.expect(pr.a, socketio.EventReady, pr.room)
	}
	// Idle: nothing but pings for idleFor; a disconnect fails at once.
	idle := time.NewTimer(idleFor)
	defer idle.Stop()
	for done := false; !done; {
		p.mu.Lock()
		changed := p.changed
		for id, q := range p.queues {
			for _, ev := range q {
				if !ignored[ev.Ev] {
					p.mu.Unlock()
					t.Fatalf("%s while idle: %s %s", id, ev.Ev, ev.Args)
				}
			}
		}
		p.mu.Unlock()
		select {
		case <-changed:
		case <-idle.C:
			done = true
		}
	}
	for _, pr := range pairs {
		p.emit(pr.a, socketio.EventMessage, "still there?")
		p.expect(pr.b, socketio.EventMessage, `"still there?"`)
		p.emit(pr.b, socketio.EventMessage, "yes")
		p.expect(pr.a, socketio.EventMessage, `"yes"`)
	}
}

// TestNodeMixed: a Socket.IO client of each version and a protocol v1
// client share a room and exchange messages both ways.
func TestNodeMixed(t *testing.T) {
	needNode(t)
	t.Parallel()
	p := startNode(t)
	e := newEnv(t, signal.Config{}, socketio.Config{})
	for _, lib := range nodeLibs {
		room := `"mixed ` + lib + `"`
		p.connect(lib, lib, e, nil, nil)
		p.expect(lib, "@connect")
		p.emit(lib, socketio.EventCreateOrJoin, json.RawMessage(room))
		sid := p.expect(lib, socketio.EventCreated, room).arg(1)
		v := e.dialV1()
		v.send(`{"type":"join","room":` + room + `}`)
		if j := v.expect(signal.TypeJoined); len(j.Peers) != 1 || `"`+j.Peers[0]+`"` != sid {
			t.Fatalf("%s: v1 joined with peers %v, want [%s]", lib, j.Peers, sid)
		}
		p.expect(lib, socketio.EventJoin, room)
		p.expect(lib, socketio.EventReady, room)
		p.emit(lib, socketio.EventMessage, json.RawMessage(`{"type":"offer","sdp":"v=0\r\n","z":1}`))
		if m := v.expect(signal.TypeMessage); string(m.Data) != `{"type":"offer","sdp":"v=0\r\n","z":1}` || `"`+m.From+`"` != sid {
			t.Fatalf("%s: v1 got %s from %s", lib, m.Data, m.From)
		}
		v.send(`{"type":"message","data":{"type":"answer","sdp":"v=0\r\n","b":[true]}}`)
		p.expect(lib, socketio.EventMessage, `{"type":"answer","sdp":"v=0\r\n","b":[true]}`)
		v.send(`{"type":"leave"}`)
		p.expect(lib, socketio.EventMessage, `"bye"`)
		v.send(`{"type":"join","room":` + room + `}`)
		v.expect(signal.TypeJoined)
		p.expect(lib, socketio.EventJoin, room)
		p.expect(lib, socketio.EventReady, room)
		p.send(map[string]any{"op": "close", "id": lib})
		if pl := v.expect(signal.TypePeerLeft); `"`+pl.ID+`"` != sid {
			t.Fatalf("%s: peer-left %+v", lib, pl)
		}
	}
}

// TestNodeAuth: with an auth secret, each version passes its join token as
// it can (query string; 4.x also the auth payload), and one without a
// token is refused.
func TestNodeAuth(t *testing.T) {
	needNode(t)
	t.Parallel()
	secret := []byte("node secret")
	tok, err := signal.MintToken(secret, "*", "", 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p := startNode(t)
	e := newEnv(t, signal.Config{AuthSecret: secret}, socketio.Config{})
	clients := []struct {
		id, lib string
		opts    map[string]any
	}{
		{"sio1", "sio1", map[string]any{"query": map[string]string{"token": tok}}},
		{"sio2", "sio2", map[string]any{"query": map[string]string{"token": tok}}},
		{"sio4-query", "sio4", map[string]any{"query": map[string]string{"token": tok}}},
		{"sio4-auth", "sio4", map[string]any{"auth": map[string]string{"token": tok}}},
	}
	for _, c := range clients {
		p.connect(c.id, c.lib, e, nil, c.opts)
		p.expect(c.id, "@connect")
		room := `"auth ` + c.id + `"`
		p.emit(c.id, socketio.EventCreateOrJoin, json.RawMessage(room))
		p.expect(c.id, socketio.EventCreated, room)
	}
	p.connect("none", "sio4", e, nil, nil)
	p.expect("none", "@connect")
	p.emit("none", socketio.EventCreateOrJoin, "auth none")
	if ev := p.expect("none", socketio.EventError); !strings.Contains(ev.arg(0), `"unauthorized"`) {
		t.Fatalf("without a token: %s", ev.arg(0))
	}
}

// TestNodeRefused: past the per-address connection limit of protocol v1,
// 4.x clients get connect_error and 1.x/2.x clients error, with the
// reason.
func TestNodeRefused(t *testing.T) {
	needNode(t)
	t.Parallel()
	p := startNode(t)
	e := newEnv(t, signal.Config{MaxConnsPerIP: 1}, socketio.Config{})
	p.connect("first", "sio4", e, nil, nil)
	p.expect("first", "@connect")
	for _, lib := range nodeLibs {
		p.connect(lib, lib, e, nil, map[string]any{"reconnection": false})
		var ev nodeEvent
		if lib == "sio4" {
			ev = p.expect(lib, "@connect_error")
		} else {
			ev = p.next(lib)
			if ev.Ev != "@error" {
				t.Fatalf("%s: %s %s, want @error", lib, ev.Ev, ev.Args)
			}
		}
		if !strings.Contains(ev.arg(0), "too-many-connections") && !strings.Contains(ev.arg(0), "too many connections") {
			t.Fatalf("%s refused with %s", lib, ev.arg(0))
		}
	}
}
