package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fleet is a set of connected clients, in pairs: clients 2p and 2p+1 join
// room p as "a" and "b", each on its node of -url (dialers.clientNode).
type fleet struct {
	r       *run
	o       *options
	mu      sync.Mutex // guards clients while connecting
	clients []*client
	room    string   // room name prefix
	d       *dialers // source addresses and nodes; nil: -source-ips and -url
	token   string   // join token, when the server needs one

	connectDur time.Duration
	joinDur    time.Duration
	joinLat    []int64

	stopWatch func() bool
	closeOnce sync.Once
}

// newFleet makes an empty fleet of n clients whose connections are all
// closed when ctx ends, so that nothing outlives -timeout.
func newFleet(ctx context.Context, o *options, n int) *fleet {
	f := &fleet{r: newRun(), o: o, clients: make([]*client, n), room: "rvb-" + runID() + "-"}
	f.stopWatch = context.AfterFunc(ctx, f.close)
	return f
}

// close closes every connection and waits for the readers. It is safe to
// call more than once and from the context watchdog.
func (f *fleet) close() {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		cs := f.clients
		f.mu.Unlock()
		closeAll(f.r, cs)
	})
}

func (f *fleet) release() {
	f.stopWatch()
	f.close()
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns
// the first error; it stops handing out work after an error or when ctx
// ends.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	workers = max(1, min(workers, n))
	failed := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				select {
				case <-failed:
					return
				case <-ctx.Done():
					once.Do(func() { first = ctx.Err(); close(failed) })
					return
				default:
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err; close(failed) })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// connect dials every client, -concurrency at a time, and starts its
// reader.
func (f *fleet) connect(ctx context.Context) error {
	d := f.d
	if d == nil {
		var err error
		if d, err = newDialers(f.o.urls, f.o.sourceIPs); err != nil {
			return err
		}
	}
	t0 := time.Now()
	err := parallel(ctx, len(f.clients), f.o.concurrency, func(i int) error {
		ws, err := d.dial(ctx, i)
		if err != nil {
			return fmt.Errorf("connect client %d of %d (from %s to %s): %w%s", i+1, len(f.clients),
				d.source(i), d.urlOf(i), err, dialHint(err))
		}
		c := newClient(f.r, i, ws, f.o.size)
		f.mu.Lock()
		closed := f.r.closing.Load()
		if !closed {
			f.clients[i] = c
		}
		f.mu.Unlock()
		if closed {
			_ = ws.NetConn().Close()
			return context.Canceled
		}
		c.start()
		return nil
	})
	f.connectDur = time.Since(t0)
	if err != nil {
		return err
	}
	for p := 0; p+1 < len(f.clients); p += 2 {
		f.clients[p].partner, f.clients[p+1].partner = f.clients[p+1], f.clients[p]
	}
	return nil
}

// join makes every client join its pair's room, -concurrency joins in
// flight, and records each join's latency (join sent → created/joined
// received).
func (f *fleet) join(ctx context.Context) error {
	lat := make([]int64, len(f.clients))
	t0 := time.Now()
	err := parallel(ctx, len(f.clients), f.o.concurrency, func(i int) error {
		c := f.clients[i]
		sent := now()
		if err := c.sendJoin(fmt.Sprintf("%s%d", f.room, i/2), f.token); err != nil {
			return fmt.Errorf("join client %d: %w", i, err)
		}
		select {
		case <-c.joined:
		case <-ctx.Done():
			return fmt.Errorf("join client %d: no answer: %w", i, ctx.Err())
		}
		if c.joinResult != "created" && c.joinResult != "joined" {
			return fmt.Errorf("join client %d to room %s%d: server answered %s", i, f.room, i/2, c.joinResult)
		}
		lat[i] = c.joinedAt.Load() - sent
		return nil
	})
	f.joinDur = time.Since(t0)
	f.joinLat = lat
	return err
}

func dialHint(err error) string {
	s := err.Error()
	var ue *upgradeError
	switch {
	case errors.As(err, &ue) && ue.code == http.StatusTooManyRequests:
		return " (the server limits connections and upgrades per client address: raise -source-ips)"
	case strings.Contains(s, "too many open files"):
		return " (raise the open-files limit: ulimit -n, for this tool and the server)"
	case strings.Contains(s, "cannot assign requested address"):
		return " (out of ephemeral ports: raise -source-ips)"
	}
	return ""
}

// sentTotal sums the frames written by the clients.
func (f *fleet) sentTotal() int64 {
	var n int64
	for _, c := range f.clients {
		n += c.sentCount()
	}
	return n
}

// waitDelivered waits until want messages have been delivered, or for at
// most d.
func (f *fleet) waitDelivered(ctx context.Context, want int64, d time.Duration) {
	deadline := time.Now().Add(d)
	for f.r.delivered.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
}

// anomalies summarises what the server did that a healthy run never sees.
type anomalies struct {
	ErrorCodes      map[string]int `json:"error_codes,omitempty"`
	UnexpectedTypes map[string]int `json:"unexpected_types,omitempty"`
	PeerLeft        map[string]int `json:"peer_left,omitempty"`
	ClosedEarly     int            `json:"connections_closed_early,omitempty"`
	FirstCloseError string         `json:"first_close_error,omitempty"`
	Reordered       int64          `json:"reordered,omitempty"`
	Malformed       int64          `json:"malformed,omitempty"`
}

// anomalies must be called after close (the readers have stopped).
func (f *fleet) anomalies() anomalies {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	a := anomalies{ClosedEarly: f.r.readErrs, FirstCloseError: f.r.firstErr}
	if len(f.r.errCodes) > 0 {
		a.ErrorCodes = f.r.errCodes
	}
	if len(f.r.unexpected) > 0 {
		a.UnexpectedTypes = f.r.unexpected
	}
	if len(f.r.peerLeft) > 0 {
		a.PeerLeft = f.r.peerLeft
	}
	for _, c := range f.clients {
		if c != nil {
			a.Reordered += c.reordered
			a.Malformed += c.malformed
		}
	}
	return a
}

func (a anomalies) none() bool {
	return len(a.ErrorCodes) == 0 && len(a.UnexpectedTypes) == 0 && len(a.PeerLeft) == 0 &&
		a.ClosedEarly == 0 && a.Reordered == 0 && a.Malformed == 0
}

func (a anomalies) String() string {
	if a.none() {
		return "none"
	}
	s := ""
	add := func(format string, args ...any) {
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf(format, args...)
	}
	if len(a.ErrorCodes) > 0 {
		add("server errors %v", a.ErrorCodes)
	}
	if len(a.UnexpectedTypes) > 0 {
		add("unexpected frames %v", a.UnexpectedTypes)
	}
	if len(a.PeerLeft) > 0 {
		add("peer-left %v", a.PeerLeft)
	}
	if a.ClosedEarly > 0 {
		add("%d connections closed by the server (first: %s)", a.ClosedEarly, a.FirstCloseError)
	}
	if a.Reordered > 0 {
		add("%d messages out of order", a.Reordered)
	}
	if a.Malformed > 0 {
		add("%d malformed message frames", a.Malformed)
	}
	return s
}
