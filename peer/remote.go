package peer

import (
	"encoding/json"
	"fmt"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// remote is the connection with one other member of the room.
type remote struct {
	id   string
	role Role
	pc   *webrtc.PeerConnection // set before the remote is published; read-only

	// owned by the run loop
	haveRemoteDesc  bool                      // SetRemoteDescription succeeded
	pending         []webrtc.ICECandidateInit // remote candidates waiting for the remote description
	offerSDP        string                    // codelab dialect: the offer answered, to recognise it repeated
	restartOnAnswer bool                      // the pending offer was sent again after a gap: restart ICE once it is answered

	// perfect negotiation, owned by the run loop (see renegotiate.go)
	negotiated   bool                                    // the first offer/answer exchange is done: either side may renegotiate
	needOffer    bool                                    // a change waits for an offer of ours (negotiate)
	restartICE   bool                                    // that offer restarts ICE
	offerRestart bool                                    // the pending offer of ours restarts ICE
	ignoreOffer  bool                                    // the latest offer from the member was ignored (glare, impolite side)
	extra        map[webrtc.TrackLocal]*webrtc.RTPSender // the tracks of AddTrack sent on this connection

	// guarded by Peer.mu
	sdpSent      bool                           // our offer/answer is queued: candidates may follow
	dataSection  bool                           // the remote description has a data channel section
	localPending []*signal.Message              // local candidates gathered before sdpSent
	restarts     int                            // ICE restarts made since the connection was last connected
	state        webrtc.PeerConnectionState     // last connection state
	channels     map[string]*webrtc.DataChannel // open data channels by label

	// codelab dialect, guarded by Peer.mu: our offer and the candidates
	// sent after it (at most maxEarlyCandidates), to send again
	sentOffer      *signal.Message
	sentCandidates []*signal.Message
}

// newRemote creates the PeerConnection with member id, adds the configured
// tracks, transceivers and data channels, and publishes it in p.remotes.
// It runs on the run loop.
func (p *Peer) newRemote(id string, role Role) (*remote, error) {
	pc, err := p.api.NewPeerConnection(webrtc.Configuration{
		ICEServers:         p.iceServers,
		ICETransportPolicy: p.cfg.ICETransportPolicy,
		// Offer an SCTP transport even without configured channels, so that
		// CreateDataChannel works later without renegotiation.
		AlwaysNegotiateDataChannels: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: new PeerConnection for %s: %w", ErrNegotiation, id, err)
	}
	r := &remote{
		id: id, role: role, pc: pc, state: webrtc.PeerConnectionStateNew,
		channels: make(map[string]*webrtc.DataChannel), extra: make(map[webrtc.TrackLocal]*webrtc.RTPSender),
	}
	p.watch(r)
	if err := p.addMedia(r); err != nil {
		r.close()
		return nil, err
	}
	for _, dc := range p.cfg.DataChannels {
		negotiated := dc.Init != nil && dc.Init.Negotiated != nil && *dc.Init.Negotiated
		if role != RoleOffer && !negotiated {
			continue
		}
		ch, err := pc.CreateDataChannel(dc.Label, dc.Init)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("%w: create data channel %q for %s: %w", ErrNegotiation, dc.Label, id, err)
		}
		p.watchChannel(r, ch)
	}
	p.mu.Lock()
	p.remotes[id] = r
	p.broadcastLocked()
	p.mu.Unlock()
	return r, nil
}

// addMedia adds Config.Tracks and, for the offering side, the recvonly
// transceivers of Config.Receive.
func (p *Peer) addMedia(r *remote) error {
	have := map[webrtc.RTPCodecType]bool{}
	for _, t := range p.cfg.Tracks {
		sender, err := r.pc.AddTrack(t)
		if err != nil {
			return fmt.Errorf("%w: add track %q for %s: %w", ErrNegotiation, t.ID(), r.id, err)
		}
		have[t.Kind()] = true
		p.readRTCP(sender)
	}
	if r.role != RoleOffer {
		return nil
	}
	for _, kind := range p.cfg.Receive {
		if have[kind] {
			continue
		}
		have[kind] = true
		if _, err := r.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return fmt.Errorf("%w: add %s transceiver for %s: %w", ErrNegotiation, kind, r.id, err)
		}
	}
	return nil
}

// watch installs the PeerConnection's callbacks. They run on pion's
// goroutines and only take p.mu briefly and queue events or messages:
// they never block pion.
func (p *Peer) watch(r *remote) {
	r.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		m, err := p.candidateMessage(r.id, c)
		if err != nil {
			p.emit(Event{Type: EventError, Remote: r.id, Err: fmt.Errorf("%w: encode local candidate: %w", ErrNegotiation, err)})
			return
		}
		if m == nil {
			return // nothing to send
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.remotes[r.id] != r {
			return // closed, failed, or its seat was lost: nobody wants it
		}
		if !r.sdpSent {
			r.localPending = append(r.localPending, m)
			return
		}
		p.out.push(m)
		if r.sentOffer != nil && len(r.sentCandidates) < maxEarlyCandidates {
			r.sentCandidates = append(r.sentCandidates, m)
		}
	})
	r.pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		p.emit(Event{Type: EventICEState, Remote: r.id, ICEState: s})
	})
	r.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.mu.Lock()
		r.state = s
		if s == webrtc.PeerConnectionStateConnected {
			r.restarts = 0
		}
		p.broadcastLocked()
		p.mu.Unlock()
		p.emit(Event{Type: EventConnectionState, Remote: r.id, ConnectionState: s})
		if s == webrtc.PeerConnectionStateFailed && p.cl == nil {
			p.connectionFailed(r.id) // ICE restart (restartFailed)
		}
	})
	r.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		p.watchChannel(r, dc)
	})
	r.pc.OnTrack(func(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		// pion runs this on a goroutine of its own.
		p.emit(Event{Type: EventTrack, Remote: r.id, Track: t, Receiver: recv})
		if p.cfg.OnTrack == nil || !p.enter() {
			return
		}
		defer p.aux.Done()
		p.cfg.OnTrack(r.id, t, recv)
	})
}

// sendSDP queues our offer or answer, then the local candidates gathered
// meanwhile, so that the remote gets the description first.
func (p *Peer) sendSDP(r *remote, typ, sdp string) {
	m := &signal.Message{Type: typ, To: r.id, Ref: r.id, SDP: sdp}
	if p.cl != nil {
		m = codelabSignal(r.id, signal.CodelabSDP{Type: typ, SDP: sdp})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.push(m)
	for _, c := range r.localPending {
		p.out.push(c)
	}
	if p.cl != nil && typ == signal.TypeOffer {
		r.sentOffer, r.sentCandidates = m, r.localPending
	}
	r.sdpSent, r.localPending = true, nil
}

// candidateMessage returns the message that trickles local candidate c
// (nil: end of candidates) to member to, or nil when there is nothing to
// send (the codelab dialect has no end of candidates).
func (p *Peer) candidateMessage(to string, c *webrtc.ICECandidate) (*signal.Message, error) {
	if p.cl != nil {
		if c == nil {
			return nil, nil
		}
		init := c.ToJSON()
		return codelabSignal(to, signal.CodelabCandidate{Type: signal.TypeCandidate, Label: init.SDPMLineIndex, ID: init.SDPMid, Candidate: init.Candidate}), nil
	}
	m := &signal.Message{Type: signal.TypeCandidate, To: to, Ref: to, Candidate: signal.CandidateNull}
	if c != nil {
		b, err := json.Marshal(c.ToJSON())
		if err != nil {
			return nil, err
		}
		m.Candidate = b
	}
	return m, nil
}

// close closes the PeerConnection and waits for pion's goroutines for it
// to end (and for its state to read closed, even when pion was already
// closing it itself after the remote's DTLS close). It must not be called
// with p.mu held or from a pion callback: pion calls the callbacks above
// while closing.
func (r *remote) close() {
	_ = r.pc.GracefulClose()
}
