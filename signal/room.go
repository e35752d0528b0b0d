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
	created  time.Time
	members  []*member // guarded by Server.mu; in join order
}

func (r *room) member(id string) *member {
	for _, m := range r.members {
		if m.id == id {
			return m
		}
	}
	return nil
}

// idsExcept lists the ids of the members other than m, in join order.
func (r *room) idsExcept(m *member) []string {
	ids := make([]string, 0, len(r.members))
	for _, o := range r.members {
		if o != m {
			ids = append(ids, o.id)
		}
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
	event  string // created, joined, resumed, full, left, held
	room   string
	id     string
	reason string
}

// joinCheck is what a join's tokens say, checked before Server.mu is taken:
// verifying them costs CPU, and the lock serves every room.
type joinCheck struct {
	resumeID string       // the peer id the resume token names
	resumeOK bool         // the resume token was minted by this server for the room
	claims   *TokenClaims // the join token's claims, when it is valid
	why      string       // else what is wrong with it
}

func (s *Server) join(c *conn, jm *clientMsg) {
	var jc joinCheck
	switch {
	case jm.resume != "":
		jc.resumeID, jc.resumeOK = s.resumes.check(jm.room, jm.resume)
	case len(s.cfg.AuthSecret) > 0:
		jc.claims, jc.why = s.authorize(jm)
	}
	s.mu.Lock()
	ev, ghost := s.joinLocked(c, jm, &jc)
	s.mu.Unlock()
	if ghost != nil {
		// The seat's old connection is still open: end it; its finish
		// completes the resume.
		s.wg.Add(1) // safe: c's readLoop holds a count
		go s.replace(ghost)
	}
	if ev.event != "" {
		s.metrics.joins.WithLabelValues(ev.event).Inc()
		s.log.Debug("join", "conn", c.n, "remote", c.remote, "room", ev.room, "peer", ev.id, "result", ev.event)
	}
	if ev.event == "unauthorized" {
		c.authFailures++
		if c.authFailures >= maxAuthFailures {
			c.closeAfterQueue(websocket.ClosePolicyViolation, "too many unauthorized joins", reasonUnauthorized)
		}
	}
}

// maxAuthFailures is the number of unauthorized joins after which the
// connection is closed.
const maxAuthFailures = 5

// joinLocked handles a join whose tokens jc has checked; s.mu is held for
// writing. It returns what happened and, for a resume that replaces a
// connection still open, that connection, to be closed once the lock is
// released.
func (s *Server) joinLocked(c *conn, jm *clientMsg, jc *joinCheck) (membership, *conn) {
	if s.closing {
		return membership{}, nil // the connection is being closed
	}
	if c.member != nil {
		c.sendError(perr(CodeAlreadyJoined, "This connection is already in room %q; send leave first.", c.member.room.name), jm.ref)
		return membership{}, nil
	}
	if c.resuming != nil {
		c.sendError(perr(CodeAlreadyJoined, "This connection is resuming a seat in room %q; wait for joined.", c.resuming.room.name), jm.ref)
		return membership{}, nil
	}
	if jm.resume != "" {
		return s.resumeLocked(c, jm, jc)
	}
	claims := jc.claims
	if len(s.cfg.AuthSecret) > 0 && claims == nil {
		c.sendError(perr(CodeUnauthorized, "%s", jc.why), jm.ref)
		return membership{event: "unauthorized", room: jm.room}, nil
	}
	r := s.rooms[jm.room]
	if r == nil && !s.hostsLocked(jm.room) {
		c.sendError(perr(CodeMoved, "Room %q is not hosted here.", jm.room), jm.ref)
		return membership{event: "moved", room: jm.room}, nil
	}
	if r != nil && len(r.members) >= r.capacity {
		c.enqueue(mustJSON(fullMsg{Type: TypeFull, Ref: jm.ref, Room: r.name, Capacity: r.capacity}))
		s.clientLog(c, "Room %q is full (%d of %d members).", r.name, len(r.members), r.capacity)
		return membership{event: "full", room: r.name}, nil
	}
	id := jm.id
	if claims != nil && claims.Subject != "" {
		id = claims.Subject
	}
	if id == "" {
		for id = newPeerID(); r != nil && r.member(id) != nil; id = newPeerID() {
		}
	} else if r != nil && r.member(id) != nil {
		c.sendError(perr(CodeIDTaken, "Id %q is taken in room %q; ask for another or let the server choose.", id, r.name), jm.ref)
		return membership{}, nil
	}
	if r == nil {
		capacity := s.cfg.Capacity
		if jm.capacity != 0 {
			capacity = jm.capacity
		}
		if claims != nil && claims.Cap != 0 && capacity > claims.Cap {
			c.sendError(perr(CodeUnauthorized, "The join token allows creating rooms of up to %d members, not %d.", claims.Cap, capacity), jm.ref)
			return membership{event: "unauthorized", room: jm.room}, nil
		}
		r = &room{name: jm.room, capacity: capacity, created: time.Now()}
		s.rooms[r.name] = r
		s.metrics.rooms.Inc()
	}

	m := &member{id: id, room: r, conn: c, remote: c.remote, joinedAt: time.Now(), resume: s.resumes.mint(r.name, id)}
	if claims != nil && claims.ExpiresAt != nil {
		m.authExpiry = claims.ExpiresAt.Time
	}
	reply := createdMsg{Type: TypeCreated, Ref: jm.ref, Room: r.name, ID: id, Capacity: r.capacity,
		ICEServers: s.iceServersFor(id), Resume: m.resume}
	if len(r.members) > 0 {
		reply.Type = TypeJoined
		reply.Peers = r.idsExcept(nil)
		joined := mustJSON(peerMsg{Type: TypePeerJoined, Room: r.name, ID: id})
		for _, o := range r.members {
			s.deliver(o, joined)
			s.memberLog(o, "Peer %s joined room %q.", id, r.name)
		}
	}
	r.members = append(r.members, m)
	c.setMemberLocked(m)
	s.roomChanged(r.name)
	c.enqueue(mustJSON(reply))
	s.clientLog(c, "You %s room %q as %s (%d of %d members).", reply.Type, r.name, id, len(r.members), r.capacity)
	return membership{event: reply.Type, room: r.name, id: id}, nil
}

// tombstone remembers, for the resume window, why a seat whose member was
// absent was taken away, so that its resume gets that reason.
type tombstone struct {
	code, msg string
	until     time.Time
}

// buryLocked records why m's seat was taken away, if m is absent, and
// drops expired records. s.mu is held for writing.
func (s *Server) buryLocked(m *member, code, msg string) {
	now := time.Now()
	for tok, t := range s.tombstones {
		if now.After(t.until) {
			delete(s.tombstones, tok)
		}
	}
	if m.conn == nil && s.cfg.ResumeWindow > 0 {
		s.tombstones[m.resume] = tombstone{code: code, msg: msg, until: now.Add(s.cfg.ResumeWindow)}
	}
}

// resumeLocked gives c the seat that jm's resume token names: the member
// gets joined with "resumed": true and then every frame it missed, and the
// other members see nothing. When the seat's old connection is still open,
// it is returned to be closed, and the resume completes when it finishes.
// s.mu is held for writing.
func (s *Server) resumeLocked(c *conn, jm *clientMsg, jc *joinCheck) (membership, *conn) {
	if !jc.resumeOK {
		s.metrics.resumes.WithLabelValues("failed").Inc()
		c.sendError(perr(CodeResumeFailed, "The resume token is not valid for room %q; join without it to get a new seat.", jm.room), jm.ref)
		return membership{}, nil
	}
	var m *member
	if r := s.rooms[jm.room]; r != nil {
		m = r.member(jc.resumeID)
	} else if !s.hostsLocked(jm.room) {
		c.sendError(perr(CodeMoved, "Room %q is not hosted here.", jm.room), jm.ref)
		return membership{event: "moved", room: jm.room}, nil
	}
	// A seat rebuilt after a crash without its tokens takes any token the
	// cluster minted for it (jc checked the signature and the id).
	anyToken := m != nil && m.gap && m.resume == ""
	if m == nil || !(anyToken || sameToken(m.resume, jm.resume) || m.prevResume != "" && sameToken(m.prevResume, jm.resume)) {
		if tomb, ok := s.tombstones[jm.resume]; ok && time.Now().Before(tomb.until) {
			// The seat was taken away while the member was absent: say so,
			// so that the client does not come back as a newcomer.
			s.metrics.resumes.WithLabelValues("failed").Inc()
			c.sendError(perr(tomb.code, "%s", tomb.msg), jm.ref)
			return membership{}, nil
		}
		s.metrics.resumes.WithLabelValues("expired").Inc()
		c.sendError(perr(CodeResumeFailed, "The seat in room %q has expired (the resume window is %s), or the token was used already (each resume gives a new one); join without the token to get a new seat.", jm.room, s.cfg.ResumeWindow), jm.ref)
		return membership{}, nil
	}
	if !m.authExpiry.IsZero() && time.Now().After(m.authExpiry.Add(authLeeway)) {
		s.metrics.resumes.WithLabelValues("failed").Inc()
		c.sendError(perr(CodeResumeFailed, "The join token that admitted this seat has expired; join again with a new token."), jm.ref)
		return membership{}, nil
	}
	if m.pending != nil {
		s.metrics.resumes.WithLabelValues("failed").Inc()
		c.sendError(perr(CodeResumeFailed, "Another connection is resuming this seat."), jm.ref)
		return membership{}, nil
	}
	if ghost := m.conn; ghost != nil {
		m.pending = &pendingResume{conn: c, msg: *jm}
		c.resuming = m
		return membership{}, ghost
	}
	return s.completeResumeLocked(m, c, jm), nil
}

// completeResumeLocked attaches c to the held seat m, under a new resume
// token. s.mu is held for writing.
func (s *Server) completeResumeLocked(m *member, c *conn, jm *clientMsg) membership {
	if m.expiry != nil {
		m.expiry.Stop()
		m.expiry = nil
	}
	held, heldBytes, overflowed := m.takeHeld()
	kept := heldBytes + m.backlog.bytes
	if overflowed || m.backlog.lost(jm.received) {
		// Frames were lost while the seat was held: the seat cannot be
		// resumed faithfully.
		s.addBuffered(-heldBytes)
		s.metrics.resumes.WithLabelValues("expired").Inc()
		c.sendError(perr(CodeResumeFailed, "Too many messages arrived while you were away; join without the token to get a new seat."), jm.ref)
		return s.removeMemberLocked(m, ReasonTimeout)
	}
	backlog := resumeFrames(m.backlog, jm.received, held)
	replayed := 0
	for _, f := range backlog {
		replayed += len(f)
	}
	s.addBuffered(replayed - kept) // frames the client had received already
	m.backlog = seatBacklog{}
	m.mu.Lock()
	m.backlogBytes = 0
	m.mu.Unlock()
	m.conn, m.remote = c, c.remote
	c.setMemberLocked(m)
	// A new token for the seat. The old one stays good until the client
	// acknowledges this joined (a pong after it), in case the joined is
	// lost with the connection: then the client can only resume with it.
	m.prevResume, m.resume = jm.resume, s.resumes.mint(m.room.name, m.id)
	c.confirmResume()
	r := m.room
	s.roomChanged(r.name)
	reply := createdMsg{Type: TypeJoined, Ref: jm.ref, Room: r.name, ID: m.id, Capacity: r.capacity,
		Peers: r.idsExcept(m), ICEServers: s.iceServersFor(m.id), Resume: m.resume, Resumed: true}
	if m.gap {
		// Rebuilt after a crash: what the server handled, and what it
		// sent, are not known for sure. The count starts again here, as
		// the client's does.
		reply.Gap, m.gap = true, false
		m.read.Store(0)
	} else {
		read := m.read.Load()
		reply.Read = &read
	}
	c.enqueue(mustJSON(reply))
	c.enqueueAll(backlog, replayed)
	s.metrics.resumes.WithLabelValues("ok").Inc()
	return membership{event: "resumed", room: r.name, id: m.id}
}

// holdSeatLocked keeps m's seat after its connection dropped, with what
// the connection left, until a resume or the end of the resume window.
// A resume that was waiting for this connection to finish completes now.
// s.mu is held for writing.
func (s *Server) holdSeatLocked(m *member, backlog seatBacklog) membership {
	m.conn.member = nil
	m.conn = nil
	m.backlog = backlog
	m.mu.Lock()
	m.backlogBytes = backlog.bytes
	m.mu.Unlock()
	if p := m.pending; p != nil {
		m.pending = nil
		p.conn.resuming = nil
		if p.conn.open() && p.conn.member == nil {
			ev := s.completeResumeLocked(m, p.conn, &p.msg)
			s.log.Debug("join", "conn", p.conn.n, "remote", p.conn.remote, "room", ev.room, "peer", ev.id, "result", ev.event)
			return ev
		}
	}
	m.expiry = time.AfterFunc(s.cfg.ResumeWindow, func() { s.expireSeat(m) })
	m.mu.Lock()
	overflowed := m.overflow
	m.mu.Unlock()
	if overflowed {
		m.expiry.Reset(0)
	}
	return membership{event: "held", room: m.room.name, id: m.id}
}

// expireSeat releases a held seat whose window ended or whose backlog
// overflowed: the members see peer-left with reason timeout.
func (s *Server) expireSeat(m *member) { s.releaseSeat(m, ReasonTimeout) }

// releaseSeat releases m's seat if it is still held: the members see
// peer-left with reason.
func (s *Server) releaseSeat(m *member, reason string) {
	s.mu.Lock()
	var ev membership
	if m.conn == nil && m.room != nil && !s.closing {
		ev = s.removeMemberLocked(m, reason)
	}
	s.mu.Unlock()
	if ev.event != "" {
		s.log.Debug("leave", "room", ev.room, "peer", ev.id, "reason", ev.reason)
	}
}

func (s *Server) leave(c *conn, jm *clientMsg) {
	s.mu.Lock()
	m := c.member
	if m == nil {
		s.mu.Unlock()
		c.sendError(perr(CodeNotJoined, "This connection is in no room; there is nothing to leave."), jm.ref)
		return
	}
	ev := s.removeMemberLocked(m, ReasonLeft)
	s.mu.Unlock()
	c.logLeave(ev)
}

// removeMemberLocked removes m from its room and tells the other members,
// with reason. s.mu must be held for writing.
func (s *Server) removeMemberLocked(m *member, reason string) membership {
	r := m.room
	left := mustJSON(peerMsg{Type: TypePeerLeft, Room: r.name, ID: m.id, Reason: reason})
	for _, o := range r.members {
		if o != m {
			s.deliver(o, left)
			s.memberLog(o, "Peer %s left room %q (%s).", m.id, r.name, reason)
		}
	}
	return s.dropMemberLocked(m, reason)
}

// dropMemberLocked removes m from its room without telling anyone. s.mu
// must be held for writing.
func (s *Server) dropMemberLocked(m *member, reason string) membership {
	r := m.room
	if i := slices.Index(r.members, m); i >= 0 {
		r.members = slices.Delete(r.members, i, i+1)
	}
	if len(r.members) == 0 {
		delete(s.rooms, r.name)
		s.metrics.rooms.Dec()
	}
	if m.conn != nil {
		m.conn.setMemberLocked(nil)
		m.conn = nil
	}
	if m.expiry != nil {
		m.expiry.Stop()
		m.expiry = nil
	}
	if p := m.pending; p != nil {
		m.pending = nil
		p.conn.resuming = nil
		p.conn.sendError(perr(CodeResumeFailed, "The seat in room %q was released (%s) before the resume completed.", r.name, reason), p.msg.ref)
	}
	_, heldBytes, _ := m.takeHeld()
	m.mu.Lock()
	m.backlogBytes = 0
	m.mu.Unlock()
	s.addBuffered(-heldBytes - m.backlog.bytes)
	m.backlog = seatBacklog{}
	m.room = nil
	s.roomChanged(r.name)
	return membership{event: "left", room: r.name, id: m.id, reason: reason}
}

func (c *conn) logLeave(ev membership) {
	if ev.event != "" {
		c.s.log.Debug("leave", "conn", c.n, "remote", c.remote, "room", ev.room, "peer", ev.id, "reason", ev.reason, "seat", ev.event)
	}
}

// relay forwards an offer, answer, candidate or message to its target, or
// to every other member of the sender's room.
func (s *Server) relay(c *conn, jm *clientMsg, recv time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := c.member
	if m == nil {
		c.sendError(perr(CodeNotJoined, "Join a room before sending %s.", jm.typ), jm.ref)
		return
	}
	r := m.room
	var target *member
	if jm.to != "" {
		if target = r.member(jm.to); target == nil || target == m {
			c.sendError(perr(CodeUnknownPeer, "%q is not another member of room %q.", clip(jm.to), r.name), jm.ref)
			return
		}
	}
	var frame []byte
	switch jm.typ {
	case TypeOffer, TypeAnswer:
		frame = mustJSON(sdpMsg{Type: jm.typ, From: m.id, SDP: jm.sdp})
	case TypeCandidate:
		frame = appendRelay(jm.typ, m.id, "candidate", jm.candidate)
	case TypeMessage:
		frame = appendRelay(jm.typ, m.id, "data", jm.data)
	}
	if target != nil {
		s.deliver(target, frame)
	} else {
		for _, o := range r.members {
			if o != m {
				s.deliver(o, frame)
			}
		}
	}
	s.metrics.relayed[jm.typ].Inc()
	s.metrics.latency.Observe(time.Since(recv).Seconds())
}

// clientLog sends c a log message when Config.ClientLog is set.
func (s *Server) clientLog(c *conn, format string, args ...any) {
	if s.cfg.ClientLog {
		c.enqueue(mustJSON(logMsg{Type: TypeLog, Message: fmt.Sprintf(format, args...)}))
	}
}

// memberLog sends m a log message when Config.ClientLog is set.
func (s *Server) memberLog(m *member, format string, args ...any) {
	if s.cfg.ClientLog {
		s.deliver(m, mustJSON(logMsg{Type: TypeLog, Message: fmt.Sprintf(format, args...)}))
	}
}

// replace ends a connection whose seat another connection is resuming. It
// takes no more frames, gets close 4001 if its socket takes one within
// closeGrace, and its reader goes on for closeGrace after that, so that
// what the client had already sent is read and relayed rather than lost. Its
// finish then hands the seat over. It runs on its own goroutine, counted
// in s.wg.
func (s *Server) replace(c *conn) {
	defer s.wg.Done()
	c.mu.Lock()
	if c.reason == "" {
		c.reason = reasonReplaced
	}
	c.closing = true
	c.mu.Unlock()
	c.closeSent.Store(true)
	_ = c.fc.SetReadDeadline(time.Now().Add(2 * closeGrace)) // in case the close frame cannot be written
	s.log.Debug("replacing connection", "conn", c.n, "remote", c.remote)
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseReplaced, "replaced by a resumed connection"), time.Now().Add(closeGrace))
	// The client has closeGrace from now, when it can know, to be read.
	_ = c.fc.SetReadDeadline(time.Now().Add(closeGrace))
}

// drop ends c for reason: unless the reason lets the seat be resumed, it
// leaves its room at once (members see peer-left); then it gets a close
// frame if the socket takes one within closeGrace, and its socket is
// closed; its readLoop's finish does the rest. It runs on its own goroutine, counted
// in s.wg.
func (s *Server) drop(c *conn, reason closeReason, code int, text string) {
	defer s.wg.Done()
	if !c.markClosed(reason) {
		return // finished already
	}
	var ev membership
	if !reason.resumable() {
		s.mu.Lock()
		if m := c.member; m != nil {
			ev = s.removeMemberLocked(m, reason.peerLeft())
		}
		s.mu.Unlock()
	}
	s.log.Debug("dropping connection", "conn", c.n, "remote", c.remote, "reason", reason)
	c.logLeave(ev)
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeGrace))
	_ = c.ws.NetConn().Close()
}

// hostsLocked reports whether this server may have room (see
// Config.HostsRoom). s.mu is held.
func (s *Server) hostsLocked(room string) bool {
	return s.cfg.HostsRoom == nil || s.cfg.HostsRoom(room)
}

// roomChanged tells Config.OnRoomChange that room changed. s.mu is held
// for writing.
func (s *Server) roomChanged(room string) {
	if s.cfg.OnRoomChange != nil {
		s.cfg.OnRoomChange(room)
	}
}
