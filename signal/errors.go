package signal

import (
	"errors"
	"fmt"
)

// Error codes carried by the protocol's error message. PROTOCOL.md says
// when each is sent.
const (
	CodeBadJSON          = "bad-json"          // the frame is not a JSON object with a string type
	CodeUnknownType      = "unknown-type"      // type is not a client message type
	CodeMissingField     = "missing-field"     // a required field is absent
	CodeInvalidRoom      = "invalid-room"      // room name breaks the naming rules
	CodeInvalidID        = "invalid-id"        // requested id is not [A-Za-z0-9_-]{1,64}
	CodeInvalidCapacity  = "invalid-capacity"  // capacity is not an integer in [2, max]
	CodeAlreadyJoined    = "already-joined"    // join while in a room
	CodeNotJoined        = "not-joined"        // leave or relay while in no room
	CodeIDTaken          = "id-taken"          // requested id is in use in the room
	CodeUnknownPeer      = "unknown-peer"      // to does not name another member
	CodeInvalidSDP       = "invalid-sdp"       // sdp is missing, empty or not SDP
	CodeInvalidCandidate = "invalid-candidate" // candidate is not null or {candidate: string, ...}
	CodeRateLimited      = "rate-limited"      // the message exceeded the connection's rate
	CodeUnauthorized     = "unauthorized"      // the join token is missing, invalid, expired or not for this room
	CodeResumeFailed     = "resume-failed"     // the resume token is wrong or its seat has expired
	CodeRoomClosed       = "room-closed"       // an operator closed the room
	CodeKicked           = "kicked"            // an operator removed this member

	// CodeMoved refuses a join for a room this server does not host (see
	// Config.HostsRoom). Only cluster nodes see it: their gateways look
	// the room's host up again; clients never get it.
	CodeMoved = "moved"
)

// Error is a protocol error: the server's error message, as the Go client
// returns it.
type Error struct {
	Code    string // one of the Code constants
	Message string // a sentence a person can act on
	Ref     string // the ref of the message that caused it, if it had one
}

func (e *Error) Error() string {
	return fmt.Sprintf("signal: %s: %s", e.Code, e.Message)
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &signal.Error{Code: signal.CodeFull}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors of the Go client.
var (
	// ErrClosed is returned by Client methods after Close, or after the
	// connection to the server ended.
	ErrClosed = errors.New("signal: connection closed")
	// ErrRoomFull is returned by Client.Join when the server answered full.
	ErrRoomFull = errors.New("signal: room is full")
)

// protoError is an error the server sends back for one client message.
type protoError struct {
	code string
	msg  string
}

func perr(code, format string, args ...any) *protoError {
	return &protoError{code: code, msg: fmt.Sprintf(format, args...)}
}
