package peer

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// deadURL returns the URL of a port on 127.0.0.1 nobody listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "ws://" + addr + "/ws"
}

func TestJoinErrors(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	join(t, ctx, config(t, srv.URL, "full", "a"))
	join(t, ctx, config(t, srv.URL, "full", "b"))
	join(t, ctx, config(t, srv.URL, "taken", "a"))

	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{name: "unreachable", cfg: Config{URL: deadURL(t), Room: "r"}, want: ErrConnect},
		{name: "room full", cfg: Config{URL: srv.URL, Room: "full"}, want: ErrRoomFull},
		{name: "room full (signal)", cfg: Config{URL: srv.URL, Room: "full"}, want: signal.ErrRoomFull},
		{name: "id taken", cfg: Config{URL: srv.URL, Room: "taken", ID: "a"}, want: &signal.Error{Code: signal.CodeIDTaken}},
		{name: "no URL", cfg: Config{Room: "r"}, want: ErrConfig},
		{name: "no room", cfg: Config{URL: srv.URL}, want: ErrConfig},
		{name: "bad ICE transport policy", cfg: Config{URL: srv.URL, Room: "r", ICETransportPolicy: 7}, want: ErrConfig},
		{name: "channel without label", cfg: Config{URL: srv.URL, Room: "r", DataChannels: []DataChannelConfig{{}}}, want: ErrConfig},
		{name: "negotiated channel without id", cfg: Config{URL: srv.URL, Room: "r", DataChannels: []DataChannelConfig{{
			Label: "x", Init: &webrtc.DataChannelInit{Negotiated: ptr(true)},
		}}}, want: ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Join(ctx, tt.cfg)
			if err == nil {
				_ = p.Close()
				t.Fatal("Join succeeded")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Join: %v, want %v", err, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestClose: Close is safe to call twice and concurrently, and methods
// called afterwards fail with ErrClosed.
func TestClose(t *testing.T) {
	ctx, _, a, b := pair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Close()
	}()
	_ = a.Close()
	<-done
	_ = a.Close()
	select {
	case <-a.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if err := a.WaitConnected(ctx, "b"); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitConnected after Close: %v, want ErrClosed", err)
	}
	if err := a.SendText("b", chat, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("SendText after Close: %v, want ErrClosed", err)
	}
	if _, err := a.CreateDataChannel("b", "x", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateDataChannel after Close: %v, want ErrClosed", err)
	}
	for range a.Events() {
	}
	// b sees a leave.
	ev := nextEvent(t, ctx, b, "peer-left", func(e Event) bool { return e.Type == EventPeerLeft })
	if ev.Reason != signal.ReasonLeft {
		t.Errorf("peer-left reason %q, want %q", ev.Reason, signal.ReasonLeft)
	}
}

// TestWaitCancelled: WaitConnected for a member that never comes returns
// ctx's error.
func TestWaitCancelled(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	a := join(t, ctx, config(t, srv.URL, "wait", "a"))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.WaitConnected(cctx, "nobody"); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitConnected: %v, want context.Canceled", err)
	}
}

// TestSendErrors: sending needs a known member and an open channel.
func TestSendErrors(t *testing.T) {
	_, _, a, _ := pair(t)
	tests := []struct {
		name   string
		remote string
		label  string
		want   error
	}{
		{name: "unknown member", remote: "zz", label: chat, want: ErrUnknownRemote},
		{name: "unknown label", remote: "b", label: "nope", want: ErrNoChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.Send(tt.remote, tt.label, []byte("x")); !errors.Is(err, tt.want) {
				t.Errorf("Send: %v, want %v", err, tt.want)
			}
			if err := a.SendText(tt.remote, tt.label, "x"); !errors.Is(err, tt.want) {
				t.Errorf("SendText: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestCreateDataChannel: either side can open another channel on a
// connection that has a data channel transport; one without fails with
// ErrNoSCTP.
func TestCreateDataChannel(t *testing.T) {
	ctx, srv, a, b := pair(t)
	// a answered; it opens the second channel.
	if _, err := a.CreateDataChannel("b", "extra", &webrtc.DataChannelInit{Ordered: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, ctx, b, "extra open", func(e Event) bool {
		return e.Type == EventDataChannelOpen && e.Label == "extra"
	})
	if ev.Remote != "a" || ev.DataChannel.Ordered() {
		t.Errorf("open from %s ordered %v, want from a unordered", ev.Remote, ev.DataChannel.Ordered())
	}
	if _, err := a.WaitDataChannel(ctx, "b", "extra"); err != nil {
		t.Fatal(err)
	}
	if err := b.SendText("a", "extra", "on extra"); err != nil {
		t.Fatal(err)
	}
	if e := messages(t, ctx, a, 1)[0]; e.Label != "extra" || string(e.Data) != "on extra" {
		t.Errorf("got %q on %q", e.Data, e.Label)
	}

	// Without any configured channel, the transport is negotiated anyway;
	// before the negotiation, CreateDataChannel fails.
	c := join(t, ctx, Config{URL: srv.URL, Room: "bare", ID: "c", API: loopbackAPI(t)})
	d := join(t, ctx, Config{URL: srv.URL, Room: "bare", ID: "d", API: loopbackAPI(t)})
	if _, err := d.CreateDataChannel("c", "late", nil); !errors.Is(err, ErrNoSCTP) && !errors.Is(err, ErrUnknownRemote) {
		t.Errorf("CreateDataChannel before connecting: %v, want ErrNoSCTP or ErrUnknownRemote", err)
	}
	if err := d.WaitConnected(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitConnected(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateDataChannel("c", "late", nil); err != nil {
		t.Fatalf("CreateDataChannel without configured channels: %v", err)
	}
	if _, err := c.WaitDataChannel(ctx, "d", "late"); err != nil {
		t.Fatal(err)
	}
}

// TestICEServersFromServer: the iceServers of joined/created configure the
// PeerConnections, followed by Config.ICEServers; invalid entries are
// skipped.
func TestICEServersFromServer(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{ICEServers: []signal.ICEServer{
		{URLs: []string{"stun:127.0.0.1:3478"}},
		{URLs: []string{"turn:127.0.0.1:3478"}}, // no credentials: skipped
		{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "u", Credential: "c"},
	}})
	extra := webrtc.ICEServer{URLs: []string{"stun:127.0.0.2:3478"}}
	cfg := config(t, srv.URL, "ice", "a")
	cfg.ICEServers = []webrtc.ICEServer{extra}
	a := join(t, ctx, cfg)
	b := join(t, ctx, config(t, srv.URL, "ice", "b"))
	waitChannel(t, ctx, a, b)
	got := a.PeerConnection("b").GetConfiguration().ICEServers
	want := []string{"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp", "stun:127.0.0.2:3478"}
	if len(got) != len(want) {
		t.Fatalf("ICE servers %+v, want URLs %v", got, want)
	}
	for i, s := range got {
		if s.URLs[0] != want[i] {
			t.Errorf("ICE server %d: %v, want %s", i, s.URLs, want[i])
		}
	}
	if got[1].Username != "u" || got[1].Credential != "c" {
		t.Errorf("TURN credentials %q/%v, want u/c", got[1].Username, got[1].Credential)
	}
}

// TestJoinToken: against a server with an auth secret, Config.Token is
// sent in join; a missing or bad token fails with an error wrapping
// ErrUnauthorized and the server's *signal.Error (unauthorized).
func TestJoinToken(t *testing.T) {
	ctx := testContext(t)
	secret := []byte("the secret")
	srv := signaltest.New(t, signal.Config{AuthSecret: secret})
	mint := func(secret []byte, room, sub string) string {
		tok, err := signal.MintToken(secret, room, sub, 0, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cfgA := config(t, srv.URL, "auth", "a")
	cfgA.Token = mint(secret, "auth", "")
	a := join(t, ctx, cfgA)
	cfgB := config(t, srv.URL, "auth", "")
	cfgB.Token = mint(secret, "*", "bee") // the token grants the id
	b := join(t, ctx, cfgB)
	if b.ID() != "bee" {
		t.Errorf("id %q, want the token's bee", b.ID())
	}
	waitChannel(t, ctx, a, b)

	for _, tt := range []struct{ name, token string }{
		{name: "missing"},
		{name: "bad signature", token: mint([]byte("another secret"), "auth", "")},
		{name: "other room", token: mint(secret, "elsewhere", "")},
		{name: "not a JWT", token: "nonsense"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(t, srv.URL, "auth2", "")
			cfg.Token = tt.token
			p, err := Join(ctx, cfg)
			if err == nil {
				_ = p.Close()
				t.Fatal("Join succeeded")
			}
			var se *signal.Error
			if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &se) || se.Code != signal.CodeUnauthorized {
				t.Fatalf("Join: %v, want ErrUnauthorized wrapping a *signal.Error with code %s", err, signal.CodeUnauthorized)
			}
			if !strings.Contains(err.Error(), "token") {
				t.Errorf("error %q does not say what is wrong", err)
			}
		})
	}
}
