package peer

import (
	"encoding/json"
	"fmt"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// maxEarlyCandidates bounds the candidates buffered per member before its
// PeerConnection or remote description exists.
const maxEarlyCandidates = 256

// offer starts the negotiation with a member that was in the room when
// this peer joined: this peer is the newcomer, so it offers.
func (p *Peer) offer(id string) {
	if p.remote(id) != nil {
		p.fail(nil, id, fmt.Errorf("%w: already negotiating with %s", ErrUnexpectedSDP, id))
		return
	}
	r, err := p.newRemote(id, RoleOffer)
	if err != nil {
		p.fail(nil, id, err)
		return
	}
	if p.cfg.Prepare != nil {
		if err := p.cfg.Prepare(id, RoleOffer, r.pc); err != nil {
			p.fail(r, id, negotiationError("prepare offer", id, err))
			return
		}
	}
	offer, err := r.pc.CreateOffer(nil)
	if err != nil {
		p.fail(r, id, negotiationError("create offer", id, err))
		return
	}
	if err := r.pc.SetLocalDescription(offer); err != nil {
		p.fail(r, id, negotiationError("set local offer", id, err))
		return
	}
	p.sendSDP(r, signal.TypeOffer, offer.SDP)
}

// answer answers an offer from a newcomer.
func (p *Peer) answer(id, sdp string) {
	if old := p.remote(id); old != nil {
		// Roles are strict and pion cannot roll back: a second offer is
		// either glare or renegotiation, neither of which is supported.
		p.emit(Event{Type: EventError, Remote: id, Err: fmt.Errorf("%w: offer from %s, which this peer already negotiates with as %s", ErrUnexpectedSDP, id, old.role)})
		return
	}
	r, err := p.newRemote(id, RoleAnswer)
	if err != nil {
		p.fail(nil, id, err)
		return
	}
	if err := p.setRemote(r, webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		p.fail(r, id, err)
		return
	}
	if p.cfg.Prepare != nil {
		if err := p.cfg.Prepare(id, RoleAnswer, r.pc); err != nil {
			p.fail(r, id, negotiationError("prepare answer", id, err))
			return
		}
	}
	answer, err := r.pc.CreateAnswer(nil)
	if err != nil {
		p.fail(r, id, negotiationError("create answer", id, err))
		return
	}
	if err := r.pc.SetLocalDescription(answer); err != nil {
		p.fail(r, id, negotiationError("set local answer", id, err))
		return
	}
	p.sendSDP(r, signal.TypeAnswer, answer.SDP)
}

// applyAnswer applies the answer to this peer's offer.
func (p *Peer) applyAnswer(id, sdp string) {
	r := p.remote(id)
	if r == nil || r.role != RoleOffer || r.haveRemoteDesc {
		p.emit(Event{Type: EventError, Remote: id, Err: fmt.Errorf("%w: answer from %s, which this peer sent no pending offer to", ErrUnexpectedSDP, id)})
		return
	}
	if err := p.setRemote(r, webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		p.fail(r, id, err)
	}
}

// setRemote sets the remote description and applies the candidates that
// arrived before it (and before the PeerConnection existed).
func (p *Peer) setRemote(r *remote, sd webrtc.SessionDescription) error {
	if err := r.pc.SetRemoteDescription(sd); err != nil {
		return negotiationError("set remote "+sd.Type.String(), r.id, err)
	}
	r.haveRemoteDesc = true
	data := hasDataSection(sd.SDP)
	p.mu.Lock()
	r.dataSection = data
	p.mu.Unlock()
	buffered := append(p.early[r.id], r.pending...)
	delete(p.early, r.id)
	r.pending = nil
	if len(buffered) > 0 {
		p.logger().Debug("applying buffered candidates", "remote", r.id, "n", len(buffered))
	}
	for _, c := range buffered {
		if err := r.pc.AddICECandidate(c); err != nil {
			return negotiationError("add buffered candidate", r.id, err)
		}
	}
	return nil
}

// remoteCandidate applies a trickled candidate, or buffers it until the
// remote description is set.
func (p *Peer) remoteCandidate(m *signal.Message) {
	c, err := decodeCandidate(m.Candidate)
	if err != nil {
		p.emit(Event{Type: EventError, Remote: m.From, Err: fmt.Errorf("%w: candidate from %s: %w", ErrNegotiation, m.From, err)})
		return
	}
	p.addRemoteCandidate(m.From, c)
}

// addRemoteCandidate applies candidate c from member from, or buffers it
// until the remote description is set.
func (p *Peer) addRemoteCandidate(from string, c webrtc.ICECandidateInit) {
	r := p.remote(from)
	switch {
	case r == nil:
		if len(p.early[from]) < maxEarlyCandidates {
			p.early[from] = append(p.early[from], c)
		}
	case !r.haveRemoteDesc:
		if len(r.pending) < maxEarlyCandidates {
			r.pending = append(r.pending, c)
		}
	default:
		if err := r.pc.AddICECandidate(c); err != nil {
			p.emit(Event{Type: EventError, Remote: from, Err: negotiationError("add candidate", from, err)})
		}
	}
}

// decodeCandidate decodes a candidate message's candidate: an
// RTCIceCandidateInit object, or null (or an empty candidate string) for
// end of candidates, which is returned as a candidate with an empty
// Candidate.
func decodeCandidate(raw json.RawMessage) (webrtc.ICECandidateInit, error) {
	var c webrtc.ICECandidateInit
	if len(raw) == 0 || string(raw) == "null" {
		return c, nil
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("decode: %w", err)
	}
	return c, nil
}
