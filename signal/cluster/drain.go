package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Where rooms live, and how they move:
//
//   - hostFor finds a room's host in the directory. A room nobody hosts is
//     claimed by the node whose gateway first needs it (so its creator's
//     frames take no NATS hop). A room whose host is dead is taken over.
//   - Drain hands every room this node hosts to live nodes, seats, tokens
//     and kept frames included, and its clients resume there: nothing is
//     lost or repeated, and the members see no peer-left.
//   - When a node dies without draining (nodeDown, after its lease), the
//     survivors take its rooms over from the directory's records: same
//     members and ids, every seat held, and the resume says gap, because
//     the frames the dead node held are gone.

// maxParallel bounds the rooms moved or taken over at once.
const maxParallel = 32

// hostFor returns the node that hosts room, claiming it for this node
// when nobody does and taking it over when its host is dead. An empty or
// invalid room is this node's (its server answers the join). A claim
// (a directory write) waits for a token of claims, the client's bucket.
func (n *Node) hostFor(ctx context.Context, room string, claims *rate.Limiter) (string, error) {
	if room == "" || !signal.ValidRoom(room) {
		return n.id, nil
	}
	rec, rev, err := n.dir.get(ctx, room)
	switch {
	case errors.Is(err, ErrNoRoom):
		if n.draining.Load() {
			return "", errDraining
		}
		if err := claims.Wait(ctx); err != nil {
			return "", fmt.Errorf("cluster: too many new rooms from this client: %w", err)
		}
		rev, err := n.dir.claim(ctx, room, roomRecord{Host: n.id, Created: time.Now()})
		var ce *ClaimedError
		if errors.As(err, &ce) {
			return ce.Host, nil
		}
		if err != nil {
			return "", err
		}
		n.own(room, rev)
		n.met.claimed.Inc()
		n.checkLater(room)
		return n.id, nil
	case err != nil:
		return "", err
	case rec.Host == n.id || n.nodes.isAlive(rec.Host):
		return rec.Host, nil
	}
	if err := n.takeover(ctx, room, rec, rev); err != nil {
		return "", err
	}
	return n.id, nil
}

// checkLater makes the syncer look at a room claimed for a join after
// claimCheck: if the join did not create it, the claim is released. A
// timer, not a goroutine, waits: a client may make many claims.
func (n *Node) checkLater(room string) {
	time.AfterFunc(claimCheck, func() {
		if n.ctx.Err() == nil {
			n.sync.mark(room)
		}
	})
}

// takeover makes this node the host of room, whose host (in rec, at
// revision rev) is dead: the record names this node, and the room is
// rebuilt from it with every seat held and marked gap.
func (n *Node) takeover(ctx context.Context, room string, rec roomRecord, rev uint64) error {
	if n.draining.Load() {
		return errDraining
	}
	if n.srv.HasRoom(room) && !n.hosts(room) {
		// A stale copy from when this node hosted the room: the record
		// says otherwise, so its members resume where the room is rebuilt.
		n.giveUp(room)
	}
	dead := rec.Host
	rec.Host = n.id
	newRev, err := n.dir.update(ctx, room, rec, rev)
	if err != nil {
		return err // another node took it first: look it up again
	}
	st := signal.RoomState{Name: room, Capacity: rec.Capacity, Created: rec.Created}
	for _, m := range rec.Members {
		// The dead node's frames are gone: the seat takes any token the
		// cluster minted for it, and its resume says gap.
		st.Seats = append(st.Seats, signal.SeatState{ID: m.ID, Joined: m.Joined, AuthExpiry: m.AuthExpiry, Gap: true})
	}
	if len(st.Seats) == 0 || n.srv.ImportRoom(st) != nil {
		// Nothing to rebuild (a claim whose join never came): the room is
		// free again.
		_ = n.dir.release(ctx, room, newRev)
		return nil
	}
	n.own(room, newRev)
	n.met.rehosted.Inc()
	n.log.Info("room re-hosted from a dead node", "room", room, "dead", dead, "members", len(st.Seats))
	return nil
}

// nodeDown re-hosts the rooms of a node that died without draining, and
// ends what it tunnelled here and what this gateway tunnelled there.
func (n *Node) nodeDown(id string) {
	n.log.Warn("node down: taking its rooms over", "down", id)
	// Clients tunnelled to it resume (their host's seats are re-hosted).
	n.gwMu.Lock()
	var lost []*gwConn
	for g := range n.gwAll {
		lost = append(lost, g)
	}
	n.gwMu.Unlock()
	for _, g := range lost {
		g.linkMu.Lock()
		dead := g.host == id
		if dead {
			g.host = ""
		}
		g.linkMu.Unlock()
		if dead {
			g.closeClient(signal.CloseServiceRestart, "service restart")
		}
	}
	// Tunnels from its gateway end as drops: their members' seats are
	// held for their resumes through other nodes, rather than kept by
	// connections nobody answers until the pong timeout.
	n.hostMu.Lock()
	var orphans []*hostEnd
	for _, e := range n.ends {
		if e.gw == id {
			orphans = append(orphans, e)
		}
	}
	n.hostMu.Unlock()
	for _, e := range orphans {
		e.push(gwOut{kind: kindAbort})
	}
	if n.draining.Load() {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		rooms, err := n.dir.hostedBy(ctx, id)
		if err != nil {
			n.log.Error("node down: cannot list its rooms", "down", id, "err", err)
			return
		}
		n.parallel(len(rooms), func(i int) {
			e := rooms[i]
			if err := n.takeover(ctx, e.Room, e.Record, e.Rev); err != nil && !errors.Is(err, ErrConflict) {
				n.log.Warn("node down: room not re-hosted here", "room", e.Room, "err", err)
			}
		})
	}()
}

// parallel runs f(0) … f(count-1), at most maxParallel at once.
func (n *Node) parallel(count int, f func(i int)) {
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i := range count {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// moveRequest is a room handed to another node by a draining one: the
// room, and the revision of its record that the receiver replaces.
type moveRequest struct {
	Room signal.RoomState `json:"room"`
	Rev  uint64           `json:"rev"`
	From string           `json:"from"` // the draining node
}

// Drain hands this node's rooms to the other nodes and closes its
// clients with 1012 (service restart), so that they resume, through the
// load balancer, on other nodes: the rooms go on without a peer-left, and
// no relayed frame is lost or repeated. Then it leaves the cluster and
// shuts the server down. A room that no node takes (this is the last one)
// ends as on a single server's shutdown. ctx bounds the whole.
func (n *Node) Drain(ctx context.Context) error {
	start := time.Now()
	n.draining.Store(true)
	n.nodes.setDraining(true)
	n.ownMu.Lock()
	n.moving = true // the rooms leave the server; their records are not released
	n.ownMu.Unlock()
	n.sync.quiesce() // the revisions in owned are final
	n.met.drains.Inc()

	// Clients tunnelled to other nodes resume at once; those tunnelled
	// here get 1012 through their tunnels when the server drains.
	n.closeClients(signal.CloseServiceRestart, "service restart", true)
	rooms := n.srv.Drain(ctx)

	var moved, lost int
	var mu sync.Mutex
	n.parallel(len(rooms), func(i int) {
		st := rooms[i]
		n.ownMu.Lock()
		rev := n.owned[st.Name]
		n.ownMu.Unlock()
		err := n.moveRoom(ctx, st, rev)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			lost++
			n.log.Error("drain: room not handed over", "room", st.Name, "err", err)
			return
		}
		moved++
		n.ownMu.Lock()
		delete(n.owned, st.Name) // the room is the other node's now
		n.ownMu.Unlock()
	})
	n.met.moved.Add(float64(moved))
	n.log.Info("drained", "rooms", len(rooms), "moved", moved, "lost", lost, "took", time.Since(start).Round(time.Millisecond))

	n.stop()
	return n.srv.Shutdown(ctx)
}

// moveRoom hands st to a live node, trying others if one fails.
func (n *Node) moveRoom(ctx context.Context, st signal.RoomState, rev uint64) error {
	b, err := json.Marshal(moveRequest{Room: st, Rev: rev, From: n.id})
	if err != nil {
		return err
	}
	if len(b) > maxMoveBytes {
		return fmt.Errorf("cluster: room state of %d bytes is over the %d a move carries", len(b), maxMoveBytes)
	}
	tried := []string{n.id}
	for range 3 {
		target, ok := n.nodes.pick(tried...)
		if !ok {
			return errors.New("cluster: no other live node to take the room")
		}
		tried = append(tried, target)
		err := n.sendMove(ctx, target, b)
		if err == nil {
			return nil
		}
		n.log.Warn("drain: a node did not take a room", "room", st.Name, "node", target, "err", err)
		if strings.Contains(err.Error(), ErrConflict.Error()) {
			return err // the record changed: someone else has the room
		}
	}
	return errors.New("cluster: no node took the room")
}

// Moves larger than a NATS message (max_payload, 1 MB by default) go in
// parts: each a request whose header movePart says "<move id> <part>
// <parts>", answered "more" until the last, which is answered as a whole
// move is. A receiver keeps at most maxMovesInParts unfinished moves, and
// drops one whose next part has not come within requestTimeout.
const (
	movePart        = "Rendezvous-Move-Part"
	maxMoveBytes    = 64 << 20
	maxMovesInParts = 64
)

// sendMove sends a move request (b) to target, in parts if it must, and
// returns the target's refusal as an error.
func (n *Node) sendMove(ctx context.Context, target string, b []byte) error {
	size := int(n.nc.MaxPayload()) - 4096 // room for the header
	parts := (len(b) + size - 1) / size
	var id [8]byte
	_, _ = rand.Read(id[:])
	for i := range parts {
		m := nats.NewMsg(n.subject(target, "move"))
		m.Data = b[i*size : min((i+1)*size, len(b))]
		if parts > 1 {
			m.Header.Set(movePart, fmt.Sprintf("%x %d %d", id, i, parts))
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		reply, err := n.nc.RequestMsgWithContext(rctx, m)
		cancel()
		switch {
		case err != nil:
			return err
		case i < parts-1 && string(reply.Data) != "more", i == parts-1 && string(reply.Data) != "ok":
			return errors.New(string(reply.Data))
		}
	}
	return nil
}

// partialMove is a move whose parts are arriving.
type partialMove struct {
	data  []byte
	next  int // the part expected next
	parts int
	last  time.Time
}

// collectPart adds a part of a move in parts; whole is the move once its
// last part is in. Only onMove's goroutine calls it.
func (n *Node) collectPart(header string, data []byte) (whole []byte, err error) {
	var id string
	var i, parts int
	if _, err := fmt.Sscanf(header, "%s %d %d", &id, &i, &parts); err != nil || parts < 2 || i < 0 || i >= parts {
		return nil, fmt.Errorf("cluster: bad %s header %q", movePart, header)
	}
	now := time.Now()
	for k, p := range n.moves {
		if now.Sub(p.last) > requestTimeout {
			delete(n.moves, k)
		}
	}
	p := n.moves[id]
	if p == nil {
		if i != 0 || len(n.moves) >= maxMovesInParts {
			return nil, errors.New("cluster: move part out of order, or too many moves at once")
		}
		p = &partialMove{parts: parts}
		n.moves[id] = p
	}
	if i != p.next || parts != p.parts || len(p.data)+len(data) > maxMoveBytes {
		delete(n.moves, id)
		return nil, errors.New("cluster: move part out of order or too large")
	}
	p.data = append(p.data, data...)
	p.next++
	p.last = now
	if p.next < p.parts {
		return nil, nil
	}
	delete(n.moves, id)
	return p.data, nil
}

// onMove takes over a room a draining node hands over: the room is
// installed with its seats held, then the directory names this node.
func (n *Node) onMove(m *nats.Msg) {
	data := m.Data
	if h := m.Header.Get(movePart); h != "" {
		whole, err := n.collectPart(h, data)
		switch {
		case err != nil:
			_ = m.Respond([]byte(err.Error()))
			return
		case whole == nil:
			_ = m.Respond([]byte("more"))
			return
		}
		data = whole
	}
	var req moveRequest
	err := json.Unmarshal(data, &req)
	if err == nil && n.draining.Load() {
		err = errDraining
	}
	if err == nil {
		err = n.acceptRoom(req)
	}
	reply := []byte("ok")
	if err != nil {
		reply = []byte(err.Error())
	}
	_ = m.Respond(reply)
}

// acceptRoom installs a moved room and records this node as its host.
func (n *Node) acceptRoom(req moveRequest) error {
	st := req.Room
	if err := n.srv.ImportRoom(st); err != nil {
		return err
	}
	rec := recordOf(n.id, st)
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout)
	defer cancel()
	rev, err := n.dir.update(ctx, st.Name, rec, req.Rev)
	if errors.Is(err, ErrConflict) {
		// The sender's revision was old (a record write of its crossed
		// the move): the room is still the sender's if the record says so.
		if cur, curRev, gerr := n.dir.get(ctx, st.Name); gerr == nil && cur.Host == req.From {
			rev, err = n.dir.update(ctx, st.Name, rec, curRev)
		}
	}
	if err != nil {
		// Not ours after all: give the room back to nobody.
		n.srv.Export(st.Name)
		return err
	}
	n.own(st.Name, rev)
	n.met.received.Inc()
	return nil
}

// recordOf is the directory record of a room hosted by host.
func recordOf(host string, st signal.RoomState) roomRecord {
	rec := roomRecord{Host: host, Capacity: st.Capacity, Created: st.Created}
	for _, s := range st.Seats {
		rec.Members = append(rec.Members, memberRecord{ID: s.ID, Joined: s.Joined, AuthExpiry: s.AuthExpiry})
	}
	return rec
}
