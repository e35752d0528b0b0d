package peer

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/webrtc/v4"
)

// EventType says what an Event reports.
type EventType string

// Event types, in the order they typically happen.
const (
	// EventJoined: this peer created or joined the room. Room, ID, Peers
	// and Created are set. Always the first event.
	EventJoined EventType = "joined"
	// EventPeerJoined: member Remote joined the room (it will offer).
	EventPeerJoined EventType = "peer-joined"
	// EventPeerLeft: member Remote left the room, with Reason. Unless the
	// reason is "shutdown", its PeerConnection has been closed when this
	// event is delivered.
	EventPeerLeft EventType = "peer-left"
	// EventICEState: the ICE connection state with Remote is ICEState.
	EventICEState EventType = "ice-state"
	// EventConnectionState: the PeerConnection state with Remote is
	// ConnectionState.
	EventConnectionState EventType = "connection-state"
	// EventDataChannelOpen: data channel Label with Remote is open;
	// DataChannel is set. It comes before any message on the channel.
	EventDataChannelOpen EventType = "datachannel-open"
	// EventDataChannelClose: data channel Label with Remote closed.
	EventDataChannelClose EventType = "datachannel-close"
	// EventMessage: a data channel message from Remote on channel Label:
	// Data, and IsString for a text message.
	EventMessage EventType = "message"
	// EventTrack: Remote sends a media track: Track and Receiver are set.
	EventTrack EventType = "track"
	// EventSignalingClosed: the connection to the signaling server ended
	// before Close (Err wraps ErrSignalingClosed). Established
	// PeerConnections keep working; no new member can be reached.
	EventSignalingClosed EventType = "signaling-closed"
	// EventServerLog: the server sent a log message (Text).
	EventServerLog EventType = "log"
	// EventError: something failed without ending the peer, e.g. the
	// negotiation with Remote or a protocol error from the server. Err is
	// set.
	EventError EventType = "error"
)

// Event is one thing that happened to a Peer. Which fields are set depends
// on Type (see the EventType constants).
type Event struct {
	Type   EventType
	Remote string // the remote member's id, for per-member events

	Room    string   // joined
	ID      string   // joined: this peer's id
	Peers   []string // joined: members already in the room, in join order
	Created bool     // joined: this join created the room

	Reason string // peer-left

	ICEState        webrtc.ICEConnectionState  // ice-state
	ConnectionState webrtc.PeerConnectionState // connection-state

	Label       string              // datachannel-open, datachannel-close, message
	DataChannel *webrtc.DataChannel // datachannel-open, datachannel-close
	Data        []byte              // message
	IsString    bool                // message: sent as text

	Track    *webrtc.TrackRemote // track
	Receiver *webrtc.RTPReceiver // track

	Text string // log
	Err  error  // error, signaling-closed
}

// String formats the event as one line of text.
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(string(e.Type))
	if e.Remote != "" {
		b.WriteString(" " + e.Remote)
	}
	switch e.Type {
	case EventJoined:
		verb := "joined"
		if e.Created {
			verb = "created"
		}
		fmt.Fprintf(&b, " %s room %q as %s, peers [%s]", verb, e.Room, e.ID, strings.Join(e.Peers, " "))
	case EventPeerLeft:
		fmt.Fprintf(&b, " (%s)", e.Reason)
	case EventICEState:
		b.WriteString(" " + e.ICEState.String())
	case EventConnectionState:
		b.WriteString(" " + e.ConnectionState.String())
	case EventDataChannelOpen, EventDataChannelClose:
		fmt.Fprintf(&b, " %q", e.Label)
	case EventMessage:
		if e.IsString {
			fmt.Fprintf(&b, " %q text %s", e.Label, strconv.Quote(string(e.Data)))
		} else {
			fmt.Fprintf(&b, " %q binary %d bytes %x", e.Label, len(e.Data), e.Data)
		}
	case EventTrack:
		if e.Track != nil {
			fmt.Fprintf(&b, " %s %s id %q ssrc %d", e.Track.Kind(), e.Track.Codec().MimeType, e.Track.ID(), e.Track.SSRC())
		}
	case EventServerLog:
		b.WriteString(" " + e.Text)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}
