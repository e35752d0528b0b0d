package peer

import (
	"encoding/json"
	"errors"
	"log/slog"
	"sync"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Bounds of the frames the outbox keeps after writing them, to send again
// after a resume whose server did not handle them all (see rewind).
const (
	keptFramesMax = 256
	keptBytesMax  = 256 << 10
)

// outbox is the queue of messages to the server. Any goroutine may push;
// one writer goroutine (run) does every write to the WebSocket, so pion's
// callbacks never block on the network.
//
// Messages wait in the queue while no connection is attached (the
// signaling connection dropped and the peer is reconnecting) and go out,
// in order, on the next connection attached. A message leaves the queue
// only once it has been written; one whose write fails, or that comes up
// after its connection ended (or after the server's end of it closed,
// which the reader may not have noticed yet), stays first in line for the
// next connection.
//
// The outbox also numbers the frames it writes on the seat (sent: every
// frame after the join that took the seat, on all of the seat's
// connections) and keeps copies of the latest ones (at most keptFramesMax
// frames and keptBytesMax bytes), so that after a resume it can write
// again those the server says it did not handle (rewind).
type outbox struct {
	mu      sync.Mutex
	queue   []*signal.Message // guarded by mu
	resend  [][]byte          // guarded by mu: frames to write again, before queue (rewind)
	conn    *link             // guarded by mu; nil while disconnected
	closed  bool              // guarded by mu: push drops messages; run drains what it can and ends
	sent    uint64            // guarded by mu: frames written on the seat
	kept    [][]byte          // guarded by mu: the latest frames written, oldest first; the last is frame sent
	keptLen int               // guarded by mu: bytes in kept
	gen     uint64            // guarded by mu: bumped by reset and forget; a write of an older generation is not recorded
	writing *link             // guarded by mu: the connection a write is in flight on, or nil
	idle    *sync.Cond        // on mu: writing became nil

	wake   chan struct{}         // capacity 1: queue grew, conn was attached, or closed was set
	pushed func(*signal.Message) // test hook; may be nil
}

func newOutbox(pushed func(*signal.Message)) *outbox {
	o := &outbox{wake: make(chan struct{}, 1), pushed: pushed}
	o.idle = sync.NewCond(&o.mu)
	return o
}

// push queues m; it reports false when the outbox is closed.
func (o *outbox) push(m *signal.Message) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false
	}
	o.queue = append(o.queue, m)
	if o.pushed != nil {
		o.pushed(m) // under mu, so that the hook sees the queue's order
	}
	o.mu.Unlock()
	o.signal()
	return true
}

// attach makes c the connection the queue is written to.
func (o *outbox) attach(c *link) {
	o.mu.Lock()
	o.conn = c
	o.mu.Unlock()
	o.signal()
}

// detach stops writing to c, if it is the attached connection: messages
// wait for the next attach.
func (o *outbox) detach(c *link) {
	o.mu.Lock()
	if o.conn == c {
		o.conn = nil
	}
	o.mu.Unlock()
}

// quiesce detaches c and waits until no write to it is in flight, so that
// every frame written on it is counted. c must have ended (Abort), so
// that a write blocked on it fails at once.
func (o *outbox) quiesce(c *link) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conn == c {
		o.conn = nil
	}
	for o.writing == c {
		o.idle.Wait()
	}
}

// reset drops every queued message (they were for a seat that is gone)
// and the frames kept; a new seat numbers its frames from zero.
func (o *outbox) reset() {
	o.mu.Lock()
	clear(o.queue)
	o.queue = nil
	o.forgetLocked(0)
	o.mu.Unlock()
}

// forget drops the frames kept and those waiting to be written again, and
// numbers the next frame written read+1: the server lost track of the
// seat's frames (a gap) and counts from read.
func (o *outbox) forget(read uint64) {
	o.mu.Lock()
	o.forgetLocked(read)
	o.mu.Unlock()
}

func (o *outbox) forgetLocked(read uint64) {
	clear(o.kept)
	o.kept, o.keptLen, o.resend = nil, 0, nil
	o.sent = read
	o.gen++
}

// rewind makes the frames the server did not handle go out again first,
// on the next connection attached: the resumed joined said the server
// handled read of the seat's frames, so frames read+1 … sent are written
// again, in order, before the queue (and numbered again from read+1, as
// the server numbers them). It returns how many, and false when one of
// them is no longer kept or read is beyond sent: the frames are lost (a
// gap), nothing is written again and the count goes on from read.
func (o *outbox) rewind(read uint64) (int, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if read > o.sent || o.sent-read > uint64(len(o.kept)) {
		o.forgetLocked(read)
		return 0, false
	}
	n := int(o.sent - read)
	again := o.kept[len(o.kept)-n:]
	o.resend = append(append([][]byte(nil), again...), o.resend...)
	for _, f := range again {
		o.keptLen -= len(f)
	}
	clear(again)
	o.kept = o.kept[:len(o.kept)-n]
	o.sent = read
	return n, true
}

// recordLocked numbers frame f, just written, and keeps a copy of it,
// forgetting the oldest copies past the bounds.
func (o *outbox) recordLocked(f []byte) {
	o.sent++
	o.kept = append(o.kept, f)
	o.keptLen += len(f)
	drop := 0
	for len(o.kept)-drop > keptFramesMax || o.keptLen > keptBytesMax {
		o.keptLen -= len(o.kept[drop])
		drop++
	}
	if drop > 0 {
		clear(o.kept[:drop])
		o.kept = o.kept[drop:]
	}
}

// close makes run write what is queued, if a connection is attached, and
// end.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// nextLocked returns the next frame to write: the first to write again,
// else the first queued message, encoded (m is then that message). A
// message that cannot be encoded is dropped and returned as bad, with its
// error, for the caller to log. o.mu must be held.
func (o *outbox) nextLocked() (frame []byte, m, bad *signal.Message, err error) {
	if len(o.resend) > 0 {
		return o.resend[0], nil, nil, nil
	}
	if len(o.queue) == 0 {
		return nil, nil, nil, nil
	}
	m = o.queue[0]
	if frame, err = json.Marshal(m); err == nil {
		return frame, m, nil, nil
	}
	o.queue[0] = nil
	o.queue = o.queue[1:]
	return nil, nil, m, err
}

// run writes queued messages to the attached connection until the outbox
// is closed and either empty or disconnected. When a write fails the
// connection is aborted (so that the run loop sees it end and reconnects)
// and detached; the message stays queued.
func (o *outbox) run(log func() *slog.Logger) {
	for {
		o.mu.Lock()
		c, closed := o.conn, o.closed
		empty := len(o.queue) == 0 && len(o.resend) == 0
		if closed && (c == nil || empty) {
			o.mu.Unlock()
			return
		}
		if c == nil || empty {
			o.mu.Unlock()
			<-o.wake
			continue
		}
		frame, m, bad, err := o.nextLocked()
		if bad != nil || frame == nil {
			o.mu.Unlock()
			if bad != nil {
				log().Error("dropping a signaling message that cannot be encoded", "type", bad.Type, "to", bad.To, "err", err)
			}
			continue
		}
		gen := o.gen
		o.writing = c
		o.mu.Unlock()

		err = o.write(c, frame)

		o.mu.Lock()
		o.writing = nil
		o.idle.Broadcast()
		if err == nil && gen == o.gen { // not reset meanwhile
			if m == nil {
				o.resend[0] = nil
				o.resend = o.resend[1:]
			} else if len(o.queue) > 0 && o.queue[0] == m {
				o.queue[0] = nil
				o.queue = o.queue[1:]
			}
			o.recordLocked(frame)
		}
		o.mu.Unlock()
		if err != nil {
			if err != errConnEnded {
				typ := "(written again)"
				if m != nil {
					typ = m.Type
				}
				log().Debug("signaling write failed; keeping the message for the next connection", "type", typ, "err", err)
				c.Abort()
			}
			o.detach(c)
		}
	}
}

// errConnEnded: the frame was not written, its connection had ended.
var errConnEnded = errors.New("peer: signaling connection ended")

// write writes frame to c, unless c has ended: what is written then
// would be lost.
func (o *outbox) write(c *link, frame []byte) error {
	select {
	case <-c.Done():
		return errConnEnded
	default:
	}
	if c.closedByServer() {
		// It has ended, but the reader has not noticed yet.
		return errConnEnded
	}
	return c.SendRaw(frame)
}
