package peer

import (
	"maps"
	"slices"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// recoverCalls runs on the run loop after a resume with a gap: signals to
// and from this peer may have been lost (the room was hosted anew after
// a server node crashed), so a negotiation may be stuck. Connected calls
// are left alone. For each other call, the member that made the first
// offer offers again: only that side may, or both could offer at once
// (glare), which cannot be rolled back (see rollback) before the first
// exchange is done. The other side answers any
// offer it gets, even one it answered already (answer). The codelab
// dialect is left as it is: its own "got user media" exchange sends
// offers again.
func (p *Peer) recoverCalls() {
	if p.cl != nil {
		p.logger().Debug("signals may have been lost; the codelab dialect does not recover calls")
		return
	}
	p.mu.Lock()
	remotes := maps.Clone(p.remotes)
	p.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(remotes)) {
		r := remotes[id]
		switch {
		case p.connected(id):
		case r.role != RoleOffer:
			p.logger().Debug("call not connected after a gap; waiting for the member's offer", "remote", id)
		default:
			p.offerAgain(r)
		}
	}
}

// offerAgain sends r's offer again after a gap. With an offer pending
// (have-local-offer) it sends that offer again: pion cannot set a new
// offer over it (nor roll it back). The member may have answered it
// already, and its ICE may have failed meanwhile, checking candidates of
// a peer that had no answer: so once the answer is applied, a new offer
// with an ICE restart follows (applyAnswer), which recovers either way.
// Without an offer pending (stable: the answer came, but the candidates
// may not have), it makes a new offer with an ICE restart at once. New
// local candidates follow as usual; the candidates in the pending offer's
// SDP (pion puts those gathered in it) stand in for lost ones.
func (p *Peer) offerAgain(r *remote) {
	log := p.logger().With("remote", r.id)
	switch st := r.pc.SignalingState(); st {
	case webrtc.SignalingStateHaveLocalOffer:
		ld := r.pc.LocalDescription()
		if ld == nil {
			return
		}
		log.Debug("signals may have been lost; sending the pending offer again")
		r.restartOnAnswer = true
		p.out.push(&signal.Message{Type: signal.TypeOffer, To: r.id, Ref: r.id, SDP: ld.SDP})
	case webrtc.SignalingStateStable:
		log.Debug("signals may have been lost; offering again with an ICE restart")
		// The restart gathers anew at once, with new credentials.
		p.holdCandidates(r)
		offer, err := r.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
		if err != nil {
			p.fail(r, r.id, negotiationError("create offer with ICE restart", r.id, err))
			return
		}
		if err := r.pc.SetLocalDescription(offer); err != nil {
			p.fail(r, r.id, negotiationError("set local offer with ICE restart", r.id, err))
			return
		}
		r.offerRestart = true // an answer with the old credentials is stale (applyAnswer)
		p.sendSDP(r, signal.TypeOffer, offer.SDP)
	default:
		log.Debug("signals may have been lost; nothing to send again", "signaling", st)
	}
}
