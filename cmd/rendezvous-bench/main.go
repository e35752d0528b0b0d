// Command rendezvous-bench is a load generator for the Rendezvous signaling
// server (protocol v1). It targets loopback only (127.0.0.0/8), is bounded
// in time (-timeout) and stops by itself.
//
// Usage:
//
//	rendezvous-bench SCENARIO [flags]
//
// Scenarios:
//
//	mem         -n clients connect and join -n/2 rooms of two; server RSS
//	            before/after (-pid, or found by the listening port), KB per
//	            joined connection, connects/s, joins/s, join latency; then
//	            one message per room checks that every room still relays.
//	latency     -pairs pairs send ~300-byte message frames to each other at
//	            -rate messages/s in total, paced evenly; sent, delivered,
//	            lost, one-way latency p50/p90/p99/max.
//	throughput  -pairs pairs, -window messages in flight per sender, for
//	            -duration after -warmup; delivered messages/s. Run the
//	            server with -rate 0 (no rate limit) for this one.
//	negotiate   -pairs pairs of WebRTC peers (pion) join rooms and open a
//	            data channel through the server, concurrently; join →
//	            data-channel-open p50/p99 and negotiations/s, against the
//	            same negotiation with SDP/ICE exchanged in-process.
//	abuse       -attack NAME (noack, held, nojoin, fragment, pingflood,
//	            tokenflood, rateflood, idlehttp, slowbody, or all): hostile
//	            clients for a bounded time while victim pairs in other
//	            rooms measure relay round trips; the server's heap, RSS and
//	            connections (from its /metrics) before, at the peak and
//	            after; how many attackers the server still held past the
//	            timeout that should end them, and how it ended them.
//
// Each prints a human summary; with -json, stdout gets one JSON line and
// the summary goes to stderr.
//
// # Several nodes
//
// -url takes several URLs (comma-separated, or the flag repeated): the
// nodes of a cluster sharing rooms. Member m (0: "a", 1: "b") of room r
// dials URL (r+m) mod N, so that with N ≥ 2 the two members of a room are
// on different nodes and every node gets the same share of the clients;
// attackers of a room of their own take the nodes in turn. Figures read
// from /metrics (abuse) are summed over the distinct host:port of the
// URLs; RSS and CPU (-pid) are of one process, and mem's KB per connection
// then divides by the connections on the nodes that process listens for.
//
// # Open files and ports
//
// Every client is a socket in this process and one in the server: for
// large -n raise the open-files limit of both, e.g. `ulimit -n 200000` in
// the shells that start them (as root, ulimit -Hn can be raised too; check
// fs.nr_open). The tool raises its own soft limit to the hard limit (and,
// when it needs more and may, the hard limit too). One source address has
// only ~28k ephemeral ports towards one server address, so clients are
// spread over 127.0.0.2 … 127.0.0.(1+N) with -source-ips N. The default,
// 100, also keeps each address under the server's per-address limits
// (1000 open connections, 200 upgrades/s with a burst of 400) with up to
// 50,000 clients connecting at the 8,000–16,000/s the tool reaches.
//
// # Pinning
//
// On a small machine run the server and the generator on different cores,
// so that they do not steal each other's CPU:
//
//	taskset -c 0 rendezvous -addr 127.0.0.1:2013 2>/tmp/rv.log &
//	taskset -c 1 rendezvous-bench latency
//
// Go sizes GOMAXPROCS to the CPUs a process may use, so each then runs
// with GOMAXPROCS=1. The summary reports the CPU each side used (the
// server's when its pid is known): a generator at ~100 % means the number
// measures the generator, not the server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	ossignal "os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `rendezvous-bench: load generator for the Rendezvous signaling server (loopback only).

Usage:
  rendezvous-bench SCENARIO [flags]      (or -scenario SCENARIO)

Scenarios:
  mem         -n clients join -n/2 rooms of two: server KB per joined connection
              (needs -pid or a local server), connects/s, joins/s, join latency;
              then one message per room checks every room still relays
  latency     -pairs pairs exchange ~300-byte messages at -rate msg/s in total:
              sent, delivered, lost, one-way latency p50/p90/p99/max
  throughput  -pairs pairs, -window messages in flight per sender: delivered msg/s
              (run the server with -rate 0 for this one)
  negotiate   -pairs pairs of WebRTC peers join and open a data channel through
              the server vs. the same negotiation in-process: join→open p50/p99
  abuse       -attack NAME: hostile clients for a bounded time while victim pairs
              in other rooms measure relay round trips (p50/p99); the server's
              heap/RSS/connections from its /metrics before, at the peak, after;
              attackers still held past the server's timeout; how it ended them.
              NAME: noack, held, nojoin, fragment, pingflood, tokenflood,
              rateflood, idlehttp, slowbody, or all (each in turn). Give the
              server's timeouts (-join-timeout, …) as they were set on it.

Several nodes (a cluster sharing rooms): -url A,B,… (or -url A -url B).
Member m (0, 1) of room r dials URL (r+m) mod N: a room's two members are
on different nodes, the nodes share the clients evenly. abuse sums the
/metrics figures over the nodes' distinct host:port; RSS and CPU are of the
one -pid process (default: the one on the first URL's port), and mem's KB
per connection divides by the connections on that process's nodes.

Open files: each client is a socket here and one in the server. For large -n
raise the limit of both processes first, e.g. 'ulimit -n 200000' (root may
raise the hard limit: 'ulimit -Hn 200000'). This tool raises its own soft limit
to the hard limit by itself. Clients are spread over -source-ips loopback
source addresses (127.0.0.2 …): one address has only ~28k ports, and the
server limits connections (1000) and upgrades (200/s) per address.

Pinning (2-core machine): server and generator on different cores, e.g.
  taskset -c 0 rendezvous 2>/tmp/rv.log &
  taskset -c 1 rendezvous-bench throughput

Examples:
  rendezvous-bench mem -n 10000
  rendezvous-bench latency -pairs 500 -rate 10000 -duration 10s
  rendezvous-bench throughput -pairs 500 -window 8 -duration 10s   (server: -rate 0)
  rendezvous-bench mem -n 50000 -timeout 10m
  rendezvous-bench latency -url ws://127.0.0.1:2013/ws,ws://127.0.0.1:2014/ws   (two nodes)
  rendezvous-bench negotiate -pairs 20
  rendezvous-bench abuse -attack all -join-timeout 5s -message-timeout 5s \
      -idle-timeout 5s -read-timeout 5s -resume-window 5s -auth-secret S
      (server: the same flags, e.g. rendezvous -join-timeout 5s … -auth-secret S)

Flags:
`

type options struct {
	scenario    string
	urls        []string // -url: the server nodes, in order (see nodeOf)
	jsonOut     bool
	timeout     time.Duration
	sourceIPs   int
	pid         int
	concurrency int
	n           int
	pairs       int
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	window      int
	size        int
	drain       time.Duration
	settle      time.Duration
	oneway      bool
	pacers      int
	verify      bool
	rounds      int
	hold        time.Duration
	rssPoll     time.Duration // mem: interval of the RSS readings; abuse: of the /metrics readings (tests shorten them)

	// abuse
	attack         string
	attackRate     float64
	attackIPs      int
	victims        int
	baseline       time.Duration
	grace          time.Duration
	maxP99         time.Duration
	authSecret     string
	joinTimeout    time.Duration
	messageTimeout time.Duration
	readTimeout    time.Duration
	idleTimeout    time.Duration
	resumeWindow   time.Duration
}

func newFlagSet(stderr io.Writer) (*flag.FlagSet, *options) {
	o := &options{rssPoll: 500 * time.Millisecond}
	fs := flag.NewFlagSet("rendezvous-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenario, "scenario", "", "scenario: mem, latency, throughput, negotiate or abuse (or give it as the first argument)")
	o.urls = []string{"ws://127.0.0.1:2013/ws"}
	fs.Var(&urlFlag{list: &o.urls}, "url", "server WebSocket `URLs` (loopback only), comma-separated, or repeat the flag: the nodes of a cluster;\n"+
		"member m (0, 1) of room r dials URL (r+m) mod N, so that with N ≥ 2 a room's members are on different nodes")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON line on stdout (the summary goes to stderr)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "upper bound of the whole run")
	fs.IntVar(&o.sourceIPs, "source-ips", 100, "spread clients over this many source addresses 127.0.0.2… (~28k connections each; the server allows 1000 connections and 200 upgrades/s per address)")
	fs.IntVar(&o.pid, "pid", 0, "server process id, for RSS and CPU (0: look for the process listening on the port of the first -url; -1: none); one process, also with several -url nodes")
	fs.IntVar(&o.concurrency, "concurrency", 64, "connects and joins in flight at once")
	fs.IntVar(&o.n, "n", 10000, "mem: number of client connections; abuse: attackers (noack, held: pairs), default per attack")
	fs.IntVar(&o.pairs, "pairs", 500, "latency, throughput: number of pairs (negotiate: default 20)")
	fs.Float64Var(&o.rate, "rate", 10000, "latency: total messages per second over all senders; abuse: each victim pair's round trips per second (default 40)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "latency: sending time; throughput: measured time; abuse: attack time (an attack with a timeout goes on until the server has ended its targets, at most timeout + -grace after the last began)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "throughput: time before measuring")
	fs.IntVar(&o.window, "window", 8, "throughput: messages in flight per sender")
	fs.IntVar(&o.size, "size", 300, "message body (data string) `bytes`; abuse: attack message, fragment or token bytes, default per attack")
	fs.DurationVar(&o.drain, "drain", 2*time.Second, "how long to wait for the last messages; what has not arrived by then is lost")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "mem: pause after the last join before reading the server's RSS; abuse: after the attack, before the 'after' figures")
	fs.BoolVar(&o.oneway, "oneway", false, "latency, throughput: only the first member of each pair sends (default: both send to each other)")
	fs.IntVar(&o.pacers, "pacers", 4, "latency: sender goroutines sharing the pacing")
	fs.DurationVar(&o.hold, "hold", 0, "mem: keep the connections open this long after measuring (e.g. to take a heap profile of the server)")
	fs.IntVar(&o.rounds, "rounds", 3, "negotiate: batches of -pairs negotiations, each way")
	fs.BoolVar(&o.verify, "verify", true, "mem: after measuring, send one message per room and count deliveries")
	fs.StringVar(&o.attack, "attack", "", "abuse: the attack: "+attackNames()+", or all")
	fs.Float64Var(&o.attackRate, "attack-rate", -1, "abuse: the attackers' rate per second in all (messages, pings or joins); 0: as fast as they can; -1: the attack's default")
	fs.IntVar(&o.attackIPs, "attack-ips", 0, "abuse: the attackers dial from the first N of the -source-ips addresses; 0: the attack's default (floods: 1, a hostile host that the server's per-address limits meet; the others: all)")
	fs.IntVar(&o.victims, "victims", 4, "abuse: victim pairs measuring round trips (-rate each), each in a room of its own")
	fs.DurationVar(&o.baseline, "baseline", 2*time.Second, "abuse: the victim's measuring time before each attack")
	fs.DurationVar(&o.grace, "grace", 3*time.Second, "abuse: how long past the server's timeout an attacker may stay before it counts as held")
	fs.DurationVar(&o.maxP99, "max-p99", 2*time.Millisecond, "abuse: the victim's round-trip p99 a flood (pingflood, tokenflood, rateflood) may cause")
	fs.StringVar(&o.authSecret, "auth-secret", "", "abuse: the server's -auth-secret, to mint join tokens (tokenflood needs it)")
	fs.DurationVar(&o.joinTimeout, "join-timeout", 30*time.Second, "abuse: the server's -join-timeout (nojoin)")
	fs.DurationVar(&o.messageTimeout, "message-timeout", 10*time.Second, "abuse: the server's -message-timeout (fragment)")
	fs.DurationVar(&o.readTimeout, "read-timeout", 10*time.Second, "abuse: the server's -read-timeout (slowbody)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 60*time.Second, "abuse: the server's -idle-timeout (idlehttp)")
	fs.DurationVar(&o.resumeWindow, "resume-window", 15*time.Second, "abuse: the server's -resume-window (held)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs, o
}

func main() {
	ctx, stop := ossignal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(realMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs one scenario and returns the exit code: 0, 1 when the run
// failed or lost messages, 2 for usage errors.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := newFlagSet(stderr)
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.scenario, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 && o.scenario == "" {
		o.scenario = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rendezvous-bench: unexpected argument %q (see -h)\n", fs.Arg(0))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.scenario == "negotiate" && !set["pairs"] {
		o.pairs = 20
	}
	if o.scenario == "abuse" {
		// Per-attack defaults (see attackSpecs); the victim's rate stays
		// under the server's default -rate of 50/s.
		if !set["n"] {
			o.n = 0
		}
		if !set["size"] {
			o.size = 0
		}
		if !set["rate"] {
			o.rate = 40
		}
		if _, err := pickAttacks(o.attack); err != nil {
			fmt.Fprintf(stderr, "rendezvous-bench: abuse: %v\n", err)
			return 2
		}
	}
	if o.scenario == "" {
		fmt.Fprintf(stderr, "rendezvous-bench: name a scenario: mem, latency, throughput, negotiate or abuse (see -h)\n")
		return 2
	}

	log := stderr
	out := stdout
	if o.jsonOut {
		out = stderr
	}
	need := uint64(1024)
	switch o.scenario {
	case "mem":
		need += uint64(o.n)
	case "abuse":
		need += uint64(abuseSockets(o))
	default:
		need += 2 * uint64(o.pairs)
	}
	if lim := raiseNoFile(need); lim < need {
		fmt.Fprintf(stderr, "warning: open-files limit %d is below the %d this run needs; raise it (ulimit -n) or the run will fail\n", lim, need)
	}
	if o.pid == 0 && o.scenario != "negotiate" {
		if u, err := url.Parse(o.urls[0]); err == nil {
			if p, err := strconv.Atoi(u.Port()); err == nil {
				o.pid = findServerPID(p)
			} else if u.Port() == "" {
				o.pid = findServerPID(80)
			}
		}
		if o.pid > 0 {
			fmt.Fprintf(log, "server: pid %d (listening on the port of %s)\n", o.pid, o.urls[0])
		}
	}
	pinHint(log)

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var (
		res interface{ print(io.Writer) }
		err error
		bad bool
	)
	switch o.scenario {
	case "mem":
		var r *memResult
		r, err = runMem(ctx, o, log)
		if r != nil {
			if err != nil {
				r.Error = err.Error()
			}
			bad = r.RelaySent != r.RelayDelivered || !r.Anomalies.none()
			res = r
		}
	case "latency", "throughput":
		var r *msgResult
		if o.scenario == "latency" {
			r, err = runLatency(ctx, o, log)
		} else {
			r, err = runThroughput(ctx, o, log)
		}
		if r != nil {
			if err != nil {
				r.Error = err.Error()
			}
			bad = r.Lost != 0 || !r.Anomalies.none()
			res = r
		}
	case "negotiate":
		var r *negResult
		r, err = runNegotiate(ctx, o, log)
		if r != nil {
			if err != nil {
				r.Error = err.Error()
			}
			res = r
		}
	case "abuse":
		var r *abuseResult
		r, err = runAbuse(ctx, o, log)
		if r != nil {
			if err != nil {
				r.Error = err.Error()
			}
			bad = r.bad()
			res = r
		}
	default:
		fmt.Fprintf(stderr, "rendezvous-bench: unknown scenario %q: use mem, latency, throughput, negotiate or abuse\n", o.scenario)
		return 2
	}
	if res == nil {
		fmt.Fprintf(stderr, "rendezvous-bench: %s: %v\n", o.scenario, err)
		return 1
	}
	res.print(out)
	if o.jsonOut {
		b, _ := json.Marshal(res)
		fmt.Fprintf(stdout, "%s\n", b)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rendezvous-bench: %s: %v\n", o.scenario, err)
		return 1
	}
	if bad {
		return 1
	}
	return 0
}

// pinHint suggests pinning when this process may run on every CPU of a
// multi-core machine.
func pinHint(w io.Writer) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return
	}
	online := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		z := a
		var err2 error
		if ok {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 == nil && err2 == nil {
			online += z - a + 1
		}
	}
	if online > 1 && runtime.NumCPU() == online {
		fmt.Fprintf(w, "hint: generator and server share all %d CPUs; pin them apart for stable numbers, e.g.\n"+
			"  taskset -c 0 rendezvous …   and   taskset -c 1 rendezvous-bench …\n", online)
	}
}
