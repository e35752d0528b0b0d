package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// The abuse scenario's hostile clients. An attacker writes raw WebSocket
// frames on its socket, so that it can leave a message unfinished, send
// pings by the thousand or answer no ping; it reads and discards what the
// server sends, and records when and how the server ended it. A swarm is
// the attackers of one attack.

// WebSocket opcodes (RFC 6455).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// appendFrame appends one client frame to b: masked, as clients must, with
// the masking key 0 so that the payload goes as it is.
func appendFrame(b []byte, fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, b0, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, b0, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

// closeFrame is a client close frame with code 1000.
var closeFrame = appendFrame(nil, true, opClose, []byte{0x03, 0xe8})

// attackWriteTimeout bounds each write of an attacker: a server that stops
// reading ends the attacker's writing instead of blocking it.
const attackWriteTimeout = 5 * time.Second

// attacker is one hostile connection: a WebSocket, or a plain TCP socket
// for the HTTP attacks (ws nil).
type attacker struct {
	sw   *swarm
	nc   net.Conn
	ws   *websocket.Conn
	host string // host:port of the server node it is connected to

	wmu sync.Mutex // serialises writes on nc

	mu     sync.Mutex
	t0     time.Time // when what the server should end began (see begin)
	target bool      // counted in the attack's closed-after and held-past-timeout
	end    time.Time // when the server ended it; zero while it has not
	how    string    // how: close code and text, "EOF (no close frame)", …

	byUs   atomic.Bool   // this tool closed or dropped it: a read error then is not the server's doing
	done   chan struct{} // closed when the reader has stopped
	frames atomic.Int64  // data frames read

	// onFrame, when set before start, is called with each data frame on
	// the reader goroutine; f is valid only during the call.
	onFrame func(a *attacker, f []byte)
}

// begin makes a a target whose time to be ended by the server counts from
// t.
func (a *attacker) begin(t time.Time) {
	a.mu.Lock()
	a.t0, a.target = t, true
	a.mu.Unlock()
}

// ended records that the server ended a (or, for a dropped seat, released
// it) at t; the first record stands.
func (a *attacker) ended(t time.Time, how string) {
	a.mu.Lock()
	if a.how == "" {
		a.end, a.how = t, how
	}
	a.mu.Unlock()
}

// fate returns what begin and ended recorded.
func (a *attacker) fate() (t0, end time.Time, how string, target bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.t0, a.end, a.how, a.target
}

// over reports whether a is no use to the attack any more: the server
// ended it or this tool closed it.
func (a *attacker) over() bool {
	return a.byUs.Load() || a.endedYet()
}

// endedYet reports whether the server has ended a (or released its seat).
func (a *attacker) endedYet() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.how != ""
}

var errClosedByUs = errors.New("closed by rendezvous-bench")

// write writes b (whole frames) on the socket.
func (a *attacker) write(b []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.byUs.Load() {
		return errClosedByUs
	}
	_ = a.nc.SetWriteDeadline(time.Now().Add(attackWriteTimeout))
	_, err := a.nc.Write(b)
	return err
}

// writeJSON writes v as one text frame.
func (a *attacker) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return a.write(appendFrame(nil, true, opText, b))
}

// drop closes the socket without a close frame, as a dead network would.
func (a *attacker) drop() {
	a.byUs.Store(true)
	_ = a.nc.Close()
}

// join sends a join and reads until its answer (for at most 10 s, and not
// past ctx's deadline), before the reader starts; it returns the answer:
// "created", "joined", "full" or "error CODE".
func (a *attacker) join(ctx context.Context, room, id, token string) (string, error) {
	m := map[string]string{"type": "join", "room": room}
	if id != "" {
		m["id"] = id
	}
	if token != "" {
		m["token"] = token
	}
	if err := a.writeJSON(m); err != nil {
		return "", err
	}
	dl := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = a.nc.SetReadDeadline(dl)
	defer a.nc.SetReadDeadline(time.Time{})
	for {
		_, f, err := a.ws.ReadMessage()
		if err != nil {
			return "", err
		}
		var r struct{ Type, Code string }
		if json.Unmarshal(f, &r) != nil {
			continue
		}
		switch r.Type {
		case "created", "joined", "full":
			return r.Type, nil
		case "error":
			return "error " + r.Code, nil
		}
	}
}

func (a *attacker) readLoop() {
	defer a.sw.readers.Done()
	defer close(a.done)
	var err error
	if a.ws == nil {
		_, err = io.Copy(io.Discard, a.nc)
		if err == nil {
			err = io.EOF
		}
	} else {
		var buf []byte
		for {
			var rd io.Reader
			if _, rd, err = a.ws.NextReader(); err != nil {
				break
			}
			if a.onFrame == nil {
				_, err = io.Copy(io.Discard, rd)
			} else {
				buf, err = readAppend(buf[:0], rd)
				if err == nil {
					a.onFrame(a, buf)
				}
			}
			if err != nil {
				break
			}
			a.frames.Add(1)
		}
	}
	if !a.byUs.Load() {
		a.ended(time.Now(), endHow(err))
	}
	_ = a.nc.Close()
}

// readAppend appends everything rd gives to b.
func readAppend(b []byte, rd io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// endHow names how a connection ended, from the error its reader got.
func endHow(err error) string {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure:
		return "EOF (no close frame)"
	case errors.As(err, &ce) && ce.Text != "":
		return strconv.Itoa(ce.Code) + " " + ce.Text
	case errors.As(err, &ce):
		return strconv.Itoa(ce.Code)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "read deadline"
	}
	return err.Error()
}

// swarm is the attackers of one attack. Every connection is closed when
// the context given to newSwarm ends, or by close.
type swarm struct {
	d    *dialers
	next atomic.Int64 // round-robin over the source addresses and the nodes

	mu       sync.Mutex
	all      []*attacker
	closing  bool
	refused  map[string]int // upgrades answered with an HTTP status, by status
	dialErrs int            // dials that failed otherwise
	firstErr string
	replies  map[string]int // frames the flood attackers read, by type (and error code)
	pongs    atomic.Int64   // pongs the attackers read: pings the server answered

	readers   sync.WaitGroup
	stopWatch func() bool
	closeOnce sync.Once
}

func newSwarm(ctx context.Context, d *dialers) *swarm {
	s := &swarm{d: d, refused: map[string]int{}, replies: map[string]int{}}
	s.stopWatch = context.AfterFunc(ctx, s.close)
	return s
}

// add registers a; when the swarm is closing it closes a and returns
// false.
func (s *swarm) add(a *attacker) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		a.drop()
		return false
	}
	s.all = append(s.all, a)
	return true
}

// failed records a dial that did not give a connection.
func (s *swarm) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ue *upgradeError
	if errors.As(err, &ue) {
		s.refused["HTTP "+ue.status]++
		return
	}
	s.dialErrs++
	if s.firstErr == "" {
		s.firstErr = err.Error()
	}
}

// anyNode asks dialWS for the next node of -url in turn.
const anyNode = -1

// dialWS opens a WebSocket attacker to server node k (anyNode: the next
// in turn). With answerPings it answers the server's pings as a browser
// does; without, it answers none.
func (s *swarm) dialWS(ctx context.Context, answerPings bool, k int) (*attacker, error) {
	i := int(s.next.Add(1) - 1)
	if k == anyNode {
		k = i % len(s.d.nodes)
	}
	ws, err := s.d.dialAt(ctx, i, k)
	if err != nil {
		if ctx.Err() == nil { // not the attack's own end
			s.failed(err)
		}
		return nil, err
	}
	a := &attacker{sw: s, nc: ws.NetConn(), ws: ws, host: s.d.nodes[k].host, done: make(chan struct{})}
	// Writes go through a.write only (raw frames, one lock): gorilla must
	// not write by itself, so its close handler writes nothing and its
	// ping handler writes the pong through a.write.
	ws.SetCloseHandler(func(int, string) error { return nil })
	ws.SetPongHandler(func(string) error { s.pongs.Add(1); return nil })
	if answerPings {
		ws.SetPingHandler(func(data string) error {
			_ = a.write(appendFrame(nil, true, opPong, []byte(data)))
			return nil
		})
	} else {
		ws.SetPingHandler(func(string) error { return nil })
	}
	if !s.add(a) {
		return nil, errClosedByUs
	}
	return a, nil
}

// dialTCP opens a plain TCP attacker (the HTTP attacks) to the next
// server node in turn.
func (s *swarm) dialTCP(ctx context.Context) (*attacker, error) {
	i := int(s.next.Add(1) - 1)
	k := i % len(s.d.nodes)
	nc, err := s.d.dialTCP(ctx, i, k)
	if err != nil {
		if ctx.Err() == nil {
			s.failed(err)
		}
		return nil, err
	}
	a := &attacker{sw: s, nc: nc, host: s.d.nodes[k].host, done: make(chan struct{})}
	if !s.add(a) {
		return nil, errClosedByUs
	}
	return a, nil
}

// start runs a's reader goroutine.
func (s *swarm) start(a *attacker) {
	s.readers.Add(1)
	go a.readLoop()
}

// countReply is an onFrame that counts the server's answers by type and
// error code.
func (s *swarm) countReply(_ *attacker, f []byte) {
	var m struct{ Type, Code string }
	key := "not JSON"
	if json.Unmarshal(f, &m) == nil {
		key = m.Type
		if m.Code != "" {
			key += " " + m.Code
		}
	}
	s.mu.Lock()
	s.replies[key]++
	s.mu.Unlock()
}

// close ends every attacker the server has not ended: a close frame (so
// that the server frees a seat at once instead of holding it for a
// resume), then the socket; and waits for the readers.
func (s *swarm) close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		all := s.all
		s.mu.Unlock()
		_ = parallel(context.Background(), len(all), 64, func(i int) error {
			a := all[i]
			select {
			case <-a.done:
				return nil
			default:
			}
			a.byUs.Store(true)
			// A writer blocked on a full socket gives up at this deadline.
			_ = a.nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			if a.ws != nil {
				a.wmu.Lock()
				_, _ = a.nc.Write(closeFrame)
				a.wmu.Unlock()
			}
			_ = a.nc.Close()
			return nil
		})
		s.readers.Wait()
	})
}

func (s *swarm) release() {
	s.stopWatch()
	s.close()
}

// tally summarises the attackers after close: how the server ended them,
// and for the targets how long after their start, how many it had not
// ended, and how many outlived timeout+grace (when timeout > 0).
func (s *swarm) tally(res *attackResult, timeout, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res.Conns = len(s.all)
	if len(s.refused) > 0 {
		res.Refused = s.refused
	}
	res.DialErrors, res.FirstDialError = s.dialErrs, s.firstErr
	if len(s.replies) > 0 {
		res.Replies = s.replies
	}
	res.Pongs = s.pongs.Load()
	ended := map[string]int{}
	var after []int64
	for _, a := range s.all {
		t0, end, how, target := a.fate()
		if how != "" {
			ended[how]++
		}
		if !target {
			continue
		}
		res.Targets++
		if how == "" {
			res.OpenAtEnd++
		} else {
			res.EndedByServer++
			after = append(after, int64(end.Sub(t0)))
		}
		if timeout > 0 && (how == "" || end.Sub(t0) > timeout+grace) {
			res.HeldPastTimeout++
		}
	}
	if len(ended) > 0 {
		res.Ended = ended
	}
	res.EndedAfter = summarize(after)
}

func (s *swarm) targetsState() (allEnded bool, lastStart time.Time) {
	s.mu.Lock()
	all := s.all
	s.mu.Unlock()
	allEnded = true
	for _, a := range all {
		t0, _, how, target := a.fate()
		if !target {
			continue
		}
		if how == "" {
			allEnded = false
		}
		if t0.After(lastStart) {
			lastStart = t0
		}
	}
	return allEnded, lastStart
}

// describe is a short form of a dial failure count, for errors.
func (s *swarm) dialSummary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("refused %v, failed %d (first: %s)", s.refused, s.dialErrs, s.firstErr)
}
