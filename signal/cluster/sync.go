package cluster

import (
	"context"
	"errors"
	"sync"
	"time"
)

// The directory record of every room this node hosts follows the room:
// the server calls roomChanged (under its lock, so it only marks the room)
// and the syncer's workers write the record: the members (ids, join
// times), so that the room can be rebuilt if this node dies, and its
// release when the room ends, so that the next join anywhere claims it
// afresh.

// syncWorkers is how many records are written at once.
const syncWorkers = 4

// seatWait bounds how long a member's created or joined waits for its
// room's record to name it (see waitWritten).
const seatWait = 2 * time.Second

// syncer writes the directory records of the rooms marked dirty.
type syncer struct {
	n    *Node
	mu   sync.Mutex
	cond *sync.Cond
	// dirty and busy are guarded by mu: rooms to write, and rooms being
	// written (a room marked again meanwhile is written again after).
	dirty  map[string]struct{}
	order  []string
	busy   map[string]uint64 // the generation each write in progress covers
	closed bool
	// gen counts each room's changes, and written the generation its
	// record was last written at (both guarded by mu; a room's entries
	// go when its record is released), so that a new member's created
	// or joined can wait until the record names it (waitWritten): a
	// room rebuilt after a crash then has every member that was told it
	// had a seat.
	gen     map[string]uint64
	written map[string]uint64
	wrote   *sync.Cond // on mu: a record was written, or a wait timed out
}

func newSyncer(n *Node) *syncer {
	s := &syncer{n: n, dirty: make(map[string]struct{}), busy: make(map[string]uint64),
		gen: make(map[string]uint64), written: make(map[string]uint64)}
	s.cond = sync.NewCond(&s.mu)
	s.wrote = sync.NewCond(&s.mu)
	for range syncWorkers {
		n.bg.Add(1)
		go s.work()
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		<-n.ctx.Done()
		s.mu.Lock()
		s.closed = true
		s.cond.Broadcast()
		s.wrote.Broadcast()
		s.mu.Unlock()
	}()
	return s
}

// roomChanged is the server's Config.OnRoomChange.
func (n *Node) roomChanged(room string) {
	if n.sync != nil {
		n.sync.mark(room)
	}
}

// mark queues room's record to be written. It never blocks.
func (s *syncer) mark(room string) {
	s.mu.Lock()
	s.gen[room]++
	if _, ok := s.dirty[room]; !ok {
		s.dirty[room] = struct{}{}
		s.order = append(s.order, room)
		s.cond.Signal()
	}
	s.mu.Unlock()
}

// next returns a dirty room no other worker is writing; ok is false once
// the node stops.
func (s *syncer) next() (room string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return "", false
		}
		for i, r := range s.order {
			if _, busy := s.busy[r]; !busy {
				s.order = append(s.order[:i], s.order[i+1:]...)
				delete(s.dirty, r)
				s.busy[r] = s.gen[r] // the snapshot, taken after this, covers it
				return r, true
			}
		}
		s.cond.Wait()
	}
}

// quiesce waits until no record is being written. Call it after setting
// Node.moving, so that no new write starts.
// waitWritten waits, for at most seatWait, until room's record has been
// written with every change made to the room so far (or the record is
// no longer this node's to write).
func (s *syncer) waitWritten(room string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want, ok := s.gen[room]
	if !ok {
		return
	}
	expired := false
	t := time.AfterFunc(seatWait, func() {
		s.mu.Lock()
		expired = true
		s.wrote.Broadcast()
		s.mu.Unlock()
	})
	defer t.Stop()
	for !expired && !s.closed {
		if _, live := s.gen[room]; !live || s.written[room] >= want {
			return
		}
		s.wrote.Wait()
	}
}

// wroteRecord records that room's record covers the changes up to gen
// (ok), or that it is not this node's to write any more (!ok).
func (s *syncer) wroteRecord(room string, gen uint64, ok bool) {
	s.mu.Lock()
	if ok {
		s.written[room] = max(s.written[room], gen)
	} else {
		delete(s.gen, room)
		delete(s.written, room)
	}
	s.wrote.Broadcast()
	s.mu.Unlock()
}

func (s *syncer) quiesce() {
	s.mu.Lock()
	for len(s.busy) > 0 && !s.closed {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

func (s *syncer) done(room string) {
	s.mu.Lock()
	delete(s.busy, room)
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *syncer) work() {
	defer s.n.bg.Done()
	for {
		room, ok := s.next()
		if !ok {
			return
		}
		s.mu.Lock()
		gen := s.busy[room]
		s.mu.Unlock()
		s.wroteRecord(room, gen, s.write(room))
		s.done(room)
	}
}

// write brings room's record up to date, or releases it when the room has
// ended here. It reports whether the record is this node's and up to date.
func (s *syncer) write(room string) (ok bool) {
	n := s.n
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout)
	defer cancel()
	n.ownMu.Lock()
	rev, owned := n.owned[room]
	moving := n.moving
	n.ownMu.Unlock()
	if !owned || moving {
		return false // not ours, or handed over by Drain
	}
	st, ok := n.srv.Snapshot(room)
	if !ok {
		// The room ended: stop hosting it first, so that no join creates
		// it meanwhile (HostsRoom says no), then look again.
		n.ownMu.Lock()
		delete(n.owned, room)
		n.ownMu.Unlock()
		if n.srv.HasRoom(room) {
			n.own(room, rev) // a join came first: keep it
			s.mark(room)
			return true
		}
		if err := n.dir.release(ctx, room, rev); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNoRoom) {
			n.log.Warn("directory: room not released", "room", room, "err", err)
		}
		return false
	}
	newRev, err := n.dir.update(ctx, room, recordOf(n.id, st), rev)
	if err != nil {
		if errors.Is(err, ErrConflict) {
			n.giveUp(room)
		} else {
			n.log.Warn("directory: room record not written", "room", room, "err", err)
			n.checkLater(room) // try again
		}
		return false
	}
	n.ownMu.Lock()
	if r, ok := n.owned[room]; ok && r == rev {
		n.owned[room] = newRev
	}
	n.ownMu.Unlock()
	return true
}

// giveUp drops this node's copy of a room that another node has taken
// over (this node was counted dead while it was cut off or starved): its
// members here are closed with 1012 and resume at the room's host.
func (n *Node) giveUp(room string) {
	n.ownMu.Lock()
	delete(n.owned, room)
	n.ownMu.Unlock()
	n.sync.wroteRecord(room, 0, false)
	if n.srv.Evict(room) {
		n.met.conflicts.Inc()
		n.log.Error("another node took over a room this node hosted (was this node cut off from NATS, or starved, for a lease?): its members here resume there", "room", room)
	}
}

// fence checks, after this node may have been counted dead, that every
// room it hosts is still recorded as its own, and gives up the others.
func (n *Node) fence() {
	if n.draining.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout)
	defer cancel()
	mine, err := n.dir.hostedBy(ctx, n.id)
	if err != nil {
		n.log.Warn("directory: cannot check this node's rooms", "err", err)
		return
	}
	still := make(map[string]bool, len(mine))
	for _, e := range mine {
		still[e.Room] = true
	}
	n.ownMu.Lock()
	var lost []string
	for room := range n.owned {
		if !still[room] {
			lost = append(lost, room)
		}
	}
	n.ownMu.Unlock()
	for _, room := range lost {
		n.giveUp(room)
	}
}
