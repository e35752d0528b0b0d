package signal

import (
	"encoding/json"

	"github.com/go-json-experiment/json/jsontext"
)

// Message types of wire protocol v1. Client messages are sent by peers to
// the server; server messages are sent by the server to peers. The relayed
// types (offer, answer, candidate, message) travel both ways.
const (
	TypeJoin      = "join"
	TypeLeave     = "leave"
	TypeOffer     = "offer"
	TypeAnswer    = "answer"
	TypeCandidate = "candidate"
	TypeMessage   = "message"

	TypeCreated    = "created"
	TypeJoined     = "joined"
	TypePeerJoined = "peer-joined"
	TypePeerLeft   = "peer-left"
	TypeFull       = "full"
	TypeError      = "error"
	TypeLog        = "log"
)

// Reasons carried by peer-left.
const (
	ReasonLeft         = "left"         // the member sent leave
	ReasonDisconnected = "disconnected" // the member's connection closed or failed
	ReasonTimeout      = "timeout"      // the member stopped answering pings
	ReasonSlow         = "slow"         // the member did not read fast enough (send queue full)
	ReasonShutdown     = "shutdown"     // the server is shutting down
)

// ICEServer is one entry of the iceServers list in created and joined, in
// the shape of the browser's RTCIceServer dictionary.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Candidate is a trickled ICE candidate as a browser's
// RTCIceCandidate.toJSON() gives it (and as pion's webrtc.ICECandidateInit
// marshals).
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Message is one protocol v1 message in either direction. Which fields are
// set depends on Type; PROTOCOL.md lists them. It is the type the Go client
// (Client) sends and receives.
type Message struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`

	// join, created, joined, peer-joined, peer-left, full
	Room     string `json:"room,omitempty"`
	ID       string `json:"id,omitempty"`
	Capacity int    `json:"capacity,omitempty"`

	// join: a join token (servers with an auth secret), and a resume
	// token to take back a seat after a dropped connection
	Token    string  `json:"token,omitempty"`
	Resume   string  `json:"resume,omitempty"`
	Received *uint64 `json:"received,omitempty"`

	// created, joined (Resume above carries the seat's resume token)
	Peers      []string    `json:"peers,omitempty"`
	ICEServers []ICEServer `json:"iceServers,omitempty"`
	Resumed    bool        `json:"resumed,omitempty"`
	// joined after a resume: Read is how many of the seat's frames the
	// server handled (the client re-sends those after it); Gap says that
	// frames may have been lost in either direction (the room was
	// re-hosted after a node crashed), and Read is then absent.
	Read *uint64 `json:"read,omitempty"`
	Gap  bool    `json:"gap,omitempty"`

	// relayed messages
	To   string `json:"to,omitempty"`
	From string `json:"from,omitempty"`
	SDP  string `json:"sdp,omitempty"`
	// Candidate is the raw candidate object, or the JSON literal null for
	// end of candidates. Use CandidateNull and Message.ICECandidate.
	Candidate json.RawMessage `json:"candidate,omitempty"`
	// Data is any JSON value (message).
	Data json.RawMessage `json:"data,omitempty"`

	// peer-left
	Reason string `json:"reason,omitempty"`

	// error (Code, Message) and log (Message)
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// CodelabSDP is an offer or answer in the shape the WebRTC codelab (and
// the Socket.IO tutorial it grew from) sends inside a message's data:
// {type, sdp}, as a browser's RTCSessionDescription serialises.
type CodelabSDP struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// CodelabCandidate is a trickled ICE candidate in the codelab's shape
// inside a message's data: {type: "candidate", label: sdpMLineIndex, id:
// sdpMid, candidate}. As the page's, null fields are sent as null.
type CodelabCandidate struct {
	Type      string  `json:"type"`
	Label     *uint16 `json:"label"`
	ID        *string `json:"id"`
	Candidate string  `json:"candidate"`
}

// CandidateNull is the candidate value that signals end of candidates.
var CandidateNull = json.RawMessage("null")

// ICECandidate decodes m.Candidate. It returns nil and no error for the end
// of candidates (null).
func (m *Message) ICECandidate() (*Candidate, error) {
	if len(m.Candidate) == 0 || string(m.Candidate) == "null" {
		return nil, nil
	}
	var c Candidate
	if err := json.Unmarshal(m.Candidate, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Error returns the protocol error carried by an error message as a Go
// error (an *Error), or nil when m is not an error message.
func (m *Message) Error() error {
	if m.Type != TypeError {
		return nil
	}
	return &Error{Code: m.Code, Message: m.Message, Ref: m.Ref}
}

// Server → client messages. Each has its own struct so that the fields the
// protocol requires (peers, iceServers) are always present, even when
// empty.

type createdMsg struct {
	Type       string      `json:"type"`
	Ref        string      `json:"ref,omitempty"`
	Room       string      `json:"room"`
	ID         string      `json:"id"`
	Capacity   int         `json:"capacity"`
	Peers      []string    `json:"peers,omitempty"` // joined only; never nil there
	ICEServers []ICEServer `json:"iceServers"`
	Resume     string      `json:"resume,omitempty"`
	Resumed    bool        `json:"resumed,omitempty"`
	Read       *uint64     `json:"read,omitempty"` // see Message.Read
	Gap        bool        `json:"gap,omitempty"`
}

type peerMsg struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

type fullMsg struct {
	Type     string `json:"type"`
	Ref      string `json:"ref,omitempty"`
	Room     string `json:"room"`
	Capacity int    `json:"capacity"`
}

type errorMsg struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
}

type logMsg struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

type sdpMsg struct {
	Type string `json:"type"`
	From string `json:"from"`
	SDP  string `json:"sdp"`
}

// mustJSON marshals server messages, which are built from types that always
// marshal.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("signal: marshal server message: " + err.Error())
	}
	return b
}

// appendRelay encodes a relayed candidate or message frame:
// {"type":T,"from":ID,"<field>":RAW}. type and field are constants, from
// is quoted as a JSON string (so that no id can break out of it, whatever
// it holds), and raw is JSON the decoder already checked, so the frame is
// built by appending instead of by reflection.
func appendRelay(typ, from, field string, raw []byte) []byte {
	b := make([]byte, 0, len(`{"type":"","from":,"":}`)+len(typ)+len(from)+2+len(field)+len(raw))
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","from":`...)
	b, _ = jsontext.AppendQuote(b, from) // invalid UTF-8 becomes U+FFFD
	b = append(b, `,"`...)
	b = append(b, field...)
	b = append(b, `":`...)
	b = append(b, raw...)
	b = append(b, '}')
	return b
}
