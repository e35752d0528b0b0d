package cluster

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Tunnel envelopes: the frames a gateway and a host exchange on NATS. One
// NATS message carries exactly one envelope:
//
//	kind (1 byte) | uvarint len | tunnel id (len bytes, 1..64) | body
//
// The body runs to the end of the message; what it holds depends on kind.
const (
	// kindOpen starts a tunnel; body is the JSON of openBody.
	kindOpen byte = 1 + iota
	// kindText carries one WebSocket text frame, as is, either way.
	kindText
	// kindPing carries a WebSocket ping payload (at most 125 bytes).
	kindPing
	// kindPong carries a WebSocket pong payload (at most 125 bytes).
	kindPong
	// kindClose ends a tunnel with a WebSocket close payload: a 2-byte
	// big-endian close code and UTF-8 text, or an empty body (no code).
	kindClose
	// kindAbort ends a tunnel whose connection dropped without a close; no
	// body.
	kindAbort
	// kindMoved tells a gateway that the room named in the body is not
	// hosted here: look it up again.
	kindMoved

	kindLast = kindMoved // the highest kind defined
)

const (
	// maxTunnelID is the longest tunnel id an envelope carries, in bytes.
	maxTunnelID = 64
	// maxControlBody is the largest ping, pong or close body: WebSocket
	// control frames carry at most 125 bytes.
	maxControlBody = 125
)

// openBody is the body of a kindOpen envelope.
type openBody struct {
	Remote  string `json:"remote"`  // the client's address, for logs and limits
	Room    string `json:"room"`    // the room the client joins through this tunnel
	Written uint64 `json:"written"` // frames the gateway has already sent the client (for resume)
}

// kindName names an envelope kind for errors and logs.
func kindName(kind byte) string {
	switch kind {
	case kindOpen:
		return "open"
	case kindText:
		return "text"
	case kindPing:
		return "ping"
	case kindPong:
		return "pong"
	case kindClose:
		return "close"
	case kindAbort:
		return "abort"
	case kindMoved:
		return "moved"
	}
	return fmt.Sprintf("kind(%d)", kind)
}

// appendEnvelope appends an envelope to dst and returns the result. It does
// not validate: build envelopes only from ids and bodies this node made,
// and parseEnvelope checks whatever arrives.
func appendEnvelope(dst []byte, kind byte, tunnel string, body []byte) []byte {
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(tunnel)))
	dst = append(dst, tunnel...)
	return append(dst, body...)
}

// parseEnvelope splits one envelope into its parts. body aliases b. Every
// malformed envelope gives an error wrapping ErrBadEnvelope: an unknown
// kind, a tunnel id that is empty, longer than maxTunnelID, cut short or
// with a padded length,
// a body where the kind allows none, an oversized control body, a close
// body of one byte or with invalid UTF-8 text, an empty moved body.
func parseEnvelope(b []byte) (kind byte, tunnel string, body []byte, err error) {
	if len(b) == 0 {
		return 0, "", nil, fmt.Errorf("%w: empty message", ErrBadEnvelope)
	}
	kind = b[0]
	if kind < kindOpen || kind > kindLast {
		return 0, "", nil, fmt.Errorf("%w: unknown kind %d", ErrBadEnvelope, kind)
	}
	n, w := binary.Uvarint(b[1:])
	switch {
	case w <= 0:
		return 0, "", nil, fmt.Errorf("%w: %s: tunnel id length is cut short or overflows", ErrBadEnvelope, kindName(kind))
	case n == 0 || n > maxTunnelID:
		return 0, "", nil, fmt.Errorf("%w: %s: tunnel id is %d bytes, want 1 to %d", ErrBadEnvelope, kindName(kind), n, maxTunnelID)
	case w != 1:
		// Lengths up to maxTunnelID take one byte; a longer (padded)
		// encoding would make two byte strings mean one envelope.
		return 0, "", nil, fmt.Errorf("%w: %s: tunnel id length is not minimally encoded", ErrBadEnvelope, kindName(kind))
	case uint64(len(b)-1-w) < n:
		return 0, "", nil, fmt.Errorf("%w: %s: tunnel id of %d bytes is cut short", ErrBadEnvelope, kindName(kind), n)
	}
	start := 1 + w
	tunnel = string(b[start : start+int(n)])
	body = b[start+int(n):]
	if err := checkBody(kind, body); err != nil {
		return 0, "", nil, fmt.Errorf("%w: %s on tunnel %q: %s", ErrBadEnvelope, kindName(kind), tunnel, err.Error())
	}
	return kind, tunnel, body, nil
}

// checkBody validates body for kind; its message says what is wrong.
func checkBody(kind byte, body []byte) error {
	switch kind {
	case kindOpen:
		if len(body) == 0 {
			return fmt.Errorf("body is empty, want a JSON object")
		}
	case kindPing, kindPong:
		if len(body) > maxControlBody {
			return fmt.Errorf("payload is %d bytes, want at most %d", len(body), maxControlBody)
		}
	case kindClose:
		switch {
		case len(body) == 1:
			return fmt.Errorf("payload is 1 byte, want none or a 2-byte code")
		case len(body) > maxControlBody:
			return fmt.Errorf("payload is %d bytes, want at most %d", len(body), maxControlBody)
		case len(body) > 2 && !utf8.Valid(body[2:]):
			return fmt.Errorf("reason is not valid UTF-8")
		}
	case kindAbort:
		if len(body) != 0 {
			return fmt.Errorf("carries a %d-byte body, want none", len(body))
		}
	case kindMoved:
		if len(body) == 0 {
			return fmt.Errorf("body is empty, want the room name")
		}
	}
	return nil
}
