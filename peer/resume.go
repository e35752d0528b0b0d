package peer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Reconnection backoff: the delay before the first attempt is
// reconnectMinDelay and doubles up to reconnectMaxDelay; each wait is
// drawn from [delay/2, delay]. (Even the first attempt waits a little: a
// server that saw the connection end gets the time to read what the peer
// wrote last and hold the seat, instead of having to replace a connection
// it still reads from.)
const (
	reconnectMinDelay = 50 * time.Millisecond
	reconnectMaxDelay = time.Second
	// attemptTimeout bounds one attempt: dial, handshake, join and its
	// answer.
	attemptTimeout = 10 * time.Second
)

// backoff gives the waits between reconnection attempts (see above).
type backoff struct{ delay time.Duration }

// timer returns a timer for the next wait.
func (b *backoff) timer() *time.Timer {
	if b.delay == 0 {
		b.delay = reconnectMinDelay
	}
	t := time.NewTimer(b.delay/2 + rand.N(b.delay/2+1))
	b.delay = min(2*b.delay, reconnectMaxDelay)
	return t
}

// reconnect runs on the run loop when the signaling connection old ended
// with cause before Close. A connection the server closed on purpose (a
// close frame: shutdown, kicked, replaced by another connection resuming
// the seat, ...) is not reconnected. A dropped one is: the peer dials
// again with backoff and resumes its seat, sending the resume token and
// the number of frames it read on old, so that the server re-sends
// exactly what it missed. A connection closed with 1012 "service
// restart" is resumed the same way, at once: the server's node is
// draining and its seat moves to another node. When the seat cannot be
// resumed, the peer closes every PeerConnection and joins again as a
// newcomer.
//
// reconnect returns true when the peer is in the room again on a new
// connection, false when the run loop must end (Close, or signaling is
// over for good).
func (p *Peer) reconnect(old *link, cause error) bool {
	old.Abort() // it has ended; this releases it
	// Every frame written on old is counted from here on (see rewind).
	p.out.quiesce(old)
	lost := fmt.Errorf("%w: %w", ErrSignalingClosed, cause)
	window := p.cfg.resumeWindow()
	moved := false // the server's node drains: resume at once
	if ce, ok := old.CloseError(); ok && ce.Code == websocket.CloseServiceRestart {
		moved = true
	} else if ok && ce.Code != websocket.CloseAbnormalClosure {
		if ce.Code == websocket.CloseGoingAway && window >= 0 && p.cl == nil {
			return p.rejoinAfterShutdown(lost)
		}
		p.logger().Debug("signaling connection closed by the server", "code", ce.Code, "text", ce.Text)
		p.emit(Event{Type: EventSignalingClosed, Err: lost})
		return false
	}
	if window < 0 {
		p.logger().Debug("signaling connection lost; reconnecting is off", "err", cause)
		p.emit(Event{Type: EventSignalingClosed, Err: lost})
		return false
	}
	p.logger().Debug("signaling connection lost; reconnecting", "err", cause, "moved", moved)
	p.emit(Event{Type: EventSignalingLost, Err: lost})
	received := old.Received()

	seatLost := false
	if p.resume == "" {
		p.loseSeat(fmt.Errorf("%w: the server gave no resume token", ErrSeatLost))
		seatLost = true
	}
	expiry := time.NewTimer(window)
	defer expiry.Stop()
	expired := expiry.C // nil once handled
	windowPassed := func() {
		expired = nil
		if !seatLost {
			p.loseSeat(fmt.Errorf("%w: the server was not reached within the resume window (%s)", ErrSeatLost, window))
			seatLost = true
		}
	}

	var b backoff
	for first := true; ; first = false {
		if first && moved {
			if done, ok := p.attempt(&seatLost, received); done {
				return ok
			}
			continue
		}
		wait := b.timer()
		if p.cfg.hooks != nil && p.cfg.hooks.backoff != nil {
			p.cfg.hooks.backoff()
		}
		select {
		case <-p.ctx.Done():
			wait.Stop()
			return false
		case <-expired:
			wait.Stop()
			windowPassed() // and try at once
		case <-wait.C:
		}
		select {
		case <-p.ctx.Done():
			return false
		case <-expired:
			windowPassed()
		default:
		}
		if done, ok := p.attempt(&seatLost, received); done {
			return ok
		}
	}
}

// attempt makes one reconnection attempt: it resumes the seat unless
// *seatLost, and otherwise (or when the server refuses the resume) joins
// anew. done reports that reconnecting is over; ok then says whether the
// peer is in the room again.
func (p *Peer) attempt(seatLost *bool, received uint64) (done, ok bool) {
	ctx, cancel := context.WithTimeout(p.ctx, attemptTimeout)
	defer cancel()
	c, err := dial(ctx, p.cfg.URL, p.cfg.Dial)
	if err != nil {
		p.logger().Debug("reconnect: dial failed", "err", err)
		return p.ctx.Err() != nil, false
	}
	if !*seatLost {
		// received counts the frames read on the connection that dropped.
		// Should this attempt's connection fail before joined arrives, the
		// next attempt sends the same count, assuming that the server did
		// not resume the seat on it. If it did, in the instant before the
		// failure, its backlog is now numbered on this connection and the
		// count is wrong; the protocol gives no way to tell.
		m, err := c.Join(ctx, p.room, &signal.JoinOptions{Resume: p.resume, Received: &received})
		switch {
		case err == nil && m.Resumed:
			p.resumed(c, m)
			return true, true
		case err == nil:
			// The server seated this peer anew instead.
			p.loseSeat(fmt.Errorf("%w: the server gave a new seat instead of resuming", ErrSeatLost))
			*seatLost = true
			p.newcomer(c, m)
			return true, true
		case errors.Is(err, &signal.Error{Code: signal.CodeResumeFailed}):
			p.loseSeat(fmt.Errorf("%w: %w", ErrSeatLost, err))
			*seatLost = true
			// Join anew on this connection, which stays open.
		default:
			return p.attemptFailed(c, err)
		}
	}
	m, err := joinRoom(ctx, c, p.room, p.cfg.freshJoin())
	if err != nil {
		return p.attemptFailed(c, err)
	}
	p.newcomer(c, m)
	return true, true
}

// attemptFailed ends an attempt whose join on c failed with err. Failures
// of the connection, an id still taken by the old seat and the rate limit
// are retried; any other refusal (room full, token refused, ...) ends
// signaling.
func (p *Peer) attemptFailed(c *link, err error) (done, ok bool) {
	var se *signal.Error
	isServer := errors.As(err, &se) || errors.Is(err, ErrRoomFull)
	switch {
	case p.ctx.Err() != nil:
		// Close started. The join may have taken a seat: a close frame
		// makes the server release it at once.
		_ = c.Close()
		return true, false
	case !isServer:
		p.logger().Debug("reconnect: join failed", "err", err)
		c.Abort()
		return false, false
	case se != nil && (se.Code == signal.CodeIDTaken || se.Code == signal.CodeRateLimited):
		p.logger().Debug("reconnect: join refused for now", "err", err)
		c.Abort()
		return false, false
	}
	_ = c.Close()
	p.logger().Warn("joining the room again failed", "err", err)
	p.emit(Event{Type: EventError, Err: fmt.Errorf("peer: joining the room again: %w", err)})
	p.emit(Event{Type: EventSignalingClosed, Err: fmt.Errorf("%w: %w", ErrSignalingClosed, err)})
	return true, false
}

// resumed completes a resume on c: the seat, the PeerConnections and the
// negotiations are unchanged. The frames the server did not handle
// (joined's read) go out again first, then the messages queued
// meanwhile, and the frames the server re-sends are handled as they come.
// When frames may have been lost (joined's gap, or frames to send again
// that are no longer kept), the calls that are not connected are
// recovered (recoverCalls).
func (p *Peer) resumed(c *link, m *signal.Message) {
	p.mu.Lock()
	p.client = c
	p.mu.Unlock()
	if m.Resume != "" {
		p.resume = m.Resume
	}
	// Fresh TURN credentials, for the connections still to come.
	p.iceServers = append(iceServers(m.ICEServers, p.logger()), p.cfg.ICEServers...)
	gap, again := m.Gap, 0
	switch {
	case m.Gap:
		// The room was hosted anew: it counts this seat's frames from
		// the resume on.
		p.out.forget(0)
	case m.Read != nil:
		var ok bool
		if again, ok = p.out.rewind(*m.Read); !ok {
			p.logger().Warn("frames the server did not handle are no longer kept; recovering the calls", "read", *m.Read)
			gap = true
		}
	}
	p.logger().Debug("seat resumed", "peers", m.Peers, "sent again", again, "gap", gap)
	p.emit(Event{Type: EventSignalingResumed, Room: m.Room, ID: m.ID, Peers: m.Peers, Gap: gap})
	p.out.attach(c)
	if gap {
		p.recoverCalls()
	}
}

// newcomer takes the new seat of created/joined m on c and offers to the
// members already in the room (greet).
func (p *Peer) newcomer(c *link, m *signal.Message) {
	p.seat(c, m)
	p.greet(m.Peers)
}

// loseSeat gives up the seat: the other members have seen this peer
// leave (peer-left timeout) and closed their side, so every
// PeerConnection is closed and every queued message, addressed to the old
// seat's connections, dropped.
func (p *Peer) loseSeat(err error) {
	p.logger().Debug("seat lost; closing every connection and joining again", "err", err)
	p.resume = ""
	clear(p.early)
	if p.cl != nil {
		p.cl.reset()
	}
	p.mu.Lock()
	remotes := p.remotes
	p.remotes = make(map[string]*remote)
	p.broadcastLocked()
	p.mu.Unlock()
	// No remote of the old seat queues anything from now on (see watch).
	p.out.reset()
	p.emit(Event{Type: EventSeatLost, Err: err})
	for _, id := range slices.Sorted(maps.Keys(remotes)) {
		remotes[id].close()
		p.emit(Event{Type: EventPeerLeft, Remote: id, Reason: ReasonSeatLost})
	}
}
