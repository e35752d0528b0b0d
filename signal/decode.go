package signal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
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
	candidate []byte // "null" or a validated object; aliases the frame
	data      []byte // any JSON value; aliases the frame
}

// wireIn is a client message as parsed, before validation. Raw values
// alias the frame.
type wireIn struct {
	typ, ref, room, id, token, resume, to, sdp string
	capacity, candidate, data, received        []byte // raw JSON values
	has                                        fieldSet
	badType                                    fieldSet // fields whose JSON type is wrong
}

// fieldSet is a set of the fields of wireIn.
type fieldSet uint16

const (
	fType fieldSet = 1 << iota
	fRef
	fRoom
	fID
	fCapacity
	fToken
	fResume
	fReceived
	fTo
	fSDP
	fCandidate
	fData
)

var fieldNames = map[string]fieldSet{
	"type": fType, "ref": fRef, "room": fRoom, "id": fID, "capacity": fCapacity, "token": fToken,
	"resume": fResume, "received": fReceived, "to": fTo, "sdp": fSDP, "candidate": fCandidate, "data": fData,
}

// decoders reuse jsontext decoders, which parse straight from the frame.
var decoders = sync.Pool{New: func() any { return new(frameDecoder) }}

type frameDecoder struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

// parse reads frame's top-level object into w. Invalid UTF-8 is let
// through here: room names get their own error, and the whole frame is
// checked last.
func (fd *frameDecoder) parse(frame []byte, w *wireIn) error {
	fd.buf = *bytes.NewBuffer(frame)
	fd.dec.Reset(&fd.buf, jsontext.AllowInvalidUTF8(true))
	d := &fd.dec
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return errNotObject
	}
	for d.PeekKind() == '"' {
		name, err := d.ReadToken()
		if err != nil {
			return err
		}
		f := fieldNames[name.String()]
		v, err := d.ReadValue()
		if err != nil {
			return err
		}
		if f == 0 {
			continue // unknown fields are ignored
		}
		if w.has&f != 0 {
			return fmt.Errorf("field %q appears twice", name.String())
		}
		w.has |= f
		switch f {
		case fCapacity, fCandidate, fData, fReceived:
			raw := []byte(v)
			switch f {
			case fCapacity:
				w.capacity = raw
			case fCandidate:
				w.candidate = raw
			case fData:
				w.data = raw
			case fReceived:
				w.received = raw
			}
			continue
		}
		if v.Kind() != '"' {
			w.badType |= f
			continue
		}
		str := unquote(v)
		switch f {
		case fType:
			w.typ = str
		case fRef:
			w.ref = str
		case fRoom:
			w.room = str
		case fID:
			w.id = str
		case fToken:
			w.token = str
		case fResume:
			w.resume = str
		case fTo:
			w.to = str
		case fSDP:
			w.sdp = str
		}
	}
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '}' {
		if err == nil {
			err = errNotObject
		}
		return err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

var errNotObject = errors.New("not a JSON object")

// unquote returns the string a JSON string value holds. Client message
// types are interned.
func unquote(v jsontext.Value) string {
	if b := []byte(v); len(b) >= 2 && bytes.IndexByte(b, '\\') < 0 {
		inner := b[1 : len(b)-1]
		for _, t := range clientTypes {
			if string(inner) == t {
				return t
			}
		}
		return string(inner)
	}
	out, err := jsontext.AppendUnquote(nil, v)
	if err != nil {
		return string(out) // invalid UTF-8 or surrogates come out as U+FFFD
	}
	return string(out)
}

var clientTypes = []string{TypeMessage, TypeCandidate, TypeOffer, TypeAnswer, TypeJoin, TypeLeave}

// fieldsOf lists the fields each client message type reads; a type error in
// any other field is ignored like any unknown field.
var fieldsOf = map[string][]fieldSet{
	TypeJoin:      {fRoom, fID, fCapacity, fToken, fResume, fReceived},
	TypeLeave:     nil,
	TypeOffer:     {fTo, fSDP},
	TypeAnswer:    {fTo, fSDP},
	TypeCandidate: {fTo, fCandidate},
	TypeMessage:   {fTo, fData},
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
	fd := decoders.Get().(*frameDecoder)
	err := fd.parse(frame, &w)
	fd.buf = bytes.Buffer{} // do not keep the frame
	decoders.Put(fd)
	if err != nil {
		return m, perr(CodeBadJSON, "The frame is not valid JSON: %v.", err)
	}
	for _, f := range []fieldSet{fType, fRef} {
		if w.badType&f != 0 {
			return m, perr(CodeBadJSON, "Field %q must be a string.", fieldName(f))
		}
	}
	if len(w.ref) > maxRefBytes {
		return m, perr(CodeBadJSON, "Field \"ref\" must be at most %d bytes.", maxRefBytes)
	}
	m.ref = w.ref
	if w.has&fType == 0 {
		return m, perr(CodeMissingField, "Field \"type\" is required.")
	}
	m.typ = w.typ
	fields, ok := fieldsOf[m.typ]
	if !ok {
		return m, perr(CodeUnknownType, "Unknown message type %q; use join, leave, offer, answer, candidate or message.", clip(m.typ))
	}
	for _, f := range fields {
		if w.badType&f != 0 {
			return m, fieldTypeError(fieldName(f))
		}
	}

	switch m.typ {
	case TypeJoin:
		if e := m.decodeJoin(&w, maxCapacity); e != nil {
			return m, e
		}
	case TypeOffer, TypeAnswer:
		if w.sdp == "" {
			return m, perr(CodeInvalidSDP, "An %s needs a non-empty \"sdp\" string.", m.typ)
		}
		var sd sdp.SessionDescription
		if err := sd.UnmarshalString(w.sdp); err != nil {
			return m, perr(CodeInvalidSDP, "The %s's sdp does not parse as SDP: %v.", m.typ, err)
		}
		m.sdp = w.sdp
	case TypeCandidate:
		if e := validCandidate(w.candidate); e != nil {
			return m, e
		}
		m.candidate = w.candidate
	case TypeMessage:
		if w.has&fData == 0 {
			return m, perr(CodeMissingField, "A message needs a \"data\" field (any JSON value).")
		}
		m.data = w.data
	}
	m.to = w.to
	// Frames are relayed verbatim in part, and a browser fails a WebSocket
	// that receives invalid UTF-8, so it is refused here. (Room names were
	// checked above, with their own error code.)
	if !utf8.Valid(frame) {
		return m, perr(CodeBadJSON, "The frame is not valid UTF-8 text.")
	}
	return m, nil
}

func fieldName(f fieldSet) string {
	for name, g := range fieldNames {
		if g == f {
			return name
		}
	}
	return "?"
}

func (m *clientMsg) decodeJoin(w *wireIn, maxCapacity int) *protoError {
	if w.has&fRoom == 0 {
		return perr(CodeMissingField, "A join needs a \"room\" name.")
	}
	if !validRoom(w.room) {
		return perr(CodeInvalidRoom, "Room names are 1 to %d bytes of UTF-8 text, without control characters, and not only spaces.", maxRoomBytes)
	}
	m.room = w.room
	if w.has&fID != 0 {
		if !validID(w.id) {
			return perr(CodeInvalidID, "A requested id must be 1 to %d characters from A-Z, a-z, 0-9, _ and -.", maxIDBytes)
		}
		m.id = w.id
	}
	if len(w.capacity) > 0 && string(w.capacity) != "null" {
		n, err := strconv.Atoi(string(w.capacity))
		if err != nil || n < 2 || n > maxCapacity {
			return perr(CodeInvalidCapacity, "Capacity must be an integer from 2 to %d (the server's maximum).", maxCapacity)
		}
		m.capacity = n
	}
	m.token, m.resume = w.token, w.resume
	if len(w.received) > 0 && string(w.received) != "null" {
		n, err := strconv.ParseUint(string(w.received), 10, 64)
		if err != nil {
			return fieldTypeError("received")
		}
		m.received = &n
	}
	return nil
}

func validCandidate(raw []byte) *protoError {
	if len(raw) == 0 {
		return perr(CodeInvalidCandidate, "A candidate message needs \"candidate\": an RTCIceCandidate object, or null for end of candidates.")
	}
	if string(raw) == "null" {
		return nil
	}
	if !isCandidate(raw) {
		return perr(CodeInvalidCandidate, "\"candidate\" must be null or an object like {\"candidate\":\"candidate:…\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}.")
	}
	return nil
}

// isCandidate reports whether raw (valid JSON) is an object whose
// candidate is a string and whose sdpMid, sdpMLineIndex and
// usernameFragment, when present, are a string, an integer 0–65535 and a
// string, or null.
func isCandidate(raw []byte) bool {
	fd := decoders.Get().(*frameDecoder)
	defer func() {
		fd.buf = bytes.Buffer{}
		decoders.Put(fd)
	}()
	fd.buf = *bytes.NewBuffer(raw)
	fd.dec.Reset(&fd.buf, jsontext.AllowInvalidUTF8(true))
	d := &fd.dec
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return false
	}
	hasCandidate := false
	for d.PeekKind() == '"' {
		name, err := d.ReadToken()
		if err != nil {
			return false
		}
		key := name.String()
		v, err := d.ReadValue()
		if err != nil {
			return false
		}
		switch k := v.Kind(); key {
		case "candidate":
			if k != '"' {
				return false
			}
			hasCandidate = true
		case "sdpMid", "usernameFragment":
			if k != '"' && k != 'n' {
				return false
			}
		case "sdpMLineIndex":
			if k == 'n' {
				continue
			}
			if n, err := strconv.ParseUint(string(v), 10, 16); k != '0' || err != nil || n > 65535 {
				return false
			}
		}
	}
	return hasCandidate
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

// ValidRoom reports whether name is a valid room name (1–64 bytes of
// UTF-8, no control characters, not only white space): a join for any
// other is refused with invalid-room.
func ValidRoom(name string) bool { return validRoom(name) }
