//go:build !linux

package signaltest

import "net"

// Cork makes the kernel hold what is written to c, a TCP connection,
// until c is closed, so that the data goes out in one segment with the
// FIN; outside Linux it does nothing (there is no TCP_CORK), and the other
// end may then read the data before it sees the end of the connection.
func Cork(net.Conn) {}
