package peer

import (
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// run is the run loop: it offers to the members already in the room (in
// the codelab dialect, tells them it is ready), then handles the server's
// messages one at a time until Close, reconnecting when the signaling
// connection drops (reconnect). It alone creates and removes remotes
// (Close clears them after it has ended).
func (p *Peer) run() {
	if p.cl != nil {
		defer p.cl.reset()
	}
	p.greet(p.initial)
	for {
		c := p.currentClient()
		m, err := p.recv(c)
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			if !p.reconnect(c, err) {
				return
			}
			continue
		}
		if p.cfg.hooks != nil && p.cfg.hooks.received != nil {
			p.cfg.hooks.received(m)
		}
		p.handle(m)
	}
}

func (p *Peer) handle(m *signal.Message) {
	switch m.Type {
	case signal.TypePeerJoined:
		p.handlePeerJoined(m.ID)
	case signal.TypePeerLeft:
		if p.cl != nil && m.Reason != signal.ReasonShutdown {
			p.codelabPeerLeft(m.ID)
		}
		p.peerLeft(m.ID, m.Reason)
	case signal.TypeOffer:
		p.answer(m.From, m.SDP)
	case signal.TypeAnswer:
		p.applyAnswer(m.From, m.SDP)
	case signal.TypeCandidate:
		p.remoteCandidate(m)
	case signal.TypeMessage:
		if p.cl != nil {
			p.handleCodelab(m)
			return
		}
		// Relayed application messages are not used by the peer.
		p.logger().Debug("ignoring relayed message", "from", m.From)
	case signal.TypeLog:
		p.emit(Event{Type: EventServerLog, Text: m.Message})
	case signal.TypeError:
		if m.Code == signal.CodeUnknownPeer && m.Ref != "" && !p.present(m.Ref) {
			// A signal for a member that left before the server relayed it
			// (signals carry the member's id as ref), or that has not come
			// back after a server restart while its connection failed (an
			// ICE restart): nothing to report.
			p.logger().Debug("signal for a member that left", "remote", m.Ref, "err", m.Error())
			return
		}
		p.emit(Event{Type: EventError, Err: fmt.Errorf("peer: server error: %w", m.Error())})
	default:
		p.logger().Debug("ignoring message", "type", m.Type)
	}
}

// peerLeft closes the connection with a member that left the room. With
// reason shutdown the member did not leave, the server is going away:
// the connection is kept, since it does not need the server.
func (p *Peer) peerLeft(id, reason string) {
	delete(p.early, id)
	if reason == signal.ReasonShutdown {
		p.emit(Event{Type: EventPeerLeft, Remote: id, Reason: reason})
		return
	}
	p.mu.Lock()
	r := p.remotes[id]
	delete(p.remotes, id)
	p.broadcastLocked()
	p.mu.Unlock()
	if r != nil {
		r.close()
	}
	p.emit(Event{Type: EventPeerLeft, Remote: id, Reason: reason})
}

// present reports whether this peer has a PeerConnection with member id
// that has not failed.
func (p *Peer) present(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.remotes[id]
	return r != nil && r.state != webrtc.PeerConnectionStateFailed
}

func (p *Peer) remote(id string) *remote {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remotes[id]
}

// fail reports a failed negotiation with id and drops its connection.
func (p *Peer) fail(r *remote, id string, err error) {
	p.logger().Warn("negotiation failed", "remote", id, "err", err)
	p.emit(Event{Type: EventError, Remote: id, Err: err})
	if r == nil {
		return
	}
	p.mu.Lock()
	if p.remotes[id] == r {
		delete(p.remotes, id)
	}
	p.broadcastLocked()
	p.mu.Unlock()
	r.close()
}

func negotiationError(what, id string, err error) error {
	if errors.Is(err, ErrNegotiation) {
		return err
	}
	return fmt.Errorf("%w: %s with %s: %w", ErrNegotiation, what, id, err)
}
