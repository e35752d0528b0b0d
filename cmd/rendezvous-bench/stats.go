package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dist summarises a set of durations. Values are milliseconds, rounded to
// microseconds, for readable JSON.
type dist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// summarize sorts ns (in place) and returns its percentiles
// (nearest-rank).
func summarize(ns []int64) dist {
	if len(ns) == 0 {
		return dist{}
	}
	slices.Sort(ns)
	q := func(p float64) float64 {
		i := int(p*float64(len(ns))+0.999999) - 1
		i = max(0, min(i, len(ns)-1))
		return ms(ns[i])
	}
	return dist{N: len(ns), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(ns[len(ns)-1])}
}

func ms(ns int64) float64 { return float64(ns/1000) / 1000 }

func (d dist) String() string {
	return fmt.Sprintf("p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms (n=%d)", d.P50, d.P90, d.P99, d.Max, d.N)
}

// mergeLat concatenates the per-client latency slices.
func mergeLat(clients []*client) []int64 {
	n := 0
	for _, c := range clients {
		n += len(c.lat)
	}
	all := make([]int64, 0, n)
	for _, c := range clients {
		all = append(all, c.lat...)
	}
	return all
}

// rssKB reads VmRSS of pid from /proc, in KiB.
func rssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// settledRSS reads the RSS of pid every interval until three readings in a
// row are within 0.5 % of each other (or maxWait passes), and returns the
// last reading.
func settledRSS(pid int, interval, maxWait time.Duration) (int64, error) {
	deadline := time.Now().Add(maxWait)
	var prev []int64
	for {
		v, err := rssKB(pid)
		if err != nil {
			return 0, err
		}
		prev = append(prev, v)
		if n := len(prev); n >= 3 {
			a, b, c := prev[n-3], prev[n-2], prev[n-1]
			lo, hi := min(a, b, c), max(a, b, c)
			if float64(hi-lo) <= 0.005*float64(hi) {
				return v, nil
			}
		}
		if time.Now().After(deadline) {
			return v, nil
		}
		time.Sleep(interval)
	}
}

// cpuTicks returns utime+stime of pid in clock ticks (USER_HZ, 100/s on
// Linux).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// Fields after ")": state(0) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return u + s, nil
}

// cpuMeter measures the CPU used by the server (given its pid) and by this
// process over an interval, as a percentage of one core.
type cpuMeter struct {
	pid        int
	t0         time.Time
	srv0, own0 time.Duration
	srvOK      bool
	busy0      time.Duration
}

// machineBusy returns the CPU time all CPUs of the machine spent busy
// (everything but idle and iowait), from /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 7 { // idle, iowait; guest times are in user already
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

func ownCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, t0: time.Now(), own0: ownCPU(), busy0: machineBusy()}
	if pid > 0 {
		if t, err := cpuTicks(pid); err == nil {
			m.srv0, m.srvOK = time.Duration(t)*10*time.Millisecond, true
		}
	}
	return m
}

// stop returns server and generator CPU in % of one core (server -1 when
// unknown).
// stop returns the CPU used by the server, by this process, and by
// everything else on the machine, in % of one core (-1 when unknown):
// other load makes the figures noisy.
func (m *cpuMeter) stop() (server, own, other float64) {
	el := time.Since(m.t0)
	ownUsed := ownCPU() - m.own0
	own = 100 * float64(ownUsed) / float64(el)
	server, other = -1, -1
	if m.srvOK {
		if t, err := cpuTicks(m.pid); err == nil {
			srvUsed := time.Duration(t)*10*time.Millisecond - m.srv0
			server = 100 * float64(srvUsed) / float64(el)
			if b := machineBusy(); b > 0 {
				other = max(0, 100*float64(b-m.busy0-srvUsed-ownUsed)/float64(el))
			}
		}
	}
	return round1(server), round1(own), round1(other)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit, and when
// need is above the hard limit also tries to raise the hard limit (which
// works for root). It returns the resulting soft limit.
func raiseNoFile(need uint64) uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	if need > rl.Max {
		want := syscall.Rlimit{Cur: need, Max: need}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			return need
		}
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur
}

// findServerPID looks for the process listening on the TCP port of the
// target (on a loopback or wildcard address), through /proc/net/tcp and
// the processes' fd tables. It returns 0 when it finds none.
func findServerPID(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, p, ok := strings.Cut(fs[1], ":")
			if !ok {
				continue
			}
			if v, err := strconv.ParseInt(p, 16, 32); err == nil && int(v) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// serverMetrics are figures read from the server's Prometheus /metrics.
type serverMetrics struct {
	HeapInuse int64 // go_memstats_heap_inuse_bytes
	HeapAlloc int64 // go_memstats_alloc_bytes: live heap plus garbage not yet collected
	RSS       int64 // process_resident_memory_bytes
	ConnsOpen int64 // rendezvous_connections_open
	// Closed is rendezvous_connections_closed_total by reason.
	Closed map[string]int64
}

// metricsURLs is the /metrics address of each distinct server host:port
// among nodes, in order. (Two URLs naming one server by different hosts,
// 127.0.0.1 and localhost, count twice: the tool cannot tell.)
func metricsURLs(nodes []node) []string {
	var us []string
	for _, n := range nodes {
		u := "http://" + n.host + "/metrics"
		if !slices.Contains(us, u) {
			us = append(us, u)
		}
	}
	return us
}

// scrapeAll reads serverMetrics from every address of us and sums them:
// the figures of the whole cluster. Any node's error is the error, since a
// sum over fewer nodes would mislead.
func scrapeAll(ctx context.Context, us []string) (serverMetrics, error) {
	sum := serverMetrics{Closed: map[string]int64{}}
	for _, u := range us {
		m, err := scrapeMetrics(ctx, u)
		if err != nil {
			return sum, err
		}
		sum.HeapInuse += m.HeapInuse
		sum.HeapAlloc += m.HeapAlloc
		sum.RSS += m.RSS
		sum.ConnsOpen += m.ConnsOpen
		for k, v := range m.Closed {
			sum.Closed[k] += v
		}
	}
	return sum, nil
}

// metricsClient reads /metrics without keeping connections alive, so that
// it holds no socket of the server between readings.
var metricsClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// scrapeMetrics reads the figures of serverMetrics from the Prometheus
// text format at u.
func scrapeMetrics(ctx context.Context, u string) (serverMetrics, error) {
	m := serverMetrics{Closed: map[string]int64{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return m, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("%s: HTTP %s (is the server running with -metrics=false?)", u, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	seen := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name, labels := line[:sp], ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name, labels = name[:i], name[i:]
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			m.HeapInuse, seen = int64(v), seen+1
		case "go_memstats_alloc_bytes":
			m.HeapAlloc = int64(v)
		case "process_resident_memory_bytes":
			m.RSS = int64(v)
		case "rendezvous_connections_open":
			m.ConnsOpen = int64(v)
		case "rendezvous_connections_closed_total":
			if _, r, ok := strings.Cut(labels, `reason="`); ok {
				r, _, _ = strings.Cut(r, `"`)
				m.Closed[r] = int64(v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if seen == 0 {
		return m, fmt.Errorf("%s: no go_memstats_heap_inuse_bytes", u)
	}
	return m, nil
}
