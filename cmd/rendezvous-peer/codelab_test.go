package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/peer"
	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// pageKind is which of the codelab's pages a codelabPage plays.
type pageKind int

const (
	// step5 is step-05/js/main.js: a video call. It sends "got user media"
	// once it has its camera; it starts (creates its RTCPeerConnection and
	// adds its stream) when it has its camera and another member is in the
	// room, on "got user media" from the other side, on its own camera as
	// the initiator, or on an offer; the initiator (the room's creator)
	// then offers.
	step5 pageKind = iota
	// step6 is step-06/js/main.js: a data channel "photos", no media in the
	// call. It never sends "got user media"; it creates its
	// RTCPeerConnection on 'joined' and again on 'ready' (which the
	// Socket.IO endpoint sends after joined and after join), and the
	// initiator then opens "photos" and offers.
	step6
)

// cameraWhen is when a step-5 page's getUserMedia resolves.
type cameraWhen int

const (
	cameraAtLoad     cameraWhen = iota // at once, as a fake camera does
	cameraOnGotMedia                   // when the other side's "got user media" has come
	cameraOnOffer                      // when the first offer has come (and been dropped: no pc yet)
)

// pageOptions configure a codelabPage.
type pageOptions struct {
	kind   pageKind
	camera cameraWhen // step5
	// channel makes a step-5 initiator open step 6's channel "photos" too.
	channel bool
	// onJoin, when set, runs when another member joins (the page's 'join'),
	// before the page handles anything else: the tests send malformed
	// messages from there.
	onJoin func(send func(data string))
}

// codelabPage is a page of the WebRTC codelab ("Real time communication
// with WebRTC", googlecodelabs/webrtc-web, steps 5 and 6), ported to Go
// statement by statement: the bot's tests play the page against it. A
// protocol v1 client stands for the page's Socket.IO connection, as the
// server's Socket.IO endpoint maps one to the other (signal/socketio
// MAPPING.md): `message` data byte for byte; created, joined, and 'join'
// for peer-joined; peer-left as message 'bye'. A pion PeerConnection
// stands for the browser's; the page's camera is a VP8 track playing
// testdata/testsrc.ivf.
//
// Like the page's script, it runs one event at a time (run), and where
// the page would throw (an offer before its camera: its pc is undefined)
// it drops the message. What it sees is reported as notes: "video"
// (frames from the other side), "open LABEL", "message TEXT" (each data
// channel opened, and each message on it: the page sends "ping" when a
// channel opens), "bye" (message 'bye'), "peer-left", "dropped offer",
// and for a step-5 page "remote streams N" for each offer (the page shows
// the last stream an offer brings).
type codelabPage struct {
	t    *testing.T
	name string
	opts pageOptions
	c    *signal.Client
	api  *webrtc.API

	// The page's variables, owned by run.
	isChannelReady bool
	isInitiator    bool
	isStarted      bool
	localStream    *webrtc.TrackLocalStaticSample // nil until the camera is ready
	pc             *webrtc.PeerConnection

	notes  chan string
	unload chan struct{}      // closed by the test: the page's onbeforeunload, then the tab closes
	done   chan struct{}      // closed when run has ended
	cancel context.CancelFunc // stops the camera

	mu     sync.Mutex
	closed bool           // guarded by mu: no new goroutines
	wg     sync.WaitGroup // the camera and the remote track readers; Add only under mu while !closed
}

// openPage loads a page that joins room on the server at url.
func openPage(t *testing.T, ctx context.Context, url, room, name string, opts pageOptions) *codelabPage {
	t.Helper()
	c, err := signal.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	pg := &codelabPage{t: t, name: name, opts: opts, c: c, api: loopbackAPI(t),
		notes: make(chan string, 256), unload: make(chan struct{}), done: make(chan struct{})}
	camCtx, cancel := context.WithCancel(context.Background())
	pg.cancel = cancel
	m, err := c.Join(ctx, room, &signal.JoinOptions{ID: name}) // socket.emit('create or join', room)
	if err != nil {
		_ = c.Close()
		t.Fatalf("%s: join: %v", name, err)
	}
	go pg.run(camCtx, m)
	t.Cleanup(pg.close)
	return pg
}

func (pg *codelabPage) logf(format string, args ...any) {
	pg.t.Logf("%s: %s", pg.name, fmt.Sprintf(format, args...))
}

func (pg *codelabPage) note(s string) {
	pg.logf("%s", s)
	select {
	case pg.notes <- s:
	default:
	}
}

// waitNotes waits until the page has noted, in any order, a note that
// starts with each of prefixes.
func (pg *codelabPage) waitNotes(ctx context.Context, prefixes ...string) {
	pg.t.Helper()
	missing := append([]string(nil), prefixes...)
	for len(missing) > 0 {
		n := pg.nextNote(ctx, missing...)
		missing = slices.DeleteFunc(missing, func(p string) bool { return strings.HasPrefix(n, p) })
	}
}

// nextNote returns the next note that starts with one of prefixes.
func (pg *codelabPage) nextNote(ctx context.Context, prefixes ...string) string {
	pg.t.Helper()
	for {
		select {
		case n := <-pg.notes:
			for _, p := range prefixes {
				if strings.HasPrefix(n, p) {
					return n
				}
			}
		case <-ctx.Done():
			pg.t.Fatalf("%s: waiting for %q: %v", pg.name, prefixes, ctx.Err())
		}
	}
}

// spawn runs f on a goroutine that close waits for, unless the page is
// closed.
func (pg *codelabPage) spawn(f func()) {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.closed {
		return
	}
	pg.wg.Add(1)
	go func() {
		defer pg.wg.Done()
		f()
	}()
}

// close unloads the page (if the test did not) and waits for it.
func (pg *codelabPage) close() {
	select {
	case <-pg.unload:
	default:
		close(pg.unload)
	}
	<-pg.done
	pg.cancel()
	pg.mu.Lock()
	pg.closed = true
	pg.mu.Unlock()
	pg.wg.Wait()
}

// run is the page's event loop.
func (pg *codelabPage) run(camCtx context.Context, joined *signal.Message) {
	defer close(pg.done)
	in := make(chan *signal.Message)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(in)
		for {
			m, err := pg.c.Recv(context.Background())
			if err != nil {
				return
			}
			select {
			case in <- m:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		_ = pg.c.Close()
		<-readerDone
		pg.closePC()
	}()

	pg.onSocket(joined, camCtx)
	if pg.opts.kind == step5 && pg.opts.camera == cameraAtLoad {
		pg.gotStream(camCtx)
	}
	for {
		select {
		case m, ok := <-in:
			if !ok {
				return
			}
			pg.onSocket(m, camCtx)
		case <-pg.unload:
			// window.onbeforeunload = function() { sendMessage('bye'); };
			if pg.opts.kind == step5 {
				pg.sendMessage("bye")
			}
			return
		}
	}
}

// sendMessage is the page's sendMessage: socket.emit('message', message).
func (pg *codelabPage) sendMessage(message any) {
	b, err := json.Marshal(message)
	if err != nil {
		pg.t.Errorf("%s: %v", pg.name, err)
		return
	}
	pg.sendRaw(string(b))
}

func (pg *codelabPage) sendRaw(data string) {
	if err := pg.c.Send(&signal.Message{Type: signal.TypeMessage, Data: json.RawMessage(data)}); err != nil {
		pg.logf("send: %v", err)
	}
}

// onSocket handles one event of the page's socket.
func (pg *codelabPage) onSocket(m *signal.Message, camCtx context.Context) {
	switch m.Type {
	case signal.TypeCreated:
		pg.isInitiator = true
	case signal.TypeJoined:
		pg.isChannelReady = true
		if pg.opts.kind == step6 {
			pg.isInitiator = false
			pg.createPeerConnection6()
			pg.createPeerConnection6() // 'ready'
		}
	case signal.TypePeerJoined:
		if pg.opts.onJoin != nil {
			pg.opts.onJoin(pg.sendRaw)
		}
		pg.isChannelReady = true
		if pg.opts.kind == step6 {
			pg.createPeerConnection6() // 'ready'
		}
	case signal.TypePeerLeft:
		pg.note("peer-left")
		pg.onMessage(json.RawMessage(`"bye"`), camCtx) // as the endpoint maps it
	case signal.TypeMessage:
		pg.onMessage(m.Data, camCtx)
	}
}

// codelabMsg is what the page's handler reads of a message.
type codelabMsg struct {
	Type      string  `json:"type"`
	SDP       string  `json:"sdp"`
	Label     *uint16 `json:"label"`
	ID        *string `json:"id"`
	Candidate string  `json:"candidate"`
}

// onMessage is socket.on('message', ...) of the page.
func (pg *codelabPage) onMessage(data json.RawMessage, camCtx context.Context) {
	var str string
	var msg codelabMsg
	if json.Unmarshal(data, &str) != nil {
		if err := json.Unmarshal(data, &msg); err != nil {
			pg.logf("message %s: %v", data, err)
			return
		}
	}
	if str == "bye" {
		pg.note("bye")
	}
	if pg.opts.kind == step6 {
		pg.onMessage6(str, msg)
		return
	}
	switch {
	case str == "got user media":
		pg.maybeStart()
		if pg.opts.camera == cameraOnGotMedia && pg.localStream == nil {
			pg.gotStream(camCtx)
		}
	case msg.Type == "offer":
		pg.note(fmt.Sprintf("remote streams %d", countStreams(msg.SDP)))
		if !pg.isInitiator && !pg.isStarted {
			pg.maybeStart()
		}
		if pg.pc == nil {
			// pc.setRemoteDescription(...) throws: pc is undefined.
			pg.note("dropped offer")
			if pg.opts.camera == cameraOnOffer && pg.localStream == nil {
				pg.gotStream(camCtx)
			}
			return
		}
		pg.setRemote(webrtc.SDPTypeOffer, msg.SDP)
		pg.doAnswer()
	case msg.Type == "answer" && pg.isStarted:
		pg.setRemote(webrtc.SDPTypeAnswer, msg.SDP)
	case msg.Type == "candidate" && pg.isStarted:
		// new RTCIceCandidate({sdpMLineIndex: message.label, candidate: message.candidate})
		if err := pg.pc.AddICECandidate(webrtc.ICECandidateInit{SDPMLineIndex: msg.Label, Candidate: msg.Candidate}); err != nil {
			pg.logf("addIceCandidate: %v", err)
		}
	case str == "bye" && pg.isStarted:
		pg.handleRemoteHangup()
	}
}

// countStreams counts the MediaStreams an SDP sends (its a=msid stream
// ids): the browser gives the step-5 page one onaddstream per stream, and
// the page shows the last one.
func countStreams(sdp string) int {
	ids := map[string]bool{}
	for _, line := range strings.Split(sdp, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "a=msid:"); ok {
			id, _, _ := strings.Cut(rest, " ")
			ids[id] = true
		}
	}
	return len(ids)
}

// onMessage6 is step 6's signalingMessageCallback.
func (pg *codelabPage) onMessage6(str string, msg codelabMsg) {
	if pg.pc == nil {
		return // peerConn is undefined: the page throws
	}
	switch {
	case msg.Type == "offer":
		pg.setRemote(webrtc.SDPTypeOffer, msg.SDP)
		pg.answer6()
	case msg.Type == "answer":
		pg.setRemote(webrtc.SDPTypeAnswer, msg.SDP)
	case msg.Type == "candidate":
		if err := pg.pc.AddICECandidate(webrtc.ICECandidateInit{SDPMLineIndex: msg.Label, SDPMid: msg.ID, Candidate: msg.Candidate}); err != nil {
			pg.logf("addIceCandidate: %v", err)
		}
	}
	// 'bye': "TODO: cleanup RTC connection?"
}

// gotStream is the page's getUserMedia success: the camera plays the
// test clip.
func (pg *codelabPage) gotStream(camCtx context.Context) {
	track, err := peer.NewVP8Track("camera", pg.name)
	if err != nil {
		pg.t.Errorf("%s: %v", pg.name, err)
		return
	}
	f, err := os.Open(ivfPath)
	if err != nil {
		pg.t.Errorf("%s: %v", pg.name, err)
		return
	}
	pg.spawn(func() {
		defer f.Close()
		_ = peer.StreamIVF(camCtx, track, f, true)
	})
	pg.logf("got user media")
	pg.localStream = track
	pg.sendMessage("got user media")
	if pg.isInitiator {
		pg.maybeStart()
	}
}

func (pg *codelabPage) maybeStart() {
	if !pg.isStarted && pg.localStream != nil && pg.isChannelReady {
		if pg.createPeerConnection(); pg.pc == nil {
			return
		}
		if _, err := pg.pc.AddTrack(pg.localStream); err != nil { // pc.addStream(localStream)
			pg.t.Errorf("%s: %v", pg.name, err)
		}
		pg.isStarted = true
		if pg.isInitiator {
			if pg.opts.channel {
				pg.createDataChannel("photos")
			}
			pg.doCall()
		}
	}
}

// newPC is new RTCPeerConnection(null) with the page's handlers: its
// candidates go out in the codelab's shape; remote video is read; data
// channels the other side opens are taken (step 6's ondatachannel).
func (pg *codelabPage) newPC() *webrtc.PeerConnection {
	pc, err := pg.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		pg.t.Errorf("%s: %v", pg.name, err)
		return nil
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return // 'End of candidates.'
		}
		init := c.ToJSON()
		pg.sendMessage(map[string]any{"type": "candidate", "label": init.SDPMLineIndex, "id": init.SDPMid, "candidate": init.Candidate})
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		pg.spawn(func() {
			packets := 0
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				if len(pkt.Payload) == 0 {
					continue
				}
				if packets++; packets == 30 {
					pg.note("video " + tr.Codec().MimeType)
				}
			}
		})
	})
	pc.OnDataChannel(pg.watchChannel)
	return pc
}

func (pg *codelabPage) createPeerConnection() { pg.pc = pg.newPC() }

// closePC closes the page's pc, if any, and waits for pion's goroutines.
func (pg *codelabPage) closePC() {
	if pg.pc != nil {
		_ = pg.pc.GracefulClose()
		pg.pc = nil
	}
}

// createDataChannel is pc.createDataChannel(label) with the page's
// handlers.
func (pg *codelabPage) createDataChannel(label string) {
	dc, err := pg.pc.CreateDataChannel(label, nil)
	if err != nil {
		pg.t.Errorf("%s: %v", pg.name, err)
		return
	}
	pg.watchChannel(dc)
}

// watchChannel notes a data channel's opening and messages, and says
// "ping" when it opens.
func (pg *codelabPage) watchChannel(dc *webrtc.DataChannel) {
	dc.OnOpen(func() {
		pg.note("open " + dc.Label())
		_ = dc.SendText("ping")
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) { pg.note("message " + string(m.Data)) })
}

// doCall: pc.createOffer(setLocalAndSendMessage).
func (pg *codelabPage) doCall() {
	offer, err := pg.pc.CreateOffer(nil)
	if err != nil {
		pg.t.Errorf("%s: createOffer: %v", pg.name, err)
		return
	}
	pg.setLocalAndSendMessage(offer)
}

// doAnswer: pc.createAnswer().then(setLocalAndSendMessage).
func (pg *codelabPage) doAnswer() {
	answer, err := pg.pc.CreateAnswer(nil)
	if err != nil {
		pg.logf("createAnswer: %v", err)
		return
	}
	pg.setLocalAndSendMessage(answer)
}

func (pg *codelabPage) setLocalAndSendMessage(sd webrtc.SessionDescription) {
	if err := pg.pc.SetLocalDescription(sd); err != nil {
		pg.logf("setLocalDescription: %v", err)
	}
	pg.sendMessage(map[string]string{"type": sd.Type.String(), "sdp": sd.SDP})
}

func (pg *codelabPage) setRemote(typ webrtc.SDPType, sdp string) {
	if err := pg.pc.SetRemoteDescription(webrtc.SessionDescription{Type: typ, SDP: sdp}); err != nil {
		pg.logf("setRemoteDescription: %v", err)
	}
}

func (pg *codelabPage) handleRemoteHangup() {
	pg.isStarted = false // stop()
	pg.closePC()
	pg.isInitiator = false
}

// createPeerConnection6 is step 6's createPeerConnection(isInitiator): the
// initiator opens "photos" and offers; the other waits for the channel.
func (pg *codelabPage) createPeerConnection6() {
	pg.closePC() // the page drops it without closing it
	if pg.pc = pg.newPC(); pg.pc == nil {
		return
	}
	if pg.isInitiator {
		pg.createDataChannel("photos")
		offer, err := pg.pc.CreateOffer(nil)
		if err != nil {
			pg.t.Errorf("%s: createOffer: %v", pg.name, err)
			return
		}
		pg.onLocalSessionCreated(offer)
	}
}

func (pg *codelabPage) answer6() {
	answer, err := pg.pc.CreateAnswer(nil)
	if err != nil {
		pg.logf("createAnswer: %v", err)
		return
	}
	pg.onLocalSessionCreated(answer)
}

// onLocalSessionCreated: setLocalDescription, then send
// peerConn.localDescription.
func (pg *codelabPage) onLocalSessionCreated(sd webrtc.SessionDescription) {
	if err := pg.pc.SetLocalDescription(sd); err != nil {
		pg.logf("setLocalDescription: %v", err)
		return
	}
	local := pg.pc.LocalDescription()
	pg.sendMessage(map[string]string{"type": local.Type.String(), "sdp": local.SDP})
}

// waitEvents waits until the bot has printed, in any order, a line of each
// of events, and returns the first of each.
func (b *botProc) waitEvents(t *testing.T, ctx context.Context, events ...string) map[string]map[string]any {
	t.Helper()
	got := make(map[string]map[string]any)
	for len(got) < len(events) {
		select {
		case l, ok := <-b.lines:
			if !ok {
				t.Fatalf("bot exited while waiting for %q; stderr: %s", events, b.stderr)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("bot printed a line that is not JSON: %q", l)
			}
			ev, _ := m["event"].(string)
			if slices.Contains(events, ev) && got[ev] == nil {
				got[ev] = m
			}
		case <-ctx.Done():
			t.Fatalf("waiting for bot events %q: %v", events, ctx.Err())
		}
	}
	return got
}

// collect returns the bot's JSON lines up to and including the first with
// the given event.
func (b *botProc) collect(t *testing.T, ctx context.Context, event string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for {
		select {
		case l, ok := <-b.lines:
			if !ok {
				t.Fatalf("bot exited while waiting for %q; stderr: %s", event, b.stderr)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("bot printed a line that is not JSON: %q", l)
			}
			lines = append(lines, m)
			if m["event"] == event {
				return lines
			}
		case <-ctx.Done():
			t.Fatalf("waiting for bot event %q: %v", event, ctx.Err())
		}
	}
}

// TestCodelab: the bot with -codelab calls a codelab page (a Go port of
// the page's script, speaking through a protocol v1 connection as the
// Socket.IO endpoint makes it) in both roles, with both pages, whether
// the page's camera is ready before or after the bot, and another bot.
func TestCodelab(t *testing.T) {
	bin := build(t, t.TempDir())
	botArgs := func(url, room, id string, extra ...string) []string {
		return append([]string{"-url", url, "-room", room, "-id", id, "-codelab", "-json", "-loopback"}, extra...)
	}

	// The page creates the room and offers (video, and "photos"): the bot
	// answers with its video and echoes.
	pageOffers := func(t *testing.T, camera cameraWhen) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		srv := signaltest.New(t, signal.Config{})
		pg := openPage(t, ctx, srv.URL, "call", "page", pageOptions{kind: step5, camera: camera, channel: true})
		bot := startBot(t, bin, botArgs(srv.URL, "call", "bot", "-video", ivfPath, "-echo")...)
		got := bot.waitEvents(t, ctx, "datachannel-open", "track")
		if m := got["datachannel-open"]; m["label"] != "photos" || m["remote"] != "page" {
			t.Errorf("bot: %v", m)
		}
		if m := got["track"]; m["codec"] != webrtc.MimeTypeVP8 {
			t.Errorf("bot got track %v", m)
		}
		pg.waitNotes(ctx, "video "+webrtc.MimeTypeVP8, "message ping") // the bot's video and echo
	}
	t.Run("step 5 page creates, camera first", func(t *testing.T) { pageOffers(t, cameraAtLoad) })
	t.Run("step 5 page creates, camera after the bot", func(t *testing.T) { pageOffers(t, cameraOnGotMedia) })

	t.Run("step 5 bot creates", func(t *testing.T) { testCodelabBotOffers(t, bin, botArgs) })

	t.Run("step 5 bot creates, camera after the offer", func(t *testing.T) {
		// The page gets the offer (the bot's, 2s after it joined) before its
		// camera and drops it; its "got user media" makes the bot send it
		// again.
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		srv := signaltest.New(t, signal.Config{})
		bot := startBot(t, bin, botArgs(srv.URL, "late", "bot", "-video", ivfPath)...)
		bot.waitEvent(t, ctx, "joined")
		pg := openPage(t, ctx, srv.URL, "late", "page", pageOptions{kind: step5, camera: cameraOnOffer})
		pg.waitNotes(ctx, "dropped offer")
		pg.waitNotes(ctx, "open photos", "video "+webrtc.MimeTypeVP8)
	})

	t.Run("step 6 page creates", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		srv := signaltest.New(t, signal.Config{})
		pg := openPage(t, ctx, srv.URL, "photos", "page", pageOptions{kind: step6})
		bot := startBot(t, bin, botArgs(srv.URL, "photos", "bot", "-echo")...)
		pg.waitNotes(ctx, "message ping")
		if m := bot.waitEvent(t, ctx, "message"); m["label"] != "photos" || m["text"] != "ping" {
			t.Errorf("bot: %v", m)
		}
	})

	t.Run("step 6 bot creates", func(t *testing.T) {
		// The page never says "got user media": the bot offers 2s after it
		// joined.
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		srv := signaltest.New(t, signal.Config{})
		bot := startBot(t, bin, botArgs(srv.URL, "photos", "bot", "-echo")...)
		bot.waitEvent(t, ctx, "joined")
		pg := openPage(t, ctx, srv.URL, "photos", "page", pageOptions{kind: step6})
		pg.waitNotes(ctx, "open photos", "message ping")
	})

	t.Run("malformed messages", func(t *testing.T) {
		// Before its offer the page sends what is no codelab signal, signals
		// with bad fields, and a candidate: the bot reports the bad signals,
		// ignores the rest, buffers the candidate, and answers the call.
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		srv := signaltest.New(t, signal.Config{})
		ignored := []string{`42`, `null`, `[1,2]`, `{}`, `"hello"`, `{"type":7}`, `{"type":"chat","text":"hi"}`}
		reported := []string{`{"type":"offer"}`, `{"type":"answer","sdp":["v=0"]}`, `{"type":"candidate"}`,
			`{"type":"candidate","label":"zero","id":"0","candidate":"candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"}`,
			`{"type":"candidate","label":0,"id":"0","candidate":"candidate:nonsense"}`}
		early := `{"type":"candidate","label":0,"id":"0","candidate":"candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"}`
		pg := openPage(t, ctx, srv.URL, "junk", "page", pageOptions{kind: step5, channel: true, onJoin: func(send func(string)) {
			for _, d := range append(append(ignored, reported...), early) {
				send(d)
			}
		}})
		bot := startBot(t, bin, botArgs(srv.URL, "junk", "bot", "-echo")...)
		errs := 0
		for _, m := range bot.collect(t, ctx, "datachannel-open") {
			if m["event"] == "error" {
				errs++
			}
		}
		if errs != len(reported) {
			t.Errorf("bot printed %d errors, want %d", errs, len(reported))
		}
		pg.waitNotes(ctx, "message ping")
	})

	t.Run("two bots", func(t *testing.T) { testCodelabBots(t, bin, botArgs) })
}

// testCodelabBotOffers: the bot creates the room; a step-5 page joins and
// says "got user media"; the bot offers its video (and the echo of the
// page's audio, in the same stream) and "photos". The page
// leaving ('bye', then its socket closes) hangs the bot up; the bot waits
// for the next page and calls it; on SIGINT it says 'bye' before it leaves.
func testCodelabBotOffers(t *testing.T, bin string, botArgs func(url, room, id string, extra ...string) []string) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	bot := startBot(t, bin, botArgs(srv.URL, "call", "bot", "-video", ivfPath, "-echo")...)
	if m := bot.waitEvent(t, ctx, "joined"); m["created"] != true {
		t.Fatalf("bot: %v", m)
	}
	first := openPage(t, ctx, srv.URL, "call", "first", pageOptions{kind: step5})
	// One stream: the echoed audio joins the video's, which the page shows.
	if n := first.nextNote(ctx, "remote streams"); n != "remote streams 1" {
		t.Errorf("page: %s in the bot's offer, want 1", n)
	}
	first.waitNotes(ctx, "open photos", "message ping", "video "+webrtc.MimeTypeVP8)
	if m := bot.waitEvent(t, ctx, "message"); m["label"] != "photos" || m["text"] != "ping" || m["remote"] != "first" {
		t.Errorf("bot: %v", m)
	}

	first.close()
	if m := bot.waitEvent(t, ctx, "hang-up"); m["remote"] != "first" {
		t.Errorf("bot: %v", m)
	}
	if m := bot.waitEvent(t, ctx, "peer-left"); m["remote"] != "first" {
		t.Errorf("bot: %v", m)
	}

	second := openPage(t, ctx, srv.URL, "call", "second", pageOptions{kind: step5})
	second.waitNotes(ctx, "open photos", "video "+webrtc.MimeTypeVP8)

	if err := bot.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if n := second.nextNote(ctx, "bye", "peer-left"); n != "bye" {
		t.Errorf("page: first %q, want the bot's bye before it leaves", n)
	}
	second.waitNotes(ctx, "peer-left")
	if code := bot.wait(t, ctx); code != 0 {
		t.Errorf("exit code %d, want 0; stderr: %s", code, bot.stderr)
	}
}

// testCodelabBots: two bots with -codelab; the creator, which streams the
// test video, offers "photos" to the joiner, which echoes everything
// (media too). When the creator leaves, the joiner hangs up, and calls
// the next bot as the room's first member.
func testCodelabBots(t *testing.T, bin string, botArgs func(url, room, id string, extra ...string) []string) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	args := func(id string, extra ...string) []string { return botArgs(srv.URL, "bots", id, extra...) }
	creator := startBot(t, bin, args("creator", "-video", ivfPath, "-send", "hello")...)
	if m := creator.waitEvent(t, ctx, "joined"); m["created"] != true {
		t.Fatalf("creator: %v", m)
	}
	joiner := startBot(t, bin, args("joiner", "-echo")...)

	got := joiner.waitEvents(t, ctx, "track", "message")
	if m := got["track"]; m["codec"] != webrtc.MimeTypeVP8 || m["remote"] != "creator" {
		t.Errorf("joiner: %v", m)
	}
	if m := got["message"]; m["label"] != "photos" || m["text"] != "hello" {
		t.Errorf("joiner: %v", m)
	}
	got = creator.waitEvents(t, ctx, "track", "message")
	if m := got["message"]; m["text"] != "hello" || m["remote"] != "joiner" {
		t.Errorf("creator: %v (want the echo)", m)
	}
	// The joiner reflects the creator's video: frames reached it.
	if m := got["track"]; m["codec"] != webrtc.MimeTypeVP8 {
		t.Errorf("creator: %v", m)
	}

	if err := creator.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := creator.wait(t, ctx); code != 0 {
		t.Errorf("creator: exit code %d; stderr: %s", code, creator.stderr)
	}
	lines := joiner.collect(t, ctx, "peer-left")
	if hangUp := lines[len(lines)-2]; hangUp["event"] != "hang-up" || hangUp["remote"] != "creator" {
		t.Errorf("joiner: before peer-left %v, want hang-up", hangUp)
	}

	third := startBot(t, bin, args("third")...)
	if m := third.waitEvent(t, ctx, "datachannel-open"); m["label"] != "photos" || m["remote"] != "joiner" {
		t.Errorf("third: %v", m)
	}
	if m := joiner.waitEvent(t, ctx, "datachannel-open"); m["remote"] != "third" {
		t.Errorf("joiner: %v", m)
	}
}

// TestCodelabFlags: -codelab (or its variable) sets the peer's dialect and
// makes "photos" the default label; -label still wins. The usage names the
// wait for "got user media".
func TestCodelabFlags(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		env   map[string]string
		label string
	}{
		{args: []string{"-codelab"}, label: "photos"},
		{env: map[string]string{"RENDEZVOUS_PEER_CODELAB": "true"}, label: "photos"},
		{args: []string{"-codelab", "-label", "chat"}, label: "chat"},
		{args: []string{"-codelab"}, env: map[string]string{"RENDEZVOUS_PEER_LABEL": "x"}, label: "x"},
		{args: nil, label: "chat"},
	} {
		fs, o := newFlagSet(&strings.Builder{})
		args := append([]string{"-room", "r"}, tt.args...)
		if code, ok := parseOptions(fs, o, args, func(k string) string { return tt.env[k] }, &strings.Builder{}); !ok {
			t.Fatalf("%v %v: exit %d", tt.args, tt.env, code)
		}
		if o.label != tt.label {
			t.Errorf("%v %v: label %q, want %q", tt.args, tt.env, o.label, tt.label)
		}
		b, err := newBot(o, &strings.Builder{}, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		if (b.cfg.Codelab != nil) != o.codelab || b.cfg.DataChannels[0].Label != tt.label {
			t.Errorf("%v %v: config %+v", tt.args, tt.env, b.cfg)
		}
		b.stop()
	}
	if want := peer.DefaultGotMediaTimeout.String() + " after it joined"; !strings.Contains(usageHeader, want) {
		t.Errorf("the usage does not say %q", want)
	}
}
