package peer

import (
	"net"
	"syscall"
)

// corkForCut makes the kernel hold what is written to c until it is
// closed, so that the data goes out in one segment with the FIN.
func corkForCut(c net.Conn) {
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
