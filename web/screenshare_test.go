package web_test

// Screen sharing in the page: the Share screen button, getDisplayMedia
// (real: Chromium's fake-UI flag, --use-fake-ui-for-media-stream, picks
// its fake screen without a picker, headless too), the track sent with
// signal.js's addLocalTrack and taken back with removeLocalTrack.

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// screenTileJS is the expression of the tile of member id's shared screen.
func screenTileJS(id string) string {
	return fmt.Sprintf(`document.querySelector('.tile.screen[data-screen-of=%s]')`, jsString(id))
}

// share clicks Share screen and waits until the page shows its own
// screen, the button pressed.
func (p *page) share() {
	p.t.Helper()
	p.click("#btn-screen")
	p.waitFor("the own screen tile with video", `(() => {
		const t = document.getElementById("tile-screen-local"), b = document.getElementById("btn-screen");
		return !!t && t.dataset.video === "on" && b.getAttribute("aria-pressed") === "true" &&
			t.getAttribute("aria-label") === "Your screen" && !t.querySelector(".stop-share").hidden;
	})()`)
}

// waitScreen waits until the page shows member id's screen and decodes
// it: the video has a size and its time goes on.
func (p *page) waitScreen(id, name string) {
	p.t.Helper()
	tile := screenTileJS(id)
	p.waitFor("a tile with the screen of "+id, fmt.Sprintf(`(() => {
		const t = %s;
		return !!t && t.dataset.video === "on" && t.querySelector("video").videoWidth > 0;
	})()`, tile))
	p.exec(fmt.Sprintf(`window.__screenTime = %s.querySelector("video").currentTime`, tile))
	p.waitFor("the screen's video to play on", fmt.Sprintf(`%s.querySelector("video").currentTime > window.__screenTime + 0.5`, tile))
	if got, want := evaluate[string](p, tile+`.getAttribute("aria-label")`), name+"’s screen"; got != want {
		p.t.Errorf("%s: the screen tile is named %q, want %q", p.name, got, want)
	}
}

// waitNoScreens waits until the page shows no shared screen, and its
// Share screen button is not pressed.
func (p *page) waitNoScreens() {
	p.t.Helper()
	p.waitFor("no screen tiles", `document.querySelectorAll(".tile.screen").length === 0 &&
		!document.getElementById("tiles").hasAttribute("data-screens") &&
		document.getElementById("btn-screen").getAttribute("aria-pressed") === "false"`)
}

// cameraSize returns the size of the video on member id's (camera) tile.
func (p *page) cameraSize(id string) string {
	p.t.Helper()
	return evaluate[string](p, fmt.Sprintf(`(() => {
		const v = document.querySelector('.tile.remote[data-peer=%s] video');
		return v.videoWidth + "x" + v.videoHeight;
	})()`, jsString(id)))
}

// TestScreenShareCall: in a call, Alice shares her screen; Bob gets a
// third tile whose video decodes, next to Alice's camera, which stays on
// her tile. Stop sharing on her screen's tile takes it away on both sides;
// so does the browser's own stop (the track ends). The call goes on, on
// the same connection, all along. Screenshots of the sharing state, both
// sides, desktop and phone.
func TestScreenShareCall(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")
	aliceID, bobID := joinCall("share", alice, "Alice", withMedia, bob, "Bob", withMedia)
	alice.waitVideo(bobID)
	bob.waitVideo(aliceID)
	bob.exec(fmt.Sprintf(`window.__pc = window.rendezvous.client.peers.get(%s).pc`, jsString(aliceID)))
	if !evaluate[bool](alice, `(() => {
		const b = document.getElementById("btn-screen");
		return !b.hidden && b.getAttribute("aria-pressed") === "false" && b.textContent.trim() === "Share screen";
	})()`) {
		t.Fatal("alice: no Share screen button, unpressed, in the call controls")
	}
	camera := bob.cameraSize(aliceID)

	alice.share()
	bob.waitScreen(aliceID, "Alice")
	if got := bob.cameraSize(aliceID); got != camera {
		t.Errorf("bob: Alice's camera tile shows %s video, was %s: not her camera", got, camera)
	}
	if n := evaluate[int](bob, `document.querySelectorAll("#tiles .tile").length`); n != 3 {
		t.Errorf("bob: %d tiles, want 3 (Bob, Alice, Alice's screen)", n)
	}
	for _, p := range []*page{alice, bob} {
		p.viewport(1280, 800)
		p.screenshot(t, "share-"+p.name+".png")
		p.viewport(390, 844)
		p.screenshot(t, "share-"+p.name+"-phone.png")
		p.viewport(1280, 800)
	}

	// Stop sharing, on the tile.
	alice.click("#tile-screen-local .stop-share")
	alice.waitNoScreens()
	bob.waitNoScreens()
	bob.waitMoreFrames(aliceID, 10)
	alice.waitMoreFrames(bobID, 10)

	// Again, stopped by the browser this time (its "Stop sharing" bar, or
	// the shared window closing): the track ends.
	alice.share()
	bob.waitScreen(aliceID, "Alice")
	alice.exec(`(() => {
		const track = window.rendezvous.screen.track;
		track.stop();
		track.dispatchEvent(new Event("ended"));
	})()`)
	alice.waitNoScreens()
	bob.waitNoScreens()
	bob.waitMoreFrames(aliceID, 10)
	alice.waitMoreFrames(bobID, 10)
	if !evaluate[bool](bob, fmt.Sprintf(`window.rendezvous.client.peers.get(%s).pc === window.__pc`, jsString(aliceID))) {
		t.Error("bob: the connection to Alice was replaced")
	}
	alice.sendChat("still here")
	bob.waitChat("Alice", "still here")
}

// TestScreenShareUnsupported: without getDisplayMedia (most phones) the
// page has no Share screen button.
func TestScreenShareUnsupported(t *testing.T) {
	srv := newServer(t)
	noDisplayMedia := chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, cdppage.AddScriptToEvaluateOnNewDocument,
			cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: `delete MediaDevices.prototype.getDisplayMedia;`})
		return err
	})
	p := openTab(t, "phone", srv.HTTP.URL+"/", noDisplayMedia)
	p.waitFor("the app to start", appStarted)
	p.join("no-share", "Pat", withMedia)
	p.joined()
	if !evaluate[bool](p, `typeof navigator.mediaDevices.getDisplayMedia === "undefined" &&
		document.getElementById("btn-screen").hidden &&
		getComputedStyle(document.getElementById("btn-screen")).display === "none"`) {
		t.Error("the Share screen button shows without getDisplayMedia")
	}
	// A page that has it shows the button.
	q := openPage(t, "desktop", srv.HTTP.URL+"/")
	q.join("no-share", "Dee", withMedia)
	q.joined()
	if evaluate[bool](q, `document.getElementById("btn-screen").hidden`) {
		t.Error("the Share screen button is hidden with getDisplayMedia")
	}
}

// TestScreenShareBeforeOthersJoin: Alice shares while alone in the room;
// Bob, joining later, gets her screen too. When Alice leaves, her screen's
// tile goes with her tile.
func TestScreenShareBeforeOthersJoin(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")
	alice.join("late", "Alice", withMedia)
	aliceID := alice.joined()
	alice.share()
	if n := evaluate[int](alice, `document.querySelectorAll("#tiles .tile").length`); n != 2 {
		t.Errorf("alice alone: %d tiles, want 2 (her camera and her screen)", n)
	}
	bob.join("late", "Bob", withMedia)
	bob.joined()
	bob.waitScreen(aliceID, "Alice")
	bob.waitVideo(aliceID)

	alice.click("#leave")
	bob.waitFor("Alice's tiles to go", fmt.Sprintf(`!document.querySelector('.tile.remote[data-peer=%s]') && !%s`, jsString(aliceID), screenTileJS(aliceID)))
	bob.waitNoScreens()
	alice.waitNoScreens()
	if evaluate[bool](alice, `window.rendezvous.screen !== null || window.rendezvous.client._extraTracks.length !== 0`) {
		t.Error("alice: still sharing after leaving")
	}
}
