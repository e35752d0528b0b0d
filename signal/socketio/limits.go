package socketio

import (
	"net/netip"
	"sync"
)

// sessionLimits bounds the Engine.IO sessions open at once, in all and per
// client address (keyed by signal.AddrKey: an IPv4 address or an IPv6
// /64, as protocol v1 counts them). A session is counted from its
// handshake until it closes, whether or not its client has connected to
// Socket.IO yet: a client that only handshakes still costs memory until
// its connect timeout.
type sessionLimits struct {
	max, maxPerAddr int // immutable; maxPerAddr < 0: no per-address limit

	mu     sync.Mutex
	total  int                  // guarded by mu
	byAddr map[netip.Prefix]int // guarded by mu; no zero entries
}

func newSessionLimits(max, maxPerAddr int) *sessionLimits {
	return &sessionLimits{max: max, maxPerAddr: maxPerAddr, byAddr: make(map[netip.Prefix]int)}
}

// Why a handshake is refused.
const (
	refusedTotal   = "too many sessions"
	refusedPerAddr = "too many sessions from your address"
)

// acquire counts a session for key, or returns why it cannot.
func (l *sessionLimits) acquire(key netip.Prefix) (refused string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max {
		return refusedTotal
	}
	if l.maxPerAddr >= 0 && l.byAddr[key] >= l.maxPerAddr {
		return refusedPerAddr
	}
	l.total++
	l.byAddr[key]++
	return ""
}

// release uncounts a session acquired for key.
func (l *sessionLimits) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.byAddr[key] - 1; n > 0 {
		l.byAddr[key] = n
	} else {
		delete(l.byAddr, key)
	}
}

// count returns the sessions open.
func (l *sessionLimits) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// reservation is a session slot taken for a handshake request. The engine
// claims it when the handshake opens a session (whose close releases it);
// the HTTP handler releases it when the request ends unclaimed.
type reservation struct {
	l   *sessionLimits
	key netip.Prefix

	mu       sync.Mutex
	claimed  bool // guarded by mu
	released bool // guarded by mu
}

// claim marks r as taken by a session. It reports false when r was
// already claimed or released.
func (r *reservation) claim() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.claimed || r.released {
		return false
	}
	r.claimed = true
	return true
}

// release gives the slot back, once. unclaimedOnly leaves a claimed slot
// alone (the session's close releases it).
func (r *reservation) release(unclaimedOnly bool) {
	r.mu.Lock()
	if r.released || (unclaimedOnly && r.claimed) {
		r.mu.Unlock()
		return
	}
	r.released = true
	r.mu.Unlock()
	r.l.release(r.key)
}
