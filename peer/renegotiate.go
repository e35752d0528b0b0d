package peer

import (
	"context"
	"fmt"
	fnvhash "hash/fnv"
	"maps"
	"slices"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// maxExtraTracks bounds the tracks added with AddTrack.
const maxExtraTracks = 16

// maxICERestarts bounds the ICE restarts in a row with one member that
// do not get its connection back to connected.
const maxICERestarts = 5

// AddTrack sends one more local track to every member, present or
// future (a second camera, a screen share), besides Config.Tracks: each
// connection gets it once its first negotiation is done, and renegotiates
// (perfect negotiation, see the package documentation). The other side
// gets a track event. One track may feed every connection (pion's static
// tracks fan out). It returns an error wrapping ErrConfig for a nil
// track, a track already sent, more than 16 added tracks, or a peer
// speaking the codelab dialect (which does not renegotiate), and
// ErrClosed after Close. The connections are changed on the peer's
// signaling goroutine, soon after AddTrack returns; failures are
// reported as EventError.
func (p *Peer) AddTrack(track webrtc.TrackLocal) error {
	if track == nil {
		return fmt.Errorf("%w: AddTrack: nil track", ErrConfig)
	}
	if p.cl != nil {
		return fmt.Errorf("%w: AddTrack: the codelab dialect does not renegotiate", ErrConfig)
	}
	if slices.Contains(p.cfg.Tracks, track) {
		return fmt.Errorf("%w: AddTrack: track %q is in Config.Tracks", ErrConfig, track.ID())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closing:
		return ErrClosed
	case slices.Contains(p.extra, track):
		return fmt.Errorf("%w: AddTrack: track %q already added", ErrConfig, track.ID())
	case len(p.extra) >= maxExtraTracks:
		return fmt.Errorf("%w: AddTrack: more than %d added tracks", ErrConfig, maxExtraTracks)
	}
	p.extra = append(p.extra, track)
	p.inbox.post(func(b *inbox) { b.syncAll = true })
	return nil
}

// RemoveTrack stops sending a track of AddTrack to every member, and
// renegotiates: the other side's track ends (its reads fail). The track
// itself is left as it is. It returns an error wrapping ErrConfig for a
// track that AddTrack did not add (or that was removed already), and
// ErrClosed after Close.
func (p *Peer) RemoveTrack(track webrtc.TrackLocal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return ErrClosed
	}
	i := slices.Index(p.extra, track)
	if i < 0 {
		return fmt.Errorf("%w: RemoveTrack: track not added with AddTrack", ErrConfig)
	}
	p.extra = slices.Delete(p.extra, i, i+1)
	p.inbox.post(func(b *inbox) { b.syncAll = true })
	return nil
}

// inbox hands work from other goroutines (Peer methods, pion's
// callbacks) to the run loop, interrupting its wait for the server's next
// message. Its contents are bounded: a flag, and a set of member ids.
type inbox struct {
	mu        sync.Mutex
	syncAll   bool                // guarded by mu: the added tracks changed
	failed    map[string]struct{} // guarded by mu: members whose connection failed
	interrupt context.CancelFunc  // guarded by mu: ends the run loop's Recv; nil when none
}

// post records work with f and wakes the run loop.
func (b *inbox) post(f func(*inbox)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
	if b.interrupt != nil {
		b.interrupt()
		b.interrupt = nil
	}
}

// arm sets the function that interrupts the run loop's Recv (nil: none).
// It reports false, setting nothing, when work is waiting.
func (b *inbox) arm(interrupt context.CancelFunc) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if interrupt != nil && (b.syncAll || len(b.failed) > 0) {
		return false
	}
	b.interrupt = interrupt
	return true
}

// take returns the work waiting and empties the inbox.
func (b *inbox) take() (syncAll bool, failed []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	syncAll, failed = b.syncAll, slices.Sorted(maps.Keys(b.failed))
	b.syncAll, b.failed = false, nil
	return syncAll, failed
}

// connectionFailed hands a failed connection with member id to the run
// loop (restartFailed); it runs on pion's goroutine.
func (p *Peer) connectionFailed(id string) {
	p.inbox.post(func(b *inbox) {
		if b.failed == nil {
			b.failed = make(map[string]struct{})
		}
		b.failed[id] = struct{}{}
	})
}

// recvV1 is recv in protocol v1: it does the work of the inbox before
// waiting for the server's next message, and while waiting.
func (p *Peer) recvV1(c *link) (*signal.Message, error) {
	for {
		p.runInbox()
		ctx, cancel := context.WithCancel(p.ctx)
		if !p.inbox.arm(cancel) {
			cancel()
			continue
		}
		m, err := c.Recv(ctx)
		p.inbox.arm(nil)
		interrupted := ctx.Err() != nil // before cancel, which sets it
		cancel()
		if err != nil && interrupted && p.ctx.Err() == nil {
			continue // interrupted by work for the run loop
		}
		return m, err
	}
}

// runInbox does the work the inbox holds, on the run loop.
func (p *Peer) runInbox() {
	syncAll, failed := p.inbox.take()
	if syncAll {
		p.mu.Lock()
		remotes := maps.Clone(p.remotes)
		p.mu.Unlock()
		for _, id := range slices.Sorted(maps.Keys(remotes)) {
			p.syncTracks(remotes[id])
		}
	}
	for _, id := range failed {
		p.restartFailed(id)
	}
}

// polite reports whether this peer is the polite side of perfect
// negotiation with member id: the side whose id is greater (as
// signal.js's Peer.polite). On glare the polite side rolls its offer back
// and answers the other's; the impolite side ignores the other's offer.
func (p *Peer) polite(id string) bool { return p.ID() > id }

// syncTracks makes r send exactly the tracks of AddTrack, once its first
// negotiation is done, and renegotiates when that changed anything.
func (p *Peer) syncTracks(r *remote) {
	if !r.negotiated || p.cl != nil {
		return
	}
	p.mu.Lock()
	want := slices.Clone(p.extra)
	p.mu.Unlock()
	changed := false
	for _, t := range slices.Collect(maps.Keys(r.extra)) {
		if slices.Contains(want, t) {
			continue
		}
		s := r.extra[t]
		delete(r.extra, t)
		changed = true
		if err := r.pc.RemoveTrack(s); err != nil {
			p.emit(Event{Type: EventError, Remote: r.id, Err: negotiationError(fmt.Sprintf("remove track %q", t.ID()), r.id, err)})
		}
	}
	for _, t := range want {
		if r.extra[t] != nil {
			continue
		}
		s, err := r.pc.AddTrack(t)
		if err != nil {
			p.emit(Event{Type: EventError, Remote: r.id, Err: negotiationError(fmt.Sprintf("add track %q", t.ID()), r.id, err)})
			continue
		}
		r.extra[t] = s
		changed = true
		p.readRTCP(s)
	}
	if changed {
		p.logger().Debug("local tracks changed; renegotiating", "remote", r.id, "tracks", len(want))
		r.needOffer = true
		p.negotiate(r)
	}
}

// negotiate sends r a new offer for a change after the first
// negotiation (tracks, an ICE restart), when one is needed and the
// connection is stable; otherwise it stays needed, and is made when the
// connection is stable again (after our offer is answered, or the
// other's is).
func (p *Peer) negotiate(r *remote) {
	if !r.needOffer || !r.negotiated || p.cl != nil {
		return
	}
	if st := r.pc.SignalingState(); st != webrtc.SignalingStateStable {
		p.logger().Debug("renegotiation waits for a stable connection", "remote", r.id, "signaling", st)
		return
	}
	restart := r.restartICE
	r.needOffer, r.restartICE = false, false
	p.assignMids(r)
	if restart {
		p.holdCandidates(r) // the restart gathers anew, with new credentials
	}
	offer, err := r.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		err = negotiationError("create renegotiation offer", r.id, err)
	} else if err = r.pc.SetLocalDescription(offer); err != nil {
		err = negotiationError("set local renegotiation offer", r.id, err)
	}
	if err != nil {
		// The call may still work as it is: it is not failed.
		p.emit(Event{Type: EventError, Remote: r.id, Err: err})
		p.releaseCandidates(r)
		return
	}
	r.offerRestart = restart
	p.logger().Debug("renegotiating", "remote", r.id, "ice-restart", restart)
	p.sendSDP(r, signal.TypeOffer, offer.SDP)
}

// assignMids gives the transceivers that have no mid yet one of this
// peer's own ("g", a hash of its id, a counter), before an offer: were
// the offer rolled back (rollback), pion would keep the mids, and the
// numbered mids pion picks are the ones the other side picks for its own
// new tracks. Mids stay within 16 characters (the RTP header extension's
// limit).
func (p *Peer) assignMids(r *remote) {
	h := fnvhash.New32a()
	_, _ = h.Write([]byte(p.ID()))
	for _, t := range r.pc.GetTransceivers() {
		if t.Mid() != "" {
			continue
		}
		p.mids++
		mid := fmt.Sprintf("g%06x%d", h.Sum32()&0xffffff, p.mids%1_000_000)
		if err := t.SetMid(mid); err != nil {
			p.logger().Debug("cannot set a mid", "remote", r.id, "mid", mid, "err", err)
		}
	}
}

// offerIn handles an offer from member r.id after the first exchange
// with it, or any offer to a peer that answered it first (a renegotiation,
// an ICE restart, an offer sent again after a gap): perfect negotiation.
// Without an offer of ours pending it is answered. On glare (ours is
// pending too), the impolite side ignores it and waits for the answer to
// its own; the polite side rolls its offer back (emulated, see rollback),
// answers, and offers its change again afterwards.
func (p *Peer) offerIn(r *remote, sdp string) {
	if r.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		if !p.polite(r.id) {
			p.logger().Debug("glare; impolite, ignoring the member's offer", "remote", r.id)
			r.ignoreOffer = true
			return
		}
		p.logger().Debug("glare; polite, rolling back", "remote", r.id)
		if err := rollback(r.pc, sdp); err != nil {
			p.emit(Event{Type: EventError, Remote: r.id, Err: fmt.Errorf("%w: glare with %s: %w", ErrUnexpectedSDP, r.id, err)})
			return
		}
		// Our change is offered again once the member's offer is answered.
		r.needOffer = true
		if r.offerRestart || r.restartOnAnswer {
			r.restartICE = true
		}
		r.restartOnAnswer = false
	}
	r.ignoreOffer = false
	if p.answerAgain(r, sdp) {
		p.negotiate(r)
	}
}

// restartFailed restarts ICE with member id after its connection failed
// (a new offer with new ICE credentials), when this peer is the impolite
// side: the polite side waits for that offer, so that the two sides do
// not restart at once. At most maxICERestarts in a row are made without
// the connection coming back.
func (p *Peer) restartFailed(id string) {
	r := p.remote(id)
	if r == nil || !r.negotiated {
		return
	}
	polite := p.polite(id)
	p.mu.Lock()
	failed := r.state == webrtc.PeerConnectionStateFailed
	restarts := r.restarts
	if failed && restarts < maxICERestarts && !polite {
		r.restarts++
	}
	p.mu.Unlock()
	switch {
	case !failed:
		return
	case polite:
		p.logger().Debug("connection failed; polite, waiting for the member's ICE restart", "remote", id)
		return
	case restarts >= maxICERestarts:
		p.logger().Warn("connection failed; no more ICE restarts", "remote", id, "restarts", restarts)
		return
	}
	p.logger().Debug("connection failed; restarting ICE", "remote", id)
	p.emit(Event{Type: EventICERestart, Remote: id})
	r.needOffer, r.restartICE = true, true
	p.negotiate(r)
}

// readRTCP reads sender's RTCP until it stops, for the interceptors
// (NACK, reports) to work.
func (p *Peer) readRTCP(sender *webrtc.RTPSender) {
	p.spawn(func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	})
}
