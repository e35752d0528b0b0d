package peer

import "sync"

// eventQueue delivers events in order on an unbuffered channel. push never
// blocks: events wait in an unbounded slice until the consumer takes them,
// so pion's callbacks never wait for the application.
type eventQueue struct {
	mu      sync.Mutex
	pending []Event // guarded by mu
	stopped bool    // guarded by mu: push drops events

	wake chan struct{} // capacity 1: pending grew
	out  chan Event    // owned by run, which closes it
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1), out: make(chan Event)}
}

func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	q.pending = append(q.pending, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers events until stop is closed, then drops what is left and
// closes out.
func (q *eventQueue) run(stop <-chan struct{}) {
	defer func() {
		q.mu.Lock()
		q.stopped, q.pending = true, nil
		q.mu.Unlock()
		close(q.out)
	}()
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-stop:
				return
			}
		}
		e := q.pending[0]
		q.pending[0] = Event{}
		q.pending = q.pending[1:]
		q.mu.Unlock()
		select {
		case q.out <- e:
		case <-stop:
			return
		}
	}
}
