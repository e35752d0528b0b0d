package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// A resuming test client: a member of one room that keeps its seat across
// drops and 1012 closes by itself, the way PROTOCOL.md's resume asks
// (and peer/ does): it numbers the frames it writes after the join that
// took its seat, keeps the last keptMax of them, and after a resume
// whose joined says the server read `read` of them writes again frames
// read+1 … sent; what it is given to send while it resumes waits and
// goes out after. It records every relayed message it receives.

// keptMax is how many written frames the client keeps for a resume, as
// peer/ does.
const keptMax = 256

// pendingMax bounds the frames waiting for a connection.
const pendingMax = 4096

// streamMsg is the data of a numbered message: sender's name and number.
type streamMsg struct {
	S string `json:"s"`
	N int    `json:"n"`
}

// received is one relayed message as the client got it.
type received struct {
	From string
	Msg  streamMsg
}

// resumingClient is one member of a room that resumes by itself.
type resumingClient struct {
	t    testing.TB
	name string
	url  string // where it dials, first and on every resume
	room string

	ctx    context.Context // ends with stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// outMu serialises writes, and guards the frames' count with them.
	outMu   sync.Mutex
	conn    *signal.Client // guarded by outMu; nil while resuming
	sent    uint64         // guarded by outMu: frames written on the seat
	kept    [][]byte       // guarded by outMu: the last keptMax written; the last is frame sent
	pending [][]byte       // guarded by outMu: frames to write once a connection is there
	given   int            // guarded by outMu: messages given to Send

	mu        sync.Mutex
	id        string          // guarded by mu
	token     string          // guarded by mu: newest resume token
	got       []received      // guarded by mu
	others    []string        // guarded by mu: peer-left, errors, gaps and closes other than 1012, for the report
	resumes   []time.Duration // guarded by mu: from a connection's end to the resumed joined
	resumedAt []time.Time     // guarded by mu: when each resume completed
	closes    map[int]int     // guarded by mu: close codes seen
	changed   chan struct{}   // guarded by mu: closed and replaced when got grows or a resume completes
	failed    error           // guarded by mu: the client gave up
	resent    int             // guarded by mu: frames written again after resumes
	lastConn  *signal.Client  // guarded by mu: the connection the reader reads
}

// newResumingClient dials url, joins room and starts reading.
func newResumingClient(t testing.TB, name, url, room string) *resumingClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rc := &resumingClient{t: t, name: name, url: url, room: room, ctx: ctx, cancel: cancel,
		closes: make(map[int]int), changed: make(chan struct{})}
	jctx, jcancel := context.WithTimeout(ctx, wait)
	defer jcancel()
	c, err := signal.Dial(jctx, url, nil)
	if err != nil {
		cancel()
		t.Fatalf("%s: dial: %v", name, err)
	}
	m, err := c.Join(jctx, room, nil)
	if err != nil {
		_ = c.Close()
		cancel()
		t.Fatalf("%s: join %s: %v", name, room, err)
	}
	rc.id, rc.token, rc.conn, rc.lastConn = m.ID, m.Resume, c, c
	rc.wg.Add(1)
	go rc.read(c)
	t.Cleanup(rc.stop)
	return rc
}

// ID returns the member's id.
func (rc *resumingClient) ID() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.id
}

// Send writes a message to the member to, or keeps it for the next
// connection while the client resumes.
func (rc *resumingClient) Send(to string, n int) error {
	data, _ := json.Marshal(streamMsg{S: rc.name, N: n})
	frame, _ := json.Marshal(&signal.Message{Type: signal.TypeMessage, To: to, Data: data})
	rc.outMu.Lock()
	defer rc.outMu.Unlock()
	rc.given++
	if len(rc.pending) >= pendingMax {
		return fmt.Errorf("%s: %d frames wait for a connection", rc.name, len(rc.pending))
	}
	rc.pending = append(rc.pending, frame)
	rc.flushLocked()
	return nil
}

// Given returns how many messages Send took.
func (rc *resumingClient) Given() int {
	rc.outMu.Lock()
	defer rc.outMu.Unlock()
	return rc.given
}

// flushLocked writes the pending frames, in order, on the connection, if
// there is one; a failed write leaves the frame first in line (the reader
// sees the connection's end and resumes). rc.outMu is held.
func (rc *resumingClient) flushLocked() {
	for rc.conn != nil && len(rc.pending) > 0 {
		f := rc.pending[0]
		if err := rc.conn.SendRaw(f); err != nil {
			rc.conn = nil
			return
		}
		rc.pending[0] = nil
		rc.pending = rc.pending[1:]
		rc.sent++
		rc.kept = append(rc.kept, f)
		if len(rc.kept) > keptMax {
			rc.kept[0] = nil
			rc.kept = rc.kept[1:]
		}
	}
}

// read records what arrives on c until it ends, then resumes, until the
// client stops.
func (rc *resumingClient) read(c *signal.Client) {
	defer rc.wg.Done()
	for {
		for {
			m, err := c.Recv(rc.ctx)
			if err != nil {
				break
			}
			rc.record(m)
		}
		if rc.ctx.Err() != nil {
			return
		}
		ended := time.Now()
		rc.outMu.Lock()
		rc.conn = nil
		rc.outMu.Unlock()
		code := 0
		if ce, ok := c.CloseError(); ok {
			code = ce.Code
		}
		rc.mu.Lock()
		rc.closes[code]++
		if code != 0 && code != signal.CloseServiceRestart && code != 1006 {
			rc.others = append(rc.others, fmt.Sprintf("close %d", code))
		}
		rc.mu.Unlock()
		if code == signal.CloseReplaced || code == 1008 {
			rc.fail(fmt.Errorf("closed with %d: not resuming", code))
			return
		}
		next, err := rc.resume(c.Received())
		_ = c.Close()
		if err != nil {
			rc.fail(err)
			return
		}
		rc.mu.Lock()
		rc.resumes = append(rc.resumes, time.Since(ended))
		rc.resumedAt = append(rc.resumedAt, time.Now())
		rc.lastConn = next
		close(rc.changed)
		rc.changed = make(chan struct{})
		rc.mu.Unlock()
		c = next
	}
}

// resume dials again, with backoff, and takes the seat back; the frames
// the server did not read go out again, then those pending.
func (rc *resumingClient) resume(got uint64) (*signal.Client, error) {
	ctx, cancel := context.WithTimeout(rc.ctx, 3*wait)
	defer cancel()
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		c, m, err := rc.tryResume(ctx, got)
		if err == nil {
			if err := rc.rewind(c, m); err != nil {
				_ = c.Close()
				return nil, err
			}
			return c, nil
		}
		var pe *signal.Error
		if errors.As(err, &pe) && (pe.Code == "resume-failed" || pe.Code == "kicked" || pe.Code == "room-closed") {
			return nil, fmt.Errorf("resume: %w", err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("resume: gave up after %d attempts: %w", attempt, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// tryResume makes one resume attempt.
func (rc *resumingClient) tryResume(ctx context.Context, got uint64) (*signal.Client, *signal.Message, error) {
	actx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c, err := signal.Dial(actx, rc.url, nil)
	if err != nil {
		return nil, nil, err
	}
	rc.mu.Lock()
	tok := rc.token
	rc.mu.Unlock()
	m, err := c.Join(actx, rc.room, &signal.JoinOptions{Resume: tok, Received: &got})
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	if !m.Resumed || m.Type != signal.TypeJoined {
		_ = c.Close()
		return nil, nil, fmt.Errorf("resume answered with %+v", m)
	}
	return c, m, nil
}

// rewind applies the resumed joined m: the frames after m.Read go out
// again on c, then the pending ones.
func (rc *resumingClient) rewind(c *signal.Client, m *signal.Message) error {
	rc.mu.Lock()
	rc.token = m.Resume
	if m.ID != rc.id {
		rc.mu.Unlock()
		return fmt.Errorf("resumed as %s, was %s", m.ID, rc.id)
	}
	if m.Gap {
		rc.others = append(rc.others, "gap")
	}
	rc.mu.Unlock()
	rc.outMu.Lock()
	defer rc.outMu.Unlock()
	if m.Gap || m.Read == nil {
		// The server lost count: nothing can be sent again.
		clear(rc.kept)
		rc.kept, rc.sent = nil, 0
	} else {
		read := *m.Read
		if read > rc.sent || rc.sent-read > uint64(len(rc.kept)) {
			return fmt.Errorf("the server read %d of %d frames; %d kept", read, rc.sent, len(rc.kept))
		}
		again := int(rc.sent - read)
		rc.pending = append(append([][]byte(nil), rc.kept[len(rc.kept)-again:]...), rc.pending...)
		rc.kept = rc.kept[:len(rc.kept)-again]
		rc.sent = read
		rc.mu.Lock()
		rc.resent += again
		rc.mu.Unlock()
	}
	rc.conn = c
	rc.flushLocked()
	return nil
}

// record keeps what a message says.
func (rc *resumingClient) record(m *signal.Message) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch m.Type {
	case signal.TypeMessage:
		var sm streamMsg
		if err := json.Unmarshal(m.Data, &sm); err != nil {
			rc.others = append(rc.others, "bad data "+string(m.Data))
			return
		}
		rc.got = append(rc.got, received{From: m.From, Msg: sm})
		close(rc.changed)
		rc.changed = make(chan struct{})
	case signal.TypeLog:
	case signal.TypePeerJoined:
		if len(rc.got) > 0 || len(rc.resumes) > 0 {
			rc.others = append(rc.others, "peer-joined "+m.ID+" mid-stream")
		}
	default:
		if len(rc.others) < 20 {
			rc.others = append(rc.others, fmt.Sprintf("%s %s %s %s", m.Type, m.ID, m.Reason, m.Code))
		}
	}
}

func (rc *resumingClient) fail(err error) {
	rc.mu.Lock()
	if rc.failed == nil {
		rc.failed = fmt.Errorf("%s: %w", rc.name, err)
	}
	rc.mu.Unlock()
}

// waitFor waits until the client has received n messages from sender,
// or fails.
func (rc *resumingClient) waitFor(ctx context.Context, sender string, n int) error {
	for {
		rc.mu.Lock()
		count := 0
		for _, r := range rc.got {
			if r.Msg.S == sender {
				count++
			}
		}
		ch, failed := rc.changed, rc.failed
		rc.mu.Unlock()
		if failed != nil {
			return failed
		}
		if count >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s has %d of %d messages from %s: %w", rc.name, count, n, sender, ctx.Err())
		}
	}
}

// waitResumed waits until the client has resumed n times, and returns
// when the nth resume completed.
func (rc *resumingClient) waitResumed(ctx context.Context, n int) (time.Time, error) {
	for {
		rc.mu.Lock()
		ch, failed, done := rc.changed, rc.failed, len(rc.resumedAt)
		var at time.Time
		if done >= n {
			at = rc.resumedAt[n-1]
		}
		rc.mu.Unlock()
		if failed != nil {
			return time.Time{}, failed
		}
		if done >= n {
			return at, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s resumed %d times, not %d: %w", rc.name, done, n, ctx.Err())
		}
	}
}

// check returns what is wrong with what the client received from sender,
// who was given `given` messages: each of 1…given exactly once, in order.
func (rc *resumingClient) check(sender, senderID string, given int) (lost, dup, disorder int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen := make(map[int]int)
	last := 0
	for _, r := range rc.got {
		if r.Msg.S != sender {
			continue
		}
		if r.From != senderID {
			disorder++ // from the wrong id: count it as out of place
		}
		seen[r.Msg.N]++
		if r.Msg.N <= last {
			disorder++
		}
		last = max(last, r.Msg.N)
	}
	for n := 1; n <= given; n++ {
		switch c := seen[n]; {
		case c == 0:
			lost++
		case c > 1:
			dup += c - 1
		}
	}
	return lost, dup, disorder
}

// report returns what the client saw besides relayed messages, its
// resume times and the frames it wrote again.
func (rc *resumingClient) report() (others []string, resumes []time.Duration, resent int, err error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.others...), append([]time.Duration(nil), rc.resumes...), rc.resent, rc.failed
}

// stop ends the client: its connection is closed (its room mate sees it
// leave) and its reader has returned.
func (rc *resumingClient) stop() {
	rc.cancel()
	rc.outMu.Lock()
	c := rc.conn
	rc.conn = nil
	rc.outMu.Unlock()
	rc.mu.Lock()
	last := rc.lastConn
	rc.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	if last != nil {
		_ = last.Close()
	}
	rc.wg.Wait()
	rc.mu.Lock()
	last = rc.lastConn
	rc.mu.Unlock()
	if last != nil {
		_ = last.Close()
	}
}

// durations summarises resume times: count, median, max.
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("%d, median %v, max %v", len(s), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// String describes the client's state, for a failure's message.
func (rc *resumingClient) String() string {
	rc.outMu.Lock()
	connected, sent, kept, pending, given := rc.conn != nil, rc.sent, len(rc.kept), len(rc.pending), rc.given
	rc.outMu.Unlock()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return fmt.Sprintf("%s(%s): connected %v, given %d, sent %d, kept %d, pending %d, received %d, resumes %d, resent %d, closes %v, others %v, failed %v",
		rc.name, rc.id, connected, given, sent, kept, pending, len(rc.got), len(rc.resumes), rc.resent, rc.closes, rc.others, rc.failed)
}
