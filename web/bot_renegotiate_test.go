package web_test

// The page and the rendezvous-peer command (the bot, built from
// cmd/rendezvous-peer and run as a process) change their call mid-call:
// the bot joins without video and adds its test video later
// (-video-after), which renegotiates the connection from the bot's side
// (perfect negotiation in package peer), glare with the page's
// addLocalTrack included. Both roles of perfect negotiation are checked:
// the page asks the server for an id below or above the bot's, so that
// the bot is once the polite side and once the impolite one.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// botID is the id the bot asks for (-id). Page ids below it ("a-page")
// make the bot polite (the greater id is), ids above it ("z-page") make it
// impolite.
const botID = "bot"

// videoAfter is the bot's -video-after: how long after its call connects
// it adds its video.
const videoAfter = time.Second

// maxBotLines bounds the lines kept of a bot's stdout and of its stderr.
const maxBotLines = 5000

// buildBotCommand builds cmd/rendezvous-peer into the test's temporary
// directory and returns the binary's path.
func buildBotCommand(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Fatalf("go build cmd/rendezvous-peer: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "rendezvous-peer")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/rendezvous-rtc/rendezvous/cmd/rendezvous-peer").CombinedOutput()
	if err != nil {
		t.Fatalf("go build cmd/rendezvous-peer: %v\n%s", err, out)
	}
	t.Logf("built rendezvous-peer in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// botEvent is one JSON line of the bot's -json output (the fields the
// tests look at).
type botEvent struct {
	Time   time.Time `json:"time"`
	Event  string    `json:"event"`
	Remote string    `json:"remote"`
	State  string    `json:"state"`
	Kind   string    `json:"kind"`
	Codec  string    `json:"codec"`
	Error  string    `json:"error"`
	Line   string    `json:"-"` // the line as printed
}

// botProcess is a rendezvous-peer process the test runs with -json and
// -debug: its events (stdout) and its log (stderr).
type botProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the output has ended and Wait returned
	err    error         // Wait's error, set before exited is closed

	mu      sync.Mutex
	events  []botEvent    // guarded by mu: stdout, at most maxBotLines
	log     []string      // guarded by mu: stderr, at most maxBotLines
	changed chan struct{} // guarded by mu: closed and replaced on every line
}

// startBotProcess runs the bot bin in room on the server at wsURL, as
// botID, with -json, -debug and args. When the test ends it gets SIGTERM
// and must leave and exit 0 in time; its output is logged if the test
// failed.
func startBotProcess(t *testing.T, bin, wsURL, room string, args ...string) *botProcess {
	t.Helper()
	// -loopback: Chromium runs with --allow-loopback-in-peer-connection
	// (chromiumtest), so 127.0.0.1 works with it, on every machine.
	args = append([]string{"-url", wsURL, "-room", room, "-id", botID, "-json", "-debug", "-loopback"}, args...)
	b := &botProcess{cmd: exec.Command(bin, args...), exited: make(chan struct{}), changed: make(chan struct{})}
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		b.read(stdout, b.addEvent)
	}()
	go func() {
		defer readers.Done()
		b.read(stderr, b.addLog)
	}()
	go func() {
		readers.Wait() // Wait closes the pipes: read them to the end first
		b.err = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() { b.stop(t) })
	return b
}

// read passes each line of r to add until r ends.
func (b *botProcess) read(r io.Reader, add func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		add(sc.Text())
	}
}

// addEvent records a stdout line; one that is not a JSON event is
// recorded as an event "unparsed", which the tests count as an error.
func (b *botProcess) addEvent(line string) {
	e := botEvent{Line: line}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		e = botEvent{Event: "unparsed", Error: err.Error(), Line: line}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.events) < maxBotLines {
		b.events = append(b.events, e)
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *botProcess) addLog(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.log) < maxBotLines {
		b.log = append(b.log, line)
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// stop sends SIGTERM and waits (boundedly) for the bot to exit; it must
// exit 0, having left the room.
func (b *botProcess) stop(t *testing.T) {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
		if b.err != nil {
			t.Errorf("rendezvous-peer after SIGTERM: %v", b.err)
		}
	case <-time.After(waitTimeout):
		_ = b.cmd.Process.Kill()
		<-b.exited
		t.Errorf("rendezvous-peer did not exit within %s of SIGTERM", waitTimeout)
	}
	if t.Failed() {
		b.mu.Lock()
		defer b.mu.Unlock()
		lines := make([]string, len(b.events))
		for i, e := range b.events {
			lines[i] = e.Line
		}
		t.Logf("rendezvous-peer's events:\n%s\nits log:\n%s", strings.Join(lines, "\n"), strings.Join(b.log, "\n"))
	}
}

// waitEvent returns the first event (from the start) that match accepts,
// failing the test if the bot exits first or after waitTimeout.
func (b *botProcess) waitEvent(t *testing.T, what string, match func(botEvent) bool) botEvent {
	t.Helper()
	var found botEvent
	b.waitUntil(t, what, func() bool {
		for _, e := range b.events {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// waitCount waits until n events match accepts.
func (b *botProcess) waitCount(t *testing.T, what string, match func(botEvent) bool, n int) {
	t.Helper()
	b.waitUntil(t, fmt.Sprintf("%s (%d events)", what, n), func() bool { return b.countLocked(match) >= n })
}

// waitLog waits until the bot's log (stderr) has a line containing s.
func (b *botProcess) waitLog(t *testing.T, s string) {
	t.Helper()
	b.waitUntil(t, fmt.Sprintf("the log line %q", s), func() bool {
		for _, l := range b.log {
			if strings.Contains(l, s) {
				return true
			}
		}
		return false
	})
}

// waitUntil waits until cond, called with b.mu held, is true after a new
// line, failing the test if the bot exits first or after waitTimeout.
func (b *botProcess) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		b.mu.Lock()
		ok, changed := cond(), b.changed
		b.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-b.exited:
			t.Fatalf("rendezvous-peer exited (%v) before %s", b.err, what)
		case <-timeout.C:
			t.Fatalf("rendezvous-peer: no %s within %s", what, waitTimeout)
		}
	}
}

// count returns how many events so far match accepts.
func (b *botProcess) count(match func(botEvent) bool) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.countLocked(match)
}

// countLocked is count with b.mu held.
func (b *botProcess) countLocked(match func(botEvent) bool) int {
	n := 0
	for _, e := range b.events {
		if match(e) {
			n++
		}
	}
	return n
}

// checkNoErrors fails the test for each error event the bot printed, and
// for a connection to the page that failed or closed.
func (b *botProcess) checkNoErrors(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.events {
		if e.Event == "error" || e.Event == "unparsed" || e.Event == "connection-state" && (e.State == "failed" || e.State == "closed") {
			t.Errorf("rendezvous-peer: %s", e.Line)
		}
	}
}

// isEvent matches the bot's events of type event with member remote.
func isEvent(event, remote string) func(botEvent) bool {
	return func(e botEvent) bool { return e.Event == event && e.Remote == remote }
}

// videoTrackFrom matches the bot's track events for video from member
// remote.
func videoTrackFrom(remote string) func(botEvent) bool {
	return func(e botEvent) bool { return e.Event == "track" && e.Remote == remote && e.Kind == "video" }
}

// botCase is one way for the page and the bot to meet.
type botCase struct {
	name      string
	pageID    string // the id the page asks for
	botFirst  bool   // the bot joins first (the page offers); else the page does (the bot offers)
	botPolite bool   // what pageID makes the bot: botID > pageID
}

// botCases cover both roles of the first negotiation and both of
// perfect negotiation.
func botCases() []botCase {
	return []botCase{
		{name: "bot-first-polite", pageID: "a-page", botFirst: true, botPolite: true},
		{name: "bot-first-impolite", pageID: "z-page", botFirst: true, botPolite: false},
		{name: "page-first-polite", pageID: "a-page", botFirst: false, botPolite: true},
		{name: "page-first-impolite", pageID: "z-page", botFirst: false, botPolite: false},
	}
}

// watchBotCall prepares the page, before it joins: its join asks the
// server for id (signal.js's join option id; the page's form has none),
// error events are kept in window.__errors, and when the connection to
// the bot connects, window.__atConnect says how many video transceivers
// then received and how many video tracks the bot's stream had, and
// window.__pc keeps the connection.
func (p *page) watchBotCall(id string) {
	p.t.Helper()
	p.exec(fmt.Sprintf(`(() => {
		const c = window.rendezvous.client, bot = %s;
		const join = c.join;
		c.join = (room, opts) => join.call(c, room, { ...(opts || {}), id: %s });
		window.__errors = [];
		c.on("error", (e) => window.__errors.push(e.code + ": " + e.message));
		window.__atConnect = null;
		c.on("connectionstatechange", ({ id, state }) => {
			if (id !== bot || state !== "connected" || window.__atConnect) return;
			const peer = c.peers.get(id);
			window.__pc = peer.pc;
			window.__atConnect = {
				receiving: peer.pc.getTransceivers().filter((t) => t.receiver.track.kind === "video" && /recv/.test(t.currentDirection || "")).length,
				tracks: peer.stream.getVideoTracks().length,
			};
		});
	})()`, jsString(botID), jsString(id)))
}

// meetBot joins the page (with camera and microphone) and the bot to
// room in the order of c and waits until both say the call is connected.
// The page must have been prepared with watchBotCall. It returns the bot.
func meetBot(t *testing.T, c botCase, p *page, bin, wsURL, room string, botArgs ...string) *botProcess {
	t.Helper()
	var b *botProcess
	if c.botFirst {
		b = startBotProcess(t, bin, wsURL, room, botArgs...)
		b.waitEvent(t, "joined", func(e botEvent) bool { return e.Event == "joined" })
	}
	p.join(room, "Pat", withMedia)
	if id := p.joined(); id != c.pageID {
		t.Fatalf("the page joined as %q, want %q (asked for)", id, c.pageID)
	}
	if !c.botFirst {
		b = startBotProcess(t, bin, wsURL, room, botArgs...)
	}
	p.waitConnected(botID)
	b.waitEvent(t, "a connection to the page", func(e botEvent) bool {
		return isEvent("connection-state", c.pageID)(e) && e.State == "connected"
	})
	politeOnPage := evaluate[bool](p, fmt.Sprintf(`window.rendezvous.client.peers.get(%s).polite`, jsString(botID)))
	if politeOnPage == c.botPolite {
		t.Fatalf("the page (%s) is polite with the bot (%s): %t; want the bot polite: %t", c.pageID, botID, politeOnPage, c.botPolite)
	}
	return b
}

// checkNoVideoAtConnect fails the test unless, when the call connected,
// the page received no video from the bot.
func (p *page) checkNoVideoAtConnect() {
	p.t.Helper()
	p.waitFor("the connection state seen at connect", `window.__atConnect !== null`)
	at := evaluate[struct{ Receiving, Tracks int }](p, `(() => ({ Receiving: window.__atConnect.receiving, Tracks: window.__atConnect.tracks }))()`)
	if at.Receiving != 0 || at.Tracks != 0 {
		p.t.Errorf("when the call connected the page received video from the bot already: %d receiving video transceivers, %d video tracks; want none before -video-after", at.Receiving, at.Tracks)
	}
}

// waitBotTile waits until the page's tile of the bot shows its video
// decoding: data-video on, a size, the video's time going on, and the
// decoded frames growing. It returns the video's size.
func (p *page) waitBotTile() string {
	p.t.Helper()
	tile := fmt.Sprintf(`document.querySelector('.tile.remote[data-peer=%s]')`, jsString(botID))
	p.waitFor("the bot's tile to show video", fmt.Sprintf(`(() => {
		const t = %s;
		return !!t && t.dataset.video === "on" && t.querySelector("video").videoWidth > 0;
	})()`, tile))
	p.exec(fmt.Sprintf(`window.__botTime = %s.querySelector("video").currentTime`, tile))
	p.waitFor("the bot's video to play on", fmt.Sprintf(`%s.querySelector("video").currentTime > window.__botTime + 0.5`, tile))
	p.waitVideo(botID)
	return evaluate[string](p, fmt.Sprintf(`(() => { const v = %s.querySelector("video"); return v.videoWidth + "x" + v.videoHeight; })()`, tile))
}

// checkSameCall fails the test if the page's connection to the bot was
// replaced, or the page had error events.
func (p *page) checkSameCall() {
	p.t.Helper()
	if !evaluate[bool](p, fmt.Sprintf(`window.rendezvous.client.peers.get(%s).pc === window.__pc`, jsString(botID))) {
		p.t.Errorf("%s: the connection to the bot was replaced", p.name)
	}
	if errs := evaluate[[]string](p, `window.__errors`); len(errs) > 0 {
		p.t.Errorf("%s: error events:\n%s", p.name, strings.Join(errs, "\n"))
	}
}

// TestBotRenegotiateVideoAfter: the bot (rendezvous-peer -video -echo
// -video-after 1s) joins a call without video, then adds its test video:
// the connection renegotiates (from the bot's side, as the polite and as
// the impolite side, as the offerer of the first negotiation and as its
// answerer) and the page's tile of the bot shows the video decoding, on
// the same connection; the data channel works before and after; nobody
// reports an error.
func TestBotRenegotiateVideoAfter(t *testing.T) {
	bin := buildBotCommand(t)
	srv := newServer(t)
	for _, c := range botCases() {
		t.Run(c.name, func(t *testing.T) {
			room := "video-after-" + c.name
			p := openPage(t, "page", srv.HTTP.URL+"/")
			p.viewport(1280, 800)
			p.watchBotCall(c.pageID)
			b := meetBot(t, c, p, bin, srv.URL, room, "-video", testVideo, "-video-after", videoAfter.String(), "-echo")
			p.checkNoVideoAtConnect()
			p.sendChat("before the video")
			p.waitChat("bot (echo)", "before the video")

			added := b.waitEvent(t, "video-added", func(e botEvent) bool { return e.Event == "video-added" })
			connected := b.waitEvent(t, "the bot's connection", func(e botEvent) bool {
				return isEvent("connection-state", c.pageID)(e) && e.State == "connected"
			})
			size := p.waitBotTile()
			p.screenshot(t, "bot-video-after-"+c.name+".png")

			p.sendChat("after the video")
			p.waitChat("bot (echo)", "after the video")
			p.checkSameCall()
			b.checkNoErrors(t)
			m := p.metrics(botID)
			t.Logf("bot polite %t, bot first %t: video-added %s after the bot connected; the page's first frame of the bot's video (%s) %.0f ms after the page connected",
				c.botPolite, c.botFirst, added.Time.Sub(connected.Time).Round(time.Millisecond), size, m.FirstFrame-m.Connected)
		})
	}
}

// holdOffersForGlare makes the page hold the bot's first renegotiation
// offer until the page has an offer of its own out (holdOffers), and set
// window.__offerHeld when the offer arrives, for the test to add the
// page's track then: the two offers cross for sure.
func (p *page) holdOffersForGlare() {
	p.t.Helper()
	p.holdOffers()
	p.exec(`(() => {
		const c = window.rendezvous.client, held = c._onRenegotiationOffer;
		window.__offerHeld = false;
		c._onRenegotiationOffer = (peer, msg) => { window.__offerHeld = true; return held(peer, msg); };
	})()`)
}

// TestBotRenegotiateGlare: the page adds a canvas track
// (addLocalTrack) when the bot's offer adding its video arrives, before
// handling it: the offers cross (glare) at both ends. The impolite side
// ignores the other's offer, the polite one rolls its own back (the bot
// emulates the rollback) and answers, then offers its track again. Both
// tracks arrive: the bot prints a track event for the page's canvas, and
// the page decodes the bot's video, on the same connection, with no
// error on either side.
func TestBotRenegotiateGlare(t *testing.T) {
	bin := buildBotCommand(t)
	srv := newServer(t)
	for _, c := range botCases() {
		t.Run(c.name, func(t *testing.T) {
			room := "glare-" + c.name
			p := openPage(t, "page", srv.HTTP.URL+"/")
			p.viewport(1280, 800)
			p.watchBotCall(c.pageID)
			p.holdOffersForGlare()
			b := meetBot(t, c, p, bin, srv.URL, room, "-video", testVideo, "-video-after", videoAfter.String(), "-echo")
			p.checkNoVideoAtConnect()
			// The page's camera reaches the bot only when the page made the
			// first offer (the bot offers no video section of its own).
			camera := 0
			if c.botFirst {
				camera = 1
				b.waitEvent(t, "the page's camera", videoTrackFrom(c.pageID))
			}

			p.waitFor("the bot's renegotiation offer", `window.__offerHeld`)
			held := time.Now()
			p.addCanvasTrack()
			if c.botPolite {
				b.waitLog(t, `msg="glare; polite, rolling back"`)
			} else {
				b.waitLog(t, `msg="glare; impolite, ignoring the member's offer"`)
			}
			b.waitCount(t, "the page's canvas track", videoTrackFrom(c.pageID), camera+1)
			canvasAt := time.Since(held)
			size := p.waitBotTile()
			bothAt := time.Since(held)
			p.screenshot(t, "bot-glare-"+c.name+".png")

			if g := evaluate[int](p, `window.__glare`); g != 1 {
				t.Errorf("%d offers from the bot crossed one of the page's, want 1", g)
			}
			if n := b.count(videoTrackFrom(c.pageID)); n != camera+1 {
				t.Errorf("the bot printed %d video track events from the page, want %d", n, camera+1)
			}
			if b.count(func(e botEvent) bool { return e.Event == "video-added" }) != 1 {
				t.Error("the bot did not print video-added")
			}
			p.sendChat("after the glare")
			p.waitChat("bot (echo)", "after the glare")
			p.checkSameCall()
			b.checkNoErrors(t)
			t.Logf("bot polite %t, bot first %t: after the crossing offers the bot got the canvas in %s, the page decoded the bot's video (%s) in %s",
				c.botPolite, c.botFirst, canvasAt.Round(time.Millisecond), size, bothAt.Round(time.Millisecond))
		})
	}
}
