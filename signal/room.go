package signal

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/gorilla/websocket"
)

// room is a set of members that relay signals to each other.
type room struct {
	name     string
	capacity int
	members  []*conn // guarded by Server.mu; in join order
}

func (r *room) member(id string) *conn {
	for _, m := range r.members {
		if m.id == id {
			return m
		}
	}
	return nil
}

func (r *room) ids() []string {
	ids := make([]string, len(r.members))
	for i, m := range r.members {
		ids[i] = m.id
	}
	return ids
}

// newPeerID returns a random URL-safe id with 96 bits of entropy.
func newPeerID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// membership describes a join or leave, for logging after the lock is
// released.
type membership struct {
	event  string // created, joined, full, left
	room   string
	id     string
	reason string
}

func (s *Server) join(c *conn, m *clientMsg) {
	s.mu.Lock()
	ev := s.joinLocked(c, m)
	s.mu.Unlock()
	if ev.event != "" {
		s.log.Info("join", "conn", c.n, "remote", c.remote, "room", ev.room, "peer", ev.id, "result", ev.event)
	}
}

func (s *Server) joinLocked(c *conn, m *clientMsg) membership {
	if s.closing {
		return membership{} // the connection is being closed
	}
	if c.room != nil {
		c.sendError(perr(CodeAlreadyJoined, "This connection is already in room %q; send leave first.", c.room.name), m.ref)
		return membership{}
	}
	r := s.rooms[m.room]
	if r != nil && len(r.members) >= r.capacity {
		c.enqueue(mustJSON(fullMsg{Type: TypeFull, Ref: m.ref, Room: r.name, Capacity: r.capacity}))
		s.clientLog(c, "Room %q is full (%d of %d members).", r.name, len(r.members), r.capacity)
		return membership{event: "full", room: r.name}
	}
	id := m.id
	if id == "" {
		for id = newPeerID(); r != nil && r.member(id) != nil; id = newPeerID() {
		}
	} else if r != nil && r.member(id) != nil {
		c.sendError(perr(CodeIDTaken, "Id %q is taken in room %q; ask for another or let the server choose.", id, r.name), m.ref)
		return membership{}
	}

	reply := createdMsg{Ref: m.ref, ID: id, ICEServers: s.cfg.ICEServers}
	if r == nil {
		r = &room{name: m.room, capacity: s.cfg.Capacity}
		if m.capacity != 0 {
			r.capacity = m.capacity
		}
		s.rooms[r.name] = r
		reply.Type = TypeCreated
	} else {
		reply.Type = TypeJoined
		reply.Peers = r.ids()
		joined := mustJSON(peerMsg{Type: TypePeerJoined, Room: r.name, ID: id})
		for _, o := range r.members {
			o.enqueue(joined)
		}
	}
	reply.Room, reply.Capacity = r.name, r.capacity
	c.room, c.id = r, id
	r.members = append(r.members, c)
	c.enqueue(mustJSON(reply))
	s.clientLog(c, "You %s room %q as %s (%d of %d members).", map[string]string{TypeCreated: "created", TypeJoined: "joined"}[reply.Type], r.name, id, len(r.members), r.capacity)
	return membership{event: reply.Type, room: r.name, id: id}
}

func (s *Server) leave(c *conn, m *clientMsg) {
	s.mu.Lock()
	if c.room == nil {
		s.mu.Unlock()
		c.sendError(perr(CodeNotJoined, "This connection is in no room; there is nothing to leave."), m.ref)
		return
	}
	ev := s.leaveLocked(c, ReasonLeft)
	s.mu.Unlock()
	c.logLeave(ev)
}

// leaveLocked removes c from its room and tells the other members, with
// reason. s.mu must be held for writing and c must be in a room.
func (s *Server) leaveLocked(c *conn, reason string) membership {
	r := c.room
	if i := slices.Index(r.members, c); i >= 0 {
		r.members = slices.Delete(r.members, i, i+1)
	}
	left := mustJSON(peerMsg{Type: TypePeerLeft, Room: r.name, ID: c.id, Reason: reason})
	for _, o := range r.members {
		o.enqueue(left)
		s.clientLog(o, "Peer %s left room %q (%s).", c.id, r.name, reason)
	}
	if len(r.members) == 0 {
		delete(s.rooms, r.name)
	}
	ev := membership{event: "left", room: r.name, id: c.id, reason: reason}
	c.room, c.id = nil, ""
	return ev
}

// leaveIfJoined removes c from its room, if it is in one, with the
// peer-left reason of its close reason. s.mu must be held for writing.
func (c *conn) leaveIfJoined() membership {
	if c.room == nil {
		return membership{}
	}
	return c.s.leaveLocked(c, c.closeReason().peerLeft())
}

func (c *conn) logLeave(ev membership) {
	if ev.event != "" {
		c.s.log.Info("leave", "conn", c.n, "remote", c.remote, "room", ev.room, "peer", ev.id, "reason", ev.reason)
	}
}

// relay forwards an offer, answer, candidate or message to its target, or
// to every other member of the sender's room.
func (s *Server) relay(c *conn, m *clientMsg) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := c.room
	if r == nil {
		c.sendError(perr(CodeNotJoined, "Join a room before sending %s.", m.typ), m.ref)
		return
	}
	var target *conn
	if m.to != "" {
		if target = r.member(m.to); target == nil || target == c {
			c.sendError(perr(CodeUnknownPeer, "%q is not another member of room %q.", clip(m.to), r.name), m.ref)
			return
		}
	}
	var frame []byte
	switch m.typ {
	case TypeOffer, TypeAnswer:
		frame = mustJSON(sdpMsg{Type: m.typ, From: c.id, SDP: m.sdp})
	case TypeCandidate:
		frame = appendRelay(m.typ, c.id, "candidate", m.candidate)
	case TypeMessage:
		frame = appendRelay(m.typ, c.id, "data", m.data)
	}
	if target != nil {
		target.enqueue(frame)
		return
	}
	for _, o := range r.members {
		if o != c {
			o.enqueue(frame)
		}
	}
}

// clientLog sends c a log message when Config.ClientLog is set.
func (s *Server) clientLog(c *conn, format string, args ...any) {
	if s.cfg.ClientLog {
		c.enqueue(mustJSON(logMsg{Type: TypeLog, Message: fmt.Sprintf(format, args...)}))
	}
}

// drop ends c for reason: it leaves its room at once (members see
// peer-left), then gets a close frame if the socket takes one within a
// second, and its socket is closed. It runs on its own goroutine, counted
// in s.wg.
func (s *Server) drop(c *conn, reason closeReason, code int, text string) {
	defer s.wg.Done()
	if !c.markClosed(reason) {
		return
	}
	s.mu.Lock()
	ev := c.leaveIfJoined()
	s.mu.Unlock()
	s.log.Warn("dropping connection", "conn", c.n, "remote", c.remote, "reason", reason)
	c.logLeave(ev)
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	_ = c.ws.NetConn().Close()
}
