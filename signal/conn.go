package signal

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// closeReason is why a connection ended: the peer-left reasons plus the
// finer causes that map onto them.
type closeReason string

const (
	reasonDisconnected closeReason = ReasonDisconnected
	reasonTimeout      closeReason = ReasonTimeout
	reasonSlow         closeReason = ReasonSlow
	reasonShutdown     closeReason = ReasonShutdown
	reasonTooLarge     closeReason = "too-large"
)

// peerLeft is the reason members see in peer-left when the connection ends
// for reason r.
func (r closeReason) peerLeft() string {
	switch r {
	case reasonTimeout, reasonSlow, reasonShutdown:
		return string(r)
	}
	return ReasonDisconnected
}

// readBufs holds the buffers frames are read into; a frame is decoded and
// copied out before its buffer goes back.
var readBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// conn is one client WebSocket connection. Its readLoop goroutine reads and
// handles client messages; a writeLoop goroutine runs only while messages
// are queued, so an idle connection costs one parked goroutine.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	n      uint64 // connection number, for logs
	remote string

	// owned by readLoop
	limiter      *rate.Limiter // nil when rate limiting is off
	deadlineSet  time.Time     // when the read deadline was last extended
	readDeadline time.Duration

	// guarded by Server.mu
	room *room
	id   string

	mu         sync.Mutex
	queue      [][]byte    // guarded by mu: frames waiting for writeLoop
	pending    int         // guarded by mu: frames queued or being written
	writing    bool        // guarded by mu: a writeLoop goroutine runs
	pingDue    bool        // guarded by mu: writeLoop should send a ping
	closeFrame []byte      // guarded by mu: close frame to send after the queue
	closing    bool        // guarded by mu: no new frames (close frame queued)
	closed     bool        // guarded by mu: the connection is finished
	reason     closeReason // guarded by mu: why it ended; the first cause wins
	pinger     *time.Timer // guarded by mu: sends the next ping
}

func newConn(s *Server, ws *websocket.Conn, remote string) *conn {
	c := &conn{s: s, ws: ws, remote: remote, n: s.nextID.Add(1), readDeadline: s.cfg.PongTimeout}
	if s.cfg.Rate != rate.Inf {
		c.limiter = rate.NewLimiter(s.cfg.Rate, s.cfg.Burst)
	}
	return c
}

func (c *conn) readLoop() {
	s := c.s
	s.log.Info("connection open", "conn", c.n, "remote", c.remote)
	c.ws.SetReadLimit(s.cfg.MaxMessageBytes)
	c.extendDeadline(time.Now())
	c.ws.SetPongHandler(func(string) error {
		c.extendDeadline(time.Now())
		return nil
	})
	c.mu.Lock()
	if !c.closed {
		c.pinger = time.AfterFunc(s.cfg.PingInterval, c.ping)
	}
	c.mu.Unlock()

	var reason closeReason
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			reason = readErrReason(err)
			break
		}
		buf := readBufs.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r)
		if err != nil {
			readBufs.Put(buf)
			reason = readErrReason(err)
			break
		}
		if now := time.Now(); now.Sub(c.deadlineSet) > time.Second {
			c.extendDeadline(now)
		}
		if mt != websocket.TextMessage {
			c.sendError(perr(CodeBadJSON, "Frames must be text frames holding JSON, not binary."), "")
		} else {
			c.handle(buf.Bytes())
		}
		if buf.Cap() <= 64<<10 {
			readBufs.Put(buf)
		}
	}
	c.finish(reason)
}

func (c *conn) extendDeadline(now time.Time) {
	c.deadlineSet = now
	_ = c.ws.SetReadDeadline(now.Add(c.readDeadline))
}

func readErrReason(err error) closeReason {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return reasonTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	}
	return reasonDisconnected
}

// finish runs when readLoop ends: it removes the connection from its room,
// closes the socket and waits for nothing else, since writeLoop exits on
// its own once closed is set.
func (c *conn) finish(reason closeReason) {
	c.markClosed(reason)
	s := c.s
	s.mu.Lock()
	left := c.leaveIfJoined()
	s.mu.Unlock()
	_ = c.ws.Close()
	c.logLeave(left)
	s.log.Info("connection closed", "conn", c.n, "remote", c.remote, "reason", c.closeReason())
	s.removeConn(c)
}

// handle processes one client frame.
func (c *conn) handle(frame []byte) {
	m, e := decodeClient(frame, c.s.cfg.MaxCapacity)
	if c.limiter != nil && !c.limiter.Allow() {
		c.sendError(perr(CodeRateLimited, "Too many messages: this connection may send %g per second (burst %d); this one was not delivered.", float64(c.s.cfg.Rate), c.s.cfg.Burst), m.ref)
		return
	}
	if e != nil {
		c.sendError(e, m.ref)
		return
	}
	switch m.typ {
	case TypeJoin:
		c.s.join(c, &m)
	case TypeLeave:
		c.s.leave(c, &m)
	default:
		c.s.relay(c, &m)
	}
}

func (c *conn) sendError(e *protoError, ref string) {
	c.enqueue(mustJSON(errorMsg{Type: TypeError, Code: e.code, Message: e.msg, Ref: ref}))
}

// enqueue queues frame for writing; it never blocks. When the queue is
// full the connection is dropped as a slow consumer.
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return
	}
	if c.pending >= c.s.cfg.SendQueue {
		c.closing = true // refuse further frames; drop finishes the job
		c.mu.Unlock()
		c.s.wg.Add(1) // safe: this connection's readLoop holds a count
		go c.s.drop(c, reasonSlow, websocket.ClosePolicyViolation, "slow consumer")
		return
	}
	c.queue = append(c.queue, frame)
	c.pending++
	c.startWriterLocked()
	c.mu.Unlock()
}

// startWriterLocked starts writeLoop unless it runs. c.mu must be held and
// the connection not closed, so that readLoop still holds a WaitGroup count.
func (c *conn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		c.s.wg.Add(1)
		go c.writeLoop()
	}
}

func (c *conn) ping() {
	c.mu.Lock()
	if !c.closing && !c.closed {
		c.pingDue = true
		c.startWriterLocked()
		c.pinger.Reset(c.s.cfg.PingInterval)
	}
	c.mu.Unlock()
}

// closeAfterQueue sends a close frame once the frames already queued are
// written, and accepts no more frames.
func (c *conn) closeAfterQueue(code int, text string, reason closeReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.closed {
		return
	}
	c.closing = true
	c.reason = reason
	c.closeFrame = websocket.FormatCloseMessage(code, text)
	c.startWriterLocked()
}

// markClosed records reason, unless a reason was recorded before, and
// discards the queue. It reports whether the connection was still open.
func (c *conn) markClosed(reason closeReason) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == "" {
		c.reason = reason
	}
	if c.closed {
		return false
	}
	c.closed = true
	if c.pinger != nil {
		c.pinger.Stop()
	}
	c.queue = nil
	c.pending = 0
	return true
}

func (c *conn) closeReason() closeReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// abort closes the socket at once; readLoop then finishes the connection.
func (c *conn) abort(reason closeReason) {
	c.markClosed(reason)
	_ = c.ws.NetConn().Close()
}

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	wt := c.s.cfg.WriteTimeout
	var batch [][]byte
	for {
		c.mu.Lock()
		if c.closed {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch = append(batch[:0], c.queue...)
		clear(c.queue)
		c.queue = c.queue[:0]
		ping := c.pingDue
		c.pingDue = false
		var closeFrame []byte
		if len(batch) == 0 {
			closeFrame, c.closeFrame = c.closeFrame, nil
		}
		if len(batch) == 0 && !ping && closeFrame == nil {
			c.writing = false
			c.queue = nil // an idle connection holds no queue
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()

		for i, frame := range batch {
			_ = c.ws.SetWriteDeadline(time.Now().Add(wt))
			if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				c.abort(reasonDisconnected)
				break
			}
			batch[i] = nil
		}
		if len(batch) > 0 {
			c.mu.Lock()
			if !c.closed {
				c.pending -= len(batch)
			}
			c.mu.Unlock()
		}
		if ping {
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wt)); err != nil {
				c.abort(reasonDisconnected)
			}
		}
		if closeFrame != nil {
			if err := c.ws.WriteControl(websocket.CloseMessage, closeFrame, time.Now().Add(wt)); err != nil {
				c.abort(reasonDisconnected)
			}
		}
	}
}
