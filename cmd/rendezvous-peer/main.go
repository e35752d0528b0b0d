// Command rendezvous-peer is a headless WebRTC peer (a bot) for Rendezvous
// rooms: it joins a room through the signaling server, negotiates with
// every member that is or comes into the room (Go peers or browsers), and
// prints one line per event. It can echo data channel messages and media
// back, stream a VP8 IVF file as video, send a message, and exit after a
// number of messages, for scripts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	ossignal "os/signal"
	"syscall"
	"time"

	"github.com/rendezvous-rtc/rendezvous/cmd/internal/flagenv"
	"github.com/rendezvous-rtc/rendezvous/peer"
)

const envPrefix = "RENDEZVOUS_PEER"

// Exit codes.
const (
	exitOK    = 0 // Ctrl-C / SIGTERM (left the room), or -exit-after reached
	exitError = 1 // the server cannot be reached, or another failure
	exitUsage = 2 // bad flags
	exitFull  = 3 // the room is full
	exitAuth  = 4 // the server refused the join token
)

const usageHeader = `rendezvous-peer: a headless WebRTC peer (bot) for Rendezvous rooms.

Usage:
  rendezvous-peer -url ws://127.0.0.1:2013/ws -room demo [flags]

Joins the room, negotiates a WebRTC connection with every member that is or
comes into it (the newcomer offers, the others answer), and prints one line
per event: joined, peer joined/left, ICE and connection state, data channel
open/close, each message received, remote tracks. -json prints JSON lines.

When it offers, it opens the data channel -label on each connection; when
it answers, it accepts whatever channels the other side opened.

-echo sends every data channel message back on the channel it came on, and
reflects media: each VP8 video or Opus audio track received from a member
is sent back to that member. Only VP8 and Opus are negotiated. Limits: no
renegotiation, so the sending slot must exist in the first negotiation:
when the bot answers, the offer's media sections must be sendrecv (a
browser's addTrack before createOffer does that); when the bot offers, it
offers a sendrecv video and audio section, and the other side must attach
its tracks to those (pion matches them; a browser must add its tracks after
setRemoteDescription, or use the offered transceivers). With -video, video
is not reflected (the one video section carries the file); audio still is.

-video streams a VP8 IVF file (looping, paced by its frame timestamps) to
every member; e.g. testdata/testsrc.ivf.

-loopback restricts ICE to 127.0.0.1: needed when every peer runs on the
same machine and it has no other interface (a container, unshare -n), where
pion otherwise never connects. Browsers offer no loopback candidates, so do
not use it with one.

-relay uses TURN relay candidates only (ICE transport policy "relay"): the
call then goes through the TURN server that the signaling server hands out
(its -turn and -turn-secret), or fails.

-token is the join token a server run with -auth-secret requires (an HS256
JWT, e.g. from "rendezvous token -room demo -ttl 1h"). Other users can see
a command line: prefer the environment variable $RENDEZVOUS_PEER_TOKEN.

When the connection to the signaling server drops (no close frame), the bot
reconnects with backoff and resumes its seat: its calls and negotiations go
on, and the other members see nothing (signaling-lost, then
signaling-resumed). If the seat cannot be resumed (the server refuses, or
-resume-window passes first), the bot closes its calls and joins the room
again (seat-lost, peer-left ... (seat-lost), joined). A server that closes
the connection on purpose (shutdown, kick) is not reconnected to
(signaling-closed); calls already connected keep working.

Exit status: 0 after Ctrl-C/SIGTERM (it leaves the room cleanly) or when
-exit-after is reached; 1 when the server cannot be reached or on another
error; 2 for bad flags; 3 when the room is full; 4 when the server refuses
the join token.
`

func main() {
	ctx, stop := ossignal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

type options struct {
	url       string
	room      string
	id        string
	capacity  int
	label     string
	echo      bool
	video     string
	send      string
	exitAfter int
	json      bool
	loopback  bool
	relay     bool
	token     string
	resume    time.Duration
	debug     bool
}

func newFlagSet(stderr io.Writer) (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("rendezvous-peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:2013/ws", "signaling server WebSocket `URL`")
	fs.StringVar(&o.room, "room", "", "`room` to join (required)")
	fs.StringVar(&o.id, "id", "", "peer `id` to ask for; empty lets the server choose")
	fs.IntVar(&o.capacity, "capacity", 0, "room capacity to ask for if this join creates the room; 0: the server's default")
	fs.StringVar(&o.label, "label", "chat", "`label` of the data channel opened when this peer offers")
	fs.BoolVar(&o.echo, "echo", false, "send every data channel message back, and reflect received VP8/Opus tracks")
	fs.StringVar(&o.video, "video", "", "stream this VP8 IVF `file` as a video track, looping")
	fs.StringVar(&o.send, "send", "", "send this `text` on each data channel when it opens")
	fs.IntVar(&o.exitAfter, "exit-after", 0, "exit 0 after receiving `N` data channel messages; 0: run until Ctrl-C")
	fs.BoolVar(&o.json, "json", false, "print events as JSON lines")
	fs.BoolVar(&o.loopback, "loopback", false, "loopback-only ICE (127.0.0.1), for peers on one machine with no other interface")
	fs.BoolVar(&o.relay, "relay", false, "use TURN relay candidates only (ICE transport policy relay)")
	fs.StringVar(&o.token, "token", "", "join `token` for a server that requires one (run with -auth-secret)")
	fs.DurationVar(&o.resume, "resume-window", peer.DefaultResumeWindow, "how long the server holds the seat after a dropped connection (its -resume-window): the bot resumes it within that time; negative: do not reconnect")
	fs.BoolVar(&o.debug, "debug", false, "log the peer's debug messages to stderr")
	fs.Usage = flagenv.Usage(fs, envPrefix, usageHeader)
	return fs, o
}

// run runs the bot until ctx ends or -exit-after is reached, and returns
// the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs, o := newFlagSet(stderr)
	if err := flagenv.Parse(fs, envPrefix, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "rendezvous-peer: %v\n", err)
		return exitUsage
	}
	if err := o.check(fs); err != nil {
		fmt.Fprintf(stderr, "rendezvous-peer: %v (see -h)\n", err)
		return exitUsage
	}
	b, err := newBot(o, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rendezvous-peer: %v\n", err)
		return exitError
	}
	defer b.stop()
	if err := b.run(ctx); err != nil {
		switch {
		case errors.Is(err, peer.ErrRoomFull):
			fmt.Fprintf(stderr, "rendezvous-peer: room %q is full: %v\n", o.room, err)
			return exitFull
		case errors.Is(err, peer.ErrUnauthorized):
			fmt.Fprintf(stderr, "rendezvous-peer: the server refused the join token (-token): %v\n", err)
			return exitAuth
		case errors.Is(err, peer.ErrConnect):
			fmt.Fprintf(stderr, "rendezvous-peer: cannot reach the signaling server at %s: %v\n", o.url, err)
			return exitError
		}
		fmt.Fprintf(stderr, "rendezvous-peer: %v\n", err)
		return exitError
	}
	return exitOK
}

func (o *options) check(fs *flag.FlagSet) error {
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.room == "":
		return errors.New("-room is required")
	case o.url == "":
		return errors.New("-url is required")
	case o.label == "":
		return errors.New("-label must not be empty")
	case o.exitAfter < 0:
		return errors.New("-exit-after must not be negative")
	case o.capacity < 0:
		return errors.New("-capacity must not be negative")
	}
	return nil
}

func (o *options) logger(stderr io.Writer) *slog.Logger {
	if !o.debug {
		return nil
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
