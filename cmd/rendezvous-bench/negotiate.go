package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/peer"
	"github.com/rendezvous-rtc/rendezvous/signal"
)

// negResult is the result of the negotiate scenario.
type negResult struct {
	Scenario string `json:"scenario"`
	Pairs    int    `json:"pairs"` // negotiated concurrently, per round and mode
	Rounds   int    `json:"rounds"`
	// ThroughServer: peer.Join of the second member (dial + join) → the
	// data channel open at both ends; the first member joined before.
	ThroughServer dist `json:"through_server"`
	// InProcess: the same pion negotiation (same API, loopback ICE,
	// trickled candidates, one data channel) with the SDP and candidates
	// handed over in-process: PeerConnections created → open at both ends.
	InProcess dist `json:"in_process"`
	// Negotiations per second: pairs / wall time of the concurrent batch,
	// averaged over the rounds.
	ServerPerSec    float64 `json:"through_server_per_s"`
	InProcessPerSec float64 `json:"in_process_per_s"`
	// MedianDiff is ThroughServer.P50 - InProcess.P50.
	MedianDiff float64 `json:"median_diff_ms"`
	Failures   int     `json:"failures"`
	FirstError string  `json:"first_error,omitempty"`
	Error      string  `json:"error,omitempty"`
}

func (r *negResult) print(w io.Writer) {
	fmt.Fprintf(w, "negotiate: %d pairs at once, %d rounds each way (data channel, loopback ICE)\n", r.Pairs, r.Rounds)
	fmt.Fprintf(w, "  through server  join→open %s; %.0f negotiations/s\n", r.ThroughServer, r.ServerPerSec)
	fmt.Fprintf(w, "  in-process      %s; %.0f negotiations/s\n", r.InProcess, r.InProcessPerSec)
	fmt.Fprintf(w, "  median difference %.3f ms (server − in-process)\n", r.MedianDiff)
	if r.Failures > 0 {
		fmt.Fprintf(w, "  FAILURES        %d (first: %s)\n", r.Failures, r.FirstError)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  ERROR           %s\n", r.Error)
	}
}

const benchLabel = "bench"

// runNegotiate alternates, -rounds times, a batch of -pairs in-process
// negotiations and a batch of -pairs negotiations through the server (with
// the peer package), all pairs of a batch at once.
func runNegotiate(ctx context.Context, o *options, log io.Writer) (*negResult, error) {
	if o.pairs < 1 || o.rounds < 1 {
		return nil, fmt.Errorf("-pairs and -rounds must be at least 1")
	}
	d, err := newDialers(o.urls, o.sourceIPs)
	if err != nil {
		return nil, err
	}
	api, err := peer.LoopbackAPI()
	if err != nil {
		return nil, err
	}
	res := &negResult{Scenario: "negotiate", Pairs: o.pairs, Rounds: o.rounds}
	var srvLat, inLat []int64
	var srvRate, inRate float64
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Failures++
		if res.FirstError == "" {
			res.FirstError = err.Error()
		}
	}
	prefix := "rvb-neg-" + runID() + "-"
	for round := 0; round < o.rounds && ctx.Err() == nil; round++ {
		fmt.Fprintf(log, "round %d: %d in-process negotiations…\n", round+1, o.pairs)
		lat, wall := batch(ctx, o.pairs, func(ctx context.Context, i int) (time.Duration, func(), error) {
			return inProcessPair(ctx, api)
		}, fail)
		inLat = append(inLat, lat...)
		inRate += float64(o.pairs) / wall.Seconds()

		fmt.Fprintf(log, "round %d: %d negotiations through the server…\n", round+1, o.pairs)
		lat, wall = batch(ctx, o.pairs, func(ctx context.Context, i int) (time.Duration, func(), error) {
			return serverPair(ctx, d, api, fmt.Sprintf("%s%d-%d", prefix, round, i), 2*i)
		}, fail)
		srvLat = append(srvLat, lat...)
		srvRate += float64(o.pairs) / wall.Seconds()
	}
	res.ThroughServer = summarize(srvLat)
	res.InProcess = summarize(inLat)
	res.ServerPerSec = round1(srvRate / float64(o.rounds))
	res.InProcessPerSec = round1(inRate / float64(o.rounds))
	res.MedianDiff = round3(res.ThroughServer.P50 - res.InProcess.P50)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.Failures > 0 {
		return res, fmt.Errorf("%d negotiations failed", res.Failures)
	}
	return res, nil
}

// batch runs n negotiations at once and returns the latencies of those
// that succeeded and the wall time of the batch. Each negotiation's
// cleanup runs after the whole batch, so that closing does not overlap
// the measurement.
func batch(ctx context.Context, n int, one func(context.Context, int) (time.Duration, func(), error), fail func(error)) ([]int64, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	lat := make([]int64, n)
	cleanups := make([]func(), n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			d, cleanup, err := one(ctx, i)
			cleanups[i] = cleanup
			if err != nil {
				fail(err)
				lat[i] = -1
				return
			}
			lat[i] = int64(d)
		}(i)
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	var cw sync.WaitGroup
	for _, c := range cleanups {
		if c != nil {
			cw.Add(1)
			go func() { defer cw.Done(); c() }()
		}
	}
	cw.Wait()
	return slices.DeleteFunc(lat, func(v int64) bool { return v < 0 }), wall
}

// serverPair: "a" joins room (creating it), then "b" joins, which makes b
// the offering side; the time runs from b's Join call to the data channel
// open at both ends. idx is a's fleet index (b's is idx+1): each dials its
// node of -url (dialers.urlOf), so that with several nodes they differ.
func serverPair(ctx context.Context, d *dialers, api *webrtc.API, room string, idx int) (time.Duration, func(), error) {
	cfg := func(id string, i int) peer.Config {
		return peer.Config{
			URL:          d.urlOf(i),
			Room:         room,
			ID:           id,
			Dial:         &signal.DialOptions{Dialer: d.ds[i%len(d.ds)]},
			API:          api,
			DataChannels: []peer.DataChannelConfig{{Label: benchLabel}},
		}
	}
	a, err := peer.Join(ctx, cfg("a", idx))
	if err != nil {
		return 0, nil, fmt.Errorf("join a: %w", err)
	}
	t0 := time.Now()
	b, err := peer.Join(ctx, cfg("b", idx+1))
	if err != nil {
		return 0, func() { _ = a.Close() }, fmt.Errorf("join b: %w", err)
	}
	cleanup := func() { _ = a.Close(); _ = b.Close() }
	errc := make(chan error, 2)
	go func() { _, err := a.WaitDataChannel(ctx, "b", benchLabel); errc <- err }()
	go func() { _, err := b.WaitDataChannel(ctx, "a", benchLabel); errc <- err }()
	for k := 0; k < 2; k++ {
		if err := <-errc; err != nil {
			return 0, cleanup, fmt.Errorf("room %s: %w", room, err)
		}
	}
	return time.Since(t0), cleanup, nil
}

// sigMsg is an in-process signaling message.
type sigMsg struct {
	sdp  *webrtc.SessionDescription
	cand *webrtc.ICECandidateInit
}

// inProcessPair negotiates two PeerConnections made by api with the offer,
// answer and trickled candidates handed over through channels, each side
// handling its messages in order on its own goroutine (as the peer package
// does); candidates that arrive before the remote description wait for it.
func inProcessPair(ctx context.Context, api *webrtc.API) (time.Duration, func(), error) {
	t0 := time.Now()
	offerer, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return 0, nil, err
	}
	answerer, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		_ = offerer.Close()
		return 0, nil, err
	}
	cleanup := func() { _ = offerer.Close(); _ = answerer.Close() }
	toOfferer, toAnswerer := make(chan sigMsg, 64), make(chan sigMsg, 64)
	open := make(chan struct{}, 2)
	errc := make(chan error, 2)
	trickle := func(pc *webrtc.PeerConnection, to chan sigMsg) {
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c == nil {
				return // end of candidates
			}
			init := c.ToJSON()
			select {
			case to <- sigMsg{cand: &init}:
			case <-ctx.Done():
			}
		})
	}
	trickle(offerer, toAnswerer)
	trickle(answerer, toOfferer)
	dc, err := offerer.CreateDataChannel(benchLabel, nil)
	if err != nil {
		return 0, cleanup, err
	}
	dc.OnOpen(func() { open <- struct{}{} })
	answerer.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnOpen(func() { open <- struct{}{} })
	})

	// handle runs one side's signaling loop until ctx ends.
	handle := func(pc *webrtc.PeerConnection, in chan sigMsg, out chan sigMsg) {
		var pending []webrtc.ICECandidateInit
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-in:
				if m.cand != nil {
					if pc.RemoteDescription() == nil {
						pending = append(pending, *m.cand)
					} else if err := pc.AddICECandidate(*m.cand); err != nil {
						errc <- err
						return
					}
					continue
				}
				if err := pc.SetRemoteDescription(*m.sdp); err != nil {
					errc <- err
					return
				}
				for _, c := range pending {
					if err := pc.AddICECandidate(c); err != nil {
						errc <- err
						return
					}
				}
				pending = nil
				if m.sdp.Type == webrtc.SDPTypeOffer {
					answer, err := pc.CreateAnswer(nil)
					if err == nil {
						err = pc.SetLocalDescription(answer)
					}
					if err != nil {
						errc <- err
						return
					}
					out <- sigMsg{sdp: &answer}
				}
			}
		}
	}
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	ctx = hctx
	go handle(offerer, toOfferer, toAnswerer)
	go handle(answerer, toAnswerer, toOfferer)
	offer, err := offerer.CreateOffer(nil)
	if err == nil {
		err = offerer.SetLocalDescription(offer)
	}
	if err != nil {
		return 0, cleanup, err
	}
	toAnswerer <- sigMsg{sdp: &offer}
	for k := 0; k < 2; k++ {
		select {
		case <-open:
		case err := <-errc:
			return 0, cleanup, fmt.Errorf("in-process negotiation: %w", err)
		case <-ctx.Done():
			return 0, cleanup, errors.New("in-process negotiation: data channel not open before the timeout")
		}
	}
	return time.Since(t0), cleanup, nil
}
