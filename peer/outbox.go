package peer

import (
	"log/slog"
	"sync"

	"github.com/rendezvous-rtc/rendezvous/signal"
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
type outbox struct {
	mu     sync.Mutex
	queue  []*signal.Message // guarded by mu
	conn   *link             // guarded by mu; nil while disconnected
	closed bool              // guarded by mu: push drops messages; run drains what it can and ends

	wake   chan struct{}         // capacity 1: queue grew, conn was attached, or closed was set
	pushed func(*signal.Message) // test hook; may be nil
}

func newOutbox(pushed func(*signal.Message)) *outbox {
	return &outbox{wake: make(chan struct{}, 1), pushed: pushed}
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

// reset drops every queued message (they were for a seat that is gone).
func (o *outbox) reset() {
	o.mu.Lock()
	clear(o.queue)
	o.queue = nil
	o.mu.Unlock()
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

// run writes queued messages to the attached connection until the outbox
// is closed and either empty or disconnected. When a write fails the
// connection is aborted (so that the run loop sees it end and reconnects)
// and detached; the message stays queued.
func (o *outbox) run(log func() *slog.Logger) {
	for {
		o.mu.Lock()
		c, closed := o.conn, o.closed
		if closed && (c == nil || len(o.queue) == 0) {
			o.mu.Unlock()
			return
		}
		if c == nil || len(o.queue) == 0 {
			o.mu.Unlock()
			<-o.wake
			continue
		}
		m := o.queue[0]
		o.mu.Unlock()

		select {
		case <-c.Done():
			// The connection has ended: what is written now would be lost.
			o.detach(c)
			continue
		default:
		}
		if c.closedByServer() {
			// It has ended, but the reader has not noticed yet.
			o.detach(c)
			continue
		}
		if err := c.Send(m); err != nil {
			log().Debug("signaling write failed; keeping the message for the next connection", "type", m.Type, "to", m.To, "err", err)
			o.detach(c)
			c.Abort()
			continue
		}
		o.mu.Lock()
		if len(o.queue) > 0 && o.queue[0] == m { // not reset meanwhile
			o.queue[0] = nil
			o.queue = o.queue[1:]
		}
		o.mu.Unlock()
	}
}
