package signal

import "slices"

// defaultBufferBudget is Config.BufferBudget's default: a quarter of the
// machine's memory, at least 64 MiB (1 GiB when the memory is not known).
func defaultBufferBudget() int64 {
	total := totalMemory()
	if total <= 0 {
		return 1 << 30
	}
	return max(total/4, 64<<20)
}

// addBuffered adds n (negative: removes) to the bytes buffered for all
// connections and seats, and starts shedding when that passes
// Config.BufferBudget.
func (s *Server) addBuffered(n int) {
	if n == 0 {
		return
	}
	if total := s.buffered.Add(int64(n)); n > 0 && total > s.cfg.BufferBudget {
		s.startShed()
	}
}

// startShed starts shed unless it runs or the server is shutting down.
func (s *Server) startShed() {
	s.bgmu.Lock()
	defer s.bgmu.Unlock()
	if s.bgClosed || s.shedding {
		return
	}
	s.shedding = true
	s.bgwg.Add(1)
	go s.shed()
}

// stopBackground stops starting background work and closes the
// in-process listener (connections made through it are the server's to
// close); s.bgwg then counts what still runs.
func (s *Server) stopBackground() {
	s.bgmu.Lock()
	s.bgClosed = true
	l, hs := s.pipes, s.pipesHTTP
	s.bgmu.Unlock()
	if l != nil {
		_ = l.Close()
		_ = hs.Close()
	}
}

// holder is a connection, or a held seat, and the bytes it buffers.
type holder struct {
	c     *conn
	m     *member
	bytes int
}

// shed brings the buffered bytes back under 90 % of the budget: it drops
// the connections and releases the held seats that hold the most first,
// as slow consumers (their room mates see peer-left "slow").
func (s *Server) shed() {
	defer s.bgwg.Done()
	defer func() {
		s.bgmu.Lock()
		s.shedding = false
		s.bgmu.Unlock()
	}()
	target := s.cfg.BufferBudget / 10 * 9
	excess := s.buffered.Load() - target
	if excess <= 0 {
		return
	}
	var holders []holder
	s.mu.RLock()
	for c := range s.conns {
		if b := c.buffered(); b > 0 {
			holders = append(holders, holder{c: c, bytes: b})
		}
	}
	for _, r := range s.rooms {
		for _, m := range r.members {
			if m.conn == nil {
				if b := m.heldTotal(); b > 0 {
					holders = append(holders, holder{m: m, bytes: b})
				}
			}
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(holders, func(a, b holder) int { return b.bytes - a.bytes })
	dropped, freed := 0, int64(0)
	for _, h := range holders {
		if freed >= excess {
			break
		}
		if h.c != nil {
			h.c.abort(reasonSlow)
		} else {
			s.releaseSeat(h.m, ReasonSlow)
		}
		s.metrics.shed.Inc()
		dropped++
		freed += int64(h.bytes)
	}
	s.log.Warn("buffer budget exceeded: dropped the connections holding the most as slow consumers",
		"budget", s.cfg.BufferBudget, "buffered", target+excess, "dropped", dropped, "freed", freed)
}
