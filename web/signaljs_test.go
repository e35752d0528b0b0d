package web_test

// signal.js behaviours that a call between two pages does not show: ICE
// candidates that arrive before the session description, send() to one
// member of three, and the resume token of a resumed seat. Each test
// here fails when signal.js is changed so that the behaviour is lost
// (no buffering; a send to the wrong member; the old token kept).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/web"
)

// withoutCandidates removes the candidate lines from an SDP, so that
// candidates travel only as trickled candidate messages.
func withoutCandidates(sdp string) string {
	var out []string
	for _, line := range strings.SplitAfter(sdp, "\n") {
		if !strings.HasPrefix(line, "a=candidate:") && !strings.HasPrefix(line, "a=end-of-candidates") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// gather sets desc as pc's local description and returns pc's ICE
// candidates once gathering is complete.
func gather(t *testing.T, ctx context.Context, pc *webrtc.PeerConnection, desc webrtc.SessionDescription) []webrtc.ICECandidateInit {
	t.Helper()
	var (
		mu    sync.Mutex
		cands []webrtc.ICECandidateInit
	)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			mu.Lock()
			cands = append(cands, c.ToJSON())
			mu.Unlock()
		}
	})
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("gathering ICE candidates: ", ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cands) == 0 {
		t.Fatal("pion gathered no ICE candidate")
	}
	return cands
}

// recvType returns the next message of type typ, skipping the others.
func recvType(t *testing.T, ctx context.Context, c *signal.Client, typ string) *signal.Message {
	t.Helper()
	m, err := c.RecvType(ctx, typ)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	return m
}

// remoteCandidate is the remote end of a connection's selected candidate pair.
type remoteCandidate struct {
	Address string
	Port    int
	Type    string
}

// selectedRemote returns the remote candidate of the selected pair of the
// page's connection to member id.
func (p *page) selectedRemote(id string) remoteCandidate {
	p.t.Helper()
	return evaluate[remoteCandidate](p, fmt.Sprintf(`(async () => {
		const r = await window.rendezvous.client.peers.get(%s).pc.getStats();
		let pair = null;
		r.forEach(x => { if (x.type === "transport" && x.selectedCandidatePairId) pair = r.get(x.selectedCandidatePairId); });
		const c = pair && r.get(pair.remoteCandidateId);
		return c ? {Address: c.address, Port: c.port, Type: c.candidateType} : {};
	})()`, jsString(id)))
}

// TestCandidatesBeforeDescription: a Go member (pion) sends its ICE
// candidates before its offer, or before its answer, and never uses the
// page's candidates, so that the page can only reach it through the
// candidates that arrived early. The page keeps them until it has set the
// remote description, then adds them: the call connects, over the Go
// member's host candidate.
func TestCandidatesBeforeDescription(t *testing.T) {
	srv := newServer(t)
	for _, c := range []struct {
		name, room string
		offer      bool // the Go member offers (it joins second); else the page does
	}{
		{name: "before the offer", room: "early-offer", offer: true},
		{name: "before the answer", room: "early-answer", offer: false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			p := openPage(t, "page", srv.HTTP.URL+"/?debug")
			if c.offer {
				p.join(c.room, "Page", dataOnly)
				p.joined()
			}
			g, err := signal.Dial(ctx, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = g.Close() })
			if _, err := g.Join(ctx, c.room, &signal.JoinOptions{ID: "go"}); err != nil {
				t.Fatal(err)
			}
			var pageID string
			if c.offer {
				pageID = evaluate[string](p, `window.rendezvous.client.id`)
			} else {
				p.join(c.room, "Page", dataOnly)
				pageID = p.joined()
			}

			pc, err := botAPI(t).NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pc.Close() })
			var desc webrtc.SessionDescription
			if c.offer {
				if _, err := pc.CreateDataChannel("rendezvous", nil); err != nil {
					t.Fatal(err)
				}
				desc, err = pc.CreateOffer(nil)
			} else {
				offer := recvType(t, ctx, g, signal.TypeOffer)
				err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: withoutCandidates(offer.SDP)})
				if err == nil {
					desc, err = pc.CreateAnswer(nil)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			cands := gather(t, ctx, pc, desc)
			for _, cand := range cands {
				raw, err := json.Marshal(cand)
				if err != nil {
					t.Fatal(err)
				}
				if err := g.Send(&signal.Message{Type: signal.TypeCandidate, To: pageID, Candidate: raw}); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.Send(&signal.Message{Type: desc.Type.String(), To: pageID, SDP: withoutCandidates(desc.SDP)}); err != nil {
				t.Fatal(err)
			}
			if c.offer {
				answer := recvType(t, ctx, g, signal.TypeAnswer)
				if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: withoutCandidates(answer.SDP)}); err != nil {
					t.Fatal(err)
				}
			}
			// The page's candidates are left unread: only the page's checks,
			// to the Go member's candidates, can connect the call.

			p.waitConnected("go")
			order := evaluate[struct{ Candidate, Description int }](p, fmt.Sprintf(`(() => { const tr = window.rendezvous.trace;
				return {Candidate: tr.findIndex(l => l.includes("← candidate from go")), Description: tr.findIndex(l => l.includes(%s))}; })()`,
				jsString("← "+desc.Type.String()+" from go")))
			if order.Candidate < 0 || order.Description < 0 || order.Candidate > order.Description {
				t.Errorf("the page's trace has the first candidate at %d and the %s at %d; want the candidate first", order.Candidate, desc.Type, order.Description)
			}
			got := p.selectedRemote("go")
			sentEarly := false
			for _, cand := range cands {
				f := strings.Fields(cand.Candidate) // candidate:foundation component protocol priority address port typ type
				if len(f) >= 8 && got.Address == f[4] && fmt.Sprint(got.Port) == f[5] && got.Type == f[7] {
					sentEarly = true
				}
			}
			if !sentEarly || got.Type != "host" {
				t.Errorf("the page connects to the Go member at %+v, want one of the host candidates it sent early: %+v", got, cands)
			}
		})
	}
}

// TestSendTo: in a room of three, send(data, id) reaches the member id
// and no one else, whichever of the two it is; send(data) reaches both.
func TestSendTo(t *testing.T) {
	srv := newServer(t)
	names := []string{"Ann", "Ben", "Cat"}
	pages := make([]*page, len(names))
	ids := make([]string, len(names))
	for i, n := range names {
		pages[i] = openPage(t, n, srv.HTTP.URL+"/?capacity=3")
		pages[i].join("three", n, dataOnly)
		ids[i] = pages[i].joined()
	}
	for _, p := range pages {
		p.waitFor("both data channels open", `(() => { const ps = [...window.rendezvous.client.peers.values()];
			return ps.length === 2 && ps.every(p => p.channel && p.channel.readyState === "open"); })()`)
		p.exec(`(() => { window.sendTo = [];
			window.rendezvous.client.on("message", ({id, data}) => { if (String(data).startsWith("sendTo ")) window.sendTo.push(id + " " + data); });
			})()`)
	}

	// Ann sends to each member in turn, in the order of her peer map (a
	// send to the first or the last member by mistake shows either way),
	// then to all. Each data channel keeps order, so a message that went
	// to the wrong member arrives before the one to all.
	counts := evaluate[[]int](pages[0], `(() => { const c = window.rendezvous.client;
		const n = [...c.peers.keys()].map(id => c.send("sendTo for " + id, id));
		n.push(c.send("sendTo all"));
		return n; })()`)
	if fmt.Sprint(counts) != "[1 1 2]" {
		t.Errorf("send returned %v, want [1 1 2]", counts)
	}
	for i := 1; i < len(pages); i++ {
		p := pages[i]
		p.waitFor("the message to all", `window.sendTo.some(m => m.endsWith(" sendTo all"))`)
		got := evaluate[[]string](p, `window.sendTo`)
		want := []string{ids[0] + " sendTo for " + ids[i], ids[0] + " sendTo all"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s received %q, want %q", p.name, got, want)
		}
	}
}

// scriptedServer serves the browser client's files and hands each
// WebSocket opened at /ws to the test, which plays the server by hand.
type scriptedServer struct {
	*httptest.Server
	conns chan *scriptedConn

	mu     sync.Mutex
	closed bool // guarded by mu: conns takes no more
}

// acceptCreated takes the page's next connection, checks that its first
// message joins room, and answers created with id and resume token-1.
func (s *scriptedServer) acceptCreated(t *testing.T, room, id string) *scriptedConn {
	t.Helper()
	c := s.accept(t)
	join := c.recv(t)
	if join["type"] != "join" || join["room"] != room {
		t.Fatalf("first message %v, want a join of room %s", join, room)
	}
	c.send(t, map[string]any{"type": "created", "ref": join["ref"], "room": room, "id": id,
		"capacity": 2, "iceServers": []any{}, "resume": "token-1"})
	return c
}

// scriptedConn is one WebSocket of a scriptedServer.
type scriptedConn struct {
	ws *websocket.Conn
	in chan map[string]any // the client's messages; closed when it ends
}

func newScriptedServer(t *testing.T) *scriptedServer {
	t.Helper()
	s := &scriptedServer{conns: make(chan *scriptedConn, 16)}
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(web.FS()))
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &scriptedConn{ws: ws, in: make(chan map[string]any, 64)}
		go c.read()
		// The server's Close does not wait for this handler (the
		// connection is hijacked), so the hand-over is guarded.
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.closed {
			select {
			case s.conns <- c:
				return
			default: // the test holds too many already
			}
		}
		_ = ws.Close()
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.Close()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		for {
			select {
			case c := <-s.conns:
				_ = c.ws.Close()
			default:
				return
			}
		}
	})
	return s
}

func (c *scriptedConn) read() {
	defer close(c.in)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			c.in <- m
		}
	}
}

// accept returns the next WebSocket the page opens.
func (s *scriptedServer) accept(t *testing.T) *scriptedConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { _ = c.ws.Close() })
		return c
	case <-ctx.Done():
		t.Fatal("the page opened no WebSocket")
		return nil
	}
}

// recv returns the client's next message.
func (c *scriptedConn) recv(t *testing.T) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	select {
	case m, ok := <-c.in:
		if !ok {
			t.Fatal("the WebSocket closed before the client's message")
		}
		return m
	case <-ctx.Done():
		t.Fatal("the client sent nothing")
		return nil
	}
}

func (c *scriptedConn) send(t *testing.T, m map[string]any) {
	t.Helper()
	if err := c.ws.WriteJSON(m); err != nil {
		t.Fatal(err)
	}
}

// drop closes the TCP connection without a close frame, as a network
// failure does.
func (c *scriptedConn) drop() { _ = c.ws.NetConn().Close() }

// TestResumeWithNewToken: a server that gives a new resume token with
// every resumed seat (and takes the old one back) is resumed twice in a
// row: each resume sends the token of the latest created or joined, and
// the frames received on the dropped socket.
func TestResumeWithNewToken(t *testing.T) {
	srv := newScriptedServer(t)
	p := openPage(t, "page", srv.URL+"/")
	p.join("rotation", "Rita", dataOnly)
	c := srv.acceptCreated(t, "rotation", "rita")
	p.joined()

	for i := 1; i <= 2; i++ {
		c.drop()
		c = srv.accept(t)
		join := c.recv(t)
		want := fmt.Sprintf("token-%d", i)
		if join["type"] != "join" || join["resume"] != want || join["received"] != float64(1) {
			t.Errorf("resume %d: %v, want a join with resume %s (from the latest created/joined) and received 1", i, join, want)
		}
		c.send(t, map[string]any{"type": "joined", "ref": join["ref"], "room": "rotation", "id": "rita",
			"capacity": 2, "peers": []any{}, "iceServers": []any{}, "resume": fmt.Sprintf("token-%d", i+1), "resumed": true})
		p.waitEvent("resumed", fmt.Sprintf(`window.rendezvous.events.filter(e => e.type === "resumed").length === %d`, i))
	}
	if token := evaluate[string](p, `window.rendezvous.client.resumeToken`); token != "token-3" {
		t.Errorf("client.resumeToken = %q after two resumes, want token-3", token)
	}
	p.noEvents("seatlost", "disconnected", "error")
}
