package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/pion/sdp/v3"
)

// Limits of the wire format that are not configurable.
const (
	maxRefBytes  = 64
	maxRoomBytes = 64
	maxIDBytes   = 64
)

// clientMsg is a decoded and validated client message. Only the fields of
// its type are meaningful.
type clientMsg struct {
	typ       string
	ref       string
	room      string
	id        string
	capacity  int // 0: not given
	token     string
	resume    string
	received  *uint64 // join with resume: frames received on the old connection
	to        string
	sdp       string
	candidate json.RawMessage // "null" or a validated object
	data      json.RawMessage // any JSON value
}

// wireIn is the JSON shape of a client message. Pointers and raw values let
// validation tell an absent field from an empty one.
type wireIn struct {
	Type      *string         `json:"type"`
	Ref       string          `json:"ref"`
	Room      *string         `json:"room"`
	ID        *string         `json:"id"`
	Capacity  json.RawMessage `json:"capacity"`
	Token     string          `json:"token"`
	Resume    string          `json:"resume"`
	Received  *uint64         `json:"received"`
	To        string          `json:"to"`
	SDP       *string         `json:"sdp"`
	Candidate json.RawMessage `json:"candidate"`
	Data      json.RawMessage `json:"data"`
}

// wireCandidate is the shape a candidate object must have: candidate is a
// required string; the other members, when present, have the types a
// browser gives them.
type wireCandidate struct {
	Candidate        *string `json:"candidate"`
	SDPMid           *string `json:"sdpMid"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex"`
	UsernameFragment *string `json:"usernameFragment"`
}

// fieldsOf lists the fields each client message type reads; a type error in
// any other field is ignored like any unknown field.
var fieldsOf = map[string][]string{
	TypeJoin:      {"room", "id", "capacity", "token", "resume", "received"},
	TypeLeave:     nil,
	TypeOffer:     {"to", "sdp"},
	TypeAnswer:    {"to", "sdp"},
	TypeCandidate: {"to", "candidate"},
	TypeMessage:   {"to", "data"},
}

// decodeClient decodes and validates one client frame. maxCapacity bounds
// the capacity a join may ask for. On error the returned clientMsg still
// carries the ref, when one could be read, so that the error can echo it.
func decodeClient(frame []byte, maxCapacity int) (clientMsg, *protoError) {
	var m clientMsg
	if t := bytes.TrimLeft(frame, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return m, perr(CodeBadJSON, "Each frame must hold one JSON object, like {\"type\":\"join\",\"room\":\"demo\"}.")
	}
	var w wireIn
	err := json.Unmarshal(frame, &w)
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return m, perr(CodeBadJSON, "The frame is not valid JSON: %v.", err)
	}
	if typeErr != nil && (typeErr.Field == "type" || typeErr.Field == "ref") {
		return m, perr(CodeBadJSON, "Field %q must be a string.", typeErr.Field)
	}
	if len(w.Ref) > maxRefBytes {
		return m, perr(CodeBadJSON, "Field \"ref\" must be at most %d bytes.", maxRefBytes)
	}
	m.ref = w.Ref
	if w.Type == nil {
		return m, perr(CodeMissingField, "Field \"type\" is required.")
	}
	m.typ = *w.Type
	fields, ok := fieldsOf[m.typ]
	if !ok {
		return m, perr(CodeUnknownType, "Unknown message type %q; use join, leave, offer, answer, candidate or message.", clip(m.typ))
	}
	if typeErr != nil && slices.Contains(fields, typeErr.Field) {
		return m, fieldTypeError(typeErr.Field)
	}

	switch m.typ {
	case TypeJoin:
		if e := m.decodeJoin(&w, maxCapacity); e != nil {
			return m, e
		}
	case TypeOffer, TypeAnswer:
		if w.SDP == nil || *w.SDP == "" {
			return m, perr(CodeInvalidSDP, "An %s needs a non-empty \"sdp\" string.", m.typ)
		}
		var sd sdp.SessionDescription
		if err := sd.UnmarshalString(*w.SDP); err != nil {
			return m, perr(CodeInvalidSDP, "The %s's sdp does not parse as SDP: %v.", m.typ, err)
		}
		m.sdp = *w.SDP
	case TypeCandidate:
		if e := validCandidate(w.Candidate); e != nil {
			return m, e
		}
		m.candidate = w.Candidate
	case TypeMessage:
		if w.Data == nil {
			return m, perr(CodeMissingField, "A message needs a \"data\" field (any JSON value).")
		}
		m.data = w.Data
	}
	m.to = w.To
	// Frames are relayed verbatim in part, and a browser fails a WebSocket
	// that receives invalid UTF-8, so it is refused here. (Room names were
	// checked above, with their own error code.)
	if !utf8.Valid(frame) {
		return m, perr(CodeBadJSON, "The frame is not valid UTF-8 text.")
	}
	return m, nil
}

func (m *clientMsg) decodeJoin(w *wireIn, maxCapacity int) *protoError {
	if w.Room == nil {
		return perr(CodeMissingField, "A join needs a \"room\" name.")
	}
	if !validRoom(*w.Room) {
		return perr(CodeInvalidRoom, "Room names are 1 to %d bytes of UTF-8 text, without control characters, and not only spaces.", maxRoomBytes)
	}
	m.room = *w.Room
	if w.ID != nil {
		if !validID(*w.ID) {
			return perr(CodeInvalidID, "A requested id must be 1 to %d characters from A-Z, a-z, 0-9, _ and -.", maxIDBytes)
		}
		m.id = *w.ID
	}
	if len(w.Capacity) > 0 && string(w.Capacity) != "null" {
		n, err := strconv.Atoi(string(w.Capacity))
		if err != nil || n < 2 || n > maxCapacity {
			return perr(CodeInvalidCapacity, "Capacity must be an integer from 2 to %d (the server's maximum).", maxCapacity)
		}
		m.capacity = n
	}
	m.token, m.resume, m.received = w.Token, w.Resume, w.Received
	return nil
}

func validCandidate(raw json.RawMessage) *protoError {
	if len(raw) == 0 {
		return perr(CodeInvalidCandidate, "A candidate message needs \"candidate\": an RTCIceCandidate object, or null for end of candidates.")
	}
	if string(raw) == "null" {
		return nil
	}
	var c wireCandidate
	if raw[0] != '{' || json.Unmarshal(raw, &c) != nil || c.Candidate == nil {
		return perr(CodeInvalidCandidate, "\"candidate\" must be null or an object like {\"candidate\":\"candidate:…\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}.")
	}
	return nil
}

func fieldTypeError(field string) *protoError {
	switch field {
	case "room":
		return perr(CodeInvalidRoom, "Field \"room\" must be a string.")
	case "id":
		return perr(CodeInvalidID, "Field \"id\" must be a string.")
	case "to":
		return perr(CodeUnknownPeer, "Field \"to\" must be the id (a string) of another member of the room.")
	case "sdp":
		return perr(CodeInvalidSDP, "Field \"sdp\" must be a string.")
	case "token":
		return perr(CodeUnauthorized, "Field \"token\" must be a string (a JWT).")
	case "resume":
		return perr(CodeResumeFailed, "Field \"resume\" must be the string token from created or joined.")
	case "received":
		return perr(CodeResumeFailed, "Field \"received\" must be the number of frames received on the old connection.")
	}
	return perr(CodeBadJSON, "Field %q has the wrong type.", field)
}

// validRoom reports whether name is 1–64 bytes of valid UTF-8 with no
// control characters and not only white space. U+FFFD is refused too: the
// JSON decoder puts it in place of invalid UTF-8 and lone surrogates.
func validRoom(name string) bool {
	if len(name) == 0 || len(name) > maxRoomBytes || !utf8.ValidString(name) {
		return false
	}
	blank := true
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
		if !unicode.IsSpace(r) {
			blank = false
		}
	}
	return !blank
}

// validID reports whether id matches [A-Za-z0-9_-]{1,64}.
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// clip shortens s for quoting in an error message.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
