package web_test

// Real-browser tests: a headless Chromium (one process for the whole run,
// one tab per page) loads the client from an in-process server on
// 127.0.0.1 and makes calls through it.
//
// Without Chromium the tests skip, saying how to install it, unless
// CI=true, where a missing Chromium fails them. CHROMIUM=/path/to/chrome
// picks a browser binary explicitly. SCREENSHOT_DIR=dir also copies the
// screenshots there (they are written to the test's temporary directory,
// which is removed when the test ends).
//
// The tests use chromedp v0.23 and its generic API: an action is an
// Action[T] that returns its value (Evaluate[T], Poll[T]); chromedp.Run
// runs one action and returns that value, chromedp.Do runs actions that
// return none; protocol commands are values sent with cdp.Call; the
// console comes as an iterator (chromedp.Console). It drives current
// Chromium (tested with 156).

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/rendezvous-rtc/rendezvous/internal/chromiumtest"
	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
	"github.com/rendezvous-rtc/rendezvous/web"
)

// waitTimeout bounds every wait for a condition in a page.
const waitTimeout = 20 * time.Second

var shared struct {
	once    sync.Once
	ctx     context.Context // the browser's first tab; new tabs derive from it
	err     error
	cleanup func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cleanup != nil {
		shared.cleanup()
	}
	os.Exit(code)
}

// browser returns the shared browser's context, starting the browser on
// first use. It skips the test (fails it when CI=true) without Chromium.
func browser(t testing.TB) context.Context {
	t.Helper()
	path := chromiumtest.Need(t)
	shared.once.Do(func() { shared.ctx, shared.cleanup, shared.err = startBrowser(path) })
	if shared.err != nil {
		t.Fatalf("start Chromium (%s): %v", path, shared.err)
	}
	return shared.ctx
}

// startBrowser starts the one browser process of the package's tests, with
// its profile in a directory of its own (the browser outlives every test)
// and chromedp's log lines on when CHROMEDP_DEBUG is set (its protocol
// messages too with CHROMEDP_DEBUG=2).
func startBrowser(path string) (context.Context, func(), error) {
	dir, err := os.MkdirTemp("", "rendezvous-chromium-")
	if err != nil {
		return nil, nil, err
	}
	var copts []chromedp.ContextOption
	if os.Getenv("CHROMEDP_DEBUG") != "" {
		copts = append(copts, chromedp.WithErrorf(log.Printf), chromedp.WithLogf(log.Printf))
		if os.Getenv("CHROMEDP_DEBUG") == "2" {
			copts = append(copts, chromedp.WithDebugf(log.Printf))
		}
	}
	ctx, stop, err := chromiumtest.Start(path, dir, copts...)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	cleanup := func() {
		stop()
		_ = os.RemoveAll(dir)
	}
	return ctx, cleanup, nil
}

// newServer starts a signaling server serving the web client, with client
// log lines on.
func newServer(t testing.TB) *signaltest.Server {
	t.Helper()
	return newServerWith(t, signal.Config{})
}

// newServerWith is newServer with more settings.
func newServerWith(t testing.TB, cfg signal.Config) *signaltest.Server {
	t.Helper()
	cfg.Files, cfg.ClientLog = web.FS(), true
	return signaltest.New(t, cfg)
}

// page is one browser tab.
type page struct {
	t      testing.TB
	name   string
	ctx    context.Context
	cancel context.CancelFunc // closes the tab

	consoleDone chan struct{} // closed when readConsole has returned

	mu      sync.Mutex
	console []string // console messages and exceptions, for failure reports
	csp     []string // Content-Security-Policy violations the browser reported
}

// openPage opens url in a new tab of the shared browser, waits for the
// app to be ready, and closes the tab when the test ends. The test fails
// if the page violates its Content-Security-Policy meanwhile.
func openPage(t testing.TB, name, url string) *page {
	t.Helper()
	p := openTab(t, name, url)
	p.waitFor("the app to start", appStarted)
	return p
}

// appStarted is true in a page whose app.js has started.
const appStarted = `!!window.rendezvous && document.querySelector("#event-log li") !== null`

// openPageWithoutCSP is openPage in a tab that does not enforce the
// page's Content-Security-Policy, for a test that points the page's client
// at another origin, which the policy forbids (connect-src 'self').
func openPageWithoutCSP(t testing.TB, name, url string) *page {
	t.Helper()
	p := openTab(t, name, url, bypassCSP)
	p.waitFor("the app to start", appStarted)
	return p
}

// bypassCSP makes the tab ignore the Content-Security-Policy of the pages
// it loads.
var bypassCSP = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	_, err := cdp.Call(ctx, t, cdppage.SetBypassCSP, cdppage.SetBypassCSPParams{Enabled: true})
	return err
})

// openTab opens url in a new tab of the shared browser, after running
// setup (if any) on the tab, waits for it to load, and closes the tab when
// the test ends. The test fails if the page violates its
// Content-Security-Policy meanwhile.
func openTab(t testing.TB, name, url string, setup ...chromedp.Action[chromedp.Void]) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t))
	p := &page{t: t, name: name, ctx: ctx, cancel: cancel}
	t.Cleanup(func() {
		if v := p.cspViolations(); len(v) > 0 {
			t.Errorf("%s violated its Content-Security-Policy:\n%s", name, strings.Join(v, "\n"))
		}
		if t.Failed() {
			p.dump()
		}
		cancel()
		if p.consoleDone != nil {
			<-p.consoleDone // the console ends with the tab
		}
	})
	// The tab's event loop lives on ctx, which has no deadline; Open bounds
	// the wait for the tab instead.
	if err := chromiumtest.Open(ctx, waitTimeout); err != nil {
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	// The console (console API calls, uncaught exceptions, and the
	// browser's own messages: failed requests and Content-Security-Policy
	// violations among others), from before the page loads.
	p.consoleDone = make(chan struct{})
	go p.readConsole(chromedp.Console(ctx))
	if err := p.runTimeout(waitTimeout, append(setup, chromedp.Navigate(url))...); err != nil {
		t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return p
}

// readConsole records the tab's console messages until the tab closes.
func (p *page) readConsole(msgs iter.Seq2[chromedp.ConsoleMessage, error]) {
	defer close(p.consoleDone)
	for m, err := range msgs {
		if err != nil {
			return // the tab closed
		}
		switch {
		case m.IsException():
			p.addConsole(fmt.Sprintf("exception: %s (%s:%d)", m.Text, m.URL, m.Line+1))
		case m.Source != "": // the browser's log
			p.addConsole(fmt.Sprintf("log.%s %s: %s", m.Source, m.Type, m.Text))
			if m.Source == string(cdplog.EntrySourceSecurity) && strings.Contains(m.Text, "Content Security Policy") {
				p.mu.Lock()
				p.csp = append(p.csp, m.Text)
				p.mu.Unlock()
			}
		default:
			p.addConsole(fmt.Sprintf("console.%s: %s", m.Type, m.Text))
		}
	}
}

// cspViolations returns the Content-Security-Policy violations the
// browser reported for the page so far.
func (p *page) cspViolations() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.csp...)
}

// forgetCSPViolations forgets the violations reported so far, for a test
// that causes them on purpose.
func (p *page) forgetCSPViolations() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.csp = nil
}

func (p *page) addConsole(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.console) < 200 {
		p.console = append(p.console, line)
	}
}

// dump logs the page's console and its event log panel.
func (p *page) dump() {
	p.mu.Lock()
	lines := append([]string(nil), p.console...)
	p.mu.Unlock()
	for _, l := range lines {
		p.t.Logf("%s %s", p.name, l)
	}
	events, err := run(p, 3*time.Second, chromedp.Evaluate[string](`[...document.querySelectorAll("#event-log li")].map(li => li.innerText.replace(/\n/g, " ")).join("\n")`))
	if err == nil {
		p.t.Logf("%s event log:\n%s", p.name, events)
	}
}

// run runs action on the tab with a deadline and returns its value. (Only
// the first Do on a tab must go without one; openTab does it.)
func run[T any](p *page, d time.Duration, action chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	return chromedp.Run(ctx, action)
}

// runTimeout runs steps on the tab, in order, with a deadline.
func (p *page) runTimeout(d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	_, err := run(p, d, chromedp.Steps(steps...))
	return err
}

// evaluate evaluates js in the page (awaiting a promise result) and
// returns its value as a T, failing the test on error.
func evaluate[T any](p *page, js string) T {
	p.t.Helper()
	v, err := run(p, waitTimeout, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.name, js, err)
	}
	return v
}

// exec evaluates js in the page for its effects (awaiting a promise
// result), failing the test on error.
func (p *page) exec(js string) {
	p.t.Helper()
	evaluate[chromedp.Void](p, js)
}

// waitFor polls the JavaScript expression cond (which may await) every
// 50 ms until it is truthy, and fails the test after waitTimeout.
func (p *page) waitFor(what, cond string) {
	p.t.Helper()
	if err := p.poll(cond, waitTimeout); err != nil {
		p.t.Fatalf("%s: waiting for %s: %v\ncondition: %s", p.name, what, err, cond)
	}
}

func (p *page) poll(cond string, timeout time.Duration) error {
	_, err := run(p, timeout+5*time.Second, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	return err
}

// click clicks the element matching the CSS selector sel, as a user would.
func (p *page) click(sel string) {
	p.t.Helper()
	if err := p.runTimeout(waitTimeout, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		p.t.Fatalf("%s: click %s: %v", p.name, sel, err)
	}
}

// joinOpts are the choices of the join form.
type joinOpts struct {
	cam, mic, dataOnly bool
}

var withMedia = joinOpts{cam: true, mic: true}

// join fills in the join form and clicks Join. It does not wait. After a
// Leave it first goes back to the form ("Join another room").
func (p *page) join(room, name string, o joinOpts) {
	p.t.Helper()
	js := fmt.Sprintf(`(() => {
		if (document.body.dataset.phase === "left") document.getElementById("new-room").click();
		const set = (id, v) => { const e = document.getElementById(id); e.checked = v; e.dispatchEvent(new Event("change")); };
		document.getElementById("room").value = %s;
		document.getElementById("name").value = %s;
		set("opt-data", %t); set("opt-cam", %t); set("opt-mic", %t);
	})()`, jsString(room), jsString(name), o.dataOnly, o.cam, o.mic)
	p.exec(js)
	p.click("#join")
}

// joined waits until the page is in its room and returns its peer id.
func (p *page) joined() string {
	p.t.Helper()
	p.waitFor("the join to succeed", `document.body.dataset.phase === "call" && !!window.rendezvous.client && window.rendezvous.client.state === "joined"`)
	return evaluate[string](p, `window.rendezvous.client.id`)
}

// joinCall joins a (as aName, with oa) and then b (as bName, with ob) to
// room, waits until each is connected to the other, and returns their ids.
func joinCall(room string, a *page, aName string, oa joinOpts, b *page, bName string, ob joinOpts) (aID, bID string) {
	a.t.Helper()
	a.join(room, aName, oa)
	aID = a.joined()
	b.join(room, bName, ob)
	bID = b.joined()
	a.waitConnected(bID)
	b.waitConnected(aID)
	return aID, bID
}

// waitConnected waits until the tile of member id says connected.
func (p *page) waitConnected(id string) {
	p.t.Helper()
	p.waitFor("a connection to "+id, fmt.Sprintf(`(() => { const t = document.querySelector('.tile.remote[data-peer=%s]'); return !!t && t.dataset.state === "connected"; })()`, jsString(id)))
}

// framesDecoded returns the video frames decoded from member id, from
// getStats (inbound-rtp).
func (p *page) framesDecoded(id string) int {
	p.t.Helper()
	return evaluate[int](p, framesJS(id))
}

func framesJS(id string) string {
	return fmt.Sprintf(`(async () => {
		const c = window.rendezvous.client;
		const peer = c && c.peers.get(%s);
		if (!peer) return 0;
		let n = 0;
		(await peer.pc.getStats()).forEach(r => { if (r.type === "inbound-rtp" && r.kind === "video") n += r.framesDecoded || 0; });
		return n;
	})()`, jsString(id))
}

// waitVideo waits until video from member id decodes: framesDecoded > 0,
// then growing past what it was.
func (p *page) waitVideo(id string) {
	p.t.Helper()
	p.waitFor("video frames from "+id, framesJS(id)+`.then(n => n > 0)`)
	n := p.framesDecoded(id)
	p.waitFor("more video frames from "+id, framesJS(id)+fmt.Sprintf(`.then(n => n > %d)`, n))
}

// waitChat waits until the chat log shows a message with text, from a
// sender whose label contains from.
func (p *page) waitChat(from, text string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("chat %q from %q", text, from), fmt.Sprintf(`[...document.querySelectorAll("#chat-log .msg.theirs")].some(m =>
		m.querySelector(".from").textContent.includes(%s) && m.querySelector(".body").textContent === %s)`, jsString(from), jsString(text)))
}

// sendChat types text into the chat box and sends it.
func (p *page) sendChat(text string) {
	p.t.Helper()
	p.waitFor("the chat box to be enabled", `!document.getElementById("chat-input").disabled`)
	p.exec(fmt.Sprintf(`(() => { document.getElementById("chat-input").value = %s; })()`, jsString(text)))
	p.click("#chat-send")
	p.waitFor("the message in the own chat log", fmt.Sprintf(`[...document.querySelectorAll("#chat-log .msg.mine .body")].some(b => b.textContent === %s)`, jsString(text)))
}

// waitNotice waits for the notice of kind and returns its text.
func (p *page) waitNotice(kind string) string {
	p.t.Helper()
	p.waitFor("notice "+kind, fmt.Sprintf(`(() => { const n = document.getElementById("notice"); return !n.hidden && n.dataset.kind === %s; })()`, jsString(kind)))
	return evaluate[string](p, `document.getElementById("notice-text").textContent`)
}

// screenshot saves a PNG of the tab to the test's temporary directory (and
// to SCREENSHOT_DIR when set) and logs its path.
func (p *page) screenshot(t testing.TB, file string) string {
	t.Helper()
	png, err := run(p, waitTimeout, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	path := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of %s: %s", p.name, path)
	if dir := os.Getenv("SCREENSHOT_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err == nil {
			keep := filepath.Join(dir, file)
			if err := os.WriteFile(keep, png, 0o644); err == nil {
				t.Logf("screenshot copied to %s", keep)
			}
		}
	}
	return path
}

// setupTimes are the milliseconds from the click on Join to each step of
// a call with one member, as the page measured them (0: not reached).
type setupTimes struct {
	Media      float64 // camera and microphone granted
	Joined     float64 // created or joined received
	Connected  float64 // the RTCPeerConnection connected
	FirstFrame float64 // the first video frame decoded (video element loaded)
}

// metrics returns the page's setup times for the call with member id.
func (p *page) metrics(id string) setupTimes {
	p.t.Helper()
	m := evaluate[struct {
		JoinAt, MediaAt, JoinedAt float64
		Peer                      struct{ ConnectedAt, FirstFrameAt float64 }
	}](p, fmt.Sprintf(`(() => { const m = window.rendezvous.metrics;
		return {JoinAt: m.joinAt, MediaAt: m.mediaAt, JoinedAt: m.joinedAt, Peer: m.peers[%s] || {}}; })()`, jsString(id)))
	since := func(at float64) float64 {
		if at == 0 {
			return 0
		}
		return at - m.JoinAt
	}
	return setupTimes{since(m.MediaAt), since(m.JoinedAt), since(m.Peer.ConnectedAt), since(m.Peer.FirstFrameAt)}
}

func (s setupTimes) String() string {
	return fmt.Sprintf("media %.0f ms, joined %.0f ms, connected %.0f ms, first frame %.0f ms after clicking Join",
		s.Media, s.Joined, s.Connected, s.FirstFrame)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// viewport resizes the tab's viewport to w×h CSS pixels; under 500 pixels
// wide it is a phone's (device scale 2, mobile, touch).
func (p *page) viewport(w, h int64) {
	p.t.Helper()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
	if w < 500 {
		opts = []chromedp.EmulateViewportOption{chromedp.EmulateScale(2), chromedp.EmulateMobile}
	}
	if err := p.runTimeout(waitTimeout, chromedp.EmulateViewport(w, h, opts...)); err != nil {
		p.t.Fatalf("%s: set the viewport to %dx%d: %v", p.name, w, h, err)
	}
	p.waitFor("the new viewport", fmt.Sprintf("window.innerWidth === %d", w))
}

// selectedPair describes the candidate pair the connection to member id
// uses, e.g. "127.0.0.1 host ↔ 127.0.0.1 host".
func (p *page) selectedPair(id string) string {
	p.t.Helper()
	return evaluate[string](p, fmt.Sprintf(`(async () => {
		const peer = window.rendezvous.client.peers.get(%s);
		const r = await peer.pc.getStats();
		let pair = null;
		r.forEach(x => { if (x.type === "transport" && x.selectedCandidatePairId) pair = r.get(x.selectedCandidatePairId); });
		if (!pair) return "none";
		const l = r.get(pair.localCandidateId), m = r.get(pair.remoteCandidateId);
		return l.address + " " + l.candidateType + " ↔ " + m.address + " " + m.candidateType;
	})()`, jsString(id)))
}
