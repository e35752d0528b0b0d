package signal

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// addrLimits bounds, per client address, the open connections and the rate
// of upgrades (Config.MaxConnsPerIP, UpgradeRate and UpgradeBurst). An
// IPv6 client is counted by its /64, which one host usually has whole.
type addrLimits struct {
	maxConns   int        // immutable; negative: no limit
	rate       rate.Limit // immutable; negative: no limit
	burst      int        // immutable
	maxEntries int        // immutable; addresses tracked at most

	mu      sync.Mutex
	addrs   map[netip.Prefix]*addrState // guarded by mu
	sweepAt int                         // guarded by mu: prune when addrs reaches this size
}

// addrState is one client address's count and bucket.
type addrState struct {
	conns    int
	upgrades *rate.Limiter // nil when upgrades are not limited
}

// minSweep is the size of the address table below which it is not pruned.
const minSweep = 1024

func newAddrLimits(cfg Config) *addrLimits {
	return &addrLimits{
		maxConns:   cfg.MaxConnsPerIP,
		rate:       rate.Limit(cfg.UpgradeRate),
		burst:      cfg.UpgradeBurst,
		maxEntries: cfg.MaxConns + 64<<10,
		addrs:      make(map[netip.Prefix]*addrState),
		sweepAt:    minSweep,
	}
}

// off reports whether no limit applies, so that nothing is tracked.
func (a *addrLimits) off() bool { return a.maxConns < 0 && a.rate < 0 }

// AddrKey returns the key under which the per-address limits count a
// client at remote ("ip:port", as http.Request.RemoteAddr): its IPv4
// address (an IPv4-mapped IPv6 address counts as the IPv4 one), or its
// IPv6 address's /64, which one host usually has whole. An address that
// does not parse counts as the zero prefix. The Socket.IO endpoint counts
// its sessions by the same key.
func AddrKey(remote string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// acquire counts a new connection from key, or returns why it is refused
// (a refused* reason).
func (a *addrLimits) acquire(key netip.Prefix, now time.Time) (refused string) {
	if a.off() {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.addrs[key]
	if st == nil {
		if len(a.addrs) >= a.sweepAt {
			a.pruneLocked(now)
		}
		if len(a.addrs) >= a.maxEntries {
			return refusedAddrTable
		}
		st = &addrState{}
		if a.rate >= 0 {
			st.upgrades = rate.NewLimiter(a.rate, a.burst)
		}
		a.addrs[key] = st
	}
	if a.maxConns >= 0 && st.conns >= a.maxConns {
		return refusedPerIP
	}
	if st.upgrades != nil && !st.upgrades.AllowN(now, 1) {
		return refusedUpgradeRate
	}
	st.conns++
	return ""
}

// release uncounts a connection from key.
func (a *addrLimits) release(key netip.Prefix) {
	if a.off() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.addrs[key]; st != nil {
		st.conns--
		if st.conns <= 0 && st.upgrades == nil {
			delete(a.addrs, key)
		}
	}
}

// pruneLocked forgets the addresses with no connection whose bucket is
// full again (they would start afresh the same way), and sets the next
// size to prune at. a.mu is held.
func (a *addrLimits) pruneLocked(now time.Time) {
	for key, st := range a.addrs {
		if st.conns <= 0 && (st.upgrades == nil || st.upgrades.TokensAt(now) >= float64(a.burst)) {
			delete(a.addrs, key)
		}
	}
	a.sweepAt = max(minSweep, 2*len(a.addrs))
}
