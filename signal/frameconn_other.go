//go:build !unix

package signal

import "net"

// waiter is a no-op where the socket cannot be polled directly: the read
// that follows waits, holding its buffer.
type waiter struct{}

func (w *waiter) init(net.Conn) {}

func (w *waiter) wait() error { return nil }
