package web_test

// Accessibility: axe-core (an npm development dependency, not served by
// the server) checks the page in each of its states, and the keyboard and
// screen-reader behaviour axe cannot see is tested directly.
//
// axe runs in the page through the DevTools protocol (Runtime.evaluate),
// which the page's Content-Security-Policy does not apply to: the page
// itself still allows only its own scripts. Without web/node_modules/axe-core
// the axe test skips, saying how to install it, unless CI=true, where it
// fails.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

const axeHint = "install it with `cd web && npm ci`"

var axeSource struct {
	once sync.Once
	src  string
	err  error
}

// axe returns the source of axe-core (web/node_modules/axe-core/axe.min.js),
// skipping the test without it (failing it when CI=true).
func axe(t testing.TB) string {
	t.Helper()
	axeSource.once.Do(func() {
		b, err := os.ReadFile(filepath.Join("node_modules", "axe-core", "axe.min.js"))
		axeSource.src, axeSource.err = string(b), err
	})
	if axeSource.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core is required in CI (CI=true): %v; %s", axeSource.err, axeHint)
		}
		t.Skipf("skipping the axe-core checks: %v; %s", axeSource.err, axeHint)
	}
	return axeSource.src
}

// axeViolation is one rule axe found broken, with the elements that break it.
type axeViolation struct {
	ID, Impact, Help string
	Nodes            []struct {
		Target  []string
		Summary string
	}
}

// checkA11y runs axe-core over the whole page and fails the test on any
// serious or critical violation, listing them; lesser ones are logged.
func (p *page) checkA11y(t *testing.T, state string) {
	t.Helper()
	if !evaluate[bool](p, `typeof window.axe === "object"`) {
		if _, err := run(p, waitTimeout, chromedp.Evaluate[chromedp.Void](axe(t))); err != nil {
			t.Fatalf("%s: load axe-core: %v", p.name, err)
		}
	}
	vs := evaluate[[]axeViolation](p, `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
		ID: v.id, Impact: v.impact || "", Help: v.help,
		Nodes: v.nodes.map(n => ({Target: n.target.map(String), Summary: n.failureSummary || ""})),
	})))`)
	for _, v := range vs {
		var b strings.Builder
		fmt.Fprintf(&b, "%s, %s: %s (%s)", state, v.Impact, v.Help, v.ID)
		for _, n := range v.Nodes {
			fmt.Fprintf(&b, "\n\t%s: %s", strings.Join(n.Target, " "), strings.ReplaceAll(n.Summary, "\n", " "))
		}
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s: axe: %s", p.name, b.String())
		} else {
			t.Logf("%s: axe (not failing): %s", p.name, b.String())
		}
	}
	// The contrast of the controls, as axe measures it, for the record.
	ratios := evaluate[[]string](p, `axe.run({include: [["#join"], ["#rejoin"], ["#new-room"], ["#chat-send"], ["#leave"],
			["#btn-mic"], ["#btn-cam"], [".toggle span"], ["#notice-close"]]},
			{runOnly: ["color-contrast"], resultTypes: ["passes", "violations", "incomplete"]})
		.then(r => [...r.passes, ...r.violations, ...r.incomplete].flatMap(x => x.nodes)
			.map(n => { const d = (n.any[0] || {}).data || {}; return n.target.join(" ") + " " + (d.contrastRatio ? d.contrastRatio + ":1" : "?") + " (" + d.fgColor + " on " + d.bgColor + ")"; }))`)
	t.Logf("%s: %s: contrast %s", p.name, state, strings.Join(ratios, "; "))
}

// TestAccessibility: axe-core finds no serious or critical violation in
// the lobby, the waiting room (alone in a room), a call and after Leave,
// on a desktop and on a phone-sized screen. Screenshots of each.
func TestAccessibility(t *testing.T) {
	axe(t)
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/?room=a11y")
	bob := openPage(t, "bob", srv.HTTP.URL+"/?room=a11y")
	both := func(p *page, state string) {
		t.Helper()
		for _, vp := range []struct {
			w, h   int64
			suffix string
		}{{1280, 800, ""}, {390, 844, "-phone"}} {
			p.viewport(vp.w, vp.h)
			p.checkA11y(t, fmt.Sprintf("%s %dx%d", state, vp.w, vp.h))
			p.screenshot(t, "a11y-"+state+vp.suffix+".png")
		}
		p.viewport(1280, 800)
	}

	both(alice, "lobby")
	alice.join("a11y", "Alice", withMedia)
	aliceID := alice.joined()
	alice.waitFor("the camera", `document.getElementById("tile-local").dataset.video === "on"`)
	both(alice, "waiting")

	bob.join("a11y", "Bob", withMedia)
	bobID := bob.joined()
	alice.waitConnected(bobID)
	bob.waitConnected(aliceID)
	bob.sendChat("Hello, accessible world")
	alice.waitChat("Bob", "Hello, accessible world")
	alice.waitVideo(bobID)
	alice.waitFor("stats on the tile", `/RTT/.test(document.querySelector(".tile.remote .stats").textContent)`)
	both(alice, "call")

	bob.click("#leave")
	bob.waitFor("the left state", `document.body.dataset.phase === "left"`)
	both(bob, "left")
	alice.waitNotice("peer-left")
	both(alice, "notice")
}

// TestKeyboardAndAnnouncements: focus moves into the call after joining
// (and to Rejoin after leaving); the join-with chips show a focus ring;
// Esc dismisses a notice; a live region announces joins and leaves; the
// video tiles are named after the member, its state and its microphone.
func TestKeyboardAndAnnouncements(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/")
	bob := openPage(t, "bob", srv.HTTP.URL+"/")

	// The Camera chip gets a visible ring when tabbed to.
	alice.exec(`document.getElementById("name").focus()`)
	if err := alice.runTimeout(waitTimeout, chromedp.KeyEvent(kb.Tab)); err != nil {
		t.Fatal(err)
	}
	ring := evaluate[struct {
		Focus, Style string
		Width        float64
	}](alice, `(() => {
		const s = getComputedStyle(document.querySelector("#opt-cam + span"));
		return {Focus: document.activeElement.id, Style: s.outlineStyle, Width: parseFloat(s.outlineWidth)};
	})()`)
	if ring.Focus != "opt-cam" || ring.Style == "none" || ring.Width < 2 {
		t.Errorf("tabbing to the Camera chip: focus on #%s, outline %s %.0fpx; want #opt-cam with an outline of 2px or more",
			ring.Focus, ring.Style, ring.Width)
	}
	alice.screenshot(t, "focus-chip.png")

	alice.join("keys", "Alice", withMedia)
	alice.joined()
	alice.waitFor("focus in the call", `document.activeElement.id === "call-heading" && document.activeElement.textContent.includes("keys")`)
	alice.waitFor("the join announced", `document.getElementById("announcer").textContent.includes("You joined room “keys”")`)

	bob.join("keys", "Bob", joinOpts{dataOnly: true})
	bobID := bob.joined()
	bob.waitFor("focus in the call", `document.activeElement.id === "call-heading"`)
	alice.waitConnected(bobID)
	alice.waitFor("Bob's arrival announced", `document.querySelector("#announcer p:last-child").textContent === "Bob joined"`)
	bobTile := fmt.Sprintf(`document.querySelector('.tile.remote[data-peer=%s]')`, jsString(bobID))
	alice.waitFor("Bob's tile named", bobTile+`.getAttribute("aria-label") === "Bob, connected, microphone off, camera off"`)
	label := evaluate[string](alice, `document.getElementById("tile-local").getAttribute("aria-label")`)
	if !strings.HasPrefix(label, "Alice (you), camera on, microphone on") {
		t.Errorf("alice's own tile is named %q, want it to say her camera and microphone are on", label)
	}

	bob.click("#leave")
	bob.waitFor("focus on Rejoin", `document.activeElement.id === "rejoin"`)
	bob.waitFor("the leave announced", `document.querySelector("#announcer p:last-child").textContent === "You left room “keys”"`)
	alice.waitNotice("peer-left")
	alice.waitFor("Bob's leave announced", `document.querySelector("#announcer p:last-child").textContent === "Bob left the room"`)

	// Esc dismisses the notice.
	if err := alice.runTimeout(waitTimeout, chromedp.KeyEvent(kb.Escape)); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("the notice dismissed", `document.getElementById("notice").hidden`)
}
