package web_test

import (
	"fmt"
	"strings"
	"testing"
)

// countGetUserMedia wraps navigator.mediaDevices.getUserMedia in the page
// to record every call, with the client's state at that moment, in
// window.gumCalls.
const countGetUserMedia = `(() => {
	const md = navigator.mediaDevices;
	const real = md.getUserMedia.bind(md);
	window.gumCalls = [];
	md.getUserMedia = (c) => { window.gumCalls.push(window.rendezvous.client.state); return real(c); };
})()`

// TestFullRoomOpensNoDevice: the page joins first and opens the camera
// and microphone only once in the room, so a page turned away from a full
// room never asked for a device. Once a seat is free, the same page joins
// and only then opens them, and its video reaches the other member.
func TestFullRoomOpensNoDevice(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")
	carol := openPage(t, "carol", srv.HTTP.URL+"/")
	carol.exec(countGetUserMedia)

	alice.join("two-seats", "Alice", withMedia)
	aliceID := alice.joined()
	bob.join("two-seats", "Bob", joinOpts{dataOnly: true})
	bob.joined()

	carol.join("two-seats", "Carol", withMedia)
	if msg := carol.waitNotice("full"); !strings.Contains(msg, "full") {
		t.Errorf("carol's notice = %q, want it to say the room is full", msg)
	}
	carol.waitFor("the join form back", `document.body.dataset.phase === "lobby" && !document.getElementById("join").disabled`)
	if n := evaluate[int](carol, `window.gumCalls.length`); n != 0 {
		t.Errorf("getUserMedia called %d times by a page turned away from a full room, want 0", n)
	}
	if evaluate[bool](carol, `window.rendezvous.localStream !== null || document.getElementById("local-video").srcObject !== null`) {
		t.Error("carol has a local stream after being turned away")
	}

	bob.click("#leave")
	carol.click("#join")
	carolID := carol.joined()
	carol.waitFor("the camera to open", `window.rendezvous.localStream !== null && window.rendezvous.localStream.getVideoTracks().length === 1`)
	if states := evaluate[[]string](carol, `window.gumCalls`); len(states) != 1 || states[0] != "joined" {
		t.Errorf("getUserMedia calls, with the client's state at each: %q; want one, once joined", states)
	}
	alice.waitConnected(carolID)
	alice.waitVideo(carolID)
	carol.waitVideo(aliceID)
}

// TestLeaveAndRejoin: after Leave the page says so and offers Rejoin,
// which takes a seat in the same room with the same name; the chat of the
// call that ended is marked as such, then cleared when the page joins
// again. "Join another room" goes back to the form.
func TestLeaveAndRejoin(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")
	alice.join("again", "Alice", joinOpts{dataOnly: true})
	aliceID := alice.joined()
	bob.join("again", "Bob", withMedia)
	bobID := bob.joined()
	bob.waitConnected(aliceID)
	alice.sendChat("before you go")
	bob.waitChat("Alice", "before you go")

	bob.click("#leave")
	bob.waitFor("the left state", `document.body.dataset.phase === "left" && window.rendezvous.client.state === "idle"`)
	st := evaluate[struct {
		Title, Focus, Chat, Ended string
		Form, Tiles, Rejoin       bool
	}](bob, `(() => {
		const shown = (sel) => { const e = document.querySelector(sel); return !!e && e.getClientRects().length > 0; };
		return {
			Title: document.getElementById("left-title").textContent,
			Focus: document.activeElement.id,
			Chat: document.getElementById("chat-title").textContent,
			Ended: (document.querySelector("#chat-log .ended") || {}).textContent || "",
			Form: shown("#join-form"), Tiles: shown("#tiles"), Rejoin: shown("#rejoin"),
		};
	})()`)
	if !strings.Contains(st.Title, "You left") || !strings.Contains(st.Title, "again") {
		t.Errorf("left state title = %q, want it to say you left room again", st.Title)
	}
	if !st.Rejoin || st.Form || st.Tiles {
		t.Errorf("after Leave: Rejoin shown %t, join form shown %t, tiles shown %t; want only Rejoin", st.Rejoin, st.Form, st.Tiles)
	}
	if st.Focus != "rejoin" {
		t.Errorf("focus after Leave on #%s, want #rejoin", st.Focus)
	}
	if !strings.Contains(st.Chat, "ended") || !strings.Contains(st.Ended, "ended") {
		t.Errorf("chat after Leave: heading %q, last line %q; want it marked as the chat of a call that ended", st.Chat, st.Ended)
	}
	alice.waitNotice("peer-left")
	bob.screenshot(t, "left.png")

	bob.click("#rejoin")
	newID := bob.joined()
	if newID == bobID {
		t.Logf("rejoined with the same id %s", newID)
	}
	if room := evaluate[string](bob, `window.rendezvous.client.room`); room != "again" {
		t.Errorf("rejoined room %q, want again", room)
	}
	alice.waitConnected(newID)
	bob.waitConnected(aliceID)
	alice.waitFor("Bob's name on his new tile", fmt.Sprintf(`document.querySelector('.tile.remote[data-peer=%s] .name').textContent === "Bob"`, jsString(newID)))
	alice.waitVideo(newID)
	if n := evaluate[int](bob, `document.querySelectorAll("#chat-log .msg, #chat-log .ended").length`); n != 0 {
		t.Errorf("%d old chat lines after rejoining, want the chat cleared", n)
	}
	if evaluate[bool](bob, `document.getElementById("chat-panel").hasAttribute("data-archived")`) {
		t.Error("the chat is still marked as archived after rejoining")
	}

	// Leave again, then join another room from the form.
	bob.click("#leave")
	bob.waitFor("the left state", `document.body.dataset.phase === "left"`)
	bob.click("#new-room")
	bob.waitFor("the join form, focus on the room", `document.body.dataset.phase === "lobby" && document.activeElement.id === "room"`)
	bob.join("elsewhere", "Bob", joinOpts{dataOnly: true})
	bob.joined()
	if room := evaluate[string](bob, `window.rendezvous.client.room`); room != "elsewhere" {
		t.Errorf("room %q, want elsewhere", room)
	}
}
