package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"time"
)

type memResult struct {
	Scenario    string  `json:"scenario"`
	Conns       int     `json:"conns"`
	Rooms       int     `json:"rooms"`
	PID         int     `json:"pid,omitempty"`
	RSSBeforeKB int64   `json:"rss_before_kb,omitempty"`
	RSSAfterKB  int64   `json:"rss_after_kb,omitempty"`
	KBPerConn   float64 `json:"kb_per_conn,omitempty"`
	// Nodes is the number of -url nodes; with several, the RSS is that
	// of the -pid process alone, and KB per connection divides by
	// PIDConns, the connections on the nodes it listens for.
	Nodes          int     `json:"nodes"`
	PIDConns       int     `json:"pid_conns,omitempty"`
	ConnectSeconds float64 `json:"connect_s"`
	ConnectsPerSec float64 `json:"connects_per_s"`
	JoinSeconds    float64 `json:"join_s"`
	JoinsPerSec    float64 `json:"joins_per_s"`
	JoinLatency    dist    `json:"join_latency"`
	// CPU in % of one core during the connect and join phases (server -1
	// without -pid).
	ConnectServerCPU    float64 `json:"connect_server_cpu_pct"`
	ConnectGeneratorCPU float64 `json:"connect_generator_cpu_pct"`
	JoinServerCPU       float64 `json:"join_server_cpu_pct"`
	JoinGeneratorCPU    float64 `json:"join_generator_cpu_pct"`
	ConnectOtherCPU     float64 `json:"connect_other_cpu_pct"`
	JoinOtherCPU        float64 `json:"join_other_cpu_pct"`
	// Relay check: after measuring, each room's "a" sends one message to
	// its "b".
	RelaySent      int64     `json:"relay_sent,omitempty"`
	RelayDelivered int64     `json:"relay_delivered,omitempty"`
	RoomsRelaying  int       `json:"rooms_relaying,omitempty"`
	Anomalies      anomalies `json:"anomalies"`
	Error          string    `json:"error,omitempty"`
}

// runMem connects -n clients, joins them to -n/2 rooms of two, waits for
// the server's RSS to settle and reports the memory per connection; then
// checks that every room still relays.
func runMem(ctx context.Context, o *options, log io.Writer) (*memResult, error) {
	n := o.n &^ 1
	if n < 2 {
		return nil, fmt.Errorf("-n must be at least 2")
	}
	d, err := newDialers(o.urls, o.sourceIPs)
	if err != nil {
		return nil, err
	}
	res := &memResult{Scenario: "mem", Conns: n, Rooms: n / 2, PID: o.pid, Nodes: len(d.nodes)}
	if o.pid > 0 {
		before, err := settledRSS(o.pid, o.rssPoll/2, 3*time.Second)
		if err != nil {
			return nil, fmt.Errorf("-pid %d: %w", o.pid, err)
		}
		res.RSSBeforeKB = before
		fmt.Fprintf(log, "server pid %d: RSS %d KB before connecting\n", o.pid, before)
	}
	f := newFleet(ctx, o, n)
	f.d = d
	defer f.release()

	fmt.Fprintf(log, "connecting %d clients from %d source addresses to %d server nodes…\n", n, o.sourceIPs, len(d.nodes))
	cpu := startCPU(o.pid)
	if err := f.connect(ctx); err != nil {
		return res, err
	}
	res.ConnectServerCPU, res.ConnectGeneratorCPU, res.ConnectOtherCPU = cpu.stop()
	res.ConnectSeconds = round3(f.connectDur.Seconds())
	res.ConnectsPerSec = round1(float64(n) / f.connectDur.Seconds())
	fmt.Fprintf(log, "connected in %.2f s; joining %d rooms…\n", f.connectDur.Seconds(), n/2)
	cpu = startCPU(o.pid)
	if err := f.join(ctx); err != nil {
		return res, err
	}
	res.JoinServerCPU, res.JoinGeneratorCPU, res.JoinOtherCPU = cpu.stop()
	res.JoinSeconds = round3(f.joinDur.Seconds())
	res.JoinsPerSec = round1(float64(n) / f.joinDur.Seconds())
	res.JoinLatency = summarize(f.joinLat)

	if o.pid > 0 {
		fmt.Fprintf(log, "all joined; letting the server settle %s, then reading RSS until stable…\n", o.settle)
		select {
		case <-time.After(o.settle):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		after, err := settledRSS(o.pid, o.rssPoll, 20*time.Second)
		if err != nil {
			return res, fmt.Errorf("-pid %d: %w", o.pid, err)
		}
		res.RSSAfterKB = after
		conns, known := pidConns(d, o.pid, n, findServerPID)
		if !known {
			fmt.Fprintf(log, "warning: pid %d listens on none of the -url ports (as /proc tells); KB per connection divides by all %d connections\n", o.pid, n)
		}
		res.PIDConns = conns
		res.KBPerConn = round2(float64(after-res.RSSBeforeKB) / float64(conns))
	}

	if o.verify {
		// Every room relays: each "a" sends one message to its "b".
		fmt.Fprintf(log, "relay check: one message per room…\n")
		err := parallel(ctx, n/2, 4, func(p int) error {
			return f.clients[2*p].sendMessage()
		})
		if err != nil {
			return res, fmt.Errorf("relay check: %w", err)
		}
		res.RelaySent = f.sentTotal()
		f.waitDelivered(ctx, res.RelaySent, o.drain)
		res.RelayDelivered = f.r.delivered.Load()
	}
	if o.hold > 0 {
		fmt.Fprintf(log, "holding %d connections for %s…\n", n, o.hold)
		sleep(ctx, o.hold)
	}
	f.close()
	if o.verify {
		for p := 0; p < n/2; p++ {
			if f.clients[2*p+1].recvd > 0 {
				res.RoomsRelaying++
			}
		}
	}
	res.Anomalies = f.anomalies()
	return res, nil
}

func (r *memResult) print(w io.Writer) {
	fmt.Fprintf(w, "mem: %d connections in %d rooms of two\n", r.Conns, r.Rooms)
	if r.PID > 0 {
		fmt.Fprintf(w, "  server RSS      %d KB → %d KB: %.2f KB per joined connection\n", r.RSSBeforeKB, r.RSSAfterKB, r.KBPerConn)
		if r.Nodes > 1 {
			fmt.Fprintf(w, "                  (pid %d only: %d of the %d connections, spread over %d nodes)\n", r.PID, r.PIDConns, r.Conns, r.Nodes)
		}
	} else {
		fmt.Fprintf(w, "  server RSS      not measured (give -pid, or run the server on this machine)\n")
	}
	fmt.Fprintf(w, "  connect         %.2f s, %.0f connections/s (CPU: server %.0f %%, generator %.0f %%, other %.0f %%)\n", r.ConnectSeconds, r.ConnectsPerSec, r.ConnectServerCPU, r.ConnectGeneratorCPU, r.ConnectOtherCPU)
	fmt.Fprintf(w, "  join            %.2f s, %.0f joins/s (CPU: server %.0f %%, generator %.0f %%, other %.0f %%)\n", r.JoinSeconds, r.JoinsPerSec, r.JoinServerCPU, r.JoinGeneratorCPU, r.JoinOtherCPU)
	fmt.Fprintf(w, "  join latency    %s\n", r.JoinLatency)
	if r.RelaySent > 0 {
		fmt.Fprintf(w, "  relay check     %d sent, %d delivered, %d of %d rooms relaying\n", r.RelaySent, r.RelayDelivered, r.RoomsRelaying, r.Rooms)
	}
	fmt.Fprintf(w, "  anomalies       %s\n", r.Anomalies)
	if r.Error != "" {
		fmt.Fprintf(w, "  ERROR           %s\n", r.Error)
	}
}

// pidConns is how many of the n fleet clients are connected to server
// process pid: with one -url node, all of them; with several, those whose
// node's port pid listens on (findPID, given a port, names the process
// listening there). known is false when pid listens on none of the ports
// (or /proc does not tell): then all n.
func pidConns(d *dialers, pid, n int, findPID func(port int) int) (conns int, known bool) {
	if len(d.nodes) == 1 {
		return n, true
	}
	on := make([]bool, len(d.nodes))
	for k, nd := range d.nodes {
		_, p, err := net.SplitHostPort(nd.host)
		if err != nil {
			continue
		}
		if port, err := strconv.Atoi(p); err == nil && findPID(port) == pid {
			on[k], known = true, true
		}
	}
	if !known {
		return n, false
	}
	for i := 0; i < n; i++ {
		if on[d.clientNode(i)] {
			conns++
		}
	}
	return conns, true
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
