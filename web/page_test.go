package web_test

// The call page as people use it: the invite card while alone, the phone
// layout (uncropped video, the chat as a sheet with an unread badge, the
// event log collapsed, one screen and no more), the connection-quality
// bars with their details, and names everywhere.

import (
	"fmt"
	"strings"
	"testing"
)

// stubClipboard replaces navigator.clipboard.writeText in the page with
// one that records what it is given in window.copied (a headless tab
// without focus may not write the real clipboard).
const stubClipboard = `(() => {
	window.copied = [];
	Object.defineProperty(navigator, "clipboard", {configurable: true, value: {
		writeText: (t) => { window.copied.push(t); return Promise.resolve(); },
	}});
})()`

// shown is a JavaScript function: whether the element matching a selector
// is rendered.
const shownJS = `((sel) => { const e = document.querySelector(sel); return !!e && e.checkVisibility(); })`

// TestInviteCard: alone in a room the page shows the whole invite link
// with a Copy button (which copies it and says so), Share only where the
// browser can share, and "New random room", which moves the page to a
// fresh room; the card goes when someone joins and comes back when they
// leave. On a phone the room name is shown whole, not cut off.
func TestInviteCard(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")
	alice.viewport(1280, 800)
	alice.exec(stubClipboard)

	if evaluate[bool](alice, shownJS+`("#invite")`) {
		t.Error("the invite card shows in the lobby")
	}
	alice.join("weekly-design-review-with-the-whole-team", "Alice", withMedia)
	alice.joined()
	alice.waitFor("the invite card", shownJS+`("#invite")`)
	want := srv.HTTP.URL + "/?room=weekly-design-review-with-the-whole-team"
	card := evaluate[struct {
		Link, Href, Title string
		Share             bool
	}](alice, `({
		Link: document.getElementById("invite-link").textContent,
		Href: document.getElementById("invite-link").href,
		Title: document.getElementById("invite-title").textContent,
		Share: `+shownJS+`("#invite-share"),
	})`)
	if card.Link != want || card.Href != want {
		t.Errorf("invite link %q (href %q), want %q", card.Link, card.Href, want)
	}
	if !strings.Contains(card.Title, "weekly-design-review-with-the-whole-team") {
		t.Errorf("invite card title %q, want the room's name", card.Title)
	}
	if hasShare := evaluate[bool](alice, `typeof navigator.share === "function"`); card.Share != hasShare {
		t.Errorf("Share button shown %t, navigator.share available %t; want the same", card.Share, hasShare)
	}
	alice.waitFor("the camera", `document.getElementById("tile-local").dataset.video === "on"`)
	alice.screenshot(t, "page-alone.png")

	alice.click("#invite-copy")
	alice.waitFor("the Copy button to say copied", `document.getElementById("invite-copy").dataset.copied === "true"
		&& /Copied/.test(document.getElementById("invite-copy").textContent)`)
	if got := evaluate[[]string](alice, `window.copied`); len(got) != 1 || got[0] != want {
		t.Errorf("copied %q, want [%q]", got, want)
	}

	// On a phone: the room name whole, the invite card and the call on one screen.
	alice.viewport(390, 844)
	phone := evaluate[struct {
		NameFits, LinkFits bool
		Overflow           float64
	}](alice, `(() => {
		const n = document.getElementById("room-name"), l = document.getElementById("invite-link");
		return {
			NameFits: n.scrollWidth <= n.clientWidth + 1 && n.checkVisibility(),
			LinkFits: l.scrollWidth <= l.clientWidth + 1,
			Overflow: document.scrollingElement.scrollHeight - innerHeight,
		};
	})()`)
	if !phone.NameFits || !phone.LinkFits {
		t.Errorf("at 390×844: room name shown whole %t, invite link shown whole %t; want both", phone.NameFits, phone.LinkFits)
	}
	if phone.Overflow > 2 {
		t.Errorf("at 390×844 alone in a room the page is %.0f px taller than the screen, want it to fit", phone.Overflow)
	}
	alice.screenshot(t, "page-alone-phone.png")
	alice.viewport(1280, 800)

	// Someone joins: the card goes. They leave: it is back.
	bob.join("weekly-design-review-with-the-whole-team", "Bob", joinOpts{dataOnly: true})
	bob.joined()
	alice.waitFor("the invite card to go", `!`+shownJS+`("#invite")`)
	if evaluate[bool](bob, shownJS+`("#invite")`) {
		t.Error("bob, not alone, sees the invite card")
	}
	bob.click("#leave")
	alice.waitFor("the invite card back", shownJS+`("#invite")`)

	// New random room: a fresh room, joined with the same name and choices.
	// (With Web Share, as on a phone, the card offers Share.)
	alice.exec(`navigator.share = (d) => { window.shared = d; return Promise.resolve(); }`)
	alice.click("#invite-random")
	alice.waitFor("a new room", `window.rendezvous.client.state === "joined" && window.rendezvous.client.room !== "weekly-design-review-with-the-whole-team"`)
	room := evaluate[string](alice, `window.rendezvous.client.room`)
	if !strings.Contains(evaluate[string](alice, `location.search`), "room="+room) {
		t.Errorf("address %q, want it to carry ?room=%s", evaluate[string](alice, `location.href`), room)
	}
	alice.waitFor("the new room on the invite card", fmt.Sprintf(`document.getElementById("invite-link").textContent.endsWith("?room=" + %s)
		&& document.getElementById("room-name").textContent === %s`, jsString(room), jsString(room)))
	alice.click("#invite-share")
	alice.waitFor("the link shared", fmt.Sprintf(`!!window.shared && window.shared.url === location.origin + "/?room=" + %s`, jsString(room)))
	alice.waitFor("the camera again", `document.getElementById("tile-local").dataset.video === "on"`)
	if name := evaluate[string](alice, `document.getElementById("local-name").textContent`); name != "Alice (you)" {
		t.Errorf("in the new room alice is %q, want Alice (you)", name)
	}
}

// TestPhoneLayout: at 390×844 in a call the other's video is shown whole
// (object-fit: contain), the page is one screen (no band below), the
// event log starts collapsed, and the chat is a sheet over the video,
// opened by a button whose badge counts the messages that arrived while
// it was closed.
func TestPhoneLayout(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")
	alice.viewport(390, 844)
	if open := evaluate[string](alice, `document.getElementById("log-toggle").getAttribute("aria-expanded")`); open != "false" ||
		evaluate[bool](alice, shownJS+`("#event-log")`) {
		t.Errorf("event log: aria-expanded %s, or its lines shown; want it collapsed at first", open)
	}
	alice.screenshot(t, "page-lobby-phone.png")
	_, bobID := joinCall("phone", alice, "Alice", withMedia, bob, "Bob", withMedia)
	alice.waitVideo(bobID)
	alice.waitFor("Bob's video on his tile", `document.querySelector(".tile.remote").dataset.video === "on"`)

	remote := `document.querySelector(".tile.remote video")`
	layout := evaluate[struct {
		Fit               string
		Overflow          float64
		ChatShown, Toggle bool
	}](alice, `({
		Fit: getComputedStyle(`+remote+`).objectFit,
		Overflow: document.scrollingElement.scrollHeight - innerHeight,
		ChatShown: `+shownJS+`("#chat-panel"),
		Toggle: `+shownJS+`("#btn-chat"),
	})`)
	if layout.Fit != "contain" {
		t.Errorf("remote video object-fit %q on a phone, want contain (never cropped)", layout.Fit)
	}
	if layout.Overflow > 2 {
		t.Errorf("in a call at 390×844 the page is %.0f px taller than the screen, want it to fit", layout.Overflow)
	}
	if layout.ChatShown || !layout.Toggle {
		t.Errorf("chat panel shown %t, chat button shown %t; want the chat closed behind its button", layout.ChatShown, layout.Toggle)
	}
	alice.screenshot(t, "page-call-phone.png")

	// Two messages while the sheet is closed: the badge says 2.
	for _, m := range []string{"one", "two"} {
		bob.sendChat(m)
		alice.waitFor("message "+m, fmt.Sprintf(`[...document.querySelectorAll("#chat-log .msg.theirs .body")].some(b => b.textContent === %s)`, jsString(m)))
	}
	alice.waitFor("the unread badge at 2", `document.getElementById("chat-unread").textContent === "2" && `+shownJS+`("#chat-unread")`)
	if label := evaluate[string](alice, `document.getElementById("btn-chat").getAttribute("aria-label")`); !strings.Contains(label, "2 unread") {
		t.Errorf("chat button named %q, want it to say 2 unread", label)
	}

	alice.click("#btn-chat")
	alice.waitFor("the chat sheet", shownJS+`("#chat-panel")`)
	alice.waitFor("the chat sheet settled", `document.getElementById("chat-panel").getBoundingClientRect().top > innerHeight / 3`)
	sheet := evaluate[struct {
		Expanded, Badge, VideoShown, Fixed bool
		SheetTop, SheetBottom              float64
		VideoTop, VideoBottom              float64
	}](alice, `(() => {
		const s = document.getElementById("chat-panel").getBoundingClientRect();
		const v = `+remote+`.getBoundingClientRect();
		return {
			Expanded: document.getElementById("btn-chat").getAttribute("aria-expanded") === "true",
			Badge: `+shownJS+`("#chat-unread"),
			VideoShown: `+remote+`.checkVisibility(),
			Fixed: getComputedStyle(document.getElementById("chat-panel")).position === "fixed",
			SheetTop: s.top, SheetBottom: s.bottom, VideoTop: v.top, VideoBottom: v.bottom,
		};
	})()`)
	if !sheet.Expanded || sheet.Badge {
		t.Errorf("chat open: button expanded %t, badge shown %t; want expanded and the badge gone", sheet.Expanded, sheet.Badge)
	}
	// The sheet lies over the lower part of the screen; the video, whole
	// and 150 px tall or more, above it: both in view together.
	if !sheet.Fixed || sheet.SheetBottom < 843 || !sheet.VideoShown || sheet.VideoTop < 0 ||
		sheet.VideoBottom > sheet.SheetTop+1 || sheet.VideoBottom-sheet.VideoTop < 150 {
		t.Errorf("chat sheet %.0f–%.0f px (fixed %t), video %.0f–%.0f px (shown %t): want the sheet at the bottom and the video wholly above it, 150 px or more",
			sheet.SheetTop, sheet.SheetBottom, sheet.Fixed, sheet.VideoTop, sheet.VideoBottom, sheet.VideoShown)
	}
	alice.sendChat("seen both")
	bob.waitChat("Alice", "seen both")
	alice.screenshot(t, "page-chat-phone.png")
	alice.checkA11y(t, "chat sheet 390x844")

	// A message while open is read at once; after closing, the next counts.
	bob.sendChat("three")
	alice.waitChat("Bob", "three")
	if n := evaluate[string](alice, `document.getElementById("chat-unread").textContent`); n != "0" {
		t.Errorf("unread %s after a message arrived with the chat open, want 0", n)
	}
	alice.click("#chat-close")
	alice.waitFor("the chat closed", `!`+shownJS+`("#chat-panel") && document.activeElement.id === "btn-chat"`)
	bob.sendChat("four")
	alice.waitFor("the unread badge at 1", `document.getElementById("chat-unread").textContent === "1"`)

	// On a desktop the chat is always there: no button, nothing unread.
	alice.viewport(1280, 800)
	if evaluate[bool](alice, shownJS+`("#btn-chat")`) || !evaluate[bool](alice, shownJS+`("#chat-panel")`) {
		t.Error("at 1280×800 the chat button shows or the chat panel does not")
	}
	alice.waitFor("nothing unread with the chat in sight", `document.getElementById("chat-unread").hidden`)
	alice.screenshot(t, "page-call.png")
}

// TestQualityIndicator: each tile shows connection-quality bars named
// "Connection good" (a local call is good), and a details view opened
// from them holds the raw figures: round-trip time, loss, bitrates and
// the candidate types.
func TestQualityIndicator(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")
	_, bobID := joinCall("bars", alice, "Alice", withMedia, bob, "Bob", withMedia)
	tile := fmt.Sprintf(`document.querySelector('.tile.remote[data-peer=%s]')`, jsString(bobID))
	alice.waitFor("the bars to say good", tile+`.querySelector(".quality").getAttribute("aria-label") === "Connection good"`)
	q := evaluate[struct {
		Level, Role  string
		StatsShown   bool
		JargonInView bool
	}](alice, `(() => {
		const t = `+tile+`, b = t.querySelector(".quality");
		return {
			Level: b.dataset.level, Role: b.getAttribute("role"),
			StatsShown: t.querySelector(".stats").checkVisibility(),
			JargonInView: /RTT|host/.test(t.querySelector("figcaption").innerText),
		};
	})()`)
	if q.Level != "3" || q.Role != "img" {
		t.Errorf("bars: level %s, role %s; want 3 (good) and img", q.Level, q.Role)
	}
	if q.StatsShown || q.JargonInView {
		t.Errorf("raw figures shown %t (RTT or host in view %t) before opening the details; want them tucked away", q.StatsShown, q.JargonInView)
	}
	alice.click(fmt.Sprintf(`.tile.remote[data-peer=%s] .net summary`, jsString(bobID)))
	alice.waitFor("the details with bitrates", tile+`.querySelector(".stats").checkVisibility() && /kb\/s|Mb\/s/.test(`+tile+`.querySelector(".stats").innerText)`)
	details := evaluate[string](alice, tile+`.querySelector(".stats").innerText`)
	for _, want := range []string{"RTT", "ms", "Loss", "host"} {
		if !strings.Contains(details, want) {
			t.Errorf("details %q lack %q", details, want)
		}
	}
	alice.screenshot(t, "page-quality-details.png")
	alice.checkA11y(t, "quality details open")
}

// TestNamesEverywhere: a member is called by name on its tile, in its
// tile's accessible name, in the chat, in the notice and announcement of
// its leaving and in the event log; before its name arrives a short id
// stands in, and never after.
func TestNamesEverywhere(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")
	_, bobID := joinCall("names", alice, "Alice", joinOpts{dataOnly: true}, bob, "Bob", joinOpts{dataOnly: true})
	tile := fmt.Sprintf(`document.querySelector('.tile.remote[data-peer=%s]')`, jsString(bobID))
	alice.waitFor("Bob's name on his tile", tile+`.querySelector(".name").textContent === "Bob" && `+tile+`.getAttribute("aria-label").startsWith("Bob,")`)
	alice.waitFor("Bob's arrival announced by name", `document.getElementById("announcer").textContent.includes("Bob joined")`)
	bob.sendChat("hi")
	alice.waitChat("Bob", "hi")
	bob.click("#leave")
	if msg := alice.waitNotice("peer-left"); !strings.HasPrefix(msg, "Bob ") {
		t.Errorf("leave notice %q, want it to name Bob", msg)
	}
	alice.waitFor("Bob's leave announced by name", `document.querySelector("#announcer p:last-child").textContent === "Bob left the room"`)
	short := bobID
	if len(short) > 8 {
		short = short[:8]
	}
	// After the hello, the log names him too (the join line comes before it).
	lines := evaluate[[]string](alice, `[...document.querySelectorAll("#event-log li:not(.server) .text")].map(e => e.textContent)`)
	seenName := false
	for _, l := range lines {
		if strings.Contains(l, "is Bob") {
			seenName = true
			continue
		}
		if seenName && strings.Contains(l, short) {
			t.Errorf("event log line %q uses Bob's id after his name arrived", l)
		}
	}
	if !seenName {
		t.Errorf("the event log never says who %s is: %q", short, lines)
	}

	// Without a name: "Guest" and the start of the id, once the hello is in.
	bob.join("names", "", joinOpts{dataOnly: true})
	guestID := bob.joined()
	alice.waitConnected(guestID)
	guest := fmt.Sprintf(`document.querySelector('.tile.remote[data-peer=%s] .name').textContent`, jsString(guestID))
	alice.waitFor("the nameless member called Guest", guest+` === "Guest " + `+jsString(guestID[:4]))
}

// TestPreview: the lobby opens no device by itself; "Preview camera and
// mic" does, showing the camera and device pickers; the picked camera is
// remembered (localStorage) and used; turning the camera chip off closes
// it before joining; Join then uses the preview's devices without asking
// for them again.
func TestPreview(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/?room=preview")
	alice.exec(countGetUserMedia)
	alice.exec(`localStorage.removeItem("rendezvous.camera"); localStorage.removeItem("rendezvous.mic")`)
	if n := evaluate[int](alice, `window.gumCalls.length`); n != 0 || evaluate[bool](alice, shownJS+`("#preview")`) {
		t.Fatalf("the lobby opened %d devices or shows a preview by itself", n)
	}
	alice.exec(`document.getElementById("name").value = "Alice"`)
	alice.click("#preview-btn")
	alice.waitFor("the preview video", `document.getElementById("preview-video").videoWidth > 0
		&& document.getElementById("preview-box").dataset.video === "on"`)
	alice.waitFor("the device pickers", `document.getElementById("cam-select").options.length > 0 && document.getElementById("mic-select").options.length > 0`)
	if st := evaluate[[]string](alice, `window.gumCalls`); len(st) != 1 || st[0] != "idle" {
		t.Errorf("getUserMedia calls (client state at each) %q, want one, before joining", st)
	}
	alice.viewport(1280, 800)
	alice.checkA11y(t, "preview")
	alice.screenshot(t, "page-preview.png")

	// Pick the last camera: remembered, and the preview reopens with it.
	cam := evaluate[string](alice, `(() => { const s = document.getElementById("cam-select");
		s.selectedIndex = s.options.length - 1; s.dispatchEvent(new Event("change")); return s.value; })()`)
	if got := evaluate[string](alice, `localStorage.getItem("rendezvous.camera")`); got != cam {
		t.Errorf("remembered camera %q, want %q", got, cam)
	}
	alice.waitFor("the preview with the picked camera", fmt.Sprintf(`!!window.rendezvous.preview
		&& window.rendezvous.preview.getVideoTracks()[0].getSettings().deviceId === %s`, jsString(cam)))

	// Camera off before joining: the preview closes the camera, keeps the mic.
	alice.exec(`(() => { const c = document.getElementById("opt-cam"); c.checked = false; c.dispatchEvent(new Event("change")); })()`)
	alice.waitFor("the camera closed", `!!window.rendezvous.preview && window.rendezvous.preview.getVideoTracks().length === 0
		&& window.rendezvous.preview.getAudioTracks().length === 1 && document.getElementById("preview-box").dataset.video === "off"`)
	alice.exec(`(() => { const c = document.getElementById("opt-cam"); c.checked = true; c.dispatchEvent(new Event("change")); })()`)
	alice.waitFor("the camera back", `!!window.rendezvous.preview && window.rendezvous.preview.getVideoTracks().length === 1`)
	calls := evaluate[int](alice, `window.gumCalls.length`)

	alice.click("#join")
	alice.joined()
	alice.waitFor("the camera in the call", `document.getElementById("tile-local").dataset.video === "on"`)
	if n := evaluate[int](alice, `window.gumCalls.length`); n != calls {
		t.Errorf("joining asked for the devices again (%d getUserMedia calls, %d before Join); want the preview's used", n, calls)
	}
	if id := evaluate[string](alice, `window.rendezvous.localStream.getVideoTracks()[0].getSettings().deviceId`); id != cam {
		t.Errorf("the call's camera %q, want the picked %q", id, cam)
	}
	if evaluate[bool](alice, shownJS+`("#preview")`) {
		t.Error("the preview still shows in the call")
	}
}
