package signal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// member is a seat in a room. It outlives its connection by the resume
// window when the connection drops without leave: while the seat is held,
// frames for the member are kept in held and delivered on resume.
type member struct {
	id         string
	room       *room     // guarded by Server.mu; nil once removed
	resume     string    // guarded by Server.mu; resume token, new at every resume
	prevResume string    // guarded by Server.mu; the token before, until the client has read the new one
	joinedAt   time.Time // immutable
	authExpiry time.Time // immutable; when the join token that admitted the seat expires (zero: no token)

	conn    *conn          // guarded by Server.mu; nil while the seat is held
	remote  string         // guarded by Server.mu; address of the latest connection
	expiry  *time.Timer    // guarded by Server.mu; set while the seat is held
	pending *pendingResume // guarded by Server.mu; a resume waiting for the old connection to finish
	backlog seatBacklog    // guarded by Server.mu; while held: what the old connection left
	gap     bool           // guarded by Server.mu; the seat was rebuilt after a crash: its next resume says frames may be lost

	read atomic.Uint64 // frames handled from the seat's connections since the join that took it

	mu           sync.Mutex // guards the fields below
	backlogBytes int        // backlog.bytes, for readers without Server.mu's write lock
	held         [][]byte   // frames for the member that its connection did not take, in order
	heldBytes    int
	overflow     bool // held overflowed; the seat is to be released
}

// seatBacklog is what a finished connection leaves to its seat: frames
// written but not acknowledged (numbered from recentBase on that
// connection), and frames never written.
type seatBacklog struct {
	recent     [][]byte
	recentBase uint64
	unsent     [][]byte
	bytes      int // of recent and unsent
}

// replay returns the frames a resuming client missed: those written after
// the received-th frame of its old connection, then those never written.
// A client that does not say what it received gets the unsent ones only.
// It reports lost when the client missed frames that are no longer kept
// (more were in flight than ResumeQueue).
func (b seatBacklog) lost(received *uint64) bool {
	return received != nil && len(b.recent) > 0 && *received+1 < b.recentBase
}

func (b seatBacklog) replay(received *uint64) [][]byte {
	var out [][]byte
	if received != nil && len(b.recent) > 0 {
		skip := uint64(0)
		if *received >= b.recentBase {
			skip = min(*received-b.recentBase+1, uint64(len(b.recent)))
		}
		out = append(out, b.recent[skip:]...)
	}
	return append(out, b.unsent...)
}

// resumeFrames returns what a resuming client is sent after joined, in
// order: the old connection's frames it did not receive (see replay), then
// the frames that came for it while the seat was held.
func resumeFrames(b seatBacklog, received *uint64, held [][]byte) [][]byte {
	return append(b.replay(received), held...)
}

// pendingResume is a resume that waits for the connection it replaces to
// finish.
type pendingResume struct {
	conn *conn
	msg  clientMsg
}

// deliver sends frame to m's connection or, when the connection takes no
// more frames, keeps it for a resume. The caller holds Server.mu (read or
// write).
func (s *Server) deliver(m *member, frame []byte) {
	if c := m.conn; c != nil && c.enqueue(frame) {
		return
	}
	m.mu.Lock()
	if m.overflow {
		m.mu.Unlock()
		return
	}
	if len(m.held) >= s.cfg.ResumeQueue || m.heldBytes+len(frame) > s.cfg.ResumeQueueBytes ||
		m.backlogBytes+m.heldBytes+len(frame) > s.cfg.ConnBufferBytes {
		// Too much to keep: the seat is released, now if it is held, or
		// when its connection finishes.
		freed := m.heldBytes
		m.overflow = true
		m.held, m.heldBytes = nil, 0
		if m.expiry != nil {
			m.expiry.Reset(0)
		}
		m.mu.Unlock()
		s.addBuffered(-freed)
		return
	}
	m.held = append(m.held, frame)
	m.heldBytes += len(frame)
	m.mu.Unlock()
	s.addBuffered(len(frame))
}

// takeHeld returns the frames held for m and their bytes, and clears them;
// overflowed reports whether some were lost. The caller accounts for the
// bytes.
func (m *member) takeHeld() (held [][]byte, bytes int, overflowed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	held, bytes, overflowed = m.held, m.heldBytes, m.overflow
	m.held, m.heldBytes, m.overflow = nil, 0, false
	return held, bytes, overflowed
}

// heldTotal returns the bytes a held seat keeps: what its connection left
// and what came since. The caller holds Server.mu.
func (m *member) heldTotal() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.backlogBytes + m.heldBytes
}

// resumeTokens mints and checks resume tokens. A token is
// base64url(id) "." base64url(nonce) "." base64url(mac), the MAC binding
// room, id and nonce under a key that lives as long as the server. A token
// with a good MAC whose seat is gone has expired; any other is wrong.
type resumeTokens struct {
	key [32]byte // immutable
}

// newResumeTokens returns resumeTokens keyed by key, or by a random key
// when key is empty.
func newResumeTokens(key []byte) *resumeTokens {
	t := &resumeTokens{}
	if len(key) > 0 {
		t.key = sha256.Sum256(key)
	} else {
		_, _ = rand.Read(t.key[:])
	}
	return t
}

var b64 = base64.RawURLEncoding

func (t *resumeTokens) mac(room, id string, nonce []byte) []byte {
	h := hmac.New(sha256.New, t.key[:])
	h.Write([]byte(room))
	h.Write([]byte{0})
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(nonce)
	return h.Sum(nil)[:18]
}

func (t *resumeTokens) mint(room, id string) string {
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	return b64.EncodeToString([]byte(id)) + "." + b64.EncodeToString(nonce) + "." + b64.EncodeToString(t.mac(room, id, nonce))
}

// check returns the peer id a token was minted for in room, or false when
// the server did not mint it for that room.
func (t *resumeTokens) check(room, token string) (string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", false
	}
	id, err1 := b64.DecodeString(parts[0])
	nonce, err2 := b64.DecodeString(parts[1])
	mac, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "", false
	}
	return string(id), hmac.Equal(mac, t.mac(room, string(id), nonce))
}

func sameToken(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
