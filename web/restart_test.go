package web_test

// Calls outlive the signaling server: the server shuts down (members get
// peer-left "shutdown" and a close 1001) and a new one starts on the same
// address 3 s later. The calls go on meanwhile, and the members join the
// new server under their old ids, keeping their RTCPeerConnections.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/web"
)

// downtime is how long the server stays down in the restart tests.
const downtime = 3 * time.Second

// restartableServer is a signaling server serving the web client on a
// fixed 127.0.0.1 address, which can be stopped and started again there.
type restartableServer struct {
	t      testing.TB
	addr   string
	srv    *signal.Server
	hs     *http.Server
	served chan struct{}
}

// startRestartable starts a server on a random port of 127.0.0.1; it is
// stopped when the test ends.
func startRestartable(t testing.TB) *restartableServer {
	t.Helper()
	r := &restartableServer{t: t}
	r.start("127.0.0.1:0")
	t.Cleanup(r.stop)
	return r
}

func (r *restartableServer) start(addr string) {
	r.t.Helper()
	var ln net.Listener
	deadline := time.Now().Add(waitTimeout)
	for {
		var err error
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // the old listener's port is not free yet
	}
	r.addr = ln.Addr().String()
	r.srv = signal.NewServer(signal.Config{Files: web.FS(), ClientLog: true, Logger: slog.New(slog.DiscardHandler)})
	r.hs = r.srv.HTTPServer()
	r.served = make(chan struct{})
	go func(hs *http.Server, ln net.Listener, done chan struct{}) {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.t.Errorf("serve: %v", err)
		}
	}(r.hs, r.srv.Listener(ln), r.served)
}

// stop shuts the server down as on SIGTERM (cmd/rendezvous: Shutdown,
// then the HTTP server) and frees its port.
func (r *restartableServer) stop() {
	if r.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
	_ = r.hs.Close()
	<-r.served
	r.srv = nil
}

func (r *restartableServer) httpURL() string { return "http://" + r.addr }
func (r *restartableServer) wsURL() string   { return "ws://" + r.addr + "/ws" }

// watchRestart records, in the page, the client's events of a restart and
// the RTCPeerConnection and descriptions of every member, and counts the
// RTCPeerConnections created from now on.
func (p *page) watchRestart() {
	p.t.Helper()
	p.exec(`(() => {
		const c = window.rendezvous.client;
		const w = window.__restart = { events: [], pcs: new Map(), created: 0 };
		for (const type of ["serverrestart", "reconnecting", "reconnected", "resumed", "seatlost", "peerleft", "peerjoined", "peerback", "disconnected", "joined"]) {
			c.on(type, (d) => w.events.push({ type, ...JSON.parse(JSON.stringify(d)) }));
		}
		for (const [id, peer] of c.peers) {
			w.pcs.set(id, { pc: peer.pc, local: peer.pc.localDescription.sdp, remote: peer.pc.remoteDescription.sdp });
		}
		const Orig = window.RTCPeerConnection;
		window.RTCPeerConnection = class extends Orig {
			constructor(...args) { super(...args); w.created++; }
		};
	})()`)
}

// restartEvents returns the types of the events recorded since watchRestart.
func (p *page) restartEvents() string {
	p.t.Helper()
	return evaluate[string](p, `window.__restart.events.map(e => e.type + (e.reason ? "(" + e.reason + ")" : "")).join(" ")`)
}

// checkKept checks that the page still has the RTCPeerConnection to
// member id it had at watchRestart, with the same descriptions (no
// renegotiation), and created no other.
func (p *page) checkKept(t *testing.T, id string) {
	t.Helper()
	got := evaluate[string](p, fmt.Sprintf(`(() => {
		const w = window.__restart, c = window.rendezvous.client;
		const was = w.pcs.get(%[1]s), peer = c.peers.get(%[1]s);
		if (!peer) return "no peer";
		if (peer.pc !== was.pc) return "a new RTCPeerConnection";
		if (peer.pc.localDescription.sdp !== was.local || peer.pc.remoteDescription.sdp !== was.remote) return "renegotiated";
		if (w.created) return w.created + " RTCPeerConnections created";
		return "kept " + peer.pc.connectionState;
	})()`, jsString(id)))
	if got != "kept connected" {
		t.Errorf("%s: the connection to %s: %s, want kept connected (events: %s)", p.name, id, got, p.restartEvents())
	}
}

// waitServerGone waits until the page's client has seen the server go
// away and is reconnecting, the call going on.
func (p *page) waitServerGone() {
	p.t.Helper()
	p.waitFor("serverrestart and reconnecting", `window.__restart.events.some(e => e.type === "serverrestart") && window.rendezvous.client.state === "reconnecting"`)
	// The page tells the truth: the call goes on.
	if msg := p.waitNotice("reconnecting"); !strings.Contains(msg, "The server restarted; your call continues") {
		p.t.Errorf("%s: notice %q while the server is down, want that the call continues", p.name, msg)
	}
}

// waitBackWith waits until the page's client is in the room again under
// id, with member other back too (in the room it rejoined, or back after
// it).
func (p *page) waitBackWith(id, other string) {
	p.t.Helper()
	p.waitFor("the rejoin under the same id", fmt.Sprintf(`(() => {
		const c = window.rendezvous.client, ev = window.__restart.events;
		if (c.state !== "joined" || c.id !== %[1]s) return false;
		return ev.some(e => e.type === "reconnected" && e.peers.includes(%[2]s)) || ev.some(e => e.type === "peerback" && e.id === %[2]s);
	})()`, jsString(id), jsString(other)))
	p.waitFor("the page to say it is back in the call", `document.getElementById("status").textContent.startsWith("In call")`)
}

// waitMoreFrames waits until more video frames than now are decoded from
// member id.
func (p *page) waitMoreFrames(id string, more int) {
	p.t.Helper()
	n := p.framesDecoded(id)
	p.waitFor(fmt.Sprintf("%d more video frames from %s (now %d)", more, id, n), framesJS(id)+fmt.Sprintf(`.then(n => n > %d)`, n+more))
}

// TestCallOutlivesServer: two pages in a call; the server shuts down and
// a new one starts on the same port 3 s later. Video keeps decoding both
// ways while the server is down and after; both pages are back in the
// room under their ids (a message relayed through the new server reaches
// each from the other) with the same RTCPeerConnections, not renegotiated;
// nobody saw a peerleft.
func TestCallOutlivesServer(t *testing.T) {
	start := time.Now()
	srv := startRestartable(t)
	a := openPage(t, "a", srv.httpURL()+"/")
	b := openPage(t, "b", srv.httpURL()+"/")
	idA, idB := joinCall("restart", a, "Alice", withMedia, b, "Bob", withMedia)
	a.waitVideo(idB)
	b.waitVideo(idA)
	a.watchRestart()
	b.watchRestart()
	t.Logf("call up after %s", time.Since(start).Round(time.Millisecond))

	stopAt := time.Now()
	srv.stop()
	a.waitServerGone()
	b.waitServerGone()
	// The call does not need the server.
	a.waitMoreFrames(idB, 10)
	b.waitMoreFrames(idA, 10)
	if wait := downtime - time.Since(stopAt); wait > 0 {
		time.Sleep(wait) // the server stays down this long: the scenario, not a synchronisation
	}
	srv.start(srv.addr)
	restartAt := time.Now()
	a.waitBackWith(idA, idB)
	b.waitBackWith(idB, idA)
	t.Logf("both back in the room %s after the new server started", time.Since(restartAt).Round(time.Millisecond))

	a.waitMoreFrames(idB, 10)
	b.waitMoreFrames(idA, 10)
	a.checkKept(t, idB)
	b.checkKept(t, idA)
	for _, p := range []*page{a, b} {
		ev := p.restartEvents()
		if strings.Contains(ev, "peerleft") || strings.Contains(ev, "seatlost") || strings.Contains(ev, "disconnected") {
			t.Errorf("%s: events %s", p.name, ev)
		}
		t.Logf("%s: %s", p.name, ev)
	}

	// Both are members of the new server's room under their old ids.
	a.exec(`(() => { window.__relays = []; window.rendezvous.client.on("relay", (d) => window.__relays.push(d)); })()`)
	b.exec(`(() => { window.__relays = []; window.rendezvous.client.on("relay", (d) => window.__relays.push(d)); })()`)
	a.exec(fmt.Sprintf(`window.rendezvous.client.relay("from a", %s)`, jsString(idB)))
	b.exec(fmt.Sprintf(`window.rendezvous.client.relay("from b", %s)`, jsString(idA)))
	b.waitFor("a's relay", fmt.Sprintf(`window.__relays.some(r => r.from === %s && r.data === "from a")`, jsString(idA)))
	a.waitFor("b's relay", fmt.Sprintf(`window.__relays.some(r => r.from === %s && r.data === "from b")`, jsString(idB)))
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// TestBotCallOutlivesServer: a page and a Go peer (package peer) in a
// call; the server shuts down and a new one starts on the same port 3 s
// later. The page keeps decoding the bot's video and the bot keeps
// receiving the page's, while the server is down and after; both are back
// in the room under their ids, with the same connections.
func TestBotCallOutlivesServer(t *testing.T) {
	start := time.Now()
	srv := startRestartable(t)
	bt := startBot(t, srv.wsURL(), "restart-bot")
	p := openPage(t, "page", srv.httpURL()+"/")
	p.join("restart-bot", "Pat", withMedia)
	id := p.joined()
	p.waitConnected("bot")
	p.waitVideo("bot")
	bt.waitVideo(t, id)
	p.watchRestart()
	botPC := bt.p.PeerConnection(id)
	if botPC == nil {
		t.Fatal("the bot has no connection to the page")
	}
	t.Logf("call up after %s", time.Since(start).Round(time.Millisecond))

	stopAt := time.Now()
	srv.stop()
	p.waitServerGone()
	p.waitMoreFrames("bot", 10)
	n := bt.videoPackets(id)
	waitGo(t, "the bot to receive more video while the server is down", func() bool { return bt.videoPackets(id) > n+10 })
	if wait := downtime - time.Since(stopAt); wait > 0 {
		time.Sleep(wait) // the server stays down this long: the scenario, not a synchronisation
	}
	srv.start(srv.addr)
	restartAt := time.Now()
	p.waitBackWith(id, "bot")
	t.Logf("both back in the room %s after the new server started", time.Since(restartAt).Round(time.Millisecond))

	p.waitMoreFrames("bot", 10)
	n = bt.videoPackets(id)
	waitGo(t, "the bot to receive more video after the restart", func() bool { return bt.videoPackets(id) > n+10 })
	p.checkKept(t, "bot")
	if got := bt.p.PeerConnection(id); got != botPC {
		t.Errorf("the bot's connection to the page was replaced")
	}
	if got := bt.p.ID(); got != "bot" {
		t.Errorf("the bot is %q after the restart, want bot", got)
	}
	ev := p.restartEvents()
	if strings.Contains(ev, "peerleft") || strings.Contains(ev, "seatlost") || strings.Contains(ev, "disconnected") {
		t.Errorf("page: events %s", ev)
	}
	t.Logf("page: %s", ev)
	// The bot is a member of the new server's room: a relay to it is
	// accepted (the server answers unknown-peer otherwise).
	p.exec(`(() => { window.__errors = []; window.rendezvous.client.on("error", (e) => window.__errors.push(e.code)); })()`)
	p.exec(`window.rendezvous.client.relay("ping", "bot")`)
	p.exec(`window.rendezvous.client.relay("ping", "nobody")`)
	p.waitFor("the server's answer to the relay to nobody", `window.__errors.length > 0`)
	if errs := evaluate[string](p, `window.__errors.join(" ")`); errs != "unknown-peer" {
		t.Errorf("errors after relaying to the bot then to nobody: %q, want one unknown-peer (for nobody)", errs)
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}
