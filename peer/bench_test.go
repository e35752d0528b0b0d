package peer

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// BenchmarkJoinToOpen measures, through an in-process server on loopback,
// the time from the first member's Join to the "chat" data channel being
// open on both ends of every pair: for a pair and for a 4-member mesh
// (6 pairs). Besides ns/op it reports the median and 90th percentile in
// milliseconds.
func BenchmarkJoinToOpen(b *testing.B) {
	for _, n := range []int{2, 4} {
		name := "pair"
		if n > 2 {
			name = fmt.Sprintf("mesh%d", n)
		}
		b.Run(name, func(b *testing.B) { benchJoinToOpen(b, n) })
	}
}

func benchJoinToOpen(b *testing.B, n int) {
	srv := signaltest.New(b, signal.Config{})
	api := loopbackAPI(b)
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		room := fmt.Sprintf("bench-%d", i)
		start := time.Now()
		peers := make([]*Peer, 0, n)
		for j := range n {
			cfg := Config{URL: srv.URL, Room: room, ID: fmt.Sprintf("p%d", j), API: api, Capacity: n,
				DataChannels: []DataChannelConfig{{Label: chat}}}
			p, err := Join(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			peers = append(peers, p)
		}
		for _, p := range peers {
			for _, q := range peers {
				if p != q {
					if _, err := p.WaitDataChannel(ctx, q.ID(), chat); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		times = append(times, time.Since(start))
		b.StopTimer()
		for _, p := range peers {
			_ = p.Close()
		}
		cancel()
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(times[len(times)/2]), "median-ms")
	// Nearest-rank 90th percentile.
	b.ReportMetric(ms(times[(len(times)*9+9)/10-1]), "p90-ms")
}
