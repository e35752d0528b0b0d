package signaltest

import (
	"net"
	"syscall"
)

// Cork makes the kernel hold what is written to c, a TCP connection,
// until c is closed, so that the data goes out in one segment with the
// FIN: the other end cannot read the data before it can know that the
// connection is gone. It does nothing to other connections, or outside
// Linux (there is no TCP_CORK).
func Cork(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1)
	})
}
