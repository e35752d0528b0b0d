package signal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// frameConn is the net.Conn under a server-side gorilla/websocket.Conn. It
// adds three things gorilla lacks, for memory and speed:
//
//   - Reads stop at WebSocket frame boundaries, so that once gorilla has
//     read a message its own buffer is empty and whatever follows waits
//     here, where readLoop can see it.
//   - awaitDataFrame waits for the next data frame at a shallow stack depth
//     and without holding a buffer: an idle connection's goroutine parks
//     with a small stack (Go shrinks stacks that use under a quarter), and
//     pings and pongs are handled here without waking gorilla.
//   - Between beginBatch and flush, writes are gathered and sent with one
//     system call instead of one per frame.
//
// Read buffers and write buffers come from pools and go back as soon as
// they are empty.
type frameConn struct {
	net.Conn

	// owned by readLoop (gorilla reads only on readLoop's goroutine)
	rbuf *[]byte // pooled; nil while nothing is buffered
	r, w int     // unread bytes are (*rbuf)[r:w]
	need int64   // bytes to the end of the current frame; 0 at a frame start
	wait waiter  // waits for the socket to be readable without a buffer

	maxPayload int64         // immutable: larger frames are refused at their header
	slack      time.Duration // immutable: see SetWriteDeadline

	wmu      sync.Mutex // serializes writes and guards the fields below
	batching bool
	wbuf     *[]byte   // pooled; gathered writes
	wdl      time.Time // the write deadline last set on the socket
}

const (
	readBufSize  = 4096
	flushAtBytes = 64 << 10 // a batch is flushed early past this size
)

var (
	readBufPool  = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
	writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}
)

// newFrameConn wraps c; frames with a payload over maxPayload bytes are
// refused (errFrameTooLarge) as soon as their header is read, and writes
// have deadlines of writeTimeout (see SetWriteDeadline).
func newFrameConn(c net.Conn, maxPayload int64, writeTimeout time.Duration) *frameConn {
	fc := &frameConn{Conn: c, maxPayload: maxPayload, slack: deadlineSlack(writeTimeout)}
	fc.wait.init(c)
	return fc
}

// hijacker hands gorilla's Upgrade a frameConn in place of the hijacked
// connection.
type hijacker struct {
	http.ResponseWriter
	maxPayload   int64
	writeTimeout time.Duration
	fc           *frameConn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("signal: the ResponseWriter cannot be hijacked")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.fc = newFrameConn(c, h.maxPayload, h.writeTimeout)
	return h.fc, brw, nil
}

// buffered returns the bytes read from the socket and not yet consumed.
func (fc *frameConn) buffered() []byte {
	if fc.rbuf == nil {
		return nil
	}
	return (*fc.rbuf)[fc.r:fc.w]
}

func (fc *frameConn) consume(n int) {
	fc.r += n
	if fc.r == fc.w {
		readBufPool.Put(fc.rbuf)
		fc.rbuf, fc.r, fc.w = nil, 0, 0
	}
}

// errIdle is returned by awaitDataFrame when nothing is buffered and the
// socket can be waited on without a buffer.
var errIdle = errors.New("signal: connection idle")

// fill reads at least one more byte from the socket into the buffer.
func (fc *frameConn) fill() error {
	if fc.rbuf == nil {
		if err := fc.wait.wait(); err != nil {
			return err
		}
		fc.rbuf = readBufPool.Get().(*[]byte)
		fc.r, fc.w = 0, 0
	} else if fc.w == len(*fc.rbuf) {
		fc.w = copy(*fc.rbuf, (*fc.rbuf)[fc.r:fc.w])
		fc.r = 0
	}
	n, err := fc.Conn.Read((*fc.rbuf)[fc.w:])
	fc.wait.ready = false
	fc.w += n
	if n > 0 {
		return nil
	}
	if fc.r == fc.w {
		readBufPool.Put(fc.rbuf)
		fc.rbuf, fc.r, fc.w = nil, 0, 0
	}
	if err == nil {
		err = errors.New("signal: empty read")
	}
	return err
}

// errFrameTooLarge is returned by Read and awaitDataFrame when a frame's
// header announces a payload over the limit: the frame is refused before
// any of it is read.
var errFrameTooLarge = errors.New("signal: frame over the size limit")

// frameHeader parses the frame header at the start of b and returns the
// payload's length and the header's. ok is false when b does not hold the
// whole header yet. The payload length is as sent: up to 2^64-1.
func frameHeader(b []byte) (payload uint64, headerLen int, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	headerLen = 2
	payload = uint64(b[1] & 0x7f)
	switch payload {
	case 126:
		headerLen += 2
	case 127:
		headerLen += 8
	}
	if b[1]&0x80 != 0 {
		headerLen += 4 // mask key
	}
	if len(b) < headerLen {
		return 0, 0, false
	}
	switch payload {
	case 126:
		payload = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		payload = binary.BigEndian.Uint64(b[2:])
	}
	return payload, headerLen, true
}

// frameLen returns the whole length of the frame whose header starts b, 0
// when b does not hold the whole header yet, and errFrameTooLarge when the
// payload is over maxPayload.
func frameLen(b []byte, maxPayload int64) (total int64, headerLen int, err error) {
	payload, headerLen, ok := frameHeader(b)
	if !ok {
		return 0, 0, nil
	}
	if payload > uint64(maxPayload) {
		return 0, 0, errFrameTooLarge
	}
	return int64(headerLen) + int64(payload), headerLen, nil
}

// Read gives gorilla the stream, never past the end of the current frame.
func (fc *frameConn) Read(p []byte) (int, error) {
	if fc.need == 0 {
		for {
			total, _, err := frameLen(fc.buffered(), fc.maxPayload)
			if err != nil {
				return 0, err
			}
			if total > 0 {
				fc.need = total
				break
			}
			if err := fc.fill(); err != nil {
				return 0, err
			}
		}
	}
	if int64(len(p)) > fc.need {
		p = p[:fc.need]
	}
	if b := fc.buffered(); len(b) > 0 {
		n := copy(p, b)
		fc.consume(n)
		fc.need -= int64(n)
		return n, nil
	}
	// Nothing buffered mid-frame: read straight into p.
	n, err := fc.Conn.Read(p)
	fc.need -= int64(n)
	return n, err
}

// wholeFinalFrameBuffered reports whether the buffer holds the whole of
// the next frame and it is a message's last (FIN set): reading it will not
// wait on the socket. It must be called at a frame start.
func (fc *frameConn) wholeFinalFrameBuffered() bool {
	b := fc.buffered()
	total, _, err := frameLen(b, fc.maxPayload)
	return err == nil && total > 0 && total <= int64(len(b)) && b[0]&0x80 != 0
}

// Control frame opcodes and limits (RFC 6455).
const (
	opPing           = 9
	opPong           = 10
	maxControlLength = 125
)

// awaitDataFrame returns once the socket's next frame is not a ping or a
// pong, calling onPing and onPong (with the unmasked payload) for those
// that come first; an error from either ends the wait and is returned. Frames that break the rules are left to gorilla, which
// reports them. It must be called between messages. When nothing is
// buffered and the socket can be waited on (see waiter), it returns
// errIdle instead of blocking.
func (fc *frameConn) awaitDataFrame(onPing, onPong func(payload []byte) error) error {
	for {
		b := fc.buffered()
		if len(b) == 0 && fc.wait.idle() {
			return errIdle
		}
		total, hlen, err := frameLen(b, fc.maxPayload)
		if err != nil {
			return err
		}
		if total == 0 {
			if err := fc.fill(); err != nil {
				return err
			}
			continue
		}
		op := b[0] & 0x0f
		isControl := b[0]&0xf0 == 0x80 && (op == opPing || op == opPong) && b[1]&0x80 != 0
		if !isControl || total-int64(hlen) > maxControlLength {
			return nil
		}
		if int64(len(b)) < total {
			if err := fc.fill(); err != nil {
				return err
			}
			continue
		}
		var payload [maxControlLength]byte
		mask := b[hlen-4 : hlen]
		n := copy(payload[:], b[hlen:total])
		for i := range n {
			payload[i] ^= mask[i&3]
		}
		fc.consume(int(total))
		if op == opPing {
			err = onPing(payload[:n])
		} else {
			err = onPong(payload[:n])
		}
		if err != nil {
			return err
		}
	}
}

// writeDeadlineSlack is how much later than the one in force a new write
// deadline may be and still be left unset: gorilla sets one before every
// frame, and each costs the runtime a timer update. A write then gets at
// least its timeout less the slack.
const writeDeadlineSlack = time.Second

// deadlineSlack returns the slack for write deadlines of writeTimeout: a
// quarter of it, at most writeDeadlineSlack.
func deadlineSlack(writeTimeout time.Duration) time.Duration {
	return min(writeDeadlineSlack, writeTimeout/4)
}

// SetWriteDeadline sets the write deadline, unless it is less than the
// slack later than the one in force.
func (fc *frameConn) SetWriteDeadline(t time.Time) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if !t.IsZero() && !fc.wdl.IsZero() && !t.Before(fc.wdl) && t.Sub(fc.wdl) < fc.slack {
		return nil
	}
	fc.wdl = t
	return fc.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines.
func (fc *frameConn) SetDeadline(t time.Time) error {
	fc.wmu.Lock()
	fc.wdl = t
	fc.wmu.Unlock()
	return fc.Conn.SetDeadline(t)
}

// beginBatch starts gathering writes; flush sends them.
func (fc *frameConn) beginBatch() {
	fc.wmu.Lock()
	fc.batching = true
	fc.wmu.Unlock()
}

// Write writes p, or adds it to the batch.
func (fc *frameConn) Write(p []byte) (int, error) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if !fc.batching {
		return fc.Conn.Write(p)
	}
	if fc.wbuf == nil {
		fc.wbuf = writeBufPool.Get().(*[]byte)
	}
	*fc.wbuf = append(*fc.wbuf, p...)
	if len(*fc.wbuf) >= flushAtBytes {
		if err := fc.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush sends the batch and ends it.
func (fc *frameConn) flush() error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.batching = false
	return fc.flushLocked()
}

func (fc *frameConn) flushLocked() error {
	if fc.wbuf == nil {
		return nil
	}
	_, err := fc.Conn.Write(*fc.wbuf)
	*fc.wbuf = (*fc.wbuf)[:0]
	if cap(*fc.wbuf) <= 4*flushAtBytes {
		writeBufPool.Put(fc.wbuf)
	}
	fc.wbuf = nil
	return err
}
