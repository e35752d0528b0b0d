package peer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// trace records a peer's signaling traffic through the test hooks: what
// it queued for the server and what its run loop handled.
type trace struct {
	mu       sync.Mutex
	pushed   []signal.Message // guarded by mu
	received []signal.Message // guarded by mu
	changed  chan struct{}    // guarded by mu; closed and replaced on every record
}

func newTrace() *trace { return &trace{changed: make(chan struct{})} }

// traced returns cfg with tr's hooks.
func traced(cfg Config, tr *trace) Config {
	cfg.hooks = &hooks{
		pushed:   func(m *signal.Message) { tr.add(&tr.pushed, m) },
		received: func(m *signal.Message) { tr.add(&tr.received, m) },
	}
	return cfg
}

func (tr *trace) add(list *[]signal.Message, m *signal.Message) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	*list = append(*list, *m)
	close(tr.changed)
	tr.changed = make(chan struct{})
}

// wait blocks until cond, called with tr.mu held, holds.
func (tr *trace) wait(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for {
		tr.mu.Lock()
		ok, changed := cond(), tr.changed
		tr.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// isSignal reports whether m is an offer, answer or candidate.
func isSignal(m *signal.Message) bool {
	switch m.Type {
	case signal.TypeOffer, signal.TypeAnswer, signal.TypeCandidate:
		return true
	}
	return false
}

// sigKey identifies a signal by its content.
func sigKey(m *signal.Message) string {
	switch m.Type {
	case signal.TypeCandidate:
		c, err := decodeCandidate(m.Candidate)
		if err != nil {
			return "candidate ?" + string(m.Candidate)
		}
		if c.Candidate == "" {
			return "candidate end"
		}
		return "candidate " + c.Candidate
	case signal.TypeOffer, signal.TypeAnswer:
		// The o= line is unique per session and version.
		origin := ""
		for _, line := range strings.Split(m.SDP, "\r\n") {
			if strings.HasPrefix(line, "o=") {
				origin = line
				break
			}
		}
		return fmt.Sprintf("%s %s (%d bytes %x)", m.Type, origin, len(m.SDP), fnv(m.SDP))
	}
	return m.Type
}

func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func keys(ms []signal.Message, keep func(*signal.Message) bool) []string {
	var out []string
	for i := range ms {
		if keep(&ms[i]) {
			out = append(out, sigKey(&ms[i]))
		}
	}
	return out
}

// isSubsequence reports whether sub is s with some elements left out.
func isSubsequence(sub, s []string) bool {
	i := 0
	for _, x := range s {
		if i < len(sub) && sub[i] == x {
			i++
		}
	}
	return i == len(sub)
}

// checkSignals checks that every signal x sent to y arrived exactly once
// and in order. It waits until x has queued its end of candidates (it
// sends no signal after that), queues a relayed message as a barrier
// behind it and waits for y to receive the barrier; then:
//   - what y received from x is exactly what x's proxy forwarded to the
//     server (the server, including its replay after a resume, neither
//     loses, duplicates nor reorders anything);
//   - what the proxy forwarded is what x queued, in order, without
//     duplicates; when lossless is set exactly that (x had nothing in
//     flight when its connection was cut), otherwise signals x wrote into
//     the dying connection may be missing (they are logged).
func checkSignals(t *testing.T, ctx context.Context, x *Peer, tx *trace, px *signaltest.CutProxy, y *Peer, ty *trace, lossless bool) {
	t.Helper()
	xid, yid := x.ID(), y.ID()
	tx.wait(t, ctx, xid+"'s end of candidates", func() bool {
		return slices.ContainsFunc(tx.pushed, func(m signal.Message) bool {
			return m.Type == signal.TypeCandidate && m.To == yid && sigKey(&m) == "candidate end"
		})
	})
	barrier := fmt.Sprintf(`"barrier from %s"`, xid)
	x.out.push(&signal.Message{Type: signal.TypeMessage, To: yid, Data: []byte(barrier)})
	ty.wait(t, ctx, yid+" receiving the barrier from "+xid, func() bool {
		return slices.ContainsFunc(ty.received, func(m signal.Message) bool {
			return m.Type == signal.TypeMessage && m.From == xid && string(m.Data) == barrier
		})
	})

	tx.mu.Lock()
	pushed := keys(tx.pushed, func(m *signal.Message) bool { return isSignal(m) && m.To == yid })
	tx.mu.Unlock()
	ty.mu.Lock()
	got := keys(ty.received, func(m *signal.Message) bool { return isSignal(m) && m.From == xid })
	ty.mu.Unlock()
	var fwd []string
	for _, f := range px.Forwarded(signaltest.Up, "") {
		if isSignal(&f.Msg) && f.Msg.To == yid {
			fwd = append(fwd, sigKey(&f.Msg))
		}
	}
	if !slices.Equal(got, fwd) {
		t.Errorf("%s → %s: the server relayed\n\t%s\nbut was sent\n\t%s", xid, yid, strings.Join(got, "\n\t"), strings.Join(fwd, "\n\t"))
	}
	switch {
	case !isSubsequence(fwd, pushed):
		t.Errorf("%s → %s: written to the server\n\t%s\nwhich is not what %s queued, in order\n\t%s", xid, yid, strings.Join(fwd, "\n\t"), xid, strings.Join(pushed, "\n\t"))
	case lossless && !slices.Equal(fwd, pushed):
		t.Errorf("%s → %s: signals lost: queued\n\t%s\nbut written\n\t%s", xid, yid, strings.Join(pushed, "\n\t"), strings.Join(fwd, "\n\t"))
	case len(fwd) < len(pushed):
		t.Logf("%s → %s: %d signals written into the connection as it was cut were lost", xid, yid, len(pushed)-len(fwd))
	}
	if len(pushed) < 3 {
		t.Errorf("%s → %s: only %d signals queued: %v", xid, yid, len(pushed), pushed)
	}
}

// eventLog collects a peer's events, so that a test can both wait for
// some and check all of them.
type eventLog struct {
	p       *Peer
	mu      sync.Mutex
	events  []Event       // guarded by mu
	changed chan struct{} // guarded by mu; closed and replaced on every event
	done    chan struct{} // closed when the events channel is closed
}

// collect reads p's events until it is closed; the test's cleanup closes
// p.
func collect(t testing.TB, p *Peer) *eventLog {
	l := &eventLog{p: p, changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for e := range p.Events() {
			l.mu.Lock()
			l.events = append(l.events, e)
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = p.Close()
		<-l.done
	})
	return l
}

// waitFor waits for an event matching match at index from or later, and
// returns it with its index.
func (l *eventLog) waitFor(t testing.TB, ctx context.Context, what string, from int, match func(Event) bool) (Event, int) {
	t.Helper()
	for {
		l.mu.Lock()
		for i := from; i < len(l.events); i++ {
			if match(l.events[i]) {
				e := l.events[i]
				l.mu.Unlock()
				return e, i
			}
		}
		from = len(l.events)
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-l.done:
			t.Fatalf("%s: events ended while waiting for %s", l.p.ID(), what)
		case <-ctx.Done():
			t.Fatalf("%s: waiting for %s: %v\nevents:\n%s", l.p.ID(), what, ctx.Err(), l.String())
		}
	}
}

// waitType waits for the next event of type typ from index from.
func (l *eventLog) waitType(t testing.TB, ctx context.Context, typ EventType, from int) (Event, int) {
	t.Helper()
	return l.waitFor(t, ctx, string(typ), from, func(e Event) bool { return e.Type == typ })
}

// count returns the number of events of type typ so far.
func (l *eventLog) count(typ EventType) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// all returns the events so far.
func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		b.WriteString("\t" + e.String() + "\n")
	}
	return b.String()
}

// exchange sends a text message each way on the chat channel between a
// and b and waits for both, from the events at indexes fromA and fromB on.
func exchange(t testing.TB, ctx context.Context, la, lb *eventLog, fromA, fromB int) {
	t.Helper()
	for _, x := range [][2]*eventLog{{la, lb}, {lb, la}} {
		from, to := x[0].p, x[1].p
		text := fmt.Sprintf("from %s to %s", from.ID(), to.ID())
		if _, err := from.WaitDataChannel(ctx, to.ID(), chat); err != nil {
			t.Fatalf("%s: %v", from.ID(), err)
		}
		if err := from.SendText(to.ID(), chat, text); err != nil {
			t.Fatalf("%s: %v", from.ID(), err)
		}
		start := fromB
		if x[1] == la {
			start = fromA
		}
		x[1].waitFor(t, ctx, fmt.Sprintf("%q", text), start, func(e Event) bool {
			return e.Type == EventMessage && string(e.Data) == text
		})
	}
}
