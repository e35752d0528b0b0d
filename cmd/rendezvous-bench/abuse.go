package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// The abuse scenario: one attack (attacks.go) at a time against the
// server, while victim pairs in other rooms measure relay round trips;
// the server's memory and connections are read from its /metrics before,
// during and after, and the attackers record how and when the server ended
// them.

// attackSpec describes one attack.
type attackSpec struct {
	name string
	n    int     // default -n
	size int     // default -size (0: not used)
	rate float64 // default -attack-rate, in all (noack, held: per sender, times n)
	unit string  // what "sent" counts
	// flood: the victim's p99 is held to -max-p99, and the attackers come
	// from one source address (a hostile host coming back, which the
	// server's per-address limits meet) unless -attack-ips says otherwise.
	flood bool
	// timeout is the server setting that should end the targets, and its
	// flag (0, "": none).
	timeout func(o *options) (time.Duration, string)
	what    func(n, size int, rate float64) string
	run     func(ctx context.Context, e *attackEnv) error
}

func noTimeout(*options) (time.Duration, string) { return 0, "" }

// attackSpecs lists the attacks in the order of -attack all.
var attackSpecs = []*attackSpec{
	{name: "noack", n: 10, size: 64000, rate: 45, unit: "messages", timeout: noTimeout, run: attackNoack,
		what: func(n, size int, rate float64) string {
			return fmt.Sprintf("%d receivers that read everything but answer no ping (a ping and an unsolicited pong every %s keep them alive); partners send them %d-byte messages, %.0f/s in all", n, keepaliveEvery, size, rate)
		}},
	{name: "held", n: 10, size: 64000, rate: 45, unit: "messages", run: attackHeld,
		timeout: func(o *options) (time.Duration, string) { return o.resumeWindow, "-resume-window" },
		what: func(n, size int, rate float64) string {
			return fmt.Sprintf("%d receivers read and acknowledge %d-byte messages from their partners (%.0f/s in all), then drop without a close frame after a third of -duration; the partners keep sending to the held seats", n, size, rate)
		}},
	{name: "nojoin", n: 2000, unit: "", run: attackNojoin,
		timeout: func(o *options) (time.Duration, string) { return o.joinTimeout, "-join-timeout" },
		what: func(n, _ int, _ float64) string {
			return fmt.Sprintf("%d connections that never join (they answer pings)", n)
		}},
	{name: "fragment", n: 500, size: 64000, unit: "first fragments", run: attackFragment,
		timeout: func(o *options) (time.Duration, string) { return o.messageTimeout, "-message-timeout" },
		what: func(n, size int, _ float64) string {
			return fmt.Sprintf("%d joined connections that send the first %d-byte fragment of a text message, then only pongs", n, size)
		}},
	{name: "pingflood", n: 4, rate: 0, unit: "pings", flood: true, timeout: noTimeout, run: attackPingflood,
		what: func(n, _ int, rate float64) string {
			return fmt.Sprintf("%d joined connections sending empty pings, %s, and coming back when closed", n, rateText(rate))
		}},
	{name: "tokenflood", n: 50, size: 61440, rate: 2500, unit: "joins", flood: true, timeout: noTimeout, run: attackTokenflood,
		what: func(n, size int, rate float64) string {
			return fmt.Sprintf("%d connections sending joins with %d-byte badly signed tokens, %s, and coming back when closed", n, size, rateText(rate))
		}},
	{name: "rateflood", n: 1, size: 300, rate: 10000, unit: "messages", flood: true, timeout: noTimeout, run: attackRateflood,
		what: func(n, size int, rate float64) string {
			return fmt.Sprintf("%d joined connection(s) sending %d-byte messages, %s, and coming back when closed", n, size, rateText(rate))
		}},
	{name: "idlehttp", n: 500, unit: "", run: attackIdlehttp,
		timeout: func(o *options) (time.Duration, string) { return o.idleTimeout, "-idle-timeout" },
		what: func(n, _ int, _ float64) string {
			return fmt.Sprintf("%d HTTP keep-alive connections idle after one GET /healthz", n)
		}},
	{name: "slowbody", n: 500, unit: "body bytes", run: attackSlowbody,
		timeout: func(o *options) (time.Duration, string) { return o.readTimeout, "-read-timeout" },
		what: func(n, _ int, _ float64) string {
			return fmt.Sprintf("%d HTTP requests (POST /healthz, Content-Length %d) whose body comes at one byte per %s", n, slowBodyLength, slowBodyEvery)
		}},
}

func rateText(rate float64) string {
	if rate <= 0 {
		return "as fast as they can"
	}
	return fmt.Sprintf("%.0f/s in all", rate)
}

func attackNames() string {
	var s []string
	for _, sp := range attackSpecs {
		s = append(s, sp.name)
	}
	return strings.Join(s, ", ")
}

// pickAttacks returns the attacks -attack names.
func pickAttacks(name string) ([]*attackSpec, error) {
	if name == "all" {
		return attackSpecs, nil
	}
	for _, sp := range attackSpecs {
		if sp.name == name {
			return []*attackSpec{sp}, nil
		}
	}
	return nil, fmt.Errorf("-attack %q: use one of %s, or all", name, attackNames())
}

// attackParams resolves -n, -size and -attack-rate for sp (the options
// keep 0, 0 and -1 when they were not given).
func attackParams(o *options, sp *attackSpec) (n, size int, rate float64) {
	n, size, rate = o.n, o.size, o.attackRate
	if n <= 0 {
		n = sp.n
	}
	if size <= 0 {
		size = sp.size
	}
	if rate < 0 {
		rate = sp.rate
		if sp.name == "noack" || sp.name == "held" {
			rate *= float64(n)
		}
	}
	return n, size, rate
}

// abuseSockets is how many sockets the largest of the attacks opens at
// once, for the open-files limit.
func abuseSockets(o *options) int {
	specs, err := pickAttacks(o.attack)
	if err != nil {
		return 0
	}
	most := 0
	for _, sp := range specs {
		n, _, _ := attackParams(o, sp)
		if sp.name == "noack" || sp.name == "held" {
			n *= 2
		}
		most = max(most, n)
	}
	return most + 2*max(1, o.victims)
}

// memFig is a server figure before the attack, at its peak during the
// attack, and after it (once the attackers were closed and -settle
// passed).
type memFig struct {
	Before int64 `json:"before"`
	Peak   int64 `json:"peak"`
	After  int64 `json:"after"`
}

// victimResult is what the victim pairs saw.
type victimResult struct {
	Pairs     int       `json:"pairs"`
	Rate      float64   `json:"round_trips_per_s"` // per pair
	Baseline  dist      `json:"baseline_rtt"`      // before the attack
	Attack    dist      `json:"attack_rtt"`        // during it
	Sent      int64     `json:"sent"`
	Completed int64     `json:"completed"`
	Lost      int64     `json:"lost"`
	Anomalies anomalies `json:"anomalies"`
	Error     string    `json:"error,omitempty"`
}

// attackResult is the result of one attack.
type attackResult struct {
	Attack      string  `json:"attack"`
	What        string  `json:"what"`
	N           int     `json:"n"`
	Size        int     `json:"size,omitempty"`
	Rate        float64 `json:"attack_rate,omitempty"` // what was asked, in all; 0: as fast as possible
	Seconds     float64 `json:"seconds"`
	Timeout     float64 `json:"timeout_s,omitempty"` // the server setting that should end the targets
	TimeoutFlag string  `json:"timeout_flag,omitempty"`
	Grace       float64 `json:"grace_s,omitempty"`
	Unit        string  `json:"unit,omitempty"`
	Sent        int64   `json:"sent"` // in Unit
	SentRate    float64 `json:"sent_per_s"`

	Victim victimResult `json:"victim"`

	HeapInuse    memFig           `json:"heap_inuse_bytes"`
	HeapAlloc    memFig           `json:"heap_alloc_bytes"`
	RSS          memFig           `json:"rss_bytes"`
	ServerConns  memFig           `json:"server_conns_open"`
	ServerClosed map[string]int64 `json:"server_closed,omitempty"` // the server's connections_closed_total during the attack, by reason
	MetricsError string           `json:"metrics_error,omitempty"`

	Conns          int            `json:"conns"` // attacker connections opened
	Refused        map[string]int `json:"upgrades_refused,omitempty"`
	DialErrors     int            `json:"dial_errors,omitempty"`
	FirstDialError string         `json:"first_dial_error,omitempty"`
	// Targets are the attackers the server should end (noack: the
	// receivers; held: the dropped seats; floods: every connection).
	Targets         int            `json:"targets"`
	EndedByServer   int            `json:"ended_by_server"`
	OpenAtEnd       int            `json:"open_at_end"`
	HeldPastTimeout int            `json:"held_past_timeout"` // open, or ended later than timeout + grace after they began
	EndedAfter      dist           `json:"ended_after"`       // from a target's start to its end by the server
	Ended           map[string]int `json:"ended,omitempty"`   // how the server ended attackers (or released seats)
	Replies         map[string]int `json:"replies,omitempty"` // what the flood attackers read, by type and code
	Pongs           int64          `json:"pongs,omitempty"`   // pongs the attackers read (pingflood: pings the server answered)
	AttackIPs       int            `json:"attack_ips"`        // source addresses the attackers dialled from

	ServerCPU    float64  `json:"server_cpu_pct"`
	GeneratorCPU float64  `json:"generator_cpu_pct"`
	OtherCPU     float64  `json:"other_cpu_pct"`
	Problems     []string `json:"problems,omitempty"`
	Skipped      string   `json:"skipped,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// abuseResult is the result of the abuse scenario: one attack, or all.
type abuseResult struct {
	Scenario string          `json:"scenario"`
	Attacks  []*attackResult `json:"attacks"`
	Error    string          `json:"error,omitempty"`
}

// bad reports whether any attack failed or found a problem.
func (r *abuseResult) bad() bool {
	for _, a := range r.Attacks {
		if a.Error != "" || len(a.Problems) > 0 {
			return true
		}
	}
	return false
}

// runAbuse runs -attack (one, or all in turn).
func runAbuse(ctx context.Context, o *options, log io.Writer) (*abuseResult, error) {
	specs, err := pickAttacks(o.attack)
	if err != nil {
		return nil, err
	}
	if o.rate <= 0 {
		return nil, errors.New("-rate (each victim pair's round trips per second) must be positive")
	}
	if o.sourceIPs >= 250 {
		return nil, errors.New("-source-ips: at most 249 for abuse (the victim dials from the next address)")
	}
	// The attackers dial from -source-ips addresses, the victim from the
	// next one: the server's per-address limits on the attackers never
	// touch the victim.
	all, err := newDialers(o.urls, o.sourceIPs+1)
	if err != nil {
		return nil, err
	}
	vd := all.subset(o.sourceIPs, o.sourceIPs+1)
	mu := metricsURLs(all.nodes)
	token := ""
	if o.authSecret != "" {
		if token, err = signal.MintToken([]byte(o.authSecret), "*", "", 0, o.timeout+time.Hour); err != nil {
			return nil, err
		}
	}
	res := &abuseResult{Scenario: "abuse"}
	for _, sp := range specs {
		if ctx.Err() != nil {
			break
		}
		if sp.name == "tokenflood" && o.authSecret == "" {
			if len(specs) == 1 {
				return nil, errors.New("tokenflood: start the server with -auth-secret S and give this tool the same -auth-secret S")
			}
			fmt.Fprintf(log, "abuse tokenflood: skipped (give the server's -auth-secret)\n")
			res.Attacks = append(res.Attacks, &attackResult{Attack: sp.name, Skipped: "needs -auth-secret (the server's)"})
			continue
		}
		ips := o.sourceIPs
		if o.attackIPs > 0 {
			ips = min(o.attackIPs, o.sourceIPs)
		} else if sp.flood {
			ips = 1
		}
		res.Attacks = append(res.Attacks, runAttack(ctx, o, log, sp, all.subset(0, ips), vd, token, mu))
	}
	return res, ctx.Err()
}

// runAttack runs one attack: the victim's baseline, the attack, then the
// figures after it.
func runAttack(ctx context.Context, o *options, log io.Writer, sp *attackSpec, d, vd *dialers, token string, mu []string) *attackResult {
	n, size, rate := attackParams(o, sp)
	timeout, flag := sp.timeout(o)
	r := &attackResult{Attack: sp.name, What: sp.what(n, size, rate), N: n, Size: size, Rate: rate, Unit: sp.unit,
		Timeout: timeout.Seconds(), TimeoutFlag: flag}
	if timeout > 0 {
		r.Grace = o.grace.Seconds()
	}
	r.AttackIPs = len(d.ds)
	fmt.Fprintf(log, "abuse %s: %s\n", sp.name, r.What)
	v, err := startVictim(ctx, o, vd, token)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	fmt.Fprintf(log, "  %d victim pairs: %s of baseline at %.0f round trips/s each…\n", o.victims, o.baseline, o.rate)
	sleep(ctx, o.baseline)

	before, merr := scrapeAll(ctx, mu)
	var poll *peakPoller
	if merr != nil {
		r.MetricsError = merr.Error()
		fmt.Fprintf(log, "  warning: no server figures: %v\n", merr)
	} else {
		poll = pollPeak(ctx, mu, o.rssPoll, before)
	}
	sw := newSwarm(ctx, d)
	e := &attackEnv{o: o, log: log, sw: sw, room: "rvb-" + runID() + "-" + sp.name + "-", token: token,
		n: n, size: size, rate: rate}
	if timeout > 0 {
		fmt.Fprintf(log, "  attacking for %s, or until the server has ended every attacker %s (%s) + %s after it began…\n", o.duration, flag, timeout, o.grace)
	} else {
		fmt.Fprintf(log, "  attacking for %s…\n", o.duration)
	}
	cpu := startCPU(o.pid)
	v.phase.Store(1)
	t0 := time.Now()
	e.end = t0.Add(o.duration)
	aerr := sp.run(ctx, e)
	r.Seconds = round3(time.Since(t0).Seconds())
	v.phase.Store(2)
	r.ServerCPU, r.GeneratorCPU, r.OtherCPU = cpu.stop()
	if poll != nil {
		peak := poll.stop()
		if end, err := scrapeAll(ctx, mu); err == nil {
			peak = peakOf(peak, end)
			r.ServerClosed = map[string]int64{}
			for k, v := range end.Closed {
				if dv := v - before.Closed[k]; dv > 0 {
					r.ServerClosed[k] = dv
				}
			}
		}
		r.HeapInuse = memFig{Before: before.HeapInuse, Peak: peak.HeapInuse}
		r.HeapAlloc = memFig{Before: before.HeapAlloc, Peak: peak.HeapAlloc}
		r.RSS = memFig{Before: before.RSS, Peak: peak.RSS}
		r.ServerConns = memFig{Before: before.ConnsOpen, Peak: peak.ConnsOpen}
	}
	sw.release()
	sw.tally(r, timeout, o.grace)
	r.Sent = e.sent.Load()
	if r.Seconds > 0 {
		r.SentRate = round1(float64(r.Sent) / r.Seconds)
	}
	r.Victim = v.stop(ctx, o.drain)
	if poll != nil {
		fmt.Fprintf(log, "  attackers closed; settling %s…\n", o.settle)
		sleep(ctx, o.settle)
		if after, err := scrapeAll(ctx, mu); err == nil {
			r.HeapInuse.After, r.HeapAlloc.After, r.RSS.After, r.ServerConns.After = after.HeapInuse, after.HeapAlloc, after.RSS, after.ConnsOpen
		}
	}
	if aerr != nil {
		r.Error = aerr.Error()
	} else if ctx.Err() != nil {
		r.Error = ctx.Err().Error()
	}
	r.Problems = judge(r, sp, o)
	return r
}

// judge lists what breaks the bar of the abuse run: a victim that lost
// round trips or was disturbed, attackers held past their timeout, a
// flood that pushed the victim's p99 over -max-p99, tokens the server did
// not check.
func judge(r *attackResult, sp *attackSpec, o *options) []string {
	var p []string
	v := r.Victim
	if v.Error != "" {
		p = append(p, "victim: "+v.Error)
	}
	if v.Lost > 0 {
		p = append(p, fmt.Sprintf("victim lost %d of %d round trips", v.Lost, v.Sent))
	}
	if !v.Anomalies.none() {
		p = append(p, "victim: "+v.Anomalies.String())
	}
	if v.Attack.N == 0 {
		p = append(p, "victim completed no round trip during the attack")
	}
	if r.Timeout > 0 && r.HeldPastTimeout > 0 {
		p = append(p, fmt.Sprintf("%d of %d attackers still held %s past the server's %s %s", r.HeldPastTimeout, r.Targets,
			o.grace, r.TimeoutFlag, time.Duration(r.Timeout*float64(time.Second))))
	}
	if sp.flood && v.Attack.N > 0 && v.Attack.P99 > ms(int64(o.maxP99)) {
		p = append(p, fmt.Sprintf("victim p99 %.3f ms during the attack, over -max-p99 %s", v.Attack.P99, o.maxP99))
	}
	if sp.name == "tokenflood" && r.Replies["created"]+r.Replies["joined"] > 0 {
		p = append(p, fmt.Sprintf("the server accepted %d joins with bad tokens: is it running with -auth-secret?", r.Replies["created"]+r.Replies["joined"]))
	}
	return p
}

// victim is -victims pairs, each in a room of its own: "a" sends messages
// at -rate per second, "b" echoes each back, and a's latencies are round
// trips, kept apart for the baseline and the attack. More pairs give more
// samples: the server limits each connection's rate.
type victim struct {
	f         *fleet
	pairs     int
	rate      float64      // per pair
	phase     atomic.Int32 // 0 baseline, 1 attack, 2 after (not recorded)
	completed atomic.Int64 // round trips back at a

	mu  sync.Mutex
	rtt [2][]int64 // by phase

	stopc   chan struct{}
	paced   chan struct{}
	sendErr error // set by pace before paced closes
}

func startVictim(ctx context.Context, o *options, d *dialers, token string) (*victim, error) {
	vo := *o
	vo.size = 300
	vo.concurrency = 2
	pairs := max(1, o.victims)
	f := newFleet(ctx, &vo, 2*pairs)
	f.d, f.token = d, token
	v := &victim{f: f, pairs: pairs, rate: o.rate, stopc: make(chan struct{}), paced: make(chan struct{})}
	f.r.onMessage = v.onMessage
	if err := f.connect(ctx); err != nil {
		f.release()
		return nil, fmt.Errorf("victim: %w", err)
	}
	if err := f.join(ctx); err != nil {
		f.release()
		hint := ""
		if strings.Contains(err.Error(), "answered error unauthorized") {
			hint = tokenHint("error unauthorized")
		}
		return nil, fmt.Errorf("victim: %w%s", err, hint)
	}
	go v.pace(ctx)
	return v, nil
}

// onMessage runs on the victim's reader goroutines.
func (v *victim) onMessage(c *client) {
	if c.id == "b" {
		_ = c.echo() // a failure shows as a loss and a closed connection
		return
	}
	v.completed.Add(1)
	if p := v.phase.Load(); p < 2 {
		v.mu.Lock()
		v.rtt[p] = append(v.rtt[p], c.lat[len(c.lat)-1])
		v.mu.Unlock()
	}
}

// pace sends the a's messages on an even schedule, round-robin, until
// stop.
func (v *victim) pace(ctx context.Context) {
	defer close(v.paced)
	interval := time.Duration(float64(time.Second) / (v.rate * float64(v.pairs)))
	start := time.Now()
	for k := 0; ; k++ {
		a := v.f.clients[2*(k%v.pairs)]
		t := time.NewTimer(time.Until(start.Add(time.Duration(k) * interval)))
		select {
		case <-v.stopc:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := a.sendMessage(); err != nil {
			v.sendErr = err
			return
		}
	}
}

// stop stops sending, waits at most drain for the last round trips,
// closes the pair and summarises.
func (v *victim) stop(ctx context.Context, drain time.Duration) victimResult {
	close(v.stopc)
	<-v.paced
	var sent int64
	for p := 0; p < v.pairs; p++ {
		sent += v.f.clients[2*p].sentCount()
	}
	deadline := time.Now().Add(drain)
	for v.completed.Load() < sent && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
	v.phase.Store(2)
	v.f.release()
	v.mu.Lock()
	defer v.mu.Unlock()
	r := victimResult{Pairs: v.pairs, Rate: v.rate, Baseline: summarize(v.rtt[0]), Attack: summarize(v.rtt[1]),
		Sent: sent, Completed: v.completed.Load(), Anomalies: v.f.anomalies()}
	r.Lost = r.Sent - r.Completed
	if v.sendErr != nil {
		r.Error = "send: " + v.sendErr.Error()
	}
	return r
}

// peakPoller reads the server's figures every interval and keeps the
// largest.
type peakPoller struct {
	mu   sync.Mutex
	peak serverMetrics
	stpc chan struct{}
	done chan struct{}
}

func pollPeak(ctx context.Context, us []string, every time.Duration, first serverMetrics) *peakPoller {
	p := &peakPoller{peak: first, stpc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stpc:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if m, err := scrapeAll(ctx, us); err == nil {
				p.mu.Lock()
				p.peak = peakOf(p.peak, m)
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *peakPoller) stop() serverMetrics {
	close(p.stpc)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

func peakOf(a, b serverMetrics) serverMetrics {
	a.HeapInuse = max(a.HeapInuse, b.HeapInuse)
	a.HeapAlloc = max(a.HeapAlloc, b.HeapAlloc)
	a.RSS = max(a.RSS, b.RSS)
	a.ConnsOpen = max(a.ConnsOpen, b.ConnsOpen)
	return a
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// rttText formats a victim's round trips.
func rttText(d dist) string {
	if d.N == 0 {
		return "none completed"
	}
	return fmt.Sprintf("p50 %.3f, p99 %.3f, max %.3f ms (n=%d)", d.P50, d.P99, d.Max, d.N)
}

func p99Text(d dist) string {
	if d.N == 0 {
		return "none"
	}
	return fmt.Sprintf("%.3f", d.P99)
}

// msText formats a duration in milliseconds: in seconds from one second.
func msText(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.1f ms", v)
}

// counts formats a map of counts, largest first: "1008 join timeout ×2000, EOF ×3".
func counts[V int | int64](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return int(m[b] - m[a]) })
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(s, ", ")
}

func (r *abuseResult) print(w io.Writer) {
	for _, a := range r.Attacks {
		a.print(w)
	}
	if len(r.Attacks) > 1 {
		r.table(w)
	}
}

func (r *attackResult) print(w io.Writer) {
	fmt.Fprintf(w, "abuse %s: %s\n", r.Attack, r.What)
	if r.Skipped != "" {
		fmt.Fprintf(w, "  skipped         %s\n", r.Skipped)
		return
	}
	line := fmt.Sprintf("%.1f s; %d attacker connections from %d addresses", r.Seconds, r.Conns, r.AttackIPs)
	if r.Unit != "" {
		line += fmt.Sprintf("; %d %s written (%.0f/s)", r.Sent, r.Unit, r.SentRate)
	}
	if r.Attack == "pingflood" && r.Seconds > 0 {
		line += fmt.Sprintf(", %d answered (%.0f/s)", r.Pongs, float64(r.Pongs)/r.Seconds)
	}
	fmt.Fprintf(w, "  attack          %s\n", line)
	v := r.Victim
	fmt.Fprintf(w, "  victim RTT      baseline %s; attack %s; lost %d of %d\n", rttText(v.Baseline), rttText(v.Attack), v.Lost, v.Sent)
	if r.MetricsError != "" {
		fmt.Fprintf(w, "  server          no figures: %s\n", r.MetricsError)
	} else {
		fmt.Fprintf(w, "  server heap     in use %.1f MB before, %.1f MB peak, %.1f MB after; RSS %.1f / %.1f / %.1f MB\n",
			mb(r.HeapInuse.Before), mb(r.HeapInuse.Peak), mb(r.HeapInuse.After), mb(r.RSS.Before), mb(r.RSS.Peak), mb(r.RSS.After))
		fmt.Fprintf(w, "  server conns    %d open before, %d peak, %d after; it closed during the attack: %s\n",
			r.ServerConns.Before, r.ServerConns.Peak, r.ServerConns.After, counts(r.ServerClosed))
	}
	line = fmt.Sprintf("%d targets: %d ended by the server", r.Targets, r.EndedByServer)
	if r.EndedAfter.N > 0 {
		line += fmt.Sprintf(" after p50 %s, max %s", msText(r.EndedAfter.P50), msText(r.EndedAfter.Max))
	}
	line += fmt.Sprintf("; %d open at the end", r.OpenAtEnd)
	if r.Timeout > 0 {
		line += fmt.Sprintf("; %d held past %s %gs + %gs", r.HeldPastTimeout, r.TimeoutFlag, r.Timeout, r.Grace)
	}
	fmt.Fprintf(w, "  attackers       %s\n", line)
	fmt.Fprintf(w, "  ended by        %s\n", counts(r.Ended))
	if len(r.Replies) > 0 {
		fmt.Fprintf(w, "  replies         %s\n", counts(r.Replies))
	}
	if len(r.Refused) > 0 || r.DialErrors > 0 {
		fmt.Fprintf(w, "  not connected   upgrades refused: %s; dials failed: %d %s\n", counts(r.Refused), r.DialErrors, r.FirstDialError)
	}
	if r.ServerCPU >= 0 {
		fmt.Fprintf(w, "  CPU             server %.0f %%, generator %.0f %%, other processes %.0f %% of one core\n", r.ServerCPU, r.GeneratorCPU, r.OtherCPU)
	} else {
		fmt.Fprintf(w, "  CPU             generator %.0f %% of one core (server: give -pid)\n", r.GeneratorCPU)
	}
	if len(r.Problems) == 0 {
		fmt.Fprintf(w, "  problems        none\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  PROBLEM         %s\n", p)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  ERROR           %s\n", r.Error)
	}
}

// table prints one line per attack.
func (r *abuseResult) table(w io.Writer) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "attack\tvictim p99 ms\theap in use MB\tRSS MB\ttargets\tended by\theld past\tproblems")
	fmt.Fprintln(tw, "\tbefore → attack\tbefore / peak / after\tbefore / peak / after\t\tthe server\ttimeout\t")
	for _, a := range r.Attacks {
		if a.Skipped != "" {
			fmt.Fprintf(tw, "%s\tskipped: %s\t\t\t\t\t\t\n", a.Attack, a.Skipped)
			continue
		}
		held := "-"
		if a.Timeout > 0 {
			held = fmt.Sprint(a.HeldPastTimeout)
		}
		np := fmt.Sprint(len(a.Problems))
		if a.Error != "" {
			np += " + error"
		}
		fmt.Fprintf(tw, "%s\t%s → %s\t%.1f / %.1f / %.1f\t%.1f / %.1f / %.1f\t%d\t%d\t%s\t%s\n", a.Attack,
			p99Text(a.Victim.Baseline), p99Text(a.Victim.Attack),
			mb(a.HeapInuse.Before), mb(a.HeapInuse.Peak), mb(a.HeapInuse.After),
			mb(a.RSS.Before), mb(a.RSS.Peak), mb(a.RSS.After),
			a.Targets, a.EndedByServer, held, np)
	}
	_ = tw.Flush()
}
