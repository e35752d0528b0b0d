package signal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
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
	reasonLeft         closeReason = "left"            // the client sent a close frame
	reasonDisconnected closeReason = "disconnected"    // the connection failed without a close frame
	reasonTimeout      closeReason = "timeout"         // no pong within the timeout
	reasonSlow         closeReason = "slow"            // send queue full
	reasonTooLarge     closeReason = "too-large"       // frame over the size limit
	reasonRate         closeReason = "rate"            // kept sending far over the rate
	reasonShutdown     closeReason = "shutdown"        // server shutdown
	reasonKicked       closeReason = "kicked"          // removed through the admin API
	reasonUnauthorized closeReason = "unauthorized"    // too many failed joins
	reasonReplaced     closeReason = "replaced"        // a resumed connection took its seat
	reasonJoinTimeout  closeReason = "join-timeout"    // no valid join within Config.JoinTimeout
	reasonMsgTimeout   closeReason = "message-timeout" // a message did not complete within Config.MessageTimeout
	reasonControl      closeReason = "control-flood"   // too many pings or pongs
	reasonRestart      closeReason = "restart"         // the server is draining: the seat moves to another server (1012)
)

// closeReasons lists every closeReason, for the metrics.
var closeReasons = []closeReason{reasonLeft, reasonDisconnected, reasonTimeout, reasonSlow, reasonTooLarge,
	reasonRate, reasonShutdown, reasonKicked, reasonUnauthorized, reasonReplaced, reasonJoinTimeout,
	reasonMsgTimeout, reasonControl, reasonRestart}

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
	case reasonMsgTimeout:
		return ReasonTimeout
	}
	return ReasonDisconnected
}

// resumable reports whether a connection that ended for reason r keeps its
// seat for the resume window: only drops a client did not ask for.
func (r closeReason) resumable() bool {
	return r == reasonDisconnected || r == reasonTimeout || r == reasonReplaced || r == reasonRestart
}

// Close codes the server sends besides the standard ones.
const (
	// CloseReplaced closes a connection whose seat was resumed by another.
	CloseReplaced = 4001
	// CloseServiceRestart (the standard 1012) closes every connection of
	// a server that drains (Drain): its seats are held and move to another
	// server, where the clients resume.
	CloseServiceRestart = 1012
)

// ackPingDelay is how soon after writing frames the server pings, so that
// the pong acknowledges them and the copies kept for a resume are freed.
const ackPingDelay = time.Second

// closeGrace is how long a connection may take to answer the server's
// close frame before its socket is closed.
const closeGrace = time.Second

// Control frames (pings and pongs) a client may send: a token bucket of
// controlRate per second with a burst of controlBurst. Browsers send none
// but the pongs the server asks for (at most about one a second); a client
// past the bucket is closed (1008).
const (
	controlRate  = 10
	controlBurst = 20
)

// rateWindow is the window over which a client's messages over the rate are
// judged: the first refused in a window gets a rate-limited error, the
// rest of the window's are dropped, and more than Server.rateAbuse refused
// in one window close the connection (1008).
const rateWindow = time.Second

// maxPingsOut is how many unanswered pings a connection remembers; a pong
// must echo one of them to count.
const maxPingsOut = 4

// controlBucket is a token bucket of controlRate per second and
// controlBurst for a connection's control frames: smaller than a
// rate.Limiter, and owned by readLoop, so without a lock.
type controlBucket struct {
	tokens float32
	last   int64 // unix nanoseconds of the last refill
}

// take takes a token, and reports false when there is none.
func (b *controlBucket) take() bool {
	now := time.Now().UnixNano()
	if b.last != 0 {
		b.tokens = min(controlBurst, b.tokens+float32(now-b.last)*controlRate/1e9)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// errControlFlood ends a connection that sends too many control frames.
var errControlFlood = errors.New("signal: too many control frames")

// readBufs holds the buffers frames are read into; a frame is decoded and
// copied out before its buffer goes back.
var readBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// conn is one client WebSocket connection. Its readLoop goroutine reads and
// handles client messages; a writeLoop goroutine runs only while messages
// are queued, so an idle connection costs one parked goroutine.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	fc     *frameConn   // ws's net.Conn
	n      uint64       // connection number, for logs
	remote string       // the client's address
	addr   netip.Prefix // the key it is counted under in Server.addrs
	// uncounted marks a tunnel from a cluster gateway, which counted the
	// client under its address already.
	uncounted bool

	// owned by readLoop
	limiter      *rate.Limiter // nil when rate limiting is off
	control      controlBucket // pings and pongs from the client
	windowStart  time.Time     // start of the current rate window
	overRate     int           // messages refused for rate in the current window
	authFailures int           // joins refused as unauthorized
	deadline     time.Time     // the read deadline: PongTimeout after the last sign of life
	msgDeadline  time.Time     // while a message is being read: when it must be complete; else zero
	pingFn       func([]byte) error
	pongFn       func([]byte) error

	closeSent atomic.Bool // a close frame went out; the read deadline is final

	// seat is member, for readLoop to count the seat's frames without
	// Server.mu (set with member).
	seat atomic.Pointer[member]

	// guarded by Server.mu
	member    *member     // the connection's seat, nil when in no room
	resuming  *member     // a seat this connection waits to take over (see pendingResume)
	joinTimer *time.Timer // closes the connection while it is in no room for JoinTimeout; nil when seated or off
	finished  bool        // finish has begun: no join timer any more

	mu          sync.Mutex
	queue       [][]byte            // guarded by mu: frames not yet written; writeLoop removes each once written
	queueBytes  int                 // guarded by mu: bytes in queue
	exempt      int                 // guarded by mu: frames of a resumed backlog still counted in queue, exempt from the queue's limits
	exemptBytes int                 // guarded by mu: their bytes
	recent      [][]byte            // guarded by mu: frames written but not yet acknowledged by a pong (none when resume is off)
	recentBytes int                 // guarded by mu: bytes in recent
	recentBase  uint64              // guarded by mu: number of the first frame in recent (frames count from 1)
	readBytes   int                 // guarded by mu: bytes of the message being read
	written     uint64              // guarded by mu: frames written on this connection
	pingsOut    [maxPingsOut]uint64 // guarded by mu: payloads of the pings not yet answered, oldest first
	npings      int                 // guarded by mu: how many of pingsOut are set
	confirmAt   uint64              // guarded by mu: number of the joined of a resume, until the client acknowledges it; else 0
	writing     bool                // guarded by mu: a writeLoop goroutine runs
	writers     sync.WaitGroup      // counts the writeLoop goroutine, for finish to wait on
	pingDue     bool                // guarded by mu: writeLoop should send a ping
	ackPingDue  bool                // guarded by mu: the pinger fires early, to acknowledge recent
	closeFrame  []byte              // guarded by mu: close frame to send after the queue
	closing     bool                // guarded by mu: no new frames (closing or dropped)
	closed      bool                // guarded by mu: the connection is finished
	reason      closeReason         // guarded by mu: why it ended; the first cause wins
	pinger      *time.Timer         // guarded by mu: sends the next ping
}

func newConn(s *Server, ws *websocket.Conn, fc *frameConn, remote string) *conn {
	c := &conn{s: s, ws: ws, fc: fc, remote: remote, n: s.nextID.Add(1),
		control: controlBucket{tokens: controlBurst}}
	if s.cfg.Rate != rate.Inf {
		c.limiter = rate.NewLimiter(s.cfg.Rate, s.cfg.Burst)
	}
	return c
}

// buffered returns the bytes c holds for its client: queued, kept for a
// resume, and of a message being read.
func (c *conn) buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queueBytes + c.recentBytes + c.readBytes
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
			c.finish(c.readErrReason(err))
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
		c.finish(c.readErrReason(err))
		return
	}
	c.read()
}

// start sets the connection up for reading.
func (c *conn) start() {
	s := c.s
	s.log.Debug("connection open", "conn", c.n, "remote", c.remote)
	c.ws.SetReadLimit(s.cfg.MaxMessageBytes)
	c.extendDeadline(time.Now())
	// Pings and pongs between messages are handled by awaitDataFrame;
	// gorilla sees only those inside a fragmented message.
	c.pingFn, c.pongFn = c.onPing, c.onPong
	c.ws.SetPongHandler(func(data string) error { return c.onPong([]byte(data)) })
	c.ws.SetPingHandler(func(data string) error { return c.onPing([]byte(data)) })
	c.mu.Lock()
	if !c.closed {
		c.pinger = time.AfterFunc(s.cfg.PingInterval, c.ping)
	}
	c.mu.Unlock()
	if s.cfg.JoinTimeout > 0 {
		// No message has been handled yet, so no other goroutine can reach
		// joinTimer before this one next takes Server.mu: no lock needed.
		c.joinTimer = time.AfterFunc(s.cfg.JoinTimeout, c.onJoinTimeout)
	}
}

// onJoinTimeout closes the connection if it is still in no room.
func (c *conn) onJoinTimeout() {
	s := c.s
	s.mu.RLock()
	idle := c.member == nil && c.resuming == nil
	s.mu.RUnlock()
	if idle {
		c.closeAfterQueue(websocket.ClosePolicyViolation,
			fmt.Sprintf("no join within %s", s.cfg.JoinTimeout), reasonJoinTimeout)
	}
}

// setMemberLocked seats c as m (nil: in no room), and starts or stops the
// join timer accordingly. s.mu is held for writing.
func (c *conn) setMemberLocked(m *member) {
	c.member = m
	c.seat.Store(m)
	switch {
	case m != nil && c.joinTimer != nil:
		c.joinTimer.Stop()
		c.joinTimer = nil // a seated connection holds none
	case m == nil && c.joinTimer == nil && c.s.cfg.JoinTimeout > 0 && !c.finished:
		c.joinTimer = time.AfterFunc(c.s.cfg.JoinTimeout, c.onJoinTimeout)
	}
}

// readMessage reads and handles one message. A message whose first frame
// is not all here yet must arrive whole within MessageTimeout; the bytes
// read so far count against the connection's buffer limits.
func (c *conn) readMessage() error {
	whole := c.fc.wholeFinalFrameBuffered()
	if !whole {
		c.msgDeadline = time.Now().Add(c.s.cfg.MessageTimeout)
		c.setReadDeadline(c.readDeadline())
	}
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
	if whole {
		_, err = buf.ReadFrom(r) // at once, from what is buffered
	} else {
		cr := countingReader{r: r, c: c}
		_, err = buf.ReadFrom(&cr)
		defer c.account(-cr.n)
	}
	if err != nil {
		return err
	}
	now := time.Now()
	if !whole {
		c.msgDeadline = time.Time{}
		c.setReadDeadline(c.deadline)
	}
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

// countingReader counts the bytes of a message as they are read into c's
// buffered bytes.
type countingReader struct {
	r io.Reader
	c *conn
	n int
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if n > 0 {
		cr.n += n
		cr.c.account(n)
	}
	return n, err
}

// account adds n (negative: removes) to the bytes of the message being read.
func (c *conn) account(n int) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	c.readBytes += n
	c.mu.Unlock()
	c.s.addBuffered(n)
}

// readDeadline is the read deadline in force: the keepalive deadline, or
// the message's when one is being read and it is sooner.
func (c *conn) readDeadline() time.Time {
	if !c.msgDeadline.IsZero() && c.msgDeadline.Before(c.deadline) {
		return c.msgDeadline
	}
	return c.deadline
}

// onPong handles a pong: one that echoes a ping the server sent extends
// the deadline and acknowledges the frames written before that ping; any
// other is ignored.
func (c *conn) onPong(data []byte) error {
	if !c.control.take() {
		return errControlFlood
	}
	n, err := strconv.ParseUint(string(data), 10, 64)
	if err != nil || len(data) > 1 && data[0] == '0' {
		return nil
	}
	if !c.answered(n) {
		return nil
	}
	c.extendDeadline(time.Now())
	c.acked(n)
	return nil
}

// answered reports whether n is the payload of a ping not yet answered,
// and forgets that ping and those sent before it.
func (c *conn) answered(n uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.npings {
		if c.pingsOut[i] == n {
			k := copy(c.pingsOut[:], c.pingsOut[i+1:c.npings])
			c.npings = k
			return true
		}
	}
	return false
}

func (c *conn) onPing(data []byte) error {
	if !c.control.take() {
		return errControlFlood
	}
	c.extendDeadline(time.Now())
	_ = c.ws.WriteControl(websocket.PongMessage, data, time.Now().Add(c.s.cfg.WriteTimeout))
	return nil
}

// extendDeadline gives the client another PongTimeout to send something,
// unless the server has closed the conversation.
func (c *conn) extendDeadline(now time.Time) {
	if c.closeSent.Load() {
		return
	}
	c.deadline = now.Add(c.s.cfg.PongTimeout)
	c.setReadDeadline(c.readDeadline())
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

// readErrReason says why reading ended with err. For the reasons gorilla
// does not answer itself, it sends the client a close frame saying so.
func (c *conn) readErrReason(err error) closeReason {
	var ne net.Error
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, errFrameTooLarge):
		c.closeNow(websocket.CloseMessageTooBig, fmt.Sprintf("frame over %d bytes", c.s.cfg.MaxMessageBytes))
		return reasonTooLarge
	case errors.Is(err, websocket.ErrReadLimit):
		c.drain() // gorilla sent 1009
		return reasonTooLarge
	case errors.Is(err, errControlFlood):
		c.closeNow(websocket.ClosePolicyViolation, "too many control frames")
		return reasonControl
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
		return reasonLeft
	case errors.As(err, &ne) && ne.Timeout():
		if !c.msgDeadline.IsZero() && !time.Now().Before(c.msgDeadline) {
			c.closeNow(websocket.ClosePolicyViolation, fmt.Sprintf("message not complete within %s", c.s.cfg.MessageTimeout))
			return reasonMsgTimeout
		}
		return reasonTimeout
	}
	return reasonDisconnected
}

// closeNow sends a close frame at once, ahead of anything queued, when the
// socket takes it within closeGrace; the reader is ending the connection.
func (c *conn) closeNow(code int, text string) {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.closeSent.Store(true)
	if c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeGrace)) == nil {
		c.drain()
	}
}

// maxDrainBytes bounds what drain reads.
const maxDrainBytes = 64 << 10

// drain reads and discards what the client still sends, for closeGrace or
// up to maxDrainBytes, until it closes its side: a socket closed with
// unread data is reset, and a reset can destroy the close frame just sent
// before the client reads it.
func (c *conn) drain() {
	_ = c.fc.Conn.SetReadDeadline(time.Now().Add(closeGrace))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.fc.Conn, maxDrainBytes))
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
	backlog := seatBacklog{unsent: c.queue, recent: c.recent, recentBase: c.recentBase,
		bytes: c.queueBytes + c.recentBytes}
	c.queue, c.recent = nil, nil
	c.queueBytes, c.recentBytes, c.exempt, c.exemptBytes = 0, 0, 0, 0
	c.mu.Unlock()

	s.mu.Lock()
	c.finished = true
	if c.joinTimer != nil {
		c.joinTimer.Stop()
		c.joinTimer = nil
	}
	var ev membership
	held := false
	if m := c.member; m != nil {
		if reason.resumable() && s.cfg.ResumeWindow > 0 && (!s.closing || s.draining) {
			ev = s.holdSeatLocked(m, backlog)
			held = true
		} else {
			ev = s.removeMemberLocked(m, reason.peerLeft())
		}
	}
	s.mu.Unlock()
	if !held {
		s.addBuffered(-backlog.bytes)
	}
	c.logLeave(ev)
	s.metrics.closed.WithLabelValues(string(reason)).Inc()
	s.log.Debug("connection closed", "conn", c.n, "remote", c.remote, "reason", reason)
	s.removeConn(c)
}

// handle processes one client frame, received at recv.
func (c *conn) handle(frame []byte, recv time.Time) {
	s := c.s
	if seat := c.seat.Load(); seat != nil {
		// Every frame of a seated connection counts, whatever becomes of
		// it: a resume tells the client how many were handled.
		seat.read.Add(1)
	}
	m, e := decodeClient(frame, s.cfg.MaxCapacity)
	if c.limiter != nil && !c.limiter.Allow() {
		if recv.Sub(c.windowStart) >= rateWindow {
			c.windowStart, c.overRate = recv, 0
		}
		c.overRate++
		switch {
		case c.overRate > s.rateAbuse:
			c.closeAfterQueue(websocket.ClosePolicyViolation, "rate limit exceeded", reasonRate)
		case c.overRate == 1:
			c.sendError(perr(CodeRateLimited, "Too many messages: this connection may send %g per second (burst %d); this one and any others over the rate in the next second are not delivered.", float64(s.cfg.Rate), s.cfg.Burst), m.ref)
		}
		return
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
// when the connection takes no more frames: it is closing, or its queue
// was full (SendQueue frames or ConnBufferBytes bytes) and it is now
// dropped as a slow consumer. Frames kept for a resume are forgotten,
// oldest first, to keep the connection within ConnBufferBytes.
func (c *conn) enqueue(frame []byte) bool {
	s := c.s
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return false
	}
	if len(c.queue)-c.exempt >= s.cfg.SendQueue || c.queueBytes-c.exemptBytes+len(frame) > s.cfg.ConnBufferBytes {
		c.closing = true // refuse further frames; drop finishes the job
		c.mu.Unlock()
		s.wg.Add(1) // safe: this connection's readLoop holds a count
		go s.drop(c, reasonSlow, websocket.ClosePolicyViolation, "slow consumer")
		return false
	}
	c.queue = append(c.queue, frame)
	c.queueBytes += len(frame)
	freed := c.forgetRecentLocked(s.cfg.ResumeQueue, s.cfg.ConnBufferBytes)
	c.startWriterLocked()
	c.mu.Unlock()
	s.addBuffered(len(frame) - freed)
	return true
}

// forgetRecentLocked drops the oldest frames kept for a resume until recent
// holds at most maxFrames and the connection at most maxBytes, and returns
// the bytes freed. A resume that needs them then fails. c.mu is held.
func (c *conn) forgetRecentLocked(maxFrames, maxBytes int) (freed int) {
	k := 0
	for k < len(c.recent) && (len(c.recent)-k > maxFrames || c.queueBytes+c.recentBytes+c.readBytes-freed > maxBytes) {
		freed += len(c.recent[k])
		k++
	}
	if k > 0 {
		clear(c.recent[:k])
		c.recent = c.recent[k:]
		c.recentBase += uint64(k)
		c.recentBytes -= freed
	}
	return freed
}

// enqueueAll queues frames (a resumed seat's backlog, of size bytes, which
// the server's buffered bytes already count) past the queue's limits: they
// were bounded when they were held.
func (c *conn) enqueueAll(frames [][]byte, bytes int) {
	if len(frames) == 0 {
		return
	}
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		c.s.addBuffered(-bytes)
		return
	}
	c.queue = append(c.queue, frames...)
	c.queueBytes += bytes
	c.exempt += len(frames)
	c.exemptBytes += bytes
	c.startWriterLocked()
	c.mu.Unlock()
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
	if c.confirmAt != 0 && n >= c.confirmAt {
		// The client has read the joined of its resume, and with it the
		// new resume token: the one it resumed with is spent for good.
		c.confirmAt = 0
		c.mu.Unlock()
		c.s.mu.Lock()
		if m := c.member; m != nil && m.conn == c {
			m.prevResume = ""
		}
		c.s.mu.Unlock()
		c.mu.Lock()
	}
	if n < c.recentBase {
		c.mu.Unlock()
		return
	}
	k := min(n-c.recentBase+1, uint64(len(c.recent)))
	freed := 0
	for _, f := range c.recent[:k] {
		freed += len(f)
	}
	clear(c.recent[:k])
	c.recent = c.recent[k:]
	c.recentBase += k
	c.recentBytes -= freed
	if len(c.recent) == 0 {
		c.recent = nil // an idle connection holds none
	}
	c.mu.Unlock()
	c.s.addBuffered(-freed)
}

// confirmResume records that the next frame queued is the joined of a
// resume, whose acknowledgement spends the seat's previous token.
func (c *conn) confirmResume() {
	c.mu.Lock()
	c.confirmAt = c.written + uint64(len(c.queue)) + 1
	c.mu.Unlock()
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
	keep := c.s.cfg.ResumeWindow > 0 // keep written frames for a resume
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
			freed := 0
			if n > 0 {
				bytes := 0
				for _, f := range batch[:n] {
					bytes += len(f)
				}
				rest := copy(c.queue, c.queue[n:])
				clear(c.queue[rest:])
				c.queue = c.queue[:rest]
				c.queueBytes -= bytes
				c.exempt -= min(c.exempt, n)
				c.exemptBytes -= min(c.exemptBytes, bytes)
				c.written += uint64(n)
				if keep {
					if len(c.recent) == 0 {
						c.recentBase = c.written - uint64(n) + 1
					}
					c.recent = append(c.recent, batch[:n]...)
					c.recentBytes += bytes
					freed = c.forgetRecentLocked(limit, c.s.cfg.ConnBufferBytes)
				} else {
					freed = bytes
				}
			}
			if ping {
				pingData = strconv.AppendUint(nil, c.written, 10)
				if c.npings == maxPingsOut {
					c.npings = copy(c.pingsOut[:], c.pingsOut[1:])
				}
				c.pingsOut[c.npings] = c.written
				c.npings++
			} else if n > 0 && keep && !c.ackPingDue && !c.closed && c.pinger != nil && c.s.cfg.PingInterval > ackPingDelay {
				// Ask for an early pong, so that recent is released soon.
				c.ackPingDue = true
				c.pinger.Reset(ackPingDelay)
			}
			c.mu.Unlock()
			c.s.addBuffered(-freed)
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
