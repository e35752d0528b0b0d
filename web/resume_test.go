package web_test

// Resume, leave, join tokens and the admin API, in a real browser. The
// page whose WebSocket is cut loads from a signaltest.CutProxy in front of
// the server, so that its WebSocket (/ws on the page's origin) goes
// through the proxy; the other page loads from the server itself. The
// pages join "data only": the signaling is the same as with media, and
// the calls are cheaper to run side by side. These tests run in parallel
// with each other.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

var dataOnly = joinOpts{dataOnly: true}

// event is an entry of the page's window.rendezvous.events.
type event struct {
	Type     string   `json:"type"`
	ID       string   `json:"id"`
	Reason   string   `json:"reason"`
	Attempt  int      `json:"attempt"`
	Resume   bool     `json:"resume"`
	Rejoined bool     `json:"rejoined"`
	Created  bool     `json:"created"`
	Code     any      `json:"code"` // a close code (number) or an error code (string)
	Error    string   `json:"error"`
	Peers    []string `json:"peers"`
}

func (e event) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// events returns the client events the page recorded, oldest first.
func (p *page) events() []event {
	p.t.Helper()
	return evaluate[[]event](p, `window.rendezvous.events`)
}

// eventsOf returns the recorded events of type typ.
func (p *page) eventsOf(typ string) []event {
	p.t.Helper()
	var out []event
	for _, e := range p.events() {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits until the page has recorded an event of type typ for
// which the JavaScript condition cond on e holds ("" for any).
func (p *page) waitEvent(typ, cond string) {
	p.t.Helper()
	if cond == "" {
		cond = "true"
	}
	p.waitFor(fmt.Sprintf("event %s where %s", typ, cond),
		fmt.Sprintf(`window.rendezvous.events.some(e => e.type === %s && (%s))`, jsString(typ), cond))
}

// noEvents fails the test if the page recorded an event of one of types.
func (p *page) noEvents(types ...string) {
	p.t.Helper()
	p.noEventsSince(0, types...)
}

// noEventsSince fails the test if the page recorded an event of one of
// types after the first from events.
func (p *page) noEventsSince(from int, types ...string) {
	p.t.Helper()
	evs := p.events()
	for _, e := range evs[min(from, len(evs)):] {
		for _, typ := range types {
			if e.Type == typ {
				p.t.Errorf("%s: unexpected event %v", p.name, e)
			}
		}
	}
}

// relayChat sends a chat message through the server (client.relay), as
// member id named name.
func (p *page) relayChat(id, name, text string) {
	p.t.Helper()
	p.exec(fmt.Sprintf(`(() => { window.rendezvous.client.relay({kind: "chat", id: %s, name: %s, text: %s}); })()`,
		jsString(id), jsString(name), jsString(text)))
}

// chatCount returns how many chat messages from others with text the page shows.
func (p *page) chatCount(text string) int {
	p.t.Helper()
	return evaluate[int](p, fmt.Sprintf(`[...document.querySelectorAll("#chat-log .msg.theirs .body")].filter(b => b.textContent === %s).length`, jsString(text)))
}

// state returns the client's state.
func (p *page) state() string {
	p.t.Helper()
	return evaluate[string](p, `window.rendezvous.client.state`)
}

// chatBothWays checks that chat goes both ways between a and b, over the
// data channel and through the server.
func chatBothWays(a, b *page, aName, bName, aID, bID, tag string) {
	a.t.Helper()
	a.sendChat(tag + ": data channel from " + aName)
	b.waitChat(aName, tag+": data channel from "+aName)
	b.sendChat(tag + ": data channel from " + bName)
	a.waitChat(bName, tag+": data channel from "+bName)
	a.relayChat(aID, aName, tag+": server from "+aName)
	b.waitChat(aName, tag+": server from "+aName)
	b.relayChat(bID, bName, tag+": server from "+bName)
	a.waitChat(bName, tag+": server from "+bName)
}

// TestResume: two pages in a call; one page's WebSocket is cut abruptly
// and the server stays unreachable for a few attempts. Meanwhile the other
// member relays a message through the server (held for the absent seat),
// the cut page relays one (queued in its outbox) and chats over the data
// channel, which does not need the server. The page resumes its seat;
// each relayed message arrives once; the other page never sees it leave;
// chat goes both ways afterwards. Two more cuts are resumed the same way.
func TestResume(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	px := signaltest.NewCutProxy(t, srv.HTTP.URL)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", px.URL+"/")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bob's WebSocket traffic:\n%s", px.Transcript())
		}
	})

	aliceID, bobID := joinCall("blip", alice, "Alice", dataOnly, bob, "Bob", dataOnly)
	chatBothWays(alice, bob, "Alice", "Bob", aliceID, bobID, "before")

	aliceMark := len(alice.events())
	px.SetMode(signaltest.Refuse)
	px.CutAll()
	if msg := bob.waitNotice("reconnecting"); !strings.Contains(msg, "Reconnecting") {
		t.Errorf("bob's notice = %q, want it to say it is reconnecting", msg)
	}
	bob.waitFor("bob reconnecting", `window.rendezvous.client.state === "reconnecting" && document.getElementById("status").dataset.state === "reconnecting"`)
	alice.relayChat(aliceID, "Alice", "held by the server")
	bob.relayChat(bobID, "Bob", "queued while away")
	bob.sendChat("data channel while away")
	alice.waitChat("Bob", "data channel while away")
	bob.waitEvent("reconnecting", "e.attempt >= 3") // refused twice, with backoff
	bob.screenshot(t, "reconnecting.png")
	if s := bob.state(); s != "reconnecting" {
		t.Fatalf("bob's state = %q while the server is unreachable, want reconnecting", s)
	}

	px.SetMode(signaltest.Forward)
	bob.waitEvent("resumed", "")
	if msg := bob.waitNotice("reconnected"); !strings.Contains(msg, "Reconnected") {
		t.Errorf("bob's notice = %q, want it to say reconnected", msg)
	}
	bob.waitChat("Alice", "held by the server")
	alice.waitChat("Bob", "queued while away")
	chatBothWays(alice, bob, "Alice", "Bob", aliceID, bobID, "after")

	// Again and again: a resumed socket is resumed like the first (its
	// frames are counted from its own start).
	for i := 2; i <= 3; i++ {
		px.CutAll()
		bob.waitEvent("resumed", fmt.Sprintf(`window.rendezvous.events.filter(e => e.type === "resumed").length >= %d`, i))
		text := fmt.Sprintf("after resume %d", i)
		alice.relayChat(aliceID, "Alice", text)
		bob.waitChat("Alice", text)
		bob.relayChat(bobID, "Bob", text)
		alice.waitChat("Bob", text)
	}

	if id := evaluate[string](bob, `window.rendezvous.client.id`); id != bobID {
		t.Errorf("bob's id after the resume = %q, want %q", id, bobID)
	}
	for _, c := range []struct {
		p    *page
		text string
	}{{bob, "held by the server"}, {alice, "queued while away"}} {
		if n := c.p.chatCount(c.text); n != 1 {
			t.Errorf("%s shows %q %d times, want once", c.p.name, c.text, n)
		}
	}
	for _, f := range px.Forwarded(signaltest.Up, signal.TypeMessage) {
		if strings.Contains(string(f.Msg.Data), "queued while away") && f.Conn != 2 {
			t.Errorf("bob's queued message went out on WebSocket %d, want 2 (after the resume)", f.Conn)
		}
	}
	alice.waitConnected(bobID)
	bob.waitConnected(aliceID)
	alice.noEventsSince(aliceMark, "peerleft", "peerjoined", "reconnecting", "disconnected", "error")
	bob.noEvents("peerleft", "seatlost", "disconnected", "error")
	if n := len(bob.eventsOf("joined")); n != 1 {
		t.Errorf("bob: %d joined events, want 1 (a resumed member does not join anew)", n)
	}
	if n := len(bob.eventsOf("resumed")); n != 3 {
		t.Errorf("bob: %d resumed events, want 3", n)
	}
}

// offersSeen returns how many offers the page handled (its ?debug trace).
func (p *page) offersSeen() int {
	p.t.Helper()
	return evaluate[int](p, `window.rendezvous.trace.filter(l => l.includes("← offer from")).length`)
}

// TestResumeMidNegotiation drops a page's WebSocket in the middle of
// negotiation, after the offer and before the answer and candidates, and
// the call still connects, with no signal lost and none twice:
//
//   - the answerer's socket is cut right after the offer reached it (the
//     offer and the end of the connection arrive together): it answers
//     while disconnected, and the answer and its candidates wait in its
//     outbox until the resume;
//   - the answerer's socket is cut with the offer on it (lost on the
//     network): the server re-sends it on resume, because the page tells
//     it how many frames it received;
//   - the same after a refused join on the same socket: the server numbers
//     frames from the socket's start, not from created, and so does the
//     page;
//   - the newcomer's socket is cut right after its offer went out: the
//     answer and the answerer's candidates wait at the server, its own
//     candidates in its outbox.
func TestResumeMidNegotiation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		who          string // the page that is cut: "alice" answers, "bob" offers
		rule         signaltest.CutRule
		refusedFirst bool // alice's first join on her socket is refused
	}{
		{name: "answerer, offer delivered", who: "alice", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeOffer, Nth: 1}},
		{name: "answerer, offer lost", who: "alice", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeOffer, Nth: 1, Before: true}},
		{name: "answerer, offer delivered, frames before created", who: "alice", rule: signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeOffer, Nth: 1}, refusedFirst: true},
		{name: "newcomer, after its offer", who: "bob", rule: signaltest.CutRule{Dir: signaltest.Up, Type: signal.TypeOffer, Nth: 1}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t)
			px := signaltest.NewCutProxy(t, srv.HTTP.URL)
			px.Arm(tt.rule)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("%s's WebSocket traffic (%v):\n%s", tt.who, tt.rule, px.Transcript())
				}
			})
			origin := func(who string) string {
				if who == tt.who {
					return px.URL
				}
				return srv.HTTP.URL
			}
			alice := openPage(t, "alice", origin("alice")+"/?debug")
			bob := openPage(t, "bob", origin("bob")+"/?debug")
			cut, other := alice, bob
			if tt.who == "bob" {
				cut, other = bob, alice
			}
			marks := map[*page]int{}

			if tt.refusedFirst {
				code := evaluate[string](alice, `window.rendezvous.client.join("negotiation", {capacity: 1000}).then(() => "joined", err => err.code)`)
				if code != "invalid-capacity" {
					t.Fatalf("alice's first join: %q, want invalid-capacity", code)
				}
			}
			marks[alice] = len(alice.events())
			alice.join("negotiation", "Alice", dataOnly)
			aliceID := alice.joined()
			bob.join("negotiation", "Bob", dataOnly)
			bobID := bob.joined()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := px.WaitCuts(ctx, 1); err != nil {
				t.Fatal(err)
			}
			cut.waitEvent("resumed", "")
			alice.waitConnected(bobID)
			bob.waitConnected(aliceID)
			chatBothWays(alice, bob, "Alice", "Bob", aliceID, bobID, "after")

			cut.noEventsSince(marks[cut], "seatlost", "peerleft", "disconnected", "error")
			other.noEventsSince(marks[other], "peerleft", "reconnecting", "disconnected", "error")
			if n := len(alice.eventsOf("peerjoined")); n != 1 {
				t.Errorf("alice: %d peerjoined events, want 1 (when bob joined)", n)
			}
			if n := len(cut.eventsOf("joined")); n != 1 {
				t.Errorf("%s: %d joined events, want 1", cut.name, n)
			}
			if n := alice.offersSeen(); n != 1 {
				t.Errorf("alice handled %d offers, want 1", n)
			}
			if n := px.Conns(); n != 2 {
				t.Errorf("%s opened %d WebSockets, want 2", cut.name, n)
			}
			// Where the answer went through the cut page's proxy, once.
			answerDir := signaltest.Up // alice's answer goes up
			if tt.who == "bob" {
				answerDir = signaltest.Down // to bob
			}
			answers := px.Forwarded(answerDir, signal.TypeAnswer)
			if len(answers) != 1 || answers[0].Conn != 2 {
				t.Errorf("the answer went %s through the proxy %d times (%+v), want once, on the WebSocket after the resume", answerDir, len(answers), answers)
			}
			if tt.rule.Before {
				// The server re-sent the offer lost with the connection.
				if offers := px.Forwarded(signaltest.Down, signal.TypeOffer); len(offers) != 1 || offers[0].Conn != 2 {
					t.Errorf("the offer went down through the proxy %d times (%+v), want once, after the resume", len(offers), offers)
				}
			}
		})
	}
}

// TestLeave: Leave sends leave, so the seat is free at once: the other
// member sees peer-left "left" (not a timeout after the resume window),
// the server's room has one member, and a third page gets the free seat.
// Leave works while reconnecting too (the page takes its seat back on a
// separate connection to leave it), and so does closing the tab.
func TestLeave(t *testing.T) {
	t.Parallel()
	const adminToken = "admin-token"
	// Any origin, and no Content-Security-Policy in bob's tab: bob's page,
	// loaded through the proxy, talks to the server directly at one point.
	srv := newServerWith(t, signal.Config{AdminToken: adminToken, AllowedOrigins: []string{"*"}})
	px := signaltest.NewCutProxy(t, srv.HTTP.URL)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPageWithoutCSP(t, "bob", px.URL+"/")
	aliceID, bobID := joinCall("leaving", alice, "Alice", dataOnly, bob, "Bob", dataOnly)

	// Bob's connection drops and the server stays out of reach through
	// the proxy; he leaves while reconnecting. The server is reachable
	// directly, where the page releases its seat.
	px.SetMode(signaltest.Refuse)
	px.CutAll()
	bob.waitEvent("reconnecting", "e.attempt >= 2")
	bob.exec(fmt.Sprintf(`(() => { window.rendezvous.client.url = %s; document.getElementById("leave").click(); })()`, jsString(srv.URL)))
	alice.waitEvent("peerleft", fmt.Sprintf(`e.id === %s && e.reason === "left"`, jsString(bobID)))
	bob.waitFor("bob out of the call (Rejoin offered)", `document.body.dataset.phase === "left" && window.rendezvous.client.state === "idle"`)
	bob.noEvents("resumed", "seatlost", "disconnected")

	bob.click("#rejoin")
	bobID = bob.joined()
	alice.waitConnected(bobID)
	bob.waitConnected(aliceID)
	left := time.Now()
	bob.click("#leave")
	alice.waitEvent("peerleft", fmt.Sprintf(`e.id === %s && e.reason === "left"`, jsString(bobID)))
	if msg := alice.waitNotice("peer-left"); !strings.Contains(msg, "Bob left the room") {
		t.Errorf("alice's notice = %q, want it to say Bob left the room", msg)
	}
	waitGo(t, "the server's room to have one member", func() bool {
		return roomMembers(t, srv, adminToken, "leaving") == 1
	})
	t.Logf("seat free %v after the click on Leave", time.Since(left).Round(time.Millisecond))
	bob.waitFor("bob out of the call (Rejoin offered)", `document.body.dataset.phase === "left" && window.rendezvous.client.state === "idle"`)

	carol := openPage(t, "carol", srv.HTTP.URL+"/")
	carol.join("leaving", "Carol", dataOnly)
	carolID := carol.joined()
	alice.waitConnected(carolID)
	carol.cancel() // closes the tab: pagehide closes the client, which leaves
	alice.waitEvent("peerleft", fmt.Sprintf(`e.id === %s && e.reason === "left"`, jsString(carolID)))
}

// roomMembers returns the number of members of room, from the admin API
// (0 when there is no such room).
func roomMembers(t testing.TB, srv *signaltest.Server, token, room string) int {
	t.Helper()
	status, body := adminDo(t, srv, token, http.MethodGet, "/api/rooms/"+room)
	if status == http.StatusNotFound {
		return 0
	}
	if status != http.StatusOK {
		t.Fatalf("GET /api/rooms/%s: %d %v", room, status, body)
	}
	n, _ := body["members"].(float64)
	return int(n)
}

func adminDo(t testing.TB, srv *signaltest.Server, token, method, path string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.HTTP.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestJoinToken: with a server that needs join tokens, the page passes
// ?token= to the server: a good token joins, a bad one or none shows the
// unauthorized notice.
func TestJoinToken(t *testing.T) {
	t.Parallel()
	secret := []byte("join token secret")
	srv := newServerWith(t, signal.Config{AuthSecret: secret})
	good, err := signal.MintToken(secret, "vip", "", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := signal.MintToken(secret, "another-room", "", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bad := good[:len(good)-4] + "AAAA" // the signature does not match

	alice := openPage(t, "alice", srv.HTTP.URL+"/?room=vip&token="+good)
	alice.join("vip", "Alice", dataOnly)
	alice.joined()

	for _, c := range []struct{ name, query string }{
		{"bad signature", "&token=" + bad},
		{"another room", "&token=" + other},
		{"no token", ""},
	} {
		p := openPage(t, c.name, srv.HTTP.URL+"/?room=vip"+c.query)
		p.join("vip", "Mallory", dataOnly)
		msg := p.waitNotice("unauthorized")
		if !strings.Contains(msg, "Not let in") {
			t.Errorf("%s: notice = %q, want it to say the page was not let in", c.name, msg)
		}
		p.waitFor("the join form back", `document.body.dataset.phase === "lobby" && !document.getElementById("join").disabled && window.rendezvous.client.state === "idle"`)
	}
}

// TestSeatLost: when the seat cannot be resumed (here the server keeps no
// seats: resume-failed), the page closes its peer connection, joins the
// room afresh, with its join token again, and the call is set up anew. The
// other member sees it leave and come back.
func TestSeatLost(t *testing.T) {
	t.Parallel()
	secret := []byte("join token secret")
	srv := newServerWith(t, signal.Config{AuthSecret: secret, ResumeWindow: -1})
	token, err := signal.MintToken(secret, "fragile", "", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	px := signaltest.NewCutProxy(t, srv.HTTP.URL)
	alice := openPage(t, "alice", srv.HTTP.URL+"/?token="+token)
	bob := openPage(t, "bob", px.URL+"/?token="+token)
	aliceID, bobID := joinCall("fragile", alice, "Alice", dataOnly, bob, "Bob", dataOnly)

	px.CutAll()
	bob.waitEvent("seatlost", `e.reason === "resume-failed"`)
	bob.waitEvent("joined", "e.rejoined")
	newID := evaluate[string](bob, `window.rendezvous.client.id`)
	if msg := bob.waitNotice("reconnected"); !strings.Contains(msg, "starting again") {
		t.Errorf("bob's notice = %q, want it to say the call starts again", msg)
	}
	alice.waitEvent("peerleft", fmt.Sprintf(`e.id === %s && e.reason === "disconnected"`, jsString(bobID)))
	alice.waitEvent("peerjoined", fmt.Sprintf(`e.id === %s`, jsString(newID)))
	alice.waitConnected(newID)
	bob.waitConnected(aliceID)
	chatBothWays(alice, bob, "Alice", "Bob", aliceID, newID, "again")
	bob.waitEvent("peerleft", fmt.Sprintf(`e.id === %s && e.reason === "seat-lost"`, jsString(aliceID)))
	bob.noEvents("resumed", "disconnected")
}

// TestRemoved: an operator kicks the page, then closes its room (admin
// API): each time the page says so, goes back to the join form and does
// not reconnect.
func TestRemoved(t *testing.T) {
	t.Parallel()
	const adminToken = "admin-token"
	srv := newServerWith(t, signal.Config{AdminToken: adminToken})
	p := openPage(t, "page", srv.HTTP.URL+"/")

	p.join("ops", "Olive", dataOnly)
	id := p.joined()
	if status, body := adminDo(t, srv, adminToken, http.MethodDelete, "/api/rooms/ops/peers/"+id); status != http.StatusOK {
		t.Fatalf("kick: %d %v", status, body)
	}
	if msg := p.waitNotice("kicked"); !strings.Contains(msg, "removed you") {
		t.Errorf("notice = %q, want it to say an operator removed the page", msg)
	}
	p.waitFor("the join form back", `document.body.dataset.phase === "lobby" && window.rendezvous.client.state === "idle"`)
	p.waitEvent("disconnected", "e.code === 1008") // the server closes a kicked connection

	p.click("#join")
	p.joined()
	if status, body := adminDo(t, srv, adminToken, http.MethodDelete, "/api/rooms/ops"); status != http.StatusOK {
		t.Fatalf("close the room: %d %v", status, body)
	}
	if msg := p.waitNotice("room-closed"); !strings.Contains(msg, "closed room") {
		t.Errorf("notice = %q, want it to say an operator closed the room", msg)
	}
	p.waitFor("the join form back", `document.body.dataset.phase === "lobby" && window.rendezvous.client.state === "idle"`)
	p.noEvents("reconnecting")
	if n := len(p.eventsOf("removed")); n != 2 {
		t.Errorf("%d removed events, want 2: %v", n, p.events())
	}
}

// TestConnectionLost: when the server stays out of reach, the page gives
// up (here with its resume window and reconnect timeout cut short): the
// seat is lost when the window passes, then the page says the connection
// is lost and goes back to the join form.
func TestConnectionLost(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	px := signaltest.NewCutProxy(t, srv.HTTP.URL)
	p := openPage(t, "page", px.URL+"/")
	p.exec(`(() => { Object.assign(window.rendezvous.client.options, {resumeWindow: 400, reconnectTimeout: 1500}); })()`)
	p.join("lonely", "Lou", dataOnly)
	p.joined()

	start := time.Now()
	px.SetMode(signaltest.Refuse)
	px.CutAll()
	p.waitNotice("reconnecting")
	p.waitEvent("seatlost", `e.reason === "window"`)
	if msg := p.waitNotice("disconnected"); !strings.Contains(msg, "Connection lost") {
		t.Errorf("notice = %q, want it to say the connection is lost", msg)
	}
	t.Logf("gave up after %v", time.Since(start).Round(time.Millisecond))
	p.waitFor("the join form back", `document.body.dataset.phase === "lobby" && window.rendezvous.client.state === "idle"`)
	p.waitEvent("disconnected", "e.wasJoined && e.code === 1006")
	attempts := evaluate[int](p, `Math.max(...window.rendezvous.events.filter(e => e.type === "reconnecting").map(e => e.attempt))`)
	if attempts < 3 {
		t.Errorf("%d attempts in 1.5 s, want at least 3", attempts)
	}
	p.noEvents("resumed", "joined-again")
}
