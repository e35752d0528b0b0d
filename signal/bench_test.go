package signal

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// benchRoom builds a room of n members whose connections have no socket:
// writing is set so that no writeLoop starts, and drain empties the queues
// that writeLoop would have written.
func benchRoom(n int) (s *Server, conns []*conn, drain func()) {
	s = NewServer(Config{Rate: rate.Inf, MaxCapacity: n, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r := &room{name: "bench", capacity: n}
	for i := range n {
		c := &conn{s: s, writing: true}
		m := &member{id: fmt.Sprintf("peer%d", i), room: r, conn: c}
		c.member = m
		r.members = append(r.members, m)
		conns = append(conns, c)
	}
	s.rooms[r.name] = r
	drain = func() {
		for _, c := range conns {
			clear(c.queue)
			c.queue = c.queue[:0]
			s.addBuffered(-c.queueBytes)
			c.queueBytes = 0
		}
	}
	return s, conns, drain
}

// BenchmarkRelayMessage measures decode + validate + route of one
// addressed ~300-byte message.
func BenchmarkRelayMessage(b *testing.B) {
	_, m, drain := benchRoom(2)
	frame := []byte(`{"type":"message","to":"peer1","data":{"ts":1732590000000000000,"body":"` + strings.Repeat("x", 240) + `"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		m[0].handle(frame, time.Now())
		drain()
	}
}

// BenchmarkRelayCandidate measures decode + validate + route of one
// trickled candidate.
func BenchmarkRelayCandidate(b *testing.B) {
	_, m, drain := benchRoom(2)
	frame := []byte(`{"type":"candidate","to":"peer1","candidate":{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.10 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}`)
	b.ReportAllocs()
	for b.Loop() {
		m[0].handle(frame, time.Now())
		drain()
	}
}

// BenchmarkFanout16 measures one broadcast message to the 15 other members
// of a room of 16.
func BenchmarkFanout16(b *testing.B) {
	_, m, drain := benchRoom(16)
	frame := []byte(`{"type":"message","data":{"body":"` + strings.Repeat("x", 260) + `"}}`)
	b.ReportAllocs()
	for b.Loop() {
		m[0].handle(frame, time.Now())
		drain()
	}
}
