package socketio_test

// Real-browser tests: pages written for the origin tutorial and for the
// WebRTC codelab, in headless Chromium (driven by chromedp), against the
// Socket.IO endpoint. Each test starts its own Chromium (TestMain checks
// for leaked goroutines when the package's tests end, so nothing may
// outlive a test). Without Chromium the tests skip, saying how to install
// it, unless CI=true, where they fail; CHROMIUM=/path picks the binary.
// SCREENSHOT_DIR=dir keeps a copy of the screenshots.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/rendezvous-rtc/rendezvous/internal/chromiumtest"
	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio"
)

// needBundle returns the path of the socket.io-client 4.x browser bundle
// from npm, which the pages load from /socket.io/socket.io.js (the
// endpoint would redirect them to the CDN without it). It skips the test
// when it is not installed, unless CI=true, where it fails.
func needBundle(t *testing.T) string {
	t.Helper()
	bundle := filepath.Join(nodeDir, "node_modules", "sio4", "dist", "socket.io.js")
	if !fileExists(bundle) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: the socket.io-client bundle %s is not installed (%s)", bundle, nodeInstall)
		}
		t.Skipf("skipping: the socket.io-client bundle %s is not installed (%s)", bundle, nodeInstall)
	}
	return bundle
}

// startTimeout bounds the opening of a tab.
const startTimeout = 30 * time.Second

// startChromium starts a headless Chromium for the test, with a fake
// camera and WebRTC on loopback, and returns the context of its first tab;
// new tabs derive from it. The browser stops when the test ends. It skips
// the test (fails it when CI=true) without Chromium.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	chrome := chromiumtest.Need(t)
	ctx, stop, err := chromiumtest.Start(chrome, "")
	if err != nil {
		t.Fatalf("start Chromium (%s): %v", chrome, err)
	}
	t.Cleanup(stop)
	return ctx
}

// tab is a browser tab whose console the test reads.
type tab struct {
	t        *testing.T
	name     string
	ctx      context.Context
	closeTab context.CancelFunc // closes the tab

	mu      sync.Mutex
	console []string      // guarded by mu
	changed chan struct{} // guarded by mu: closed and replaced on every line
}

// openTab opens url in a new tab of browser, after running setup (if any)
// on the tab, and waits for it to load. It answers the page's dialogs: it
// accepts them, giving prompt to a prompt. The tab closes when the test
// ends.
func openTab(t *testing.T, browser context.Context, name, url, prompt string, setup ...chromedp.Action[chromedp.Void]) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	tb := &tab{t: t, name: name, ctx: ctx, closeTab: cancel, changed: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		if t.Failed() {
			tb.mu.Lock()
			t.Logf("%s's console:\n%s", name, strings.Join(tb.console, "\n"))
			tb.mu.Unlock()
		}
		cancel()
		wg.Wait() // the readers end with the tab
	})
	// The tab's event loop lives on ctx, which has no deadline; Open bounds
	// the wait for the tab instead.
	if err := chromiumtest.Open(ctx, startTimeout); err != nil {
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	// Both subscriptions start here, before the page loads.
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return // the tab closed
			}
			line := m.Text // a console call, as DevTools shows it
			if m.IsException() || m.Source != "" {
				line = fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1)
			}
			tb.mu.Lock()
			tb.console = append(tb.console, line)
			close(tb.changed)
			tb.changed = make(chan struct{})
			tb.mu.Unlock()
		}
	})
	// A dialog blocks the page (and the navigation that waits for it to
	// load), so it is answered here, on the side.
	wg.Go(func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			dctx, cancel := context.WithTimeout(ctx, wait)
			_, err := chromedp.Call(dctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true, PromptText: prompt})
			cancel()
			if err != nil && ctx.Err() == nil {
				t.Errorf("%s: answer the %s %q: %v", name, ev.Type, ev.Message, err)
			}
		}
	})
	if err := tb.run(append(setup, chromedp.Navigate(url))...); err != nil {
		t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return tb
}

// run runs steps on the tab, in order, bounded by wait.
func (tb *tab) run(steps ...chromedp.Action[chromedp.Void]) error {
	_, err := runOn(tb, chromedp.Steps(steps...))
	return err
}

// runOn runs action on the tab, bounded by wait, and returns its value.
func runOn[T any](tb *tab, action chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, wait)
	defer cancel()
	return chromedp.Run(ctx, action)
}

// evaluate evaluates js in the tab (awaiting a promise result) and
// returns its value as a T, failing the test on error.
func evaluate[T any](tb *tab, js string) T {
	tb.t.Helper()
	v, err := runOn(tb, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: evaluate %s: %v", tb.name, js, err)
	}
	return v
}

// waitFor polls the JavaScript expression cond (which may await) every
// 50 ms until it is truthy, failing the test after wait.
func (tb *tab) waitFor(what, cond string) {
	tb.t.Helper()
	if err := tb.poll(cond, wait); err != nil {
		tb.t.Fatalf("%s: waiting for %s: %v\ncondition: %s", tb.name, what, err, cond)
	}
}

// waitConsole waits for a console line that starts with prefix.
func (tb *tab) waitConsole(prefix string) {
	tb.t.Helper()
	timeout := time.After(wait)
	for {
		tb.mu.Lock()
		lines, changed := tb.console, tb.changed
		tb.mu.Unlock()
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return
			}
		}
		select {
		case <-changed:
		case <-timeout:
			tb.t.Fatalf("%s: no console line %q within %s; got:\n%s", tb.name, prefix, wait, strings.Join(lines, "\n"))
		}
	}
}

// screenshot saves a PNG of the tab in the test's temporary directory (and
// in SCREENSHOT_DIR when set) and logs where.
func (tb *tab) screenshot(file string) {
	tb.t.Helper()
	png, err := runOn(tb, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("%s: screenshot: %v", tb.name, err)
	}
	dirs := []string{tb.t.TempDir()}
	if d := os.Getenv("SCREENSHOT_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		path := filepath.Join(d, file)
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
		tb.t.Logf("screenshot of %s: %s", tb.name, path)
	}
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestOriginPage: the origin tutorial's page and script, unchanged, in
// Chromium, with the socket.io-client 4.x bundle from npm served at
// /socket.io/socket.io.js: the first tab creates the room, the second
// joins it (the first hears "join"), the third finds it full; with
// -client-log the server's log lines reach the console as in the origin.
func TestOriginPage(t *testing.T) {
	bundle := needBundle(t)
	browser := startChromium(t)
	// Their files at /, as the origin's node-static served them.
	e := newSiteEnv(t, signal.Config{ClientLog: true}, socketio.Config{ClientLog: true, ClientFile: bundle},
		http.FileServer(http.Dir("testdata/origin")))
	originRoom(t, browser, e.url)
}

// originRoom opens the origin's page at site three times, in room demo:
// created, join and joined, full.
func originRoom(t *testing.T, browser context.Context, site string) {
	t.Helper()
	open := func(name string) *tab { return openTab(t, browser, name, site+"/", "demo") } // the page prompts for the room
	first := open("first")
	first.waitConsole("Message from server: You created room")
	second := open("second")
	second.waitConsole("Message from server: You joined room")
	first.waitConsole("Making request to join room demo")
	third := open("third")
	third.waitConsole("Room demo is full")
}

// codelabSite serves testdata/codelab (a page written like the WebRTC
// codelab's step 5, with step 6's data channel) at /, with the Socket.IO
// endpoint, and the protocol v1 server's WebSocket at /ws (for the bot).
func codelabSite(t *testing.T) *env {
	t.Helper()
	bundle := needBundle(t)
	var v1 atomic.Value // the protocol v1 server's handler, once there is one
	site := http.NewServeMux()
	site.Handle("/", http.FileServer(http.Dir("testdata/codelab")))
	site.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { v1.Load().(http.Handler).ServeHTTP(w, r) })
	e := newSiteEnv(t, signal.Config{ClientLog: true}, socketio.Config{ClientLog: true, ClientFile: bundle}, site)
	v1.Store(e.srv.Handler())
	return e
}

// codelabFramesJS is the number of video frames the codelab page decoded
// (its RTCPeerConnection's inbound-rtp framesDecoded), 0 before it has one.
const codelabFramesJS = `(async () => {
	if (!pc) return 0;
	let n = 0;
	(await pc.getStats()).forEach(r => { if (r.type === "inbound-rtp" && r.kind === "video") n += r.framesDecoded || 0; });
	return n;
})()`

// waitCodelabFrames waits until the codelab page decodes the remote video:
// framesDecoded > 0, then growing.
func (tb *tab) waitCodelabFrames() {
	tb.t.Helper()
	tb.waitFor("decoded video frames", codelabFramesJS+`.then(n => n > 0)`)
	n := evaluate[int](tb, codelabFramesJS)
	tb.waitFor("more decoded video frames", codelabFramesJS+fmt.Sprintf(`.then(n => n > %d)`, n))
}

// waitCodelabVideo waits until the codelab page decodes the remote video
// and its remote <video> plays it.
func (tb *tab) waitCodelabVideo() {
	tb.t.Helper()
	tb.waitCodelabFrames()
	at := evaluate[float64](tb, `remoteVideo.currentTime`)
	tb.waitFor("the remote <video> to play", fmt.Sprintf(`remoteVideo.videoWidth > 0 && remoteVideo.currentTime > %g`, at))
}

// sendText types text into the page's box and clicks Send, as a user
// would, once the data channel is open.
func (tb *tab) sendText(text string) {
	tb.t.Helper()
	if err := tb.run(
		chromedp.WaitEnabled(chromedp.CSS("#send")),
		chromedp.SendKeys(chromedp.CSS("#text"), text),
		chromedp.Click(chromedp.CSS("#send"), chromedp.NodeVisible),
	); err != nil {
		tb.t.Fatalf("%s: send %q: %v", tb.name, text, err)
	}
}

// waitText waits until the page shows text received over the data channel.
func (tb *tab) waitText(text string) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("%q over the data channel", text),
		fmt.Sprintf(`[...document.querySelectorAll("#trail p:not(.mine)")].some(p => p.textContent === %s)`, jsString(text)))
}

// recordSignals makes the tab record, in window.signals, what its pages
// hand their RTCPeerConnections from the other side: the remote
// descriptions (their type and how many candidates they hold) and the
// remote candidates. It runs before the page's scripts.
var recordSignals = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `(() => {
		const signals = window.signals = {descriptions: [], candidates: []};
		const proto = RTCPeerConnection.prototype;
		const setRemoteDescription = proto.setRemoteDescription, addIceCandidate = proto.addIceCandidate;
		proto.setRemoteDescription = function(d, ...rest) {
			signals.descriptions.push({type: d.type, candidates: (d.sdp.match(/^a=candidate:/mg) || []).length});
			return setRemoteDescription.call(this, d, ...rest);
		};
		proto.addIceCandidate = function(c, ...rest) {
			if (c) signals.candidates.push({label: c.sdpMLineIndex, candidate: c.candidate});
			return addIceCandidate.call(this, c, ...rest);
		};
	})()`})
	return err
})

// checkTrickled checks that the codelab page's call connected through the
// candidates it received as {type: 'candidate', label, id, candidate}
// messages: the descriptions it got held none (the codelab sends them
// before any candidate is gathered), and the remote end of the selected
// candidate pair is one of the candidates it got, with its m-line index.
func (tb *tab) checkTrickled() {
	tb.t.Helper()
	// A remote candidate can be known first from the other side's checks
	// (peer reflexive), before its message arrives: polled, then.
	ok := tb.poll(`(async () => {
		const r = await pc.getStats();
		let remote = "";
		r.forEach(x => {
			if (x.type !== "transport" || !x.selectedCandidatePairId) return;
			const c = r.get(r.get(x.selectedCandidatePairId).remoteCandidateId);
			remote = " " + c.address + " " + c.port + " typ ";
		});
		return remote !== "" && signals.candidates.some(c => c.candidate.includes(remote));
	})()`, wait) == nil
	s := evaluate[struct {
		Descriptions []struct {
			Type       string
			Candidates int
		}
		Candidates []struct {
			Label     *int
			Candidate string
		}
		Remote string // the remote candidate of the selected pair: "address port"
	}](tb, `(async () => {
		const r = await pc.getStats();
		let remote = "";
		r.forEach(x => {
			if (x.type !== "transport" || !x.selectedCandidatePairId) return;
			const c = r.get(r.get(x.selectedCandidatePairId).remoteCandidateId);
			remote = c.address + " " + c.port;
		});
		return {Descriptions: signals.descriptions, Candidates: signals.candidates, Remote: remote};
	})()`)
	if len(s.Descriptions) != 1 || s.Descriptions[0].Candidates != 0 {
		tb.t.Errorf("%s: remote descriptions %+v, want one, without candidates", tb.name, s.Descriptions)
	}
	for _, c := range s.Candidates {
		if c.Label == nil {
			tb.t.Errorf("%s: candidate %q without an m-line index (label)", tb.name, c.Candidate)
		}
	}
	if !ok {
		tb.t.Errorf("%s: the call goes to %q, which is not among the %d candidates received: %+v", tb.name, s.Remote, len(s.Candidates), s.Candidates)
	}
}

// TestCodelabCall: two tabs of a page written like the WebRTC codelab
// (step 5: offer, answer and candidates as Socket.IO 'message' events;
// step 6: a data channel) in the same room: the first creates it and
// calls when the second has its camera, the second answers; both
// RTCPeerConnections connect, through candidates that came as messages
// (the descriptions carry none), each page decodes the other's video, and
// text goes both ways over the data channel. When the second tab closes,
// the first gets 'bye' and hangs up.
func TestCodelabCall(t *testing.T) {
	e := codelabSite(t)
	codelabCall(t, startChromium(t), e.url)
}

// codelabCall makes a call between two tabs of the codelab page at site,
// as TestCodelabCall describes.
func codelabCall(t *testing.T, browser context.Context, site string) {
	t.Helper()
	start := time.Now()
	first := openTab(t, browser, "first", site+"/", "", recordSignals)
	first.waitFor("the room to be created", `isInitiator === true`)
	second := openTab(t, browser, "second", site+"/", "", recordSignals)
	second.waitFor("the room to be joined", `isChannelReady === true && isInitiator === false`)
	first.waitFor("the other side to join", `isChannelReady === true`)

	for _, tb := range []*tab{first, second} {
		tb.waitFor("the call to connect", `!!pc && pc.connectionState === "connected"`)
	}
	connected := time.Since(start)
	for _, tb := range []*tab{first, second} {
		tb.checkTrickled()
		if n := evaluate[int](tb, `pc.getReceivers().filter(r => r.track.kind === "video").length`); n != 1 {
			t.Errorf("%s: %d video receivers, want 1", tb.name, n)
		}
		tb.waitCodelabVideo()
	}
	video := time.Since(start)

	for _, tb := range []*tab{first, second} {
		tb.waitFor("the data channel to open", `!!dataChannel && dataChannel.readyState === "open"`)
	}
	first.sendText("Hello from the first tab")
	second.waitText("Hello from the first tab")
	second.sendText("Hi, the second tab here")
	first.waitText("Hi, the second tab here")
	if l := evaluate[string](second, `dataChannel.label`); l != "chat" {
		t.Errorf("the second tab's data channel is %q, want the first's, chat", l)
	}
	second.screenshot(strings.ReplaceAll(t.Name(), "/", "_") + ".png")
	t.Logf("two codelab tabs: connected %v after the first opened, decoding each other's video after %v",
		connected.Round(time.Millisecond), video.Round(time.Millisecond))

	// The second tab goes: the first hears 'bye' and hangs up.
	second.closeTab()
	first.waitFor("the hang-up", `isStarted === false && pc === null`)
	first.waitConsole("Session terminated.")
}

// buildCommand builds the module's command pkg (e.g. "cmd/rendezvous")
// into the test's temporary directory and returns the binary's path.
func buildCommand(t *testing.T, pkg string) string {
	t.Helper()
	goBin, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), path.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/rendezvous-rtc/rendezvous/"+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// process is a command the test runs, with its output kept.
type process struct {
	cmd    *exec.Cmd
	name   string
	output chan struct{} // closed when the output has ended

	mu      sync.Mutex
	lines   []string      // guarded by mu: stdout and stderr
	changed chan struct{} // guarded by mu: closed and replaced on every line
}

// startProcess runs bin with args in the directory dir until the test
// ends, when it gets SIGTERM (SIGKILL after wait) and must exit 0. Its
// output is logged if the test fails.
func startProcess(t *testing.T, dir, bin string, args ...string) *process {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: exec.Command(bin, args...), name: filepath.Base(bin), output: make(chan struct{}), changed: make(chan struct{})}
	p.cmd.Dir, p.cmd.Stdout, p.cmd.Stderr = dir, w, w
	if err := p.cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	w.Close() // the process has its copy
	go func() {
		defer close(p.output)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan error, 1)
		go func() { exited <- p.cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s: %v", p.name, err)
			}
		case <-time.After(wait):
			_ = p.cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop within %s of SIGTERM", p.name, wait)
		}
		<-p.output
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s's output:\n%s", p.name, strings.Join(p.lines, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// waitLine returns the first line of the output (from its start) that
// match accepts, failing the test after wait.
func (p *process) waitLine(t *testing.T, what string, match func(string) bool) string {
	t.Helper()
	timeout := time.After(wait)
	for {
		p.mu.Lock()
		lines, changed := p.lines, p.changed
		p.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l
			}
		}
		select {
		case <-changed:
		case <-p.output:
			t.Fatalf("%s ended before %s", p.name, what)
		case <-timeout:
			t.Fatalf("%s: no %s within %s", p.name, what, wait)
		}
	}
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// listeningAt waits for the rendezvous command to say where it listens,
// and returns its http URL.
func (p *process) listeningAt(t *testing.T) string {
	t.Helper()
	l := p.waitLine(t, "listening line", listening.MatchString)
	return "http://" + listening.FindStringSubmatch(l)[1]
}

// TestStaticCommand: the rendezvous command with -static serves the
// folder of a page at /, beside the Socket.IO endpoint, as the origin's
// node-static did: the origin's page (in the folder of its index.html and
// js/client.js, "rendezvous -static .") gets its room events, and the
// codelab's page makes its call.
func TestStaticCommand(t *testing.T) {
	bundle, err := filepath.Abs(needBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	chromiumtest.Need(t)
	bin := buildCommand(t, "cmd/rendezvous")
	browser := startChromium(t)
	for _, c := range []struct {
		name, dir string
		test      func(*testing.T, context.Context, string)
	}{
		{"origin", "testdata/origin", originRoom},
		{"codelab", "testdata/codelab", codelabCall},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := startProcess(t, c.dir, bin, "-addr", "127.0.0.1:0", "-static", ".", "-socketio-client", bundle, "-client-log", "-log-format", "text")
			c.test(t, browser, srv.listeningAt(t))
		})
	}
}

// botEvent is a line of rendezvous-peer -json.
type botEvent struct {
	Event, Remote, Label, State, Kind, Codec string
	Created                                  bool
	Text                                     *string
}

// waitBotEvent returns the first event rendezvous-peer -json printed (from
// its start) that match accepts, failing the test after wait.
func (p *process) waitBotEvent(t *testing.T, what string, match func(botEvent) bool) botEvent {
	t.Helper()
	var ev botEvent
	p.waitLine(t, what, func(l string) bool {
		var e botEvent
		if json.Unmarshal([]byte(l), &e) != nil || !match(e) {
			return false
		}
		ev = e
		return true
	})
	return ev
}

// TestCodelabBot: the bot (cmd/rendezvous-peer -codelab, streaming
// testdata/testsrc.ivf, echoing data channel messages) calls the codelab
// page through the same server, in both roles: the page creates the room
// and offers (its data channel "chat"), or the bot does (its channel
// "photos", the codelab's). Either way the call connects at both ends,
// the data channel opens at both ends and carries the page's message to
// the bot and the bot's echo back, the page decodes the bot's video, and
// the bot receives the page's camera; when the page goes, the bot sees it.
func TestCodelabBot(t *testing.T) {
	needBundle(t)
	chromiumtest.Need(t)
	bin := buildCommand(t, "cmd/rendezvous-peer")
	browser := startChromium(t)
	video, err := filepath.Abs(filepath.Join("..", "..", "testdata", "testsrc.ivf"))
	if err != nil {
		t.Fatal(err)
	}
	// -loopback: ICE on 127.0.0.1 only, which works on any machine (a
	// container may have no other interface); this Chromium runs with
	// --allow-loopback-in-peer-connection, so it offers 127.0.0.1 too.
	startBot := func(t *testing.T, e *env) *process {
		return startProcess(t, ".", bin, "-url", e.wsURL, "-room", "foo", "-id", "bot",
			"-codelab", "-video", video, "-echo", "-loopback", "-json")
	}
	t.Run("page creates", func(t *testing.T) {
		e := codelabSite(t)
		start := time.Now()
		pg := openTab(t, browser, "page", e.url+"/", "")
		pg.waitFor("the room to be created", `isInitiator === true`)
		bot := startBot(t, e)
		codelabBotCall(t, pg, bot, "chat", start)
	})
	t.Run("bot creates", func(t *testing.T) {
		e := codelabSite(t)
		start := time.Now()
		bot := startBot(t, e)
		bot.waitBotEvent(t, "the bot to create the room", func(ev botEvent) bool { return ev.Event == "joined" && ev.Created })
		pg := openTab(t, browser, "page", e.url+"/", "")
		pg.waitFor("the room to be joined", `isChannelReady === true && isInitiator === false`)
		codelabBotCall(t, pg, bot, "photos", start)
	})
}

// checkBotVideoShown checks that the codelab page's remote <video> plays
// the bot's video. The page shows the last stream its onaddstream got (the
// codelab's way), so the bot must send all its tracks in one stream.
func (tb *tab) checkBotVideoShown() {
	tb.t.Helper()
	at := evaluate[float64](tb, `remoteVideo.currentTime`)
	err := tb.poll(fmt.Sprintf(`remoteVideo.videoWidth > 0 && remoteVideo.currentTime > %g`, at), 3*time.Second)
	if err == nil {
		return
	}
	s := evaluate[struct {
		Shown   []string          // the kinds of the tracks of the stream the <video> shows
		Streams map[string]string // the kinds of the tracks of each remote stream, by id
	}](tb, `(() => {
		const streams = {}; // stream id → the kinds of its tracks
		for (const st of pc.getRemoteStreams()) streams[st.id] = st.getTracks().map(t => t.kind).join("+");
		return {Shown: remoteVideo.srcObject ? remoteVideo.srcObject.getTracks().map(t => t.kind) : [], Streams: streams};
	})()`)
	tb.t.Errorf("%s: the remote <video> does not play the bot's video: %v (it shows a stream of %v; the bot's streams: %v)", tb.name, err, s.Shown, s.Streams)
}

// poll polls the JavaScript expression cond every 50 ms until it is
// truthy, for at most timeout.
func (tb *tab) poll(cond string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(tb.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	return err
}

// codelabBotCall checks the call between the codelab page pg and the bot,
// whose data channel is label, as TestCodelabBot describes.
func codelabBotCall(t *testing.T, pg *tab, bot *process, label string, start time.Time) {
	t.Helper()
	pg.waitFor("the call to connect", `!!pc && pc.connectionState === "connected"`)
	bot.waitBotEvent(t, "the bot's connection to connect", func(ev botEvent) bool {
		return ev.Event == "connection-state" && ev.State == "connected"
	})
	connected := time.Since(start)
	pg.waitCodelabFrames()
	video := time.Since(start)
	pg.checkBotVideoShown()

	pg.waitFor("the data channel "+label+" to open", fmt.Sprintf(`!!dataChannel && dataChannel.readyState === "open" && dataChannel.label === %s`, jsString(label)))
	bot.waitBotEvent(t, "the bot's data channel "+label+" to open", func(ev botEvent) bool {
		return ev.Event == "datachannel-open" && ev.Label == label
	})
	const ping = "ping from the codelab page"
	pg.sendText(ping)
	bot.waitBotEvent(t, "the page's message at the bot", func(ev botEvent) bool {
		return ev.Event == "message" && ev.Label == label && ev.Text != nil && *ev.Text == ping
	})
	pg.waitText(ping) // the bot's echo
	if tr := bot.waitBotEvent(t, "the page's video at the bot", func(ev botEvent) bool {
		return ev.Event == "track" && ev.Kind == "video"
	}); tr.Codec != "video/VP8" {
		t.Errorf("the bot receives the page's video as %q, want video/VP8", tr.Codec)
	}
	size := evaluate[string](pg, `(async () => {
		let size = "";
		(await pc.getStats()).forEach(r => { if (r.type === "inbound-rtp" && r.kind === "video") size = r.frameWidth + "x" + r.frameHeight; });
		return size;
	})()`)
	pg.screenshot(strings.ReplaceAll(t.Name(), "/", "_") + ".png")
	t.Logf("codelab page and bot: connected %v after the first started, the page decoding the bot's %s video after %v",
		connected.Round(time.Millisecond), size, video.Round(time.Millisecond))

	// The page goes: the bot sees it leave.
	pg.closeTab()
	bot.waitBotEvent(t, "the bot to see the page leave", func(ev botEvent) bool { return ev.Event == "peer-left" })
}
