package web_test

import (
	"fmt"
	"testing"
)

// TestDataOnlyExample: examples/data.html, the data-only example of
// signal.js, in two tabs: both join a room, their data channels open,
// chat goes both ways, no media is sent, and neither page raises a
// Content-Security-Policy violation (openTab checks). A third tab, the
// main page (data only), chats with the example too.
func TestDataOnlyExample(t *testing.T) {
	srv := newServer(t)
	const started = `!!window.client && document.body.dataset.state === "idle" && !document.getElementById("join").disabled`
	open := func(name, room string) *page {
		p := openTab(t, name, srv.HTTP.URL+"/examples/data.html?room="+room)
		p.waitFor("the example to start", started)
		return p
	}
	join := func(p *page) string {
		p.click("#join")
		p.waitFor("the join", `document.body.dataset.state === "joined"`)
		return evaluate[string](p, `window.client.id`)
	}
	// say sends text from one example page and waits for it in the other's log.
	say := func(from, to *page, text string) {
		t.Helper()
		from.waitFor("an open data channel", `!document.getElementById("send").disabled`)
		from.exec(fmt.Sprintf(`document.getElementById("text").value = %s`, jsString(text)))
		from.click("#send")
		to.waitFor(fmt.Sprintf("%q in the log", text), fmt.Sprintf(
			`[...document.querySelectorAll("#log li.theirs")].some(li => li.textContent.endsWith(": " + %s))`, jsString(text)))
	}

	a, b := open("example A", "example"), open("example B", "example")
	aID, bID := join(a), join(b)
	a.waitFor("B's channel", fmt.Sprintf(`document.querySelector('#peers li[data-peer=%s]')?.textContent.includes("channel open")`, jsString(bID)))
	b.waitFor("A's channel", fmt.Sprintf(`document.querySelector('#peers li[data-peer=%s]')?.textContent.includes("channel open")`, jsString(aID)))
	say(a, b, "hello from A")
	say(b, a, "hello from B <b>not bold</b>")
	for _, p := range []*page{a, b} {
		if n := evaluate[int](p, `document.querySelectorAll("#log b").length`); n != 0 {
			t.Errorf("%s: a message was rendered as HTML", p.name)
		}
		// Data only: no track on any sender, no media sent.
		sending := evaluate[int](p, `(async () => {
			let n = 0;
			for (const peer of window.client.peers.values()) {
				n += peer.pc.getSenders().filter(s => s.track).length;
				(await peer.pc.getStats()).forEach(r => { if (r.type === "outbound-rtp") n += r.packetsSent || 0; });
			}
			return n;
		})()`)
		if sending != 0 {
			t.Errorf("%s: %d tracks or media packets sent, want none", p.name, sending)
		}
	}

	// Leave: the other page sees the member go.
	b.click("#leave")
	b.waitFor("idle after Leave", `document.body.dataset.state === "idle" && !document.getElementById("join").disabled`)
	a.waitFor("B's departure", fmt.Sprintf(`[...document.querySelectorAll("#log li.event")].some(li => li.textContent.startsWith(%s) && li.textContent.includes("(left)"))`, jsString(bID[:6])))
	a.waitFor("the chat box disabled", `document.getElementById("send").disabled`)

	// The main page (app.js), data only, in the same room as an example page.
	c := open("example C", "mixed")
	join(c)
	m := openPage(t, "main page", srv.HTTP.URL+"/?room=mixed")
	m.join("mixed", "Main", joinOpts{dataOnly: true})
	m.joined()
	c.waitFor("an open data channel", `!document.getElementById("send").disabled`)
	c.exec(`document.getElementById("text").value = "hello, main page"`)
	c.click("#send")
	m.waitChat("", "hello, main page")
	m.sendChat("hello, example")
	c.waitFor("the main page's chat", `[...document.querySelectorAll("#log li.theirs")].some(li => li.textContent.endsWith(": hello, example"))`)
	if n := evaluate[int](c, `document.querySelectorAll("#log li.theirs").length`); n != 1 {
		t.Errorf("example C shows %d messages from the main page, want 1 (its hello and media messages are not chat)", n)
	}
}
