package peer

import (
	"context"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// rejoinAfterShutdown runs on the run loop when the server closed the
// signaling connection with 1001 "going away": it is shutting down (and
// said peer-left "shutdown" for every member first), most likely to be
// restarted. The calls do not need it and go on. The peer reconnects with
// backoff until the server is back (or Close), then joins the room again
// under the same id (join's id field), so that the members find each
// other under the ids they had: the PeerConnections that are still
// connected are kept, without renegotiation (see rejoined). It reports
// whether the peer is in the room again.
func (p *Peer) rejoinAfterShutdown(lost error) bool {
	p.logger().Debug("the signaling server is shutting down; calls continue, reconnecting")
	p.emit(Event{Type: EventServerShutdown, Err: lost})
	// The old server's resume token and the signals queued for it mean
	// nothing to the next server.
	p.resume = ""
	p.out.reset()
	var b backoff
	for {
		wait := b.timer()
		select {
		case <-p.ctx.Done():
			wait.Stop()
			return false
		case <-wait.C:
		}
		if done, ok := p.rejoinAttempt(); done {
			return ok
		}
	}
}

// rejoinAttempt makes one attempt to join the room again under this
// peer's id after a server shutdown. done reports that reconnecting is
// over; ok then says whether the peer is in the room again.
func (p *Peer) rejoinAttempt() (done, ok bool) {
	ctx, cancel := context.WithTimeout(p.ctx, attemptTimeout)
	defer cancel()
	c, err := dial(ctx, p.cfg.URL, p.cfg.Dial)
	if err != nil {
		p.logger().Debug("rejoin: dial failed", "err", err)
		return p.ctx.Err() != nil, false
	}
	opts := p.cfg.freshJoin()
	opts.ID = p.ID()
	m, err := joinRoom(ctx, c, p.room, opts)
	if err != nil {
		return p.attemptFailed(c, err)
	}
	p.rejoined(c, m)
	return true, true
}

// rejoined takes the seat of created/joined m, under this peer's old id,
// after a server shutdown. A member of m.Peers that this peer still has a
// connected PeerConnection with is not offered to: the call goes on as it
// is (the member, joining again itself, keeps it too: see
// handlePeerJoined). For the other members of m.Peers, a PeerConnection
// that is no longer connected is closed and the peer offers anew, as a
// newcomer does. Connections with members that have not come back yet
// are kept: they may come back (peer-joined), and their PeerConnections
// fail by themselves otherwise.
func (p *Peer) rejoined(c *link, m *signal.Message) {
	log := p.takeSeat(c, m)
	clear(p.early)
	p.out.reset()
	var kept []string
	for _, id := range m.Peers {
		if p.connected(id) {
			kept = append(kept, id)
		}
	}
	log.Debug("back in the room after a server restart", "peers", m.Peers, "kept", kept)
	p.emit(Event{Type: EventRejoined, Room: m.Room, ID: m.ID, Peers: m.Peers, Created: m.Type == signal.TypeCreated, Kept: kept})
	p.out.attach(c)
	for _, id := range m.Peers {
		if p.connected(id) {
			continue
		}
		p.drop(id)
		p.offer(id)
	}
}

// connected reports whether this peer has a connected PeerConnection
// with member id.
func (p *Peer) connected(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.remotes[id]
	return r != nil && r.state == webrtc.PeerConnectionStateConnected
}

// drop closes and forgets the PeerConnection with member id, if any.
func (p *Peer) drop(id string) {
	p.mu.Lock()
	r := p.remotes[id]
	delete(p.remotes, id)
	p.broadcastLocked()
	p.mu.Unlock()
	if r != nil {
		p.logger().Debug("closing a connection that is no longer connected", "remote", id)
		r.close()
	}
}

// handlePeerJoined handles peer-joined for member id. A member this peer
// still has a connected PeerConnection with is one that joins again after
// a server restart: the connection is kept (the member does not offer to
// it either). Any other PeerConnection with id is stale: it is closed,
// and the member's offer makes a new one.
func (p *Peer) handlePeerJoined(id string) {
	if p.cl != nil {
		p.emit(Event{Type: EventPeerJoined, Remote: id})
		p.codelabPeerJoined(id)
		return
	}
	if p.connected(id) {
		p.logger().Debug("member back after a server restart; keeping the connection", "remote", id)
		p.emit(Event{Type: EventPeerJoined, Remote: id, Kept: []string{id}})
		return
	}
	p.drop(id)
	p.emit(Event{Type: EventPeerJoined, Remote: id})
}
