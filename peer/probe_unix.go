//go:build unix

package peer

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// closedByServer reports whether the server's end of the TCP connection c
// is known to be closed: the kernel holds its FIN (and no data before it)
// or a reset, which the client's reader may not have reached yet. It peeks
// without blocking and without taking the connection's read lock.
func closedByServer(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	_ = raw.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == nil:
			closed = n == 0 // end of stream
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EWOULDBLOCK), errors.Is(err, unix.EINTR):
		default:
			closed = true // reset, or another fatal error
		}
	})
	return closed
}
