package peer

import (
	"log/slog"
	"sync"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// outbox is the queue of messages to the server. Any goroutine may push;
// one writer goroutine (run) does every write to the WebSocket, so pion's
// callbacks never block on the network.
type outbox struct {
	mu     sync.Mutex
	queue  []*signal.Message // guarded by mu
	closed bool              // guarded by mu: push drops messages, run drains and ends

	wake chan struct{} // capacity 1: queue grew or closed was set
}

func newOutbox() *outbox { return &outbox{wake: make(chan struct{}, 1)} }

// push queues m; it reports false when the outbox is closed.
func (o *outbox) push(m *signal.Message) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false
	}
	o.queue = append(o.queue, m)
	o.mu.Unlock()
	o.signal()
	return true
}

// close makes run send what is queued and end.
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

// run writes queued messages with send until the outbox is closed and
// empty. After a failed write it drops messages: the connection is gone.
func (o *outbox) run(send func(*signal.Message) error, log *slog.Logger) {
	broken := false
	for {
		o.mu.Lock()
		batch, closed := o.queue, o.closed
		o.queue = nil
		o.mu.Unlock()
		for _, m := range batch {
			if broken {
				continue
			}
			if err := send(m); err != nil {
				log.Debug("signaling write failed; dropping further messages", "type", m.Type, "to", m.To, "err", err)
				broken = true
			}
		}
		if closed && len(batch) == 0 {
			return
		}
		if len(batch) == 0 {
			<-o.wake
		}
	}
}
