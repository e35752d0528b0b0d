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
	// and Created are set. Always the first event; it comes again after
	// EventSeatLost, when the peer has joined the room anew (ID may then
	// differ, unless Config.ID is set).
	EventJoined EventType = "joined"
	// EventPeerJoined: member Remote joined the room (it will offer; in
	// the codelab dialect, this peer will). Kept is [Remote] when this
	// peer still has a connected PeerConnection with it: the member joins
	// again after a server restart (EventRejoined), and the call goes on
	// without a new negotiation.
	EventPeerJoined EventType = "peer-joined"
	// EventPeerLeft: member Remote left the room, with Reason (one of the
	// server's peer-left reasons, or ReasonSeatLost when this peer lost its
	// own seat). Unless the reason is "shutdown", its PeerConnection has
	// been closed when this event is delivered.
	EventPeerLeft EventType = "peer-left"
	// EventHangUp: in the codelab dialect (Config.Codelab), member Remote
	// sent "bye", the codelab's hang-up: the PeerConnection with it has
	// been closed when this event is delivered. The member may still be in
	// the room (an EventPeerLeft follows when it leaves), and a new call
	// with it may follow.
	EventHangUp EventType = "hang-up"
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
	// It may come at any time of the call (a track added by renegotiation).
	EventTrack EventType = "track"
	// EventICERestart: the connection with Remote failed and this peer,
	// the impolite side of perfect negotiation, restarts ICE (a new offer
	// with new ICE credentials); connection-state events tell whether it
	// recovers.
	EventICERestart EventType = "ice-restart"
	// EventSignalingLost: the connection to the signaling server dropped
	// (no close frame: a reset, a dead network, a crashed proxy), or the
	// server closed it with 1012 "service restart" (its node is draining
	// and the seat moves to another node), before Close; Err wraps
	// ErrSignalingClosed. The peer reconnects with backoff (50 ms
	// doubling to 1 s, with jitter; after 1012 the first attempt is made
	// at once) and resumes its seat
	// (Config.ResumeWindow). Meanwhile the PeerConnections keep working and
	// negotiation goes on: what the peer sends to the server waits, in
	// order, and goes out after the resume, and the server re-sends what
	// the peer missed. Then comes EventSignalingResumed, or EventSeatLost,
	// or (when reconnecting is off) EventSignalingClosed.
	EventSignalingLost EventType = "signaling-lost"
	// EventSignalingResumed: after EventSignalingLost, the peer took its
	// seat back on a new connection: same ID, every PeerConnection and all
	// negotiation state kept; the other members saw nothing. The frames
	// the server did not handle before the connection ended go out again
	// (when the server says how many it handled). Gap is set when
	// signals may have been lost both ways (the room was hosted anew
	// after a server node crashed, or frames to send again were no longer
	// kept): the peer then recovers each call that is not connected (the
	// member that made the first offer offers again, with an ICE restart
	// when it has no offer pending).
	EventSignalingResumed EventType = "signaling-resumed"
	// EventSeatLost: after EventSignalingLost, the seat could not be
	// resumed: the server refused the resume (Err wraps ErrSeatLost and
	// the server's *signal.Error, code resume-failed) or Config.ResumeWindow
	// passed (Err wraps ErrSeatLost). The other members have seen the
	// peer leave and closed their side, so every PeerConnection is closed
	// (an EventPeerLeft with ReasonSeatLost follows for each), and the peer
	// joins the room again as a newcomer once the server answers: then
	// comes EventJoined, and the calls are negotiated anew. If that join
	// fails for good (room full, token refused) EventError and
	// EventSignalingClosed follow.
	EventSeatLost EventType = "seat-lost"
	// EventSignalingClosed: the connection to the signaling server ended
	// for good before Close (Err wraps ErrSignalingClosed): the server
	// closed it on purpose (shutdown, kicked, replaced by another
	// connection resuming the seat, ...), reconnecting is off
	// (Config.ResumeWindow < 0), or joining again failed for good.
	// Established PeerConnections keep working; no new member can be
	// reached.
	EventSignalingClosed EventType = "signaling-closed"
	// EventServerShutdown: the signaling server is shutting down (it said
	// peer-left "shutdown" for every member, then closed the connection
	// with 1001 "going away"), most likely to restart; Err wraps
	// ErrSignalingClosed. The calls do not need it and go on. The peer
	// reconnects with backoff (50 ms doubling to 1 s, with jitter) until
	// the server is back or Close, then joins the room again under the
	// same ID: EventRejoined. (With Config.ResumeWindow negative, or in
	// the codelab dialect, it does not reconnect: EventSignalingClosed
	// comes instead.)
	EventServerShutdown EventType = "server-shutdown"
	// EventRejoined: after EventServerShutdown, the peer is back in the
	// room under the same ID. Room, ID, Peers and Created are set as for
	// EventJoined; Kept lists the members of Peers whose PeerConnection
	// was still connected and is kept as it is, without renegotiation.
	// To the other members of Peers the peer offers anew, as a newcomer
	// (closing a PeerConnection that is no longer connected first).
	// Connections with members not back yet are kept: when such a member
	// joins again, its EventPeerJoined has Kept set if the connection is
	// still connected.
	EventRejoined EventType = "rejoined"
	// EventServerLog: the server sent a log message (Text).
	EventServerLog EventType = "log"
	// EventError: something failed without ending the peer, e.g. the
	// negotiation with Remote or a protocol error from the server. Err is
	// set.
	EventError EventType = "error"
)

// ReasonSeatLost is the Reason of the EventPeerLeft events for the
// members whose connection this peer closed because it lost its own seat
// (EventSeatLost). It is not a reason the server sends.
const ReasonSeatLost = "seat-lost"

// Event is one thing that happened to a Peer. Which fields are set depends
// on Type (see the EventType constants).
type Event struct {
	Type   EventType
	Remote string // the remote member's id, for per-member events

	Room    string   // joined, rejoined
	ID      string   // joined, rejoined: this peer's id
	Peers   []string // joined, rejoined: members already in the room, in join order
	Created bool     // joined, rejoined: this join created the room
	Kept    []string // rejoined, peer-joined: members whose connected PeerConnection was kept
	Gap     bool     // signaling-resumed: signals may have been lost; calls not connected are recovered

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
	Err  error  // error, signaling-lost, seat-lost, signaling-closed, server-shutdown
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
	case EventSignalingResumed:
		if e.Gap {
			b.WriteString(" (gap: recovering the calls not connected)")
		}
	case EventRejoined:
		fmt.Fprintf(&b, " room %q as %s, peers [%s], kept [%s]", e.Room, e.ID, strings.Join(e.Peers, " "), strings.Join(e.Kept, " "))
	case EventPeerJoined:
		if len(e.Kept) > 0 {
			b.WriteString(" (connection kept)")
		}
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
