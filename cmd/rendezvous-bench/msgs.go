package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// msgResult is the result of the latency and throughput scenarios.
type msgResult struct {
	Scenario   string  `json:"scenario"`
	Pairs      int     `json:"pairs"`
	Senders    int     `json:"senders"`    // clients that send (2 per pair, or 1 with -oneway)
	BodyBytes  int     `json:"body_bytes"` // size of the data string
	Seconds    float64 `json:"seconds"`    // measured interval
	TargetRate float64 `json:"target_rate,omitempty"`
	Window     int     `json:"window,omitempty"`

	Sent      int64 `json:"sent"`
	Delivered int64 `json:"delivered"`
	Lost      int64 `json:"lost"`
	// Rate: latency: messages sent per second (achieved pacing);
	// throughput: messages delivered per second over the measured interval.
	Rate float64 `json:"rate"`
	// SendLagMax: latency: the largest delay of a send behind its schedule
	// (the generator's own lag; large values mean the generator is the
	// bottleneck).
	SendLagMax float64 `json:"send_lag_max_ms,omitempty"`
	Latency    dist    `json:"latency"`

	ServerCPU    float64   `json:"server_cpu_pct"` // % of one core; -1 without -pid
	GeneratorCPU float64   `json:"generator_cpu_pct"`
	OtherCPU     float64   `json:"other_cpu_pct"` // the rest of the machine; -1 without -pid
	Anomalies    anomalies `json:"anomalies"`
	Error        string    `json:"error,omitempty"`
}

func (r *msgResult) print(w io.Writer) {
	switch r.Scenario {
	case "latency":
		fmt.Fprintf(w, "latency: %d pairs, %d senders, %.0f messages/s total, %d-byte bodies, %.1f s\n", r.Pairs, r.Senders, r.TargetRate, r.BodyBytes, r.Seconds)
		fmt.Fprintf(w, "  sent %d (%.0f/s), delivered %d, lost %d; generator send lag max %.3f ms\n", r.Sent, r.Rate, r.Delivered, r.Lost, r.SendLagMax)
	case "throughput":
		fmt.Fprintf(w, "throughput: %d pairs, %d senders, window %d, %d-byte bodies, %.1f s measured\n", r.Pairs, r.Senders, r.Window, r.BodyBytes, r.Seconds)
		fmt.Fprintf(w, "  %.0f messages/s delivered; sent %d, delivered %d, lost %d\n", r.Rate, r.Sent, r.Delivered, r.Lost)
	}
	fmt.Fprintf(w, "  one-way latency %s\n", r.Latency)
	if r.ServerCPU >= 0 {
		fmt.Fprintf(w, "  CPU             server %.0f %%, generator %.0f %%, other processes %.0f %% of one core\n", r.ServerCPU, r.GeneratorCPU, r.OtherCPU)
	} else {
		fmt.Fprintf(w, "  CPU             generator %.0f %% of one core (server: give -pid)\n", r.GeneratorCPU)
	}
	fmt.Fprintf(w, "  anomalies       %s\n", r.Anomalies)
	if r.Error != "" {
		fmt.Fprintf(w, "  ERROR           %s\n", r.Error)
	}
}

// pairFleet connects and joins -pairs pairs.
// onMessage, when not nil, runs on a client's reader goroutine after each
// message it receives.
func pairFleet(ctx context.Context, o *options, log io.Writer, onMessage func(*client)) (*fleet, error) {
	if o.pairs < 1 {
		return nil, fmt.Errorf("-pairs must be at least 1")
	}
	f := newFleet(ctx, o, 2*o.pairs)
	f.r.onMessage = onMessage
	fmt.Fprintf(log, "connecting and joining %d pairs…\n", o.pairs)
	if err := f.connect(ctx); err != nil {
		f.release()
		return nil, err
	}
	if err := f.join(ctx); err != nil {
		f.release()
		return nil, err
	}
	return f, nil
}

// senders returns the clients that send: all, or the "a" of each pair
// with -oneway.
func (f *fleet) senders() []*client {
	if !f.o.oneway {
		return f.clients
	}
	var s []*client
	for i := 0; i < len(f.clients); i += 2 {
		s = append(s, f.clients[i])
	}
	return s
}

// runLatency sends message frames at a fixed total rate, spread evenly over
// time and over the senders, and measures one-way latency.
func runLatency(ctx context.Context, o *options, log io.Writer) (*msgResult, error) {
	if o.rate <= 0 {
		return nil, fmt.Errorf("-rate must be positive for the latency scenario")
	}
	f, err := pairFleet(ctx, o, log, nil)
	if err != nil {
		return nil, err
	}
	defer f.release()
	senders := f.senders()
	res := &msgResult{Scenario: "latency", Pairs: o.pairs, Senders: len(senders), BodyBytes: o.size, TargetRate: o.rate}
	if per := o.rate / float64(len(senders)); per > 50 {
		fmt.Fprintf(log, "note: %.0f messages/s per client is over the server's default -rate of 50/s\n", per)
	}

	// G pacing goroutines; goroutine g sends the k-th of its messages at
	// start + (k·G + g)/rate, round-robin over its share of the senders.
	G := max(1, min(o.pacers, len(senders)))
	total := int64(o.rate * o.duration.Seconds())
	interval := time.Duration(float64(time.Second) / o.rate)
	fmt.Fprintf(log, "sending %d messages at %.0f/s for %s…\n", total, o.rate, o.duration)
	cpu := startCPU(o.pid)
	start := time.Now().Add(10 * time.Millisecond)
	var wg sync.WaitGroup
	lags := make([]time.Duration, G)
	errs := make([]error, G)
	for g := 0; g < G; g++ {
		var mine []*client
		for i := g; i < len(senders); i += G {
			mine = append(mine, senders[i])
		}
		wg.Add(1)
		go func(g int, mine []*client) {
			defer wg.Done()
			for k, j := int64(g), 0; k < total; k += int64(G) {
				at := start.Add(time.Duration(k) * interval)
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				} else if -d > lags[g] {
					lags[g] = -d
				}
				if f.r.stop.Load() || ctx.Err() != nil {
					return
				}
				if err := mine[j].sendMessage(); err != nil {
					errs[g] = fmt.Errorf("send: %w", err)
					return
				}
				if j++; j == len(mine) {
					j = 0
				}
			}
		}(g, mine)
	}
	wg.Wait()
	sendDur := time.Since(start)
	res.Sent = f.sentTotal()
	f.waitDelivered(ctx, res.Sent, o.drain)
	res.ServerCPU, res.GeneratorCPU, res.OtherCPU = cpu.stop()
	res.Delivered = f.r.delivered.Load()
	f.close()
	res.Lost = res.Sent - res.Delivered
	res.Seconds = round3(sendDur.Seconds())
	res.Rate = round1(float64(res.Sent) / sendDur.Seconds())
	var lag time.Duration
	for _, l := range lags {
		lag = max(lag, l)
	}
	res.SendLagMax = ms(int64(lag))
	res.Latency = summarize(mergeLat(f.clients))
	res.Anomalies = f.anomalies()
	for _, e := range errs {
		if e != nil {
			return res, e
		}
	}
	return res, ctx.Err()
}

// runThroughput keeps -window messages in flight per sender: each sender
// sends window messages, then one more each time its partner receives
// one (the partner's reader sends it), for -duration after -warmup.
func runThroughput(ctx context.Context, o *options, log io.Writer) (*msgResult, error) {
	if o.window < 1 {
		return nil, fmt.Errorf("-window must be at least 1")
	}
	var sendErrOnce sync.Once
	var sendErr error
	var stop, closing *atomic.Bool
	// c received a message from its partner: the partner sends the next
	// one. With -oneway only the "b" clients receive.
	refill := func(c *client) {
		if stop.Load() {
			return
		}
		if err := c.partner.sendMessage(); err != nil && !closing.Load() {
			sendErrOnce.Do(func() { sendErr = err })
		}
	}
	f, err := pairFleet(ctx, o, log, refill)
	if err != nil {
		return nil, err
	}
	defer f.release()
	stop, closing = &f.r.stop, &f.r.closing
	senders := f.senders()
	res := &msgResult{Scenario: "throughput", Pairs: o.pairs, Senders: len(senders), BodyBytes: o.size, Window: o.window}
	fmt.Fprintf(log, "running %d senders with %d messages in flight each: %s warm-up, %s measured…\n", len(senders), o.window, o.warmup, o.duration)
	err = parallel(ctx, len(senders), 4, func(i int) error {
		for k := 0; k < o.window; k++ {
			if err := senders[i].sendMessage(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("send: %w", err)
	}
	sleep(ctx, o.warmup)
	cpu := startCPU(o.pid)
	d0, t0 := f.r.delivered.Load(), time.Now()
	sleep(ctx, o.duration)
	d1, t1 := f.r.delivered.Load(), time.Now()
	res.ServerCPU, res.GeneratorCPU, res.OtherCPU = cpu.stop()
	f.r.stop.Store(true)
	// The readers may be inside a refill; sent is final once each sender's
	// lock has been taken after stop, and the in-flight ones drain.
	time.Sleep(10 * time.Millisecond)
	res.Sent = f.sentTotal()
	f.waitDelivered(ctx, res.Sent, o.drain)
	res.Sent = f.sentTotal()
	res.Delivered = f.r.delivered.Load()
	f.close()
	res.Lost = res.Sent - res.Delivered
	res.Seconds = round3(t1.Sub(t0).Seconds())
	res.Rate = round1(float64(d1-d0) / t1.Sub(t0).Seconds())
	res.Latency = summarize(mergeLat(f.clients))
	res.Anomalies = f.anomalies()
	if sendErr != nil && ctx.Err() == nil {
		return res, fmt.Errorf("send: %w", sendErr)
	}
	return res, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
