package signal

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// closeReason is why a connection ended. The metrics count these; members
// see them mapped onto the peer-left reasons.
type closeReason string

const (
	reasonLeft         closeReason = "left"         // the client sent a close frame
	reasonDisconnected closeReason = "disconnected" // the connection failed without a close frame
	reasonTimeout      closeReason = "timeout"      // no pong within the timeout
	reasonSlow         closeReason = "slow"         // send queue full
	reasonTooLarge     closeReason = "too-large"    // frame over the size limit
	reasonRate         closeReason = "rate"         // kept sending far over the rate
	reasonShutdown     closeReason = "shutdown"     // server shutdown
	reasonKicked       closeReason = "kicked"       // removed through the admin API
	reasonUnauthorized closeReason = "unauthorized" // too many failed joins
	reasonReplaced     closeReason = "replaced"     // a resumed connection took its seat
)

// ReasonKicked is the peer-left reason when an operator removed the member
// through the admin API; ReasonRoomClosed when the room was closed.
const (
	ReasonKicked     = "kicked"
	ReasonRoomClosed = "room-closed"
)

// peerLeft is the reason members see in peer-left when the connection
// ends for reason r.
func (r closeReason) peerLeft() string {
	switch r {
	case reasonTimeout, reasonSlow, reasonShutdown, reasonKicked:
		return string(r)
	}
	return ReasonDisconnected
}

// resumable reports whether a connection that ended for reason r keeps its
// seat for the resume window: only drops a client did not ask for.
func (r closeReason) resumable() bool {
	return r == reasonDisconnected || r == reasonTimeout || r == reasonReplaced
}

// Close codes the server sends besides the standard ones.
const (
	// CloseReplaced closes a connection whose seat was resumed by another.
	CloseReplaced = 4001
)

// ackPingDelay is how soon after writing frames the server pings, so that
// the pong acknowledges them and the copies kept for a resume are freed.
const ackPingDelay = time.Second

// closeGrace is how long a connection may take to answer the server's
// close frame before its socket is closed.
const closeGrace = time.Second

// readBufs holds the buffers frames are read into; a frame is decoded and
// copied out before its buffer goes back.
var readBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// conn is one client WebSocket connection. Its readLoop goroutine reads and
// handles client messages; a writeLoop goroutine runs only while messages
// are queued, so an idle connection costs one parked goroutine.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	fc     *frameConn // ws's net.Conn
	n      uint64     // connection number, for logs
	remote string

	// owned by readLoop
	limiter      *rate.Limiter // nil when rate limiting is off
	overRate     int           // messages refused for rate since the last one allowed
	authFailures int           // joins refused as unauthorized
	deadline     time.Time     // the read deadline: PongTimeout after the last sign of life
	pingFn       func([]byte)  // c.onPing and c.onPong, bound once
	pongFn       func([]byte)

	closeSent atomic.Bool // a close frame went out; the read deadline is final

	// guarded by Server.mu
	member   *member // the connection's seat, nil when in no room
	resuming *member // a seat this connection waits to take over (see pendingResume)

	mu         sync.Mutex
	queue      [][]byte       // guarded by mu: frames not yet written; writeLoop removes each once written
	recent     [][]byte       // guarded by mu: frames written but not yet acknowledged by a pong
	recentBase uint64         // guarded by mu: number of the first frame in recent (frames count from 1)
	written    uint64         // guarded by mu: frames written on this connection
	writing    bool           // guarded by mu: a writeLoop goroutine runs
	writers    sync.WaitGroup // counts the writeLoop goroutine, for finish to wait on
	pingDue    bool           // guarded by mu: writeLoop should send a ping
	ackPingDue bool           // guarded by mu: the pinger fires early, to acknowledge recent
	closeFrame []byte         // guarded by mu: close frame to send after the queue
	closing    bool           // guarded by mu: no new frames (closing or dropped)
	closed     bool           // guarded by mu: the connection is finished
	reason     closeReason    // guarded by mu: why it ended; the first cause wins
	pinger     *time.Timer    // guarded by mu: sends the next ping
}

func newConn(s *Server, ws *websocket.Conn, fc *frameConn, remote string) *conn {
	c := &conn{s: s, ws: ws, fc: fc, remote: remote, n: s.nextID.Add(1)}
	if s.cfg.Rate != rate.Inf {
		c.limiter = rate.NewLimiter(s.cfg.Rate, s.cfg.Burst)
	}
	return c
}

func (c *conn) readLoop() {
	c.start()
	c.read()
}

// read reads and handles messages while they come. Once the connection
// has been quiet for idleLinger it hands over to idle, on a fresh
// goroutine, and returns: handling messages grows a goroutine's stack, and
// the runtime cannot shrink a parked stack below 4 KiB, while a goroutine
// that only waits keeps the 2 KiB it started with.
func (c *conn) read() {
	for {
		err := c.fc.awaitDataFrame(c.pingFn, c.pongFn)
		if err == errIdle {
			var readable bool
			if readable, err = c.linger(); err == nil {
				if !readable {
					go c.idle() // the connection's goroutine from now on
					return
				}
				continue
			}
		}
		if err == nil {
			err = c.readMessage()
		}
		if err != nil {
			c.finish(readErrReason(err))
			return
		}
	}
}

// idleLinger is how long a connection stays on a goroutine that has
// handled messages before it moves to a small one (Server.idleLinger).
const idleLinger = time.Second

// linger waits up to idleLinger (and no later than the read deadline) for
// the socket to become readable.
func (c *conn) linger() (readable bool, err error) {
	if c.closeSent.Load() {
		// The close handshake's deadline stands.
		return true, c.fc.wait.wait()
	}
	until := time.Now().Add(c.s.idleLinger)
	if until.After(c.deadline) {
		until = c.deadline
	}
	c.setReadDeadline(until)
	err = c.fc.wait.wait()
	c.setReadDeadline(c.deadline)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(c.deadline) {
		return false, nil // quiet, not timed out
	}
	return err == nil, err
}

// idle waits until the connection has something to read, then reads.
func (c *conn) idle() {
	c.s.idleConns.Add(1)
	err := c.fc.wait.wait()
	c.s.idleConns.Add(-1)
	if err != nil {
		c.finish(readErrReason(err))
		return
	}
	c.read()
}

// start sets the connection up for reading.
func (c *conn) start() {
	s := c.s
	s.log.Info("connection open", "conn", c.n, "remote", c.remote)
	c.ws.SetReadLimit(s.cfg.MaxMessageBytes)
	c.extendDeadline(time.Now())
	// Pings and pongs between messages are handled by awaitDataFrame;
	// gorilla sees only those inside a fragmented message.
	c.pingFn, c.pongFn = c.onPing, c.onPong
	c.ws.SetPongHandler(func(data string) error { c.onPong([]byte(data)); return nil })
	c.mu.Lock()
	if !c.closed {
		c.pinger = time.AfterFunc(s.cfg.PingInterval, c.ping)
	}
	c.mu.Unlock()
}

// readMessage reads and handles one message.
func (c *conn) readMessage() error {
	mt, r, err := c.ws.NextReader()
	if err != nil {
		return err
	}
	buf := readBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			readBufs.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	now := time.Now()
	if c.deadline.Sub(now) < c.s.cfg.PongTimeout-time.Second { // extended over a second ago
		c.extendDeadline(now)
	}
	if mt != websocket.TextMessage {
		c.sendError(perr(CodeBadJSON, "Frames must be text frames holding JSON, not binary."), "")
		return nil
	}
	c.handle(buf.Bytes(), now)
	return nil
}

func (c *conn) onPong(data []byte) {
	c.extendDeadline(time.Now())
	if n, err := strconv.ParseUint(string(data), 10, 64); err == nil {
		c.acked(n)
	}
}

func (c *conn) onPing(data []byte) {
	c.extendDeadline(time.Now())
	_ = c.ws.WriteControl(websocket.PongMessage, data, time.Now().Add(c.s.cfg.WriteTimeout))
}

// extendDeadline gives the client another PongTimeout to send something,
// unless the server has closed the conversation.
func (c *conn) extendDeadline(now time.Time) {
	if c.closeSent.Load() {
		return
	}
	c.deadline = now.Add(c.s.cfg.PongTimeout)
	c.setReadDeadline(c.deadline)
}

// setReadDeadline sets the socket's read deadline, unless a close frame
// went out: then the close handshake's short deadline stands (writeLoop
// sets it after closeSent, so a race is settled by the second check).
func (c *conn) setReadDeadline(t time.Time) {
	if c.closeSent.Load() {
		return
	}
	_ = c.fc.SetReadDeadline(t)
	if c.closeSent.Load() {
		_ = c.fc.SetReadDeadline(time.Now().Add(closeGrace))
	}
}

func readErrReason(err error) closeReason {
	var ne net.Error
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return reasonTooLarge
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
		return reasonLeft
	case errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	}
	return reasonDisconnected
}

// finish runs when readLoop ends. A connection that dropped (no close
// frame, or no pong) keeps its seat for the resume window, with the frames
// it never wrote and those written but not acknowledged; any other leaves
// its room at once.
func (c *conn) finish(reason closeReason) {
	s := c.s
	c.markClosed(reason)
	_ = c.ws.Close()
	c.writers.Wait() // no writer can start once closed is set
	c.mu.Lock()
	reason = c.reason
	backlog := seatBacklog{unsent: c.queue, recent: c.recent, recentBase: c.recentBase}
	c.queue, c.recent = nil, nil
	c.mu.Unlock()

	s.mu.Lock()
	var ev membership
	if m := c.member; m != nil {
		if reason.resumable() && s.cfg.ResumeWindow > 0 && !s.closing {
			ev = s.holdSeatLocked(m, backlog)
		} else {
			ev = s.removeMemberLocked(m, reason.peerLeft())
		}
	}
	s.mu.Unlock()
	c.logLeave(ev)
	s.metrics.closed.WithLabelValues(string(reason)).Inc()
	s.log.Info("connection closed", "conn", c.n, "remote", c.remote, "reason", reason)
	s.removeConn(c)
}

// handle processes one client frame, received at recv.
func (c *conn) handle(frame []byte, recv time.Time) {
	s := c.s
	m, e := decodeClient(frame, s.cfg.MaxCapacity)
	if c.limiter != nil {
		if !c.limiter.Allow() {
			c.overRate++
			if c.overRate > s.rateAbuse {
				c.closeAfterQueue(websocket.ClosePolicyViolation, "rate limit exceeded", reasonRate)
				return
			}
			c.sendError(perr(CodeRateLimited, "Too many messages: this connection may send %g per second (burst %d); this one was not delivered.", float64(s.cfg.Rate), s.cfg.Burst), m.ref)
			return
		}
		c.overRate = 0
	}
	if e != nil {
		c.sendError(e, m.ref)
		return
	}
	switch m.typ {
	case TypeJoin:
		s.join(c, &m)
	case TypeLeave:
		s.leave(c, &m)
	default:
		s.relay(c, &m, recv)
	}
}

func (c *conn) sendError(e *protoError, ref string) {
	c.s.metrics.errors.WithLabelValues(e.code).Inc()
	c.enqueue(mustJSON(errorMsg{Type: TypeError, Code: e.code, Message: e.msg, Ref: ref}))
}

// enqueue queues frame for writing; it never blocks. It reports false
// when the connection takes no more frames: it is closing, or its queue was
// full and it is now dropped as a slow consumer.
func (c *conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.s.cfg.SendQueue {
		c.closing = true // refuse further frames; drop finishes the job
		c.mu.Unlock()
		c.s.wg.Add(1) // safe: this connection's readLoop holds a count
		go c.s.drop(c, reasonSlow, websocket.ClosePolicyViolation, "slow consumer")
		return false
	}
	c.queue = append(c.queue, frame)
	c.startWriterLocked()
	c.mu.Unlock()
	return true
}

// enqueueAll queues frames (a resumed seat's backlog) past the queue
// limit: they were bounded when they were held.
func (c *conn) enqueueAll(frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.closed {
		return
	}
	c.queue = append(c.queue, frames...)
	c.startWriterLocked()
}

// startWriterLocked starts writeLoop unless it runs. c.mu must be held and
// the connection not closed, so that readLoop still holds a WaitGroup count.
func (c *conn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		c.s.wg.Add(1)
		c.writers.Add(1)
		go c.writeLoop()
	}
}

func (c *conn) ping() {
	c.mu.Lock()
	if !c.closing && !c.closed {
		c.pingDue, c.ackPingDue = true, false
		c.startWriterLocked()
		c.pinger.Reset(c.s.cfg.PingInterval)
	}
	c.mu.Unlock()
}

// acked drops the written frames up to number n from recent: a pong that
// echoes a ping sent after frame n proves the client read them.
func (c *conn) acked(n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n < c.recentBase {
		return
	}
	k := min(n-c.recentBase+1, uint64(len(c.recent)))
	clear(c.recent[:k])
	c.recent = c.recent[k:]
	c.recentBase += k
	if len(c.recent) == 0 {
		c.recent = nil // an idle connection holds none
	}
}

// closeAfterQueue sends a close frame once the frames already queued are
// written, and accepts no more frames. The client then has closeGrace to
// answer before the socket is closed.
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

// markClosed records reason, unless a reason was recorded before, and stops
// the pinger. first reports whether this call closed the connection.
func (c *conn) markClosed(reason closeReason) (first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == "" {
		c.reason = reason
	}
	if c.closed {
		return false
	}
	c.closed, c.closing = true, true
	if c.pinger != nil {
		c.pinger.Stop()
	}
	return true
}

// open reports whether c still takes frames.
func (c *conn) open() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closing && !c.closed
}

// abort closes the socket at once; readLoop then finishes the connection.
func (c *conn) abort(reason closeReason) {
	c.markClosed(reason)
	_ = c.ws.NetConn().Close()
}

// writeLoop writes queued frames, then pings and the close frame, and
// exits when there is nothing left. A frame leaves the queue only once it
// is written, so that finish knows exactly what was never written.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer c.writers.Done()
	wt := c.s.cfg.WriteTimeout
	limit := c.s.cfg.ResumeQueue
	var batch [][]byte
	for {
		c.mu.Lock()
		if c.closed {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch = append(batch[:0], c.queue...)
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

		// The frames go out in one system call; they count as written once
		// it succeeded.
		var err error
		if len(batch) > 0 {
			c.fc.beginBatch()
			_ = c.ws.SetWriteDeadline(time.Now().Add(wt))
			for _, frame := range batch {
				if err = c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
					break
				}
			}
			if ferr := c.fc.flush(); err == nil {
				err = ferr
			}
		}
		n := len(batch)
		if err != nil {
			n = 0
		}
		var pingData []byte // the ping carries the number of frames written before it
		if n > 0 || ping {
			c.mu.Lock()
			if n > 0 {
				rest := copy(c.queue, c.queue[n:])
				clear(c.queue[rest:])
				c.queue = c.queue[:rest]
				if len(c.recent) == 0 {
					c.recentBase = c.written + 1
				}
				c.recent = append(c.recent, batch[:n]...)
				c.written += uint64(n)
				if over := len(c.recent) - limit; over > 0 {
					clear(c.recent[:over])
					c.recent = c.recent[over:]
					c.recentBase += uint64(over)
				}
			}
			if ping {
				pingData = strconv.AppendUint(nil, c.written, 10)
			} else if n > 0 && !c.ackPingDue && !c.closed && c.pinger != nil && c.s.cfg.PingInterval > ackPingDelay {
				// Ask for an early pong, so that recent is released soon.
				c.ackPingDue = true
				c.pinger.Reset(ackPingDelay)
			}
			c.mu.Unlock()
		}
		clear(batch)
		if err == websocket.ErrCloseSent {
			// A close frame went out (replace or drop): the frames stay
			// queued, for finish to hand on, and the reader ends it.
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			return
		}
		if err != nil {
			c.abort(reasonDisconnected)
			continue
		}
		if ping {
			if err := c.ws.WriteControl(websocket.PingMessage, pingData, time.Now().Add(wt)); err != nil && err != websocket.ErrCloseSent {
				c.abort(reasonDisconnected)
			}
		}
		if closeFrame != nil {
			c.closeSent.Store(true)
			if err := c.ws.WriteControl(websocket.CloseMessage, closeFrame, time.Now().Add(wt)); err != nil {
				c.abort(reasonDisconnected)
			}
			_ = c.ws.SetReadDeadline(time.Now().Add(closeGrace))
		}
	}
}
