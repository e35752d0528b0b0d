// Package peer is a headless WebRTC peer (github.com/pion/webrtc/v4) that
// joins a Rendezvous room through the signaling server and negotiates a
// real peer-to-peer connection with every other member, Go or browser.
//
// Join dials the server's /ws endpoint, joins a room and returns a *Peer.
// The peer keeps one *webrtc.PeerConnection per remote member. The first
// negotiation follows the protocol's glare-free roles: the newcomer (the
// member that received joined) offers to each member already in the room;
// members that receive an offer answer. Its data channels and tracks are
// configured before it (Config.DataChannels, Config.Tracks,
// Config.Receive, Config.Prepare). An offer from the member this peer
// offered to, before its answer came, is reported as an error event and
// ignored.
//
// After the first exchange, either side may renegotiate at any time, with
// perfect negotiation as web/static/signal.js does it: Peer.AddTrack and
// Peer.RemoveTrack change the tracks sent to every member (and members to
// come), and each connection offers the change. The roles come from the
// ids, as in signal.js: the side with the greater id is polite. On glare
// (an offer comes while one of ours is pending) the impolite side ignores
// the other's offer, and the candidates that follow it (one that cannot be
// added is not an error), and waits for the answer to its own; the polite
// side rolls its offer back, answers, and offers its change again.
//
// Pion (v4.2.26) refuses SetLocalDescription(rollback) from
// have-local-offer, so the rollback is emulated: the pending offer is
// completed with an answer made locally that repeats the remote's current
// description and marks the offer's new m-lines inactive, which leaves the
// session as it was (the remote never sees it: it ignored the offer).
// Pion keeps the mids of a rolled-back offer's new transceivers, so
// renegotiation offers give new transceivers mids of this peer's own
// ("g", a hash of its id, a counter), which the other side's offer cannot
// also use. Waiting instead (the polite side letting its offer be
// answered) cannot work: the impolite side ignores it, and waits for an
// answer itself; both would wait forever.
//
// A connection that fails (ICE) is restarted by its impolite side, as
// signal.js's is by both (EventICERestart): a new offer with new ICE
// credentials, at most 5 in a row without the connection coming back. The
// polite side waits for that offer, so that the two do not collide. The
// codelab dialect does none of this: its page does not renegotiate.
//
// ICE is trickled both ways. Remote candidates that arrive before the
// remote description, or before the PeerConnection exists, are buffered and
// applied after SetRemoteDescription; a null or empty candidate means end
// of candidates.
//
// What happens is reported as a typed, ordered event stream (Peer.Events);
// WaitConnected and WaitDataChannel block, without polling, until a remote
// is connected or a data channel is open. All writes to the WebSocket come
// from one writer goroutine fed by a queue, so pion's callbacks never block
// on the network.
//
// On a machine whose only network interface is the loopback (a CI
// container, `unshare -n`), pion's default settings gather no candidate at
// all and every connection fails after about 30 seconds: use
// LoopbackSettingEngine or LoopbackAPI there.
//
// A peer-left from the server closes that member's PeerConnection, except
// when the reason is "shutdown": then the server went away, not the member,
// and the peer-to-peer connection keeps working. Established connections
// also survive the loss of the signaling connection itself.
//
// When the signaling connection drops (no close frame), the peer resumes
// its seat (protocol "Resume"): it reconnects with backoff, 50 ms doubling
// to 1 s with jitter, and sends join with the resume token of the latest
// created/joined and the number of frames it read on the old connection,
// so that the server re-sends exactly what it missed. A resumed peer keeps
// every PeerConnection and all negotiation state and is not a newcomer;
// what it queued for the server meanwhile (answers, candidates) goes out
// in order on the new connection. If the server refuses the resume, or
// Config.ResumeWindow passes first, the seat is lost: the peer closes its
// PeerConnections and joins again as a newcomer. Events report each step
// (EventSignalingLost, EventSignalingResumed, EventSeatLost). A connection
// the server closes on purpose (kick, 4001 "replaced") is not reconnected
// (EventSignalingClosed). One closed with 1012 "service restart" (a
// cluster node draining; the seat moves to another node) is resumed as a
// drop, the first attempt at once. The peer numbers the frames it writes
// on its seat and keeps the latest (256 frames, 256 KiB): a resumed joined
// with read makes it write again those the server did not handle; one
// with gap (the room was hosted anew after a node crashed) makes the
// member that made the first offer of each call not connected offer again
// (EventSignalingResumed with Gap); the other side answers any offer.
//
// A server shutdown (peer-left "shutdown", then close 1001) is: the calls
// go on (EventServerShutdown), the peer reconnects with backoff until the
// server is back and joins the room again under the same id
// (EventRejoined). A PeerConnection that is still connected with a member
// found again (in joined's peers, or by peer-joined) is kept without
// renegotiation; with the other members the newcomer's rule applies again.
//
// Config.Token is the join token of servers run with -auth-secret;
// Config.ICETransportPolicy makes a peer relay-only (TURN).
//
// Config.Codelab makes a peer speak the signalling of the WebRTC codelab
// instead of protocol v1's, to call an unmodified codelab page that
// reaches the room through the server's Socket.IO endpoint: signals
// travel as the data of `message`s in the codelab's shapes ({type, sdp};
// {type: "candidate", label, id, candidate}; "got user media"; "bye"), and
// the member that was in the room first offers, once the newcomer has
// said "got user media" (see Codelab).
package peer
