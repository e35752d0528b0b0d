//go:build unix

package signal

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// waiter blocks until a TCP socket is readable, using the runtime's poller
// directly, so that the waiting goroutine holds no read buffer and parks
// with a shallow stack; an in-process connection (DialInProcess) is waited
// on the same way through its own signal. It is owned by readLoop.
type waiter struct {
	raw   syscall.RawConn // nil when not a TCP socket (TLS, in-process)
	pipe  *addrConn       // an in-process connection; nil otherwise
	step  func(fd uintptr) bool
	woken bool
	ready bool // wait returned and no read has happened since
	peek  [1]byte
}

func (w *waiter) init(c net.Conn) {
	if lc, ok := c.(*limitedConn); ok {
		c = lc.Conn // Server.Listener's wrapper
	}
	if ac, ok := c.(*addrConn); ok {
		w.pipe = ac
		return
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	w.raw = raw
	w.step = w.check // one method value for the connection's life
}

// check is called by RawConn.Read first, and again each time the poller
// says the socket is readable. The first call must look (the poller's
// readiness may predate the last read); a later one need not.
func (w *waiter) check(fd uintptr) bool {
	if w.woken {
		return true
	}
	// recvfrom without an address: unix.Recvfrom would allocate one.
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.peek[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case unix.EAGAIN:
		w.woken = true
		return false
	}
	return true // data, EOF or an error: the Read that follows sees it
}

// idle reports whether the reader should wait (with wait) before reading:
// the socket can be waited on and was not just found readable.
func (w *waiter) idle() bool { return (w.raw != nil || w.pipe != nil) && !w.ready }

// wait returns once the socket has data, EOF or an error to read, or the
// read deadline passed.
func (w *waiter) wait() error {
	if w.ready {
		return nil
	}
	var err error
	switch {
	case w.pipe != nil:
		err = w.pipe.waitReadable()
	case w.raw != nil:
		w.woken = false
		err = w.raw.Read(w.step)
	default:
		return nil
	}
	w.ready = err == nil
	return err
}
