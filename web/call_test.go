package web_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestBrowserCall: two pages in one room connect, chat both ways and
// decode each other's (fake camera) video. A screenshot of the call is
// saved.
func TestBrowserCall(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/?room=standup")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")

	alice.viewport(1280, 800)
	alice.screenshot(t, "lobby.png")
	alice.join("standup", "Alice", withMedia)
	aliceID := alice.joined()
	bob.join("standup", "Bob", withMedia)
	bobID := bob.joined()

	alice.waitConnected(bobID)
	bob.waitConnected(aliceID)

	alice.sendChat("Hi Bob, can you hear me?")
	bob.waitChat("Alice", "Hi Bob, can you hear me?")
	bob.sendChat("Loud and clear — grüße!")
	alice.waitChat("Bob", "Loud and clear — grüße!")

	alice.waitVideo(bobID)
	bob.waitVideo(aliceID)

	// The tiles show names from the hello message and live stats.
	for _, c := range []struct {
		p    *page
		id   string
		name string
	}{{alice, bobID, "Bob"}, {bob, aliceID, "Alice"}} {
		c.p.waitFor("the tile to show "+c.name, fmt.Sprintf(`(() => {
			const t = document.querySelector('.tile.remote[data-peer=%s]');
			return t.querySelector(".name").textContent === %s && t.dataset.video === "on"
				&& t.dataset.pair === "host" && t.dataset.rtt !== "" && /RTT/.test(t.querySelector(".stats").textContent);
		})()`, jsString(c.id), jsString(c.name)))
	}

	t.Logf("bob (second to join): %v; candidate pair %s", bob.metrics(aliceID), bob.selectedPair(aliceID))

	// Let the stats show a bitrate (they need two samples).
	bob.waitFor("bitrates", `/Mb\/s|kb\/s/.test(document.querySelector(".tile.remote .stats").textContent)`)
	bob.viewport(1280, 800)
	bob.screenshot(t, "call.png")

	// The same call on a phone-sized screen.
	bob.viewport(390, 844)
	bob.screenshot(t, "call-phone.png")

	// Bob turns his camera and microphone off: Alice's tile shows his
	// initials and a muted microphone; camera back on, video flows again.
	bobTile := fmt.Sprintf(`document.querySelector('.tile.remote[data-peer=%s]')`, jsString(bobID))
	bob.click("#btn-cam")
	bob.click("#btn-mic")
	alice.waitFor("Bob's tile without video", bobTile+`.dataset.video === "off" && !`+bobTile+`.querySelector(".muted-mic").hidden`)
	bob.waitFor("Bob's camera released", `window.rendezvous.localStream.getVideoTracks().length === 0`)
	bob.click("#btn-cam")
	alice.waitFor("Bob's tile with video again", bobTile+`.dataset.video === "on"`)
	alice.waitVideo(bobID)
}

// TestRoomFullAndPeerLeft: a third page in a two-seat room is told the
// room is full; when one member leaves, the other is told, closes its
// RTCPeerConnection to it, and can take a new call, with the page that
// was turned away.
func TestRoomFullAndPeerLeft(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")
	carol := openPage(t, "carol", srv.HTTP.URL+"/")

	aliceID, bobID := joinCall("pair", alice, "Alice", withMedia, bob, "Bob", joinOpts{dataOnly: true})

	carol.join("pair", "Carol", withMedia)
	msg := carol.waitNotice("full")
	if !strings.Contains(msg, "full") {
		t.Errorf("carol's notice = %q, want it to say the room is full", msg)
	}
	carol.waitFor("carol back at the join form", `document.body.dataset.phase === "lobby" && !document.getElementById("join").disabled && window.rendezvous.client.state === "idle"`)
	// Carol's camera was released.
	carol.waitFor("the camera released", `window.rendezvous.localStream === null`)

	// Keep alice's RTCPeerConnection to bob, to see it closed.
	alice.exec(fmt.Sprintf(`(() => { window.pcToBob = window.rendezvous.client.peers.get(%s).pc; })()`, jsString(bobID)))
	bob.click("#leave")
	bob.waitFor("bob out of the call (Rejoin offered)", `document.body.dataset.phase === "left"`)
	msg = alice.waitNotice("peer-left")
	if !strings.Contains(msg, "Bob") || !strings.Contains(msg, "left") {
		t.Errorf("alice's notice = %q, want it to say Bob left", msg)
	}
	alice.waitFor("bob's tile removed", `document.querySelectorAll(".tile.remote").length === 0`)
	pc := evaluate[struct {
		Signaling, Connection string
		Kept                  bool
	}](alice, fmt.Sprintf(`({Signaling: window.pcToBob.signalingState, Connection: window.pcToBob.connectionState,
		Kept: window.rendezvous.client.peers.has(%s)})`, jsString(bobID)))
	if pc.Signaling != "closed" || pc.Connection != "closed" || pc.Kept {
		t.Errorf("alice's connection to bob after he left: signaling %s, connection %s, still in client.peers: %t; want it closed and gone",
			pc.Signaling, pc.Connection, pc.Kept)
	}

	carol.click("#join")
	carolID := carol.joined()
	alice.waitConnected(carolID)
	carol.waitConnected(aliceID)
	carol.waitVideo(aliceID)
	alice.waitVideo(carolID)
	carol.sendChat("Is this seat free?")
	alice.waitChat("Carol", "Is this seat free?")
}

// TestServerUnreachable: joining when the server is gone says so (and not
// that it refused the connection: /healthz does not answer either).
func TestServerUnreachable(t *testing.T) {
	srv := newServer(t)
	p := openPage(t, "page", srv.HTTP.URL+"/")
	srv.HTTP.Close()
	p.join("nobody-home", "Dave", joinOpts{dataOnly: true})
	msg := p.waitNotice("unreachable")
	if !strings.Contains(strings.ToLower(msg), "unreachable") || strings.Contains(msg, "refused") {
		t.Errorf("notice = %q, want it to say the server is unreachable", msg)
	}
	p.waitFor("the join form back", `document.body.dataset.phase === "lobby" && !document.getElementById("join").disabled`)
}

// TestCameraBlocked: when the camera is refused, the page says so and
// joins without it.
func TestCameraBlocked(t *testing.T) {
	srv := newServer(t)
	p := openPage(t, "page", srv.HTTP.URL+"/")
	p.exec(`(() => {
		navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
	})()`)
	p.join("blocked", "Erin", withMedia)
	msg := p.waitNotice("camera-blocked")
	if !strings.Contains(msg, "blocked") {
		t.Errorf("notice = %q, want it to say the camera is blocked", msg)
	}
	p.joined()
	p.waitFor("the local tile without video", `document.getElementById("tile-local").dataset.video === "off"`)
}

// TestMesh: in a three-seat room every page connects to both others (one
// RTCPeerConnection each), and a chat message reaches everyone.
func TestMesh(t *testing.T) {
	srv := newServer(t)
	names := []string{"Ann", "Ben", "Cat"}
	pages := make([]*page, len(names))
	ids := make([]string, len(names))
	for i, n := range names {
		pages[i] = openPage(t, n, srv.HTTP.URL+"/?capacity=3")
		// Ben joins without camera or microphone: data only.
		o := withMedia
		if n == "Ben" {
			o = joinOpts{dataOnly: true}
		}
		pages[i].join("trio", n, o)
		ids[i] = pages[i].joined()
	}
	for i, p := range pages {
		for j, id := range ids {
			if i != j {
				p.waitConnected(id)
			}
		}
	}
	pages[1].sendChat("hello both")
	pages[0].waitChat("Ben", "hello both")
	pages[2].waitChat("Ben", "hello both")
	// Ann and Cat see each other's video; Ben's tile shows his initials.
	pages[0].waitVideo(ids[2])
	pages[2].waitVideo(ids[0])
	pages[2].waitFor("Ben's tile without video", fmt.Sprintf(`document.querySelector('.tile.remote[data-peer=%s]').dataset.video === "off"`, jsString(ids[1])))
	pages[2].viewport(1280, 800)
	pages[2].waitFor("stats on both tiles", `[...document.querySelectorAll(".tile.remote .stats")].every(s => /RTT/.test(s.textContent))`)
	pages[2].screenshot(t, "mesh.png")
}
