package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// DefaultGotMediaTimeout is the default of Codelab.GotMediaTimeout.
const DefaultGotMediaTimeout = 2 * time.Second

// The codelab's two string messages.
const (
	codelabGotMedia = "got user media"
	codelabBye      = "bye"
)

// Codelab configures the signalling dialect of the WebRTC codelab ("Real
// time communication with WebRTC", steps 5 and 6: a page on the origin
// tutorial's Socket.IO server), which a Peer speaks instead of protocol
// v1's when Config.Codelab is set. A codelab page reaches a Rendezvous
// room through the server's Socket.IO endpoint, which relays its
// `message` events to protocol v1 members as `message {from, data}` and
// back, byte for byte; so a Peer in this dialect can call an unmodified
// codelab page.
//
// Signals travel as the data of protocol v1 `message`s, addressed to the
// member they are for (the page broadcasts them; in a room of two that is
// the same):
//
//   - an offer or answer: {"type": "offer" | "answer", "sdp": ...}, the
//     page's serialised RTCSessionDescription;
//   - a trickled candidate: {"type": "candidate", "label": sdpMLineIndex,
//     "id": sdpMid, "candidate": "candidate:..."}; no end of candidates;
//   - the strings "got user media" (the sender has its camera) and "bye"
//     (the sender hangs up), to the whole room.
//
// Roles are the codelab's: towards each other member, the one that was in
// the room first (the room's creator, in a room of two) is the initiator
// and offers; the newcomer answers. On joining a room that has members, a
// Peer sends "got user media" (a codelab initiator starts the call only
// when it has it: it has no other sign that the newcomer is ready). As the
// initiator, a Peer offers to a newcomer when the newcomer's "got user
// media" arrives (a step-5 page drops an offer that comes before its
// camera), or GotMediaTimeout after the newcomer joined, whichever comes
// first (a step-6 page never sends it). Should the newcomer's "got user
// media" arrive while that offer is unanswered, the page dropped it: the
// offer and the candidates sent after it are sent again, and a Peer that
// answered already ignores the repeated offer, and the initiator the
// repeated answer.
//
// "bye" from a member closes the PeerConnection with it (EventHangUp); the
// member may stay in the room, and a new call follows its next offer, or
// its next "got user media" when this Peer is its initiator. Close sends
// "bye" to the room before it leaves. An offer from a member this Peer has
// no call with is answered whatever the roles; an offer or answer out of
// turn is reported as in protocol v1 (EventError, ErrUnexpectedSDP).
//
// Relayed messages that are not codelab signals (another JSON value, an
// object without a string type, an unknown type) are ignored, logged at
// debug level. A signal of a known type with bad fields (an offer without
// an sdp string, a candidate without a candidate string or with a label
// that is not an m-line index) is reported as an EventError wrapping
// ErrNegotiation and dropped. Candidates that arrive before the offer are
// buffered, as in protocol v1. Protocol v1 signals (offer, answer,
// candidate) are still answered and applied, but a Peer in this dialect
// sends none: both sides of a call must speak the same dialect.
type Codelab struct {
	// GotMediaTimeout is how long, as the initiator, this Peer waits for a
	// newcomer's "got user media" before it offers anyway. Zero means
	// DefaultGotMediaTimeout; negative: offer only on "got user media".
	GotMediaTimeout time.Duration
}

// codelab is a Peer's state for the codelab dialect.
type codelab struct {
	timeout time.Duration // negative: wait for "got user media" forever

	// owned by the run loop
	newer   map[string]bool       // members that joined after this peer: it is their initiator
	waiting map[string]*mediaWait // newer members whose "got user media" is awaited

	mu        sync.Mutex
	due       []*mediaWait       // guarded by mu: waits whose time is up, for the run loop
	interrupt context.CancelFunc // guarded by mu: ends the run loop's pending Recv; nil when none
}

// mediaWait is the wait for one newcomer's "got user media".
type mediaWait struct {
	id    string
	timer *time.Timer
}

func newCodelab(c *Codelab) *codelab {
	timeout := c.GotMediaTimeout
	if timeout == 0 {
		timeout = DefaultGotMediaTimeout
	}
	return &codelab{timeout: timeout, newer: make(map[string]bool), waiting: make(map[string]*mediaWait)}
}

// recv is Recv on c for the run loop of a codelab peer: while it waits for
// a message, it offers to the newcomers whose "got user media" did not
// come in time.
func (p *Peer) recv(c *link) (*signal.Message, error) {
	if p.cl == nil {
		return p.recvV1(c)
	}
	for {
		p.offerOverdue()
		ctx, cancel := context.WithCancel(p.ctx)
		if !p.cl.arm(cancel) {
			cancel()
			continue
		}
		m, err := c.Recv(ctx)
		p.cl.arm(nil)
		interrupted := ctx.Err() != nil // before cancel, which sets it
		cancel()
		if err != nil && interrupted && p.ctx.Err() == nil {
			// Interrupted by a wait that ended. (Had the connection ended
			// meanwhile too, the next Recv reports it.)
			continue
		}
		return m, err
	}
}

// arm sets the function that interrupts the run loop's Recv (nil: none).
// It reports false, setting nothing, when waits have ended meanwhile.
func (cl *codelab) arm(interrupt context.CancelFunc) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if interrupt != nil && len(cl.due) > 0 {
		return false
	}
	cl.interrupt = interrupt
	return true
}

// expire hands w to the run loop; it runs on w's timer goroutine.
func (cl *codelab) expire(w *mediaWait) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.due = append(cl.due, w)
	if cl.interrupt != nil {
		cl.interrupt()
	}
}

// offerOverdue offers to each newcomer whose wait for "got user media"
// has ended and that has no call yet.
func (p *Peer) offerOverdue() {
	p.cl.mu.Lock()
	due := p.cl.due
	p.cl.due = nil
	p.cl.mu.Unlock()
	for _, w := range due {
		if p.cl.waiting[w.id] != w {
			continue // stopped meanwhile: it came, the member left or hung up
		}
		delete(p.cl.waiting, w.id)
		if p.remote(w.id) != nil {
			continue
		}
		p.logger().Debug("no \"got user media\" in time; offering", "remote", w.id, "timeout", p.cl.timeout)
		p.offer(w.id)
	}
}

// stopWaiting ends the wait for id's "got user media", if any.
func (cl *codelab) stopWaiting(id string) {
	if w := cl.waiting[id]; w != nil {
		w.timer.Stop()
		delete(cl.waiting, id)
	}
}

// reset forgets every member and stops every wait: the seat is lost, or
// the run loop ends.
func (cl *codelab) reset() {
	for id := range cl.waiting {
		cl.stopWaiting(id)
	}
	clear(cl.newer)
	cl.mu.Lock()
	cl.due = nil
	cl.mu.Unlock()
}

// greet starts the negotiation with the members already in the room when
// this peer takes a new seat: in protocol v1 it offers to each; in the
// codelab dialect it tells them it has its media, and they offer.
func (p *Peer) greet(peers []string) {
	if p.cl == nil {
		for _, id := range peers {
			p.offer(id)
		}
		return
	}
	if len(peers) > 0 {
		p.out.push(codelabSignal("", codelabGotMedia))
	}
}

// codelabPeerJoined makes this peer the initiator towards newcomer id and
// starts the wait for its "got user media".
func (p *Peer) codelabPeerJoined(id string) {
	p.cl.newer[id] = true
	p.cl.stopWaiting(id)
	if p.cl.timeout < 0 {
		return
	}
	w := &mediaWait{id: id}
	w.timer = time.AfterFunc(p.cl.timeout, func() { p.cl.expire(w) })
	p.cl.waiting[id] = w
}

// codelabPeerLeft forgets a member that left the room.
func (p *Peer) codelabPeerLeft(id string) {
	p.cl.stopWaiting(id)
	delete(p.cl.newer, id)
}

// handleCodelab handles a relayed message: a codelab signal, or something
// else, which is ignored.
func (p *Peer) handleCodelab(m *signal.Message) {
	from := m.From
	var s string
	if json.Unmarshal(m.Data, &s) == nil {
		switch s {
		case codelabGotMedia:
			p.gotMedia(from)
		case codelabBye:
			p.hangUp(from)
		default:
			p.logger().Debug("ignoring a message that is not a codelab signal", "from", from, "data", s)
		}
		return
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(m.Data, &head); err != nil || head.Type == "" {
		p.logger().Debug("ignoring a message that is not a codelab signal", "from", from, "data", string(m.Data))
		return
	}
	switch head.Type {
	case signal.TypeOffer, signal.TypeAnswer:
		var d struct {
			SDP *string `json:"sdp"`
		}
		if err := json.Unmarshal(m.Data, &d); err != nil || d.SDP == nil || *d.SDP == "" {
			p.emit(Event{Type: EventError, Remote: from, Err: fmt.Errorf("%w: codelab %s from %s has no sdp string", ErrNegotiation, head.Type, from)})
			return
		}
		if head.Type == signal.TypeOffer {
			p.codelabOffer(from, *d.SDP)
		} else {
			p.codelabAnswer(from, *d.SDP)
		}
	case signal.TypeCandidate:
		c, err := decodeCodelabCandidate(m.Data)
		if err != nil {
			p.emit(Event{Type: EventError, Remote: from, Err: fmt.Errorf("%w: codelab candidate from %s: %w", ErrNegotiation, from, err)})
			return
		}
		p.addRemoteCandidate(from, c)
	default:
		p.logger().Debug("ignoring a codelab message of unknown type", "from", from, "type", head.Type)
	}
}

// gotMedia handles "got user media" from a member: a newcomer this peer
// is the initiator of is ready for the offer.
func (p *Peer) gotMedia(from string) {
	if !p.cl.newer[from] {
		p.logger().Debug("\"got user media\" from a member that offers to this peer; nothing to do", "from", from)
		return
	}
	p.cl.stopWaiting(from)
	r := p.remote(from)
	switch {
	case r == nil:
		p.offer(from)
	case r.role == RoleOffer && !r.haveRemoteDesc:
		// It did not have its media when our offer came, and dropped it.
		p.logger().Debug("\"got user media\" after our offer; sending it again", "remote", from)
		p.resendOffer(r)
	default:
		p.logger().Debug("\"got user media\" from a member already in a call", "from", from)
	}
}

// resendOffer queues our offer to r and the candidates sent after it
// again.
func (p *Peer) resendOffer(r *remote) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.sentOffer == nil {
		return
	}
	for _, m := range append([]*signal.Message{r.sentOffer}, r.sentCandidates...) {
		again := *m
		p.out.push(&again)
	}
}

// codelabOffer answers an offer, unless it repeats the one answered.
func (p *Peer) codelabOffer(from, sdp string) {
	old := p.remote(from)
	if old != nil && old.role == RoleAnswer && old.offerSDP == sdp {
		p.logger().Debug("ignoring a repeated offer, already answered", "from", from)
		return
	}
	if old == nil {
		// A newcomer that offers instead of waiting for us: answer it.
		p.cl.stopWaiting(from)
	}
	p.answer(from, sdp)
	if r := p.remote(from); r != nil && r != old {
		r.offerSDP = sdp
	}
}

// codelabAnswer applies the answer to our offer, unless it repeats one
// (after our offer was sent again).
func (p *Peer) codelabAnswer(from, sdp string) {
	if r := p.remote(from); r != nil && r.role == RoleOffer && r.haveRemoteDesc {
		p.logger().Debug("ignoring an answer to an offer already answered", "from", from)
		return
	}
	p.applyAnswer(from, sdp)
}

// hangUp handles "bye": the member hung up, so the call with it ends. It
// may still be in the room.
func (p *Peer) hangUp(from string) {
	p.cl.stopWaiting(from)
	delete(p.early, from)
	p.mu.Lock()
	r := p.remotes[from]
	delete(p.remotes, from)
	p.broadcastLocked()
	p.mu.Unlock()
	if r != nil {
		r.close()
	}
	p.emit(Event{Type: EventHangUp, Remote: from})
}

// codelabSignal returns a protocol v1 message carrying data (marshalled
// to JSON) to member to, or to the whole room when to is empty.
func codelabSignal(to string, data any) *signal.Message {
	b, err := json.Marshal(data)
	if err != nil {
		// Strings and the structs above always marshal.
		panic(fmt.Sprintf("peer: encode codelab message: %v", err))
	}
	return &signal.Message{Type: signal.TypeMessage, To: to, Ref: to, Data: b}
}

// decodeCodelabCandidate decodes a codelab candidate message. The
// candidate string must be one pion can apply (or empty, for end of
// candidates), so that a bad one is refused here rather than when the
// buffered candidates are applied.
func decodeCodelabCandidate(data json.RawMessage) (webrtc.ICECandidateInit, error) {
	var in struct {
		Label     *uint16 `json:"label"`
		ID        *string `json:"id"`
		Candidate *string `json:"candidate"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return webrtc.ICECandidateInit{}, fmt.Errorf("decode: %w", err)
	}
	if in.Candidate == nil {
		return webrtc.ICECandidateInit{}, errors.New("no candidate string")
	}
	if v := strings.TrimPrefix(*in.Candidate, "candidate:"); v != "" {
		if _, err := ice.UnmarshalCandidate(v); err != nil && !errors.Is(err, ice.ErrUnknownCandidateTyp) && !errors.Is(err, ice.ErrDetermineNetworkType) {
			return webrtc.ICECandidateInit{}, fmt.Errorf("candidate %q: %w", *in.Candidate, err)
		}
	}
	return webrtc.ICECandidateInit{Candidate: *in.Candidate, SDPMid: in.ID, SDPMLineIndex: in.Label}, nil
}
