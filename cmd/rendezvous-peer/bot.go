package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/rendezvous-rtc/rendezvous/peer"
	"github.com/rendezvous-rtc/rendezvous/signal"
)

// drainTimeout bounds how long the bot waits, before leaving, for the
// messages it sent to be acknowledged.
const drainTimeout = 2 * time.Second

// MediaStream ids of the bot's tracks: the -video track's, and the
// reflected tracks' (-echo).
const (
	videoStreamID = "rendezvous-peer"
	echoStreamID  = "rendezvous-peer-echo"
)

// bot is one run of rendezvous-peer.
type bot struct {
	o      *options
	out    *printer
	stderr io.Writer
	cfg    peer.Config
	refl   *reflector // nil without -echo

	video      *webrtc.TrackLocalStaticSample // nil without -video
	videoFile  *os.File                       // nil without -video
	streamWG   sync.WaitGroup                 // the video streamer
	stopStream context.CancelFunc             // stops the video streamer
}

func newBot(o *options, stdout, stderr io.Writer) (*bot, error) {
	se := webrtc.SettingEngine{}
	if o.loopback {
		se = peer.LoopbackSettingEngine()
	}
	api, err := peer.NewAPIWithCodecs(se, videoCodecs, audioCodecs)
	if err != nil {
		return nil, err
	}
	b := &bot{o: o, out: newPrinter(stdout, o.json), stderr: stderr, stopStream: func() {}}
	b.cfg = peer.Config{
		URL:          o.url,
		Room:         o.room,
		ID:           o.id,
		Capacity:     o.capacity,
		Token:        o.token,
		ResumeWindow: o.resume,
		API:          api,
		DataChannels: []peer.DataChannelConfig{{Label: o.label}},
		Logger:       o.logger(stderr),
	}
	if o.relay {
		b.cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	if o.codelab {
		b.cfg.Codelab = &peer.Codelab{}
	}
	if o.video != "" {
		if err := b.openVideo(o.video); err != nil {
			return nil, err
		}
		if o.videoAfter == 0 {
			b.cfg.Tracks = []webrtc.TrackLocal{b.video}
		}
	}
	if o.echo {
		// The codelab's page shows only the last stream it is given
		// (onaddstream): the echoed audio joins the video's stream there.
		streamID := echoStreamID
		if o.codelab && o.video != "" {
			streamID = videoStreamID
		}
		b.refl = newReflector(o.video == "", streamID)
		b.cfg.Prepare = b.refl.prepare
		b.cfg.OnTrack = b.refl.onTrack
	}
	return b, nil
}

// openVideo checks that file is a VP8 IVF and makes the video track.
func (b *bot) openVideo(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("-video: %w", err)
	}
	_, h, err := ivfreader.NewWith(f)
	if err == nil && h.FourCC != "VP80" {
		err = fmt.Errorf("%w: codec %q", peer.ErrNotVP8, h.FourCC)
	}
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("-video %s: %w", file, err)
	}
	if b.video, err = peer.NewVP8Track("video", videoStreamID); err != nil {
		_ = f.Close()
		return err
	}
	b.videoFile = f
	return nil
}

// run joins, handles events until ctx ends or -exit-after is reached, and
// leaves.
func (b *bot) run(ctx context.Context) error {
	p, err := peer.Join(ctx, b.cfg)
	if err != nil {
		return err
	}
	defer func() {
		_ = p.Close()
		b.out.left(p.Room())
	}()
	if b.video != nil && b.o.videoAfter == 0 {
		b.startVideo()
	}
	var addVideo <-chan time.Time // -video-after's timer, once a call connected
	videoTimer := (*time.Timer)(nil)
	defer func() {
		if videoTimer != nil {
			videoTimer.Stop()
		}
	}()
	received := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-addVideo:
			addVideo = nil
			b.addVideo(p)
		case e, ok := <-p.Events():
			if !ok {
				return nil
			}
			b.out.event(e)
			switch e.Type {
			case peer.EventConnectionState:
				if e.ConnectionState == webrtc.PeerConnectionStateConnected && b.o.videoAfter > 0 && videoTimer == nil {
					videoTimer = time.NewTimer(b.o.videoAfter)
					addVideo = videoTimer.C
				}
			case peer.EventDataChannelOpen:
				b.hello(p, e)
				if b.o.send != "" {
					if err := e.DataChannel.SendText(b.o.send); err != nil {
						b.out.errorf("send to %s on %q: %v", e.Remote, e.Label, err)
					}
				}
			case peer.EventMessage:
				received++
				if b.o.echo {
					b.echo(p, e)
				}
				if b.o.exitAfter > 0 && received >= b.o.exitAfter {
					b.drain(p, e)
					return nil
				}
			case peer.EventPeerLeft, peer.EventHangUp:
				if b.refl != nil && e.Reason != signal.ReasonShutdown {
					b.refl.forget(e.Remote)
				}
			}
		}
	}
}

// hello is the Rendezvous page's hello, which tells the other members the
// sender's name (web/static/app.js).
type hello struct {
	Kind string `json:"kind"` // "hello"
	ID   string `json:"id"`
	Name string `json:"name"`
}

// hello sends the page's hello with -name on the channel that opened
// (event e), so that the page shows the bot's name; not with -codelab or
// an empty -name.
func (b *bot) hello(p *peer.Peer, e peer.Event) {
	if b.o.name == "" || b.o.codelab {
		return
	}
	msg, err := json.Marshal(hello{Kind: "hello", ID: p.ID(), Name: b.o.name})
	if err == nil {
		err = e.DataChannel.SendText(string(msg))
	}
	if err != nil {
		b.out.errorf("hello to %s on %q: %v", e.Remote, e.Label, err)
	}
}

func (b *bot) echo(p *peer.Peer, e peer.Event) {
	var err error
	if e.IsString {
		err = p.SendText(e.Remote, e.Label, string(e.Data))
	} else {
		err = p.Send(e.Remote, e.Label, e.Data)
	}
	if err != nil {
		b.out.errorf("echo to %s on %q: %v", e.Remote, e.Label, err)
	}
}

// drain waits (boundedly) until what was sent on the channel of e has been
// acknowledged, so that a last echo is not lost by leaving at once.
func (b *bot) drain(p *peer.Peer, e peer.Event) {
	dc := p.DataChannel(e.Remote, e.Label)
	if dc == nil {
		return
	}
	low := make(chan struct{})
	var once sync.Once
	dc.SetBufferedAmountLowThreshold(0)
	dc.OnBufferedAmountLow(func() { once.Do(func() { close(low) }) })
	if dc.BufferedAmount() == 0 {
		return
	}
	select {
	case <-low:
	case <-time.After(drainTimeout):
	}
}

// addVideo adds the -video track to every call (-video-after) and starts
// streaming it.
func (b *bot) addVideo(p *peer.Peer) {
	if err := p.AddTrack(b.video); err != nil {
		b.out.errorf("-video-after: add the video: %v", err)
		return
	}
	b.startVideo()
	b.out.notice("video-added")
}

func (b *bot) startVideo() {
	ctx, cancel := context.WithCancel(context.Background())
	b.stopStream = cancel
	b.streamWG.Add(1)
	go func() {
		defer b.streamWG.Done()
		if err := peer.StreamIVF(ctx, b.video, b.videoFile, true); err != nil && !errors.Is(err, context.Canceled) {
			b.out.errorf("video: %v", err)
		}
	}()
}

// stop ends the video streamer and the reflector's goroutines.
func (b *bot) stop() {
	b.stopStream()
	b.streamWG.Wait()
	if b.videoFile != nil {
		_ = b.videoFile.Close()
	}
	if b.refl != nil {
		b.refl.wait()
	}
}
