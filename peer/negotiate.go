package peer

import (
	"encoding/json"
	"fmt"

	"github.com/pion/sdp/v3"
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
		if p.cl == nil && (old.role == RoleAnswer || old.negotiated) {
			// A renegotiation, an ICE restart, the offerer offering again
			// (recoverCalls), or its offer twice: perfect negotiation.
			p.offerIn(old, sdp)
			return
		}
		// The first offer/answer exchange is the newcomer's (or, in the
		// codelab dialect, the first member's): an offer from the member
		// this peer offered to before its answer came breaks that rule.
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
	p.negotiated(r)
}

// negotiated records that the first offer/answer exchange with r is done:
// from now on either side may renegotiate, starting with the tracks of
// AddTrack (syncTracks).
func (p *Peer) negotiated(r *remote) {
	if r.negotiated {
		return
	}
	r.negotiated = true
	p.syncTracks(r)
}

// answerAgain answers a new offer from the member r already answered:
// one it sent again after frames were lost, maybe with an ICE restart, or
// the same offer twice, or a renegotiation. The call is not failed when
// that does not work: it may be connected, and the offerer may offer
// again. It reports whether the answer was sent.
func (p *Peer) answerAgain(r *remote, sdp string) bool {
	p.logger().Debug("answering an offer again", "remote", r.id, "signaling", r.pc.SignalingState())
	// An offer with an ICE restart restarts gathering as it is set.
	p.holdCandidates(r)
	err := p.setRemote(r, webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
	var answer webrtc.SessionDescription
	if err == nil {
		answer, err = r.pc.CreateAnswer(nil)
		if err != nil {
			err = negotiationError("create answer again", r.id, err)
		}
	}
	if err == nil {
		if err = r.pc.SetLocalDescription(answer); err != nil {
			err = negotiationError("set local answer again", r.id, err)
		}
	}
	if err != nil {
		p.emit(Event{Type: EventError, Remote: r.id, Err: err})
		p.releaseCandidates(r)
		return false
	}
	p.sendSDP(r, signal.TypeAnswer, answer.SDP)
	p.negotiated(r)
	return true
}

// applyAnswer applies the answer to this peer's offer. An answer that
// comes when no offer is pending, after one was answered, is one the
// member sent twice (after frames were lost), or one to an offer this
// peer rolled back (glare): it is ignored.
func (p *Peer) applyAnswer(id, sdp string) {
	r := p.remote(id)
	if r != nil && r.haveRemoteDesc && (r.role == RoleOffer || r.negotiated) && r.pc.SignalingState() == webrtc.SignalingStateStable {
		p.logger().Debug("ignoring an answer with no offer pending (a duplicate)", "remote", id)
		return
	}
	if r == nil || (r.role != RoleOffer && !r.negotiated) || r.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		p.emit(Event{Type: EventError, Remote: id, Err: fmt.Errorf("%w: answer from %s, which this peer sent no pending offer to", ErrUnexpectedSDP, id)})
		return
	}
	if r.offerRestart && staleAnswer(sdp, r.pc.CurrentRemoteDescription()) {
		// Our offer restarts ICE: its answer has new ICE credentials. One
		// with the current ones answers an earlier offer, sent twice after
		// a gap (offerAgain), and came late.
		p.logger().Debug("ignoring an answer to an earlier offer (not the ICE restart pending)", "remote", id)
		return
	}
	if err := p.setRemote(r, webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		if r.negotiated {
			// A renegotiation failed: the call may go on as it was.
			p.emit(Event{Type: EventError, Remote: id, Err: err})
			return
		}
		p.fail(r, id, err)
		return
	}
	r.ignoreOffer, r.offerRestart = false, false
	if p.cl == nil {
		p.negotiated(r)
	}
	if r.restartOnAnswer {
		r.restartOnAnswer = false
		if !p.connected(id) {
			p.offerAgain(r) // stable now: an ICE restart (see offerAgain)
		}
	}
	p.negotiate(r) // a change made meanwhile
}

// staleAnswer reports whether answer has the ICE username fragment of
// the current remote description cur: it cannot answer an offer that
// restarts ICE.
func staleAnswer(answer string, cur *webrtc.SessionDescription) bool {
	if cur == nil {
		return false
	}
	u := iceUfrag(answer)
	return u != "" && u == iceUfrag(cur.SDP)
}

// iceUfrag returns the first ICE username fragment of a description
// (session level, or else the first m-line's), or "".
func iceUfrag(desc string) string {
	var sd sdp.SessionDescription
	if sd.UnmarshalString(desc) != nil {
		return ""
	}
	if v, ok := sd.Attribute("ice-ufrag"); ok {
		return v
	}
	for _, m := range sd.MediaDescriptions {
		if v, ok := m.Attribute("ice-ufrag"); ok {
			return v
		}
	}
	return ""
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
		err := r.pc.AddICECandidate(c)
		switch {
		case err == nil:
		case r.ignoreOffer:
			// A candidate of the offer this peer ignored (glare).
			p.logger().Debug("ignoring a candidate of an ignored offer", "remote", from, "err", err)
		default:
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

// holdCandidates makes the local candidates gathered from now on wait
// until sendSDP has queued the description about to be set: after an ICE
// restart they carry the new credentials, which the member must have
// first, or it drops them.
func (p *Peer) holdCandidates(r *remote) {
	p.mu.Lock()
	r.sdpSent = false
	p.mu.Unlock()
}

// releaseCandidates queues the local candidates held by holdCandidates,
// when no description follows them after all.
func (p *Peer) releaseCandidates(r *remote) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range r.localPending {
		p.out.push(c)
	}
	r.sdpSent, r.localPending = true, nil
}
