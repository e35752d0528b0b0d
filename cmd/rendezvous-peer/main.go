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
is sent back to that member. Only VP8 and Opus are negotiated. Limits: the
reflection is set up in the first negotiation, so the sending slot must
exist then:
when the bot answers, the offer's media sections must be sendrecv (a
browser's addTrack before createOffer does that); when the bot offers, it
offers a sendrecv video and audio section, and the other side must attach
its tracks to those (pion matches them; a browser must add its tracks after
setRemoteDescription, or use the offered transceivers). With -video, video
is not reflected (the one video section carries the file); audio still is.

-name is the name the Rendezvous page shows for the bot: when a data
channel opens, the bot sends the page's hello on it, a JSON text message
{"kind": "hello", "id": <its id>, "name": <name>}, before -send's text.
-name "" sends none. (Not with -codelab: the codelab's page has no names.)

-video streams a VP8 IVF file (looping, paced by its frame timestamps) to
every member; e.g. testdata/testsrc.ivf.

-video-after D (with -video) joins without video, and adds the -video
track D after the first call connects: every connection then renegotiates
(perfect negotiation: either side may offer at any time; on glare the
side with the greater id yields), members that come later get it too, and
"video-added" is printed. It exercises the other side's handling of a
track added mid-call (a screen share, say). Not with -codelab, whose
signalling has no renegotiation.

Connections renegotiate when either side adds or removes a track, and a
connection that fails (ICE) is restarted by the side with the smaller id
(ice-restart is printed there): a new offer with new ICE credentials.

-loopback restricts ICE to 127.0.0.1: needed when every peer runs on the
same machine and it has no other interface (a container, unshare -n), where
pion otherwise never connects. Browsers offer no loopback candidates, so do
not use it with one.

-relay uses TURN relay candidates only (ICE transport policy "relay"): the
call then goes through the TURN server that the signaling server hands out
(its -turn and -turn-secret), or fails.

-codelab speaks the signalling of the WebRTC codelab ("Real time
communication with WebRTC", steps 5 and 6) instead of protocol v1's, so
that an unmodified codelab page, connected to the server's Socket.IO
endpoint, and the bot call each other: signals are messages in the
codelab's shapes ({type, sdp}; {type: 'candidate', label, id, candidate};
'got user media'; 'bye'), and the member that was in the room first (its
creator, as in the codelab) offers, when the newcomer has said 'got user
media' or 2s after it joined (the step-6 page never says it); if the
newcomer says it only after that offer, the offer is sent again. Joining a
room with members, the bot says 'got user media'; leaving, 'bye'. 'bye'
from a member closes the call with it (hang-up), and the bot waits for its
next offer or the next member. Offering, it opens the channel "photos" (the
codelab's) unless -label is given; answering, it accepts whatever channels
the page opens (the step-5 page offers none: its call is video only). The
bot then calls no protocol v1 peer: every member must speak the codelab's
signalling.

-token is the join token a server run with -auth-secret requires (an HS256
JWT, e.g. from "rendezvous token -room demo -ttl 1h"). Other users can see
a command line: prefer the environment variable $RENDEZVOUS_PEER_TOKEN.

When the connection to the signaling server drops (no close frame), the bot
reconnects with backoff and resumes its seat: its calls and negotiations go
on, and the other members see nothing (signaling-lost, then
signaling-resumed). If the seat cannot be resumed (the server refuses, or
-resume-window passes first), the bot closes its calls and joins the room
again (seat-lost, peer-left ... (seat-lost), joined). When the server shuts
down (peer-left ... (shutdown), server-shutdown), the calls go on and the
bot reconnects with backoff until the server is back, then joins the room
again under the same id (rejoined): calls still connected are kept as they
are (kept [...]; a member back later: peer-joined ... (connection kept)).
A server that closes the connection on purpose otherwise (kick, another
connection resuming the seat) is not reconnected to (signaling-closed);
calls already connected keep working.

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
	url        string
	room       string
	id         string
	capacity   int
	label      string
	echo       bool
	video      string
	videoAfter time.Duration
	send       string
	exitAfter  int
	json       bool
	loopback   bool
	relay      bool
	token      string
	resume     time.Duration
	codelab    bool
	debug      bool
	name       string
}

// defaultName is the default of -name.
const defaultName = "Rendezvous bot"

// codelabLabel is the data channel label of the codelab's page (step 6),
// the default of -label with -codelab.
const codelabLabel = "photos"

func newFlagSet(stderr io.Writer) (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("rendezvous-peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:2013/ws", "signaling server WebSocket `URL`")
	fs.StringVar(&o.room, "room", "", "`room` to join (required)")
	fs.StringVar(&o.id, "id", "", "peer `id` to ask for; empty lets the server choose")
	fs.IntVar(&o.capacity, "capacity", 0, "room capacity to ask for if this join creates the room; 0: the server's default")
	fs.StringVar(&o.label, "label", "chat", "`label` of the data channel opened when this peer offers; with -codelab the default is "+codelabLabel+", the codelab's")
	fs.BoolVar(&o.echo, "echo", false, "send every data channel message back, and reflect received VP8/Opus tracks")
	fs.StringVar(&o.video, "video", "", "stream this VP8 IVF `file` as a video track, looping")
	fs.DurationVar(&o.videoAfter, "video-after", 0, "with -video: join without video and add it this `duration` after the first call connects (renegotiation); 0: video from the start")
	fs.StringVar(&o.send, "send", "", "send this `text` on each data channel when it opens")
	fs.IntVar(&o.exitAfter, "exit-after", 0, "exit 0 after receiving `N` data channel messages; 0: run until Ctrl-C")
	fs.BoolVar(&o.json, "json", false, "print events as JSON lines")
	fs.BoolVar(&o.loopback, "loopback", false, "loopback-only ICE (127.0.0.1), for peers on one machine with no other interface")
	fs.BoolVar(&o.relay, "relay", false, "use TURN relay candidates only (ICE transport policy relay)")
	fs.StringVar(&o.token, "token", "", "join `token` for a server that requires one (run with -auth-secret)")
	fs.DurationVar(&o.resume, "resume-window", peer.DefaultResumeWindow, "how long the server holds the seat after a dropped connection (its -resume-window): the bot resumes it within that time; negative: do not reconnect")
	fs.BoolVar(&o.codelab, "codelab", false, "speak the WebRTC codelab's signalling (message {type, sdp}, {type: 'candidate', label, id, candidate}, 'got user media', 'bye'; the room's first member offers), to call an unmodified codelab page through the server's Socket.IO endpoint")
	fs.BoolVar(&o.debug, "debug", false, "log the peer's debug messages to stderr")
	fs.StringVar(&o.name, "name", defaultName, "`name` the Rendezvous page shows for the bot: sent as a hello ({kind: 'hello', id, name}) on each data channel when it opens; empty: no hello")
	fs.Usage = flagenv.Usage(fs, envPrefix, usageHeader)
	return fs, o
}

// run runs the bot until ctx ends or -exit-after is reached, and returns
// the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs, o := newFlagSet(stderr)
	if code, ok := parseOptions(fs, o, args, getenv, stderr); !ok {
		return code
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

// parseOptions sets o from args and the environment, checks it, and
// applies the defaults that depend on other flags. When the bot must not
// run (-h, bad flags) it returns the exit code and false, having said why
// on stderr.
func parseOptions(fs *flag.FlagSet, o *options, args []string, getenv func(string) string, stderr io.Writer) (int, bool) {
	if err := flagenv.Parse(fs, envPrefix, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		fmt.Fprintf(stderr, "rendezvous-peer: %v\n", err)
		return exitUsage, false
	}
	if err := o.check(fs); err != nil {
		fmt.Fprintf(stderr, "rendezvous-peer: %v (see -h)\n", err)
		return exitUsage, false
	}
	if o.codelab && !isSet(fs, "label") {
		o.label = codelabLabel
	}
	return 0, true
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
	case o.videoAfter < 0:
		return errors.New("-video-after must not be negative")
	case o.videoAfter > 0 && o.video == "":
		return errors.New("-video-after needs -video (the file to add)")
	case o.videoAfter > 0 && o.codelab:
		return errors.New("-video-after cannot be used with -codelab: the codelab's signalling has no renegotiation")
	}
	return nil
}

// isSet reports whether the flag name was set, on the command line or by
// its environment variable.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func (o *options) logger(stderr io.Writer) *slog.Logger {
	if !o.debug {
		return nil
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
