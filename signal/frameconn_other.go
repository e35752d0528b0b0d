//go:build !unix

package signal

import "net"

// waiter is a no-op where the socket cannot be polled directly: the read
// that follows waits, holding its buffer.
type waiter struct {
	ready bool // unused here
}

func (w *waiter) init(net.Conn) {}

func (w *waiter) idle() bool { return false }

func (w *waiter) wait() error { return nil }
