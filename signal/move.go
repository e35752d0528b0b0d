package signal

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Rooms move between servers in a cluster (package signal/cluster): a
// draining server hands its rooms over (Drain), and a server takes a room
// over (ImportRoom) with every seat held, as if each member's connection
// had just dropped; the members resume there. The other members see no
// peer-left, and the frames kept for each seat move with it, so nothing
// is lost or sent twice.

// RoomState is a room as it moves between servers.
type RoomState struct {
	Name     string      `json:"name"`
	Capacity int         `json:"capacity"`
	Created  time.Time   `json:"created"`
	Seats    []SeatState `json:"seats"`
}

// SeatState is one seat of a RoomState.
type SeatState struct {
	ID         string    `json:"id"`
	Joined     time.Time `json:"joined"`
	AuthExpiry time.Time `json:"authExpiry,omitzero"` // when the join token that admitted it expires
	Remote     string    `json:"remote,omitempty"`    // the address of its latest connection
	Resume     string    `json:"resume"`              // its resume token; a Gap seat without one takes any token minted for it
	PrevResume string    `json:"prevResume,omitempty"`
	// Connected is true while a connection holds the seat (Snapshot only:
	// a room that moves has every seat held).
	Connected bool `json:"connected,omitempty"`
	// Read counts the frames handled from the seat's connections.
	Read uint64 `json:"read"`
	// Gap marks a seat rebuilt without its frames (its server crashed):
	// its resume says frames may have been lost.
	Gap bool `json:"gap,omitempty"`
	// Recent are the frames written to the seat's last connection and not
	// acknowledged, numbered from RecentBase on that connection; Unsent
	// are those it never wrote, then those that came while the seat was
	// held. A resume sends the client those it did not receive.
	Recent     [][]byte `json:"recent,omitempty"`
	RecentBase uint64   `json:"recentBase,omitempty"`
	Unsent     [][]byte `json:"unsent,omitempty"`
}

// Drain prepares the server to stop while its rooms live on elsewhere. It
// refuses new connections; closes every connection with 1012 (service
// restart) once the frames queued for it are written, reading what its
// client still sends for up to a second; holds the seat of every member
// whose connection ends so; and then removes every room without telling
// anyone, and returns them, seats and frames, for ImportRoom on other
// servers. Connections still open when ctx ends are cut. A member that
// closed its connection itself meanwhile left as usual. Call Shutdown
// after Drain to finish.
func (s *Server) Drain(ctx context.Context) []RoomState {
	s.mu.Lock()
	s.closing, s.draining = true, true
	for c := range s.conns {
		c.closeAfterQueue(CloseServiceRestart, "service restart", reasonRestart)
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		left := slices.Collect(maps.Keys(s.conns))
		s.mu.Unlock()
		for _, c := range left {
			c.abort(reasonRestart)
		}
		<-done
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	rooms := make([]RoomState, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, s.exportLocked(r))
	}
	return rooms
}

// exportLocked removes r from the server, without telling its members,
// and returns it with every seat's frames. Every seat is held. s.mu is
// held for writing.
func (s *Server) exportLocked(r *room) RoomState {
	st := RoomState{Name: r.name, Capacity: r.capacity, Created: r.created}
	freed := 0
	for _, m := range r.members {
		if m.expiry != nil {
			m.expiry.Stop()
			m.expiry = nil
		}
		held, heldBytes, overflowed := m.takeHeld()
		seat := s.seatLocked(m)
		if !overflowed {
			seat.Recent, seat.RecentBase = m.backlog.recent, m.backlog.recentBase
			seat.Unsent = append(m.backlog.unsent, held...)
		} else {
			seat.Gap = true // frames were lost: the resume must say so
		}
		freed += heldBytes + m.backlog.bytes
		m.backlog = seatBacklog{}
		m.mu.Lock()
		m.backlogBytes = 0
		m.mu.Unlock()
		m.room = nil
		st.Seats = append(st.Seats, seat)
	}
	r.members = nil
	delete(s.rooms, r.name)
	s.metrics.rooms.Dec()
	s.addBuffered(-freed)
	s.roomChanged(r.name)
	return st
}

// seatLocked describes m without its frames. s.mu is held.
func (s *Server) seatLocked(m *member) SeatState {
	return SeatState{ID: m.id, Joined: m.joinedAt, AuthExpiry: m.authExpiry, Remote: m.remote,
		Resume: m.resume, PrevResume: m.prevResume, Connected: m.conn != nil, Read: m.read.Load(), Gap: m.gap}
}

// Snapshot returns room's state without frames: its seats, their tokens
// and whether a connection holds each. ok is false when the room does not
// exist here.
func (s *Server) Snapshot(room string) (st RoomState, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rooms[room]
	if r == nil {
		return RoomState{}, false
	}
	st = RoomState{Name: r.name, Capacity: r.capacity, Created: r.created, Seats: make([]SeatState, 0, len(r.members))}
	for _, m := range r.members {
		st.Seats = append(st.Seats, s.seatLocked(m))
	}
	return st, true
}

// HasRoom reports whether room exists here.
func (s *Server) HasRoom(room string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rooms[room] != nil
}

// ImportRoom installs a room that moved from another server (see Drain),
// or that is rebuilt after its server crashed (seats with Gap and no
// frames): every seat is held for the resume window, as if its connection
// had just dropped. It fails when the room exists here already, when the
// state is not valid, or when the server is shutting down.
func (s *Server) ImportRoom(st RoomState) error {
	if err := s.validState(st); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrServerClosed
	}
	if s.rooms[st.Name] != nil {
		return fmt.Errorf("signal: import room %q: it exists here already", st.Name)
	}
	r := &room{name: st.Name, capacity: st.Capacity, created: st.Created}
	total := 0
	for _, seat := range st.Seats {
		m := &member{id: seat.ID, room: r, remote: seat.Remote, joinedAt: seat.Joined, authExpiry: seat.AuthExpiry,
			resume: seat.Resume, prevResume: seat.PrevResume, gap: seat.Gap}
		m.read.Store(seat.Read)
		b := seatBacklog{recent: seat.Recent, recentBase: seat.RecentBase, unsent: seat.Unsent}
		for _, f := range b.recent {
			b.bytes += len(f)
		}
		for _, f := range b.unsent {
			b.bytes += len(f)
		}
		m.backlog = b
		m.backlogBytes = b.bytes
		total += b.bytes
		m.expiry = time.AfterFunc(s.cfg.ResumeWindow, func() { s.expireSeat(m) })
		r.members = append(r.members, m)
	}
	s.rooms[r.name] = r
	s.metrics.rooms.Inc()
	s.addBuffered(total)
	s.roomChanged(r.name)
	return nil
}

// validState checks a RoomState from another server as if its seats had
// joined here: a valid room name, a capacity this server allows, valid and
// distinct ids, and frames within the seat's limits.
func (s *Server) validState(st RoomState) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("signal: import room %q: %s", clip(st.Name), fmt.Sprintf(format, args...))
	}
	if !validRoom(st.Name) {
		return bad("not a valid room name")
	}
	if st.Capacity < 2 || st.Capacity > max(s.cfg.MaxCapacity, s.cfg.Capacity) {
		return bad("capacity %d is outside [2, %d]", st.Capacity, s.cfg.MaxCapacity)
	}
	if len(st.Seats) == 0 || len(st.Seats) > st.Capacity {
		return bad("%d seats for capacity %d", len(st.Seats), st.Capacity)
	}
	if s.cfg.ResumeWindow <= 0 {
		return bad("resume is off here, so seats cannot be held")
	}
	ids := make(map[string]bool, len(st.Seats))
	for _, seat := range st.Seats {
		if !validID(seat.ID) || ids[seat.ID] {
			return bad("bad or repeated seat id %q", clip(seat.ID))
		}
		ids[seat.ID] = true
		if seat.Resume == "" && !seat.Gap {
			return bad("seat %q has no resume token", seat.ID)
		}
		n := 0
		for _, f := range slices.Concat(seat.Recent, seat.Unsent) {
			n += len(f)
		}
		if n > s.cfg.ConnBufferBytes+s.cfg.ResumeQueueBytes {
			return bad("seat %q keeps %d bytes of frames, over this server's limit", seat.ID, n)
		}
	}
	return nil
}

// Export removes room from the server without telling its members and
// returns it, seats and frames, for ImportRoom elsewhere. Every seat must
// be held (no connection in the room): ok is false otherwise, or when the
// room does not exist.
func (s *Server) Export(room string) (st RoomState, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return RoomState{}, false
	}
	for _, m := range r.members {
		if m.conn != nil || m.pending != nil {
			return RoomState{}, false
		}
	}
	return s.exportLocked(r), true
}

// Evict removes room from the server without telling anyone, and closes
// the connections of its members with 1012 (service restart), so that
// they resume where the room lives now: a cluster node that finds another
// node has taken the room over gives its stale copy up this way. It
// reports false when the room does not exist here.
func (s *Server) Evict(room string) bool {
	s.mu.Lock()
	r := s.rooms[room]
	if r == nil {
		s.mu.Unlock()
		return false
	}
	var conns []*conn
	for _, m := range slices.Clone(r.members) {
		if m.conn != nil {
			conns = append(conns, m.conn)
		}
		if p := m.pending; p != nil {
			m.pending = nil
			p.conn.resuming = nil
			conns = append(conns, p.conn)
		}
		s.dropMemberLocked(m, "evicted")
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeAfterQueue(CloseServiceRestart, "service restart", reasonRestart)
	}
	return true
}
