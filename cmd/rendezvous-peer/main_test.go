package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/rendezvous-rtc/rendezvous/peer"
	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testTimeout = 60 * time.Second

// buildFlags are the flags the bot is built with (-race when the tests
// run with it).
var buildFlags = []string{}

const ivfPath = "../../testdata/testsrc.ivf"

// build builds the bot into dir and returns its path.
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := dir + "/rendezvous-peer"
	args := append(append([]string{"build"}, buildFlags...), "-o", bin, ".")
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// botProc is a running bot with its stdout lines.
type botProc struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, closed at EOF
	stderr *strings.Builder
	exited chan struct{} // closed when Wait returned
	err    error         // Wait's error, set before exited is closed
}

func startBot(t *testing.T, bin string, args ...string) *botProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &botProc{cmd: cmd, lines: make(chan string, 1024), stderr: &strings.Builder{}, exited: make(chan struct{})}
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(b.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			t.Logf("bot: %s", sc.Text())
			select {
			case b.lines <- sc.Text():
			default: // nobody is waiting for these lines
			}
		}
	}()
	go func() {
		<-readDone
		b.err = cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-b.exited
	})
	return b
}

// waitEvent waits for a JSON line with the given event and returns it.
func (b *botProc) waitEvent(t *testing.T, ctx context.Context, event string) map[string]any {
	t.Helper()
	lines := b.collect(t, ctx, event)
	return lines[len(lines)-1]
}

// wait waits for the bot to exit and returns its exit code.
func (b *botProc) wait(t *testing.T, ctx context.Context) int {
	t.Helper()
	select {
	case <-b.exited:
	case <-ctx.Done():
		t.Fatalf("bot did not exit: %v", ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(b.err, &ee) {
		return ee.ExitCode()
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	return 0
}

func loopbackAPI(t *testing.T) *webrtc.API {
	t.Helper()
	api, err := peer.LoopbackAPI()
	if err != nil {
		t.Fatal(err)
	}
	return api
}

func joinPeer(t *testing.T, ctx context.Context, cfg peer.Config) *peer.Peer {
	t.Helper()
	if cfg.API == nil {
		cfg.API = loopbackAPI(t)
	}
	p, err := peer.Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// nextEvent returns p's next event of type typ, skipping others, and
// fails the test if ctx ends or p's events end first.
func nextEvent(t *testing.T, ctx context.Context, p *peer.Peer, typ peer.EventType) peer.Event {
	t.Helper()
	for {
		select {
		case e, ok := <-p.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %v", typ)
			}
			if e.Type == typ {
				return e
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %v: %v", typ, ctx.Err())
		}
	}
}

func nextMessage(t *testing.T, ctx context.Context, p *peer.Peer) peer.Event {
	t.Helper()
	return nextEvent(t, ctx, p, peer.EventMessage)
}

func TestBot(t *testing.T) {
	bin := build(t, t.TempDir())
	t.Run("echo", func(t *testing.T) {
		for _, botFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("bot first %v", botFirst), func(t *testing.T) { testEcho(t, bin, botFirst) })
		}
	})
	t.Run("echo media", func(t *testing.T) {
		for _, botFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("bot first %v", botFirst), func(t *testing.T) { testEchoMedia(t, bin, botFirst) })
		}
	})
	t.Run("video", func(t *testing.T) { testVideo(t, bin) })
	t.Run("video after", func(t *testing.T) { testVideoAfter(t, bin) })
	t.Run("send and exit-after", func(t *testing.T) { testSendExitAfter(t, bin) })
	t.Run("exit codes", func(t *testing.T) { testExitCodes(t, bin) })
}

// testEcho: the bot echoes text and binary messages on the same channel,
// whichever side offers, and leaves cleanly on SIGINT.
func testEcho(t *testing.T, bin string, botFirst bool) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	cfg := peer.Config{URL: srv.URL, Room: "echo", ID: "me", DataChannels: []peer.DataChannelConfig{{Label: "chat"}}}
	var me *peer.Peer
	var bot *botProc
	if botFirst {
		bot = startBot(t, bin, "-url", srv.URL, "-room", "echo", "-id", "bot", "-echo", "-json", "-loopback")
		bot.waitEvent(t, ctx, "joined")
		me = joinPeer(t, ctx, cfg)
	} else {
		me = joinPeer(t, ctx, cfg)
		bot = startBot(t, bin, "-url", srv.URL, "-room", "echo", "-id", "bot", "-echo", "-json", "-loopback")
	}
	if _, err := me.WaitDataChannel(ctx, "bot", "chat"); err != nil {
		t.Fatal(err)
	}
	if err := me.SendText("bot", "chat", "ping"); err != nil {
		t.Fatal(err)
	}
	if err := me.Send("bot", "chat", []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	// The bot's hello with the default -name comes first.
	wantHello(t, ctx, me, "bot", defaultName)
	if e := nextMessage(t, ctx, me); !e.IsString || string(e.Data) != "ping" || e.Label != "chat" {
		t.Errorf("echo 1: %v", e)
	}
	if e := nextMessage(t, ctx, me); e.IsString || string(e.Data) != "\x00\x01\x02" {
		t.Errorf("echo 2: %v", e)
	}
	m := bot.waitEvent(t, ctx, "message")
	if m["text"] != "ping" || m["remote"] != "me" || m["label"] != "chat" {
		t.Errorf("bot printed %v", m)
	}

	if err := bot.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	bot.waitEvent(t, ctx, "left")
	if code := bot.wait(t, ctx); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0; stderr: %s", code, bot.stderr)
	}
	if e := nextEvent(t, ctx, me, peer.EventPeerLeft); e.Reason != signal.ReasonLeft {
		t.Errorf("peer-left reason %q, want %q", e.Reason, signal.ReasonLeft)
	}
}

// receiveVP8 returns an OnTrack callback that reports, on the returned
// channel, the codec of the first track and whether packets came.
func receiveVP8(from string) (func(string, *webrtc.TrackRemote, *webrtc.RTPReceiver), chan string) {
	got := make(chan string, 1)
	return func(remote string, tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if remote != from {
			return
		}
		for range 30 {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
		}
		select {
		case got <- tr.Codec().MimeType:
		default:
		}
	}, got
}

func streamIVF(t *testing.T, track *webrtc.TrackLocalStaticSample) {
	t.Helper()
	f, err := os.Open(ivfPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = peer.StreamIVF(ctx, track, f, true)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = f.Close()
	})
}

// testEchoMedia: a Go peer streams the test IVF to the bot -echo, which
// sends the VP8 stream back, whether the bot answers (it attaches its
// return track to the offered section) or offers (it offers sendrecv
// sections, which the Go peer's track is matched to).
func testEchoMedia(t *testing.T, bin string, botFirst bool) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	track, err := peer.NewVP8Track("video", "me")
	if err != nil {
		t.Fatal(err)
	}
	streamIVF(t, track)
	onTrack, got := receiveVP8("bot")
	cfg := peer.Config{URL: srv.URL, Room: "media", ID: "me", Tracks: []webrtc.TrackLocal{track}, OnTrack: onTrack}
	args := []string{"-url", srv.URL, "-room", "media", "-id", "bot", "-echo", "-json", "-loopback"}
	var bot *botProc
	if botFirst {
		bot = startBot(t, bin, args...)
		bot.waitEvent(t, ctx, "joined")
		joinPeer(t, ctx, cfg)
	} else {
		joinPeer(t, ctx, cfg)
		bot = startBot(t, bin, args...)
	}
	if m := bot.waitEvent(t, ctx, "track"); m["codec"] != webrtc.MimeTypeVP8 {
		t.Errorf("bot got track %v", m)
	}
	select {
	case mime := <-got:
		if mime != webrtc.MimeTypeVP8 {
			t.Errorf("reflected codec %s", mime)
		}
	case <-ctx.Done():
		t.Fatal("no reflected RTP")
	}
}

// testVideo: the bot -video streams the IVF to a Go peer, which offers a
// recvonly video section.
func testVideo(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	bot := startBot(t, bin, "-url", srv.URL, "-room", "video", "-id", "bot", "-video", ivfPath, "-json", "-loopback")
	bot.waitEvent(t, ctx, "joined")
	onTrack, got := receiveVP8("bot")
	joinPeer(t, ctx, peer.Config{URL: srv.URL, Room: "video", ID: "me", Receive: []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}, OnTrack: onTrack})
	select {
	case mime := <-got:
		if mime != webrtc.MimeTypeVP8 {
			t.Errorf("codec %s", mime)
		}
	case <-ctx.Done():
		t.Fatal("no video RTP from the bot")
	}
}

// testVideoAfter: the bot -video-after 1s joins a call with a Go peer
// with data only, and adds the IVF 1 s after the call connected: the Go
// peer's track event comes no sooner (less a margin for the two sides
// seeing connected at slightly different times), after the bot said
// video-added, and VP8 packets follow.
func testVideoAfter(t *testing.T, bin string) {
	const after = time.Second
	const margin = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	bot := startBot(t, bin, "-url", srv.URL, "-room", "later", "-id", "bot", "-video", ivfPath, "-video-after", after.String(), "-json", "-loopback")
	bot.waitEvent(t, ctx, "joined")
	onTrack, got := receiveVP8("bot")
	p := joinPeer(t, ctx, peer.Config{URL: srv.URL, Room: "later", ID: "me", DataChannels: []peer.DataChannelConfig{{Label: "chat"}}, OnTrack: onTrack})
	var connected time.Time
	for connected.IsZero() {
		e := nextEvent(t, ctx, p, peer.EventConnectionState)
		if e.ConnectionState == webrtc.PeerConnectionStateConnected {
			connected = time.Now()
		}
	}
	// (The call has no media section until the bot adds its video: a
	// track event can only come from the renegotiation.)
	e := nextEvent(t, ctx, p, peer.EventTrack)
	delay := time.Since(connected)
	if e.Remote != "bot" || e.Track.Kind() != webrtc.RTPCodecTypeVideo {
		t.Errorf("track from %q, kind %s", e.Remote, e.Track.Kind())
	}
	if delay < after-margin {
		t.Errorf("track %v after the call connected, want at least %v", delay, after)
	}
	t.Logf("track %v after the call connected", delay.Round(time.Millisecond))
	bot.waitEvent(t, ctx, "video-added")
	select {
	case mime := <-got:
		if mime != webrtc.MimeTypeVP8 {
			t.Errorf("codec %s", mime)
		}
	case <-ctx.Done():
		t.Fatal("no video RTP from the bot")
	}
}

// testSendExitAfter: when the channel opens the bot sends the page's hello
// with -name, then -send's text; -exit-after 1 exits 0 after one message.
func testSendExitAfter(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	me := joinPeer(t, ctx, peer.Config{URL: srv.URL, Room: "send", ID: "me"})
	bot := startBot(t, bin, "-url", srv.URL, "-room", "send", "-id", "bot", "-name", "Bot Ross", "-send", "hello", "-exit-after", "1", "-loopback")
	wantHello(t, ctx, me, "bot", "Bot Ross")
	e := nextMessage(t, ctx, me)
	if string(e.Data) != "hello" || !e.IsString {
		t.Fatalf("got %v, want text hello", e)
	}
	if err := me.SendText(e.Remote, e.Label, "bye"); err != nil {
		t.Fatal(err)
	}
	if code := bot.wait(t, ctx); code != 0 {
		t.Errorf("exit code %d, want 0; stderr: %s", code, bot.stderr)
	}
}

func testExitCodes(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	joinPeer(t, ctx, peer.Config{URL: srv.URL, Room: "full", ID: "a"})
	joinPeer(t, ctx, peer.Config{URL: srv.URL, Room: "full", ID: "b"})
	authSrv := signaltest.New(t, signal.Config{AuthSecret: []byte("secret")})
	otherToken, err := signal.MintToken([]byte("another secret"), "r", "", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + ln.Addr().String() + "/ws"
	_ = ln.Close()

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "unreachable", args: []string{"-url", dead, "-room", "r"}, wantCode: exitError, wantStderr: "cannot reach the signaling server"},
		{name: "room full", args: []string{"-url", srv.URL, "-room", "full"}, wantCode: exitFull, wantStderr: `room "full" is full`},
		{name: "no room", args: []string{"-url", srv.URL}, wantCode: exitUsage, wantStderr: "-room is required"},
		{name: "bad video", args: []string{"-url", srv.URL, "-room", "r", "-video", "main.go"}, wantCode: exitError, wantStderr: "-video main.go"},
		{name: "help", args: []string{"-h"}, wantCode: exitOK, wantStderr: "Usage:"},
		{name: "video-after without video", args: []string{"-url", srv.URL, "-room", "r", "-video-after", "1s"}, wantCode: exitUsage, wantStderr: "-video-after needs -video"},
		{name: "negative video-after", args: []string{"-url", srv.URL, "-room", "r", "-video", ivfPath, "-video-after", "-1s"}, wantCode: exitUsage, wantStderr: "-video-after must not be negative"},
		{name: "video-after with codelab", args: []string{"-url", srv.URL, "-room", "r", "-video", ivfPath, "-video-after", "1s", "-codelab"}, wantCode: exitUsage, wantStderr: "-video-after cannot be used with -codelab"},
		{name: "no token", args: []string{"-url", authSrv.URL, "-room", "r"}, wantCode: exitAuth, wantStderr: "the server refused the join token (-token): "},
		{name: "bad token", args: []string{"-url", authSrv.URL, "-room", "r", "-token", otherToken}, wantCode: exitAuth, wantStderr: "The join token is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBot(t, bin, tt.args...)
			if code := b.wait(t, ctx); code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.wantCode, b.stderr)
			}
			if !strings.Contains(b.stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", b.stderr, tt.wantStderr)
			}
		})
	}
}

// TestRunInterrupted runs the bot in-process: cancelling its context (as
// SIGINT does) makes it leave and return 0; the JSON lines parse.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	me := joinPeer(t, ctx, peer.Config{URL: srv.URL, Room: "inproc", ID: "me", DataChannels: []peer.DataChannelConfig{{Label: "chat"}}})
	pr, pw := io.Pipe()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	code := make(chan int, 1)
	go func() {
		defer pw.Close()
		code <- run(runCtx, []string{"-url", srv.URL, "-room", "inproc", "-id", "bot", "-json", "-echo", "-loopback"}, pw, io.Discard, func(string) string { return "" })
	}()
	sc := bufio.NewScanner(pr)
	var events []string
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		ev, _ := m["event"].(string)
		events = append(events, ev)
		if ev == "datachannel-open" {
			// The bot's end may open first.
			if _, err := me.WaitDataChannel(ctx, "bot", "chat"); err != nil {
				t.Fatal(err)
			}
			if err := me.SendText("bot", "chat", "x"); err != nil {
				t.Fatal(err)
			}
		}
		if ev == "message" {
			stop()
		}
	}
	if c := <-code; c != 0 {
		t.Errorf("run returned %d, want 0", c)
	}
	want := []string{"joined", "datachannel-open", "message", "left"}
	i := 0
	for _, ev := range events {
		if i < len(want) && ev == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Errorf("events %v do not contain %v in order", events, want)
	}
}

// TestRunToken: the bot sends the join token of -token or, as here, of
// $RENDEZVOUS_PEER_TOKEN, and joins a server that requires one.
func TestRunToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	secret := []byte("secret")
	srv := signaltest.New(t, signal.Config{AuthSecret: secret})
	token, err := signal.MintToken(secret, "auth", "bot", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	code := make(chan int, 1)
	go func() {
		defer pw.Close()
		getenv := func(name string) string {
			if name == "RENDEZVOUS_PEER_TOKEN" {
				return token
			}
			return ""
		}
		code <- run(runCtx, []string{"-url", srv.URL, "-room", "auth", "-json", "-loopback"}, pw, io.Discard, getenv)
	}()
	sc := bufio.NewScanner(pr)
	joined := false
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		if m["event"] == "joined" {
			joined = true
			if m["id"] != "bot" {
				t.Errorf("joined as %v, want the token's id bot", m["id"])
			}
			stop()
		}
	}
	if c := <-code; c != exitOK || !joined {
		t.Errorf("run returned %d (joined %v), want 0 after joining", c, joined)
	}
}

// wantHello reads p's next message and checks that it is the Rendezvous
// page's hello ({kind: "hello", id, name}, web/static/app.js) from the bot
// with id and name.
func wantHello(t *testing.T, ctx context.Context, p *peer.Peer, id, name string) {
	t.Helper()
	e := nextMessage(t, ctx, p)
	var h map[string]any
	if !e.IsString || json.Unmarshal(e.Data, &h) != nil {
		t.Fatalf("got %v, want the bot's hello", e)
	}
	if want := map[string]any{"kind": "hello", "id": id, "name": name}; !maps.Equal(h, want) {
		t.Fatalf("hello %v, want %v", h, want)
	}
}

// TestNameFlag: -name defaults to "Rendezvous bot", may be set from the
// command line or the environment, and may be empty (no hello).
func TestNameFlag(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{want: defaultName},
		{args: []string{"-name", "Bot Ross"}, want: "Bot Ross"},
		{args: []string{"-name", ""}, want: ""},
		{env: map[string]string{envPrefix + "_NAME": "From env"}, want: "From env"},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		fs, o := newFlagSet(&stderr)
		args := append([]string{"-room", "r"}, tt.args...)
		if code, ok := parseOptions(fs, o, args, func(k string) string { return tt.env[k] }, &stderr); !ok {
			t.Fatalf("%q: exit %d: %s", tt.args, code, stderr.String())
		}
		if o.name != tt.want {
			t.Errorf("%q %v: name %q, want %q", tt.args, tt.env, o.name, tt.want)
		}
	}
}
