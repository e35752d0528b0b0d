package peer

import "errors"

// Sentinel errors. Errors returned by this package wrap them (test with
// errors.Is) together with the context of the failure.
var (
	// ErrClosed is returned by Peer methods after Close.
	ErrClosed = errors.New("peer: closed")
	// ErrConnect is returned by Join when the signaling server cannot be
	// reached (dial or WebSocket handshake failed).
	ErrConnect = errors.New("peer: cannot reach the signaling server")
	// ErrRoomFull is returned by Join when the room is at capacity. The
	// error also wraps signal.ErrRoomFull.
	ErrRoomFull = errors.New("peer: room is full")
	// ErrUnauthorized is returned by Join when the server refuses the join
	// token (Config.Token): missing, badly signed, expired, or for another
	// room or id. The error also wraps the server's *signal.Error, code
	// unauthorized.
	ErrUnauthorized = errors.New("peer: join token refused")
	// ErrConfig is returned by Join for an invalid Config.
	ErrConfig = errors.New("peer: invalid config")
	// ErrUnknownRemote is returned when no connection to the named remote
	// member exists.
	ErrUnknownRemote = errors.New("peer: no connection to that member")
	// ErrRemoteGone is returned by the Wait methods when the remote left
	// or its connection closed or failed while waiting.
	ErrRemoteGone = errors.New("peer: remote connection is gone")
	// ErrNoChannel is returned by Send and SendText when no open data
	// channel has the label.
	ErrNoChannel = errors.New("peer: no open data channel with that label")
	// ErrNoSCTP is returned by CreateDataChannel when the connection has
	// no data channel transport: the negotiation is not complete yet, or a
	// remote offer (from a browser, say) had no data channel section, and
	// adding one would need a renegotiation of its own, which this package
	// does not make.
	ErrNoSCTP = errors.New("peer: connection has no data channel transport")
	// ErrUnexpectedSDP is reported (as an EventError) when an offer or
	// answer breaks the protocol's roles: an offer from the member this
	// peer made its first offer to, before that offer's answer, an answer
	// nobody asked for, or a glare the polite side could not roll back.
	ErrUnexpectedSDP = errors.New("peer: offer or answer out of turn")
	// ErrNegotiation is reported (as an EventError) when creating or
	// applying a session description or candidate fails.
	ErrNegotiation = errors.New("peer: negotiation failed")
	// ErrSignalingClosed is carried by EventSignalingClosed and
	// EventSignalingLost: the connection to the signaling server ended
	// before Close.
	ErrSignalingClosed = errors.New("peer: signaling connection closed")
	// ErrSeatLost is carried by EventSeatLost: after a dropped signaling
	// connection the seat could not be resumed (the server refused the
	// resume, or the resume window passed).
	ErrSeatLost = errors.New("peer: seat in the room lost")
	// ErrNotVP8 is returned by StreamIVF for an IVF file whose codec is
	// not VP8.
	ErrNotVP8 = errors.New("peer: IVF file is not VP8")
)
