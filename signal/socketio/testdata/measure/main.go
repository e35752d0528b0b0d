// Command measure measures the Socket.IO endpoint of the rendezvous
// binary next to its protocol v1 endpoint, in one sitting: server memory
// per joined idle connection, and join → joined latency.
//
//	go build -o /tmp/rv ./cmd/rendezvous
//	go build -o /tmp/measure ./signal/socketio/testdata/measure
//	/tmp/measure -bin /tmp/rv -n 2000 -runs 3
//
// Each run starts the binary (default flags, but the per-address limits
// off: every client here comes from 127.0.0.1) pinned to core 0, then a
// generator pinned to core 1 that opens n clients and joins them in
// pairs, one pair at a time, timing the second member's join → joined:
// protocol v1 clients (this program, "measure v1clients") or Socket.IO
// 4.x clients with their default options, polling then the upgrade to
// WebSocket (node ../node/measure.js, from the npm lockfile there). With
// the clients joined and idle, it waits for the server's RSS to settle
// and reads the server's Go memory statistics through -pprof. The kinds
// alternate run by run. On a machine shared with other work, add -chrt.
// Loopback only.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "v1clients" {
		err = v1Clients(os.Args[2:])
	} else {
		err = drive(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "measure:", err)
		os.Exit(1)
	}
}

// result is one run's figures.
type result struct {
	Kind       string
	Clients    int
	RSSKB      float64 // per connection
	HeapKB     float64 // HeapInuse, per connection
	StackKB    float64 // StackInuse, per connection
	Goroutines float64 // per connection
	JoinP50    float64 // ms
	JoinP90    float64 // ms
}

func drive(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	bin := fs.String("bin", "", "the rendezvous binary")
	n := fs.Int("n", 2000, "clients per run (joined in pairs)")
	runs := fs.Int("runs", 3, "runs of each kind")
	kinds := fs.String("kinds", "v1,socketio", "kinds to measure, comma-separated")
	extra := fs.String("args", "", "more flags for the server, space-separated")
	rt := fs.Bool("chrt", false, "run the server and the generator at real-time priority (chrt -f 10), on a machine shared with other work")
	_ = fs.Parse(args)
	if *bin == "" {
		return errors.New("-bin is required")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	_, file, _, _ := runtime.Caller(0)
	nodeScript := filepath.Join(filepath.Dir(file), "..", "node", "measure.js")
	all := map[string][]result{}
	order := strings.Split(*kinds, ",")
	for i := range *runs {
		for _, kind := range order {
			var gen []string
			switch kind {
			case "v1":
				gen = []string{self, "v1clients", "-n", strconv.Itoa(*n)}
			case "socketio":
				gen = []string{"node", nodeScript}
			default:
				return fmt.Errorf("unknown kind %q", kind)
			}
			r, err := run(*bin, strings.Fields(*extra), kind, gen, *n, *rt)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", kind, i+1, err)
			}
			fmt.Printf("run %d %-8s %s\n", i+1, kind, r)
			all[kind] = append(all[kind], r)
		}
	}
	fmt.Println("medians:")
	for _, kind := range order {
		rs := all[kind]
		med := func(f func(result) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		fmt.Printf("  %-8s %s\n", kind, result{Kind: kind, Clients: rs[0].Clients,
			RSSKB: med(func(r result) float64 { return r.RSSKB }), HeapKB: med(func(r result) float64 { return r.HeapKB }),
			StackKB: med(func(r result) float64 { return r.StackKB }), Goroutines: med(func(r result) float64 { return r.Goroutines }),
			JoinP50: med(func(r result) float64 { return r.JoinP50 }), JoinP90: med(func(r result) float64 { return r.JoinP90 })})
		var ranges []string
		for _, r := range rs {
			ranges = append(ranges, fmt.Sprintf("%.2f", r.RSSKB))
		}
		fmt.Printf("           RSS KB/conn of the runs: %s\n", strings.Join(ranges, ", "))
	}
	return nil
}

func (r result) String() string {
	return fmt.Sprintf("%d clients: RSS %.2f KB/conn, heap %.2f KB/conn, stacks %.2f KB/conn, %.1f goroutines/conn; join->joined p50 %.2f ms, p90 %.2f ms",
		r.Clients, r.RSSKB, r.HeapKB, r.StackKB, r.Goroutines, r.JoinP50, r.JoinP90)
}

// run starts the server and a generator, and measures.
func run(bin string, extra []string, kind string, gen []string, n int, rt bool) (result, error) {
	pprofAddr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	args := append([]string{"-c", "0", bin, "-addr", "127.0.0.1:0", "-log-format", "json",
		"-max-conns-per-ip", "0", "-upgrade-rate", "0", "-pprof", pprofAddr}, extra...)
	srv := pinned(rt, args)
	stderr, err := srv.StderrPipe()
	if err != nil {
		return result{}, err
	}
	if err := srv.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		_ = srv.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	}()
	addr, err := listeningAddr(stderr)
	if err != nil {
		return result{}, err
	}
	go func() { _, _ = io.Copy(os.Stderr, stderr) }()
	url := "http://" + addr
	pid := srv.Process.Pid // taskset execs the binary
	before, err := snapshot(pid, pprofAddr)
	if err != nil {
		return result{}, err
	}

	cargs := append([]string{"-c", "1"}, gen...)
	if kind == "v1" {
		cargs = append(cargs, "-url", url)
	} else {
		cargs = append(cargs, url, strconv.Itoa(n))
	}
	cl := pinned(rt, cargs)
	hold, err := cl.StdinPipe() // the generator holds its clients until stdin ends
	if err != nil {
		return result{}, err
	}
	out, err := cl.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	cl.Stderr = os.Stderr
	if err := cl.Start(); err != nil {
		return result{}, err
	}
	defer func() { _ = hold.Close(); _ = cl.Wait() }()
	lineCh := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lineCh <- line
	}()
	var line string
	select {
	case line = <-lineCh:
	case <-time.After(5 * time.Minute):
		return result{}, errors.New("the generator did not report within 5 minutes")
	}
	var c struct {
		Clients int     `json:"clients"`
		P50     float64 `json:"join_p50_ms"`
		P90     float64 `json:"join_p90_ms"`
	}
	if err := json.Unmarshal([]byte(line), &c); err != nil || c.Clients == 0 {
		return result{}, fmt.Errorf("generator said %q: %v", line, err)
	}
	time.Sleep(3 * time.Second) // not synchronisation: the server's -release-memory acts after a 2 s tick
	after, err := snapshot(pid, pprofAddr)
	if err != nil {
		return result{}, err
	}
	per := func(a, b int64) float64 { return float64(a-b) / float64(c.Clients) / 1024 }
	return result{Kind: kind, Clients: c.Clients,
		RSSKB: per(after.rss, before.rss), HeapKB: per(after.heap, before.heap), StackKB: per(after.stack, before.stack),
		Goroutines: float64(after.goroutines-before.goroutines) / float64(c.Clients), JoinP50: c.P50, JoinP90: c.P90}, nil
}

// pinned returns the command taskset args, under chrt -f 10 when rt.
// Both exec what they run, so the process's pid is the command's.
func pinned(rt bool, args []string) *exec.Cmd {
	if rt {
		return exec.Command("chrt", append([]string{"-f", "10", "taskset"}, args...)...)
	}
	return exec.Command("taskset", args...)
}

// freeAddr returns a free loopback address for -pprof.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// listeningAddr reads the server's JSON log until its "listening" line.
func listeningAddr(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
			return rec.Addr, nil
		}
		fmt.Fprintln(os.Stderr, sc.Text())
	}
	return "", errors.New("the server exited before listening")
}

// memory is what the server uses, in bytes, and its goroutines.
type memory struct{ rss, heap, stack, goroutines int64 }

// snapshot waits for the server's RSS to settle (three readings half a
// second apart within 0.5 %, at most 20 s), then reads its Go memory
// statistics after a garbage collection (pprof's heap profile with gc=1)
// and counts its goroutines.
func snapshot(pid int, pprofAddr string) (memory, error) {
	var m memory
	var prev []int64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		v, err := rss(pid)
		if err != nil {
			return m, err
		}
		prev = append(prev, v)
		if k := len(prev); k >= 3 {
			lo, hi := min(prev[k-3], prev[k-2], prev[k-1]), max(prev[k-3], prev[k-2], prev[k-1])
			if float64(hi-lo) <= 0.005*float64(hi) || time.Now().After(deadline) {
				m.rss = v
				break
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	heap, err := fetch(ctx, "http://"+pprofAddr+"/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return m, err
	}
	if m.heap, err = stat(heap, `# HeapInuse = (\d+)`); err != nil {
		return m, err
	}
	if m.stack, err = stat(heap, `# Stack = (\d+) /`); err != nil {
		return m, err
	}
	gr, err := fetch(ctx, "http://"+pprofAddr+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		return m, err
	}
	m.goroutines, err = stat(gr, `goroutine profile: total (\d+)`)
	return m, err
}

func fetch(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func stat(text, pattern string) (int64, error) {
	m := regexp.MustCompile(pattern).FindStringSubmatch(text)
	if m == nil {
		return 0, fmt.Errorf("no %q in the profile", pattern)
	}
	return strconv.ParseInt(m[1], 10, 64)
}

// rss returns the resident set of pid in bytes (Linux).
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// v1Clients joins n protocol v1 clients in pairs, one pair at a time, and
// prints the join → joined latency of each pair's second member, then
// holds the connections until stdin ends.
func v1Clients(args []string) error {
	fs := flag.NewFlagSet("v1clients", flag.ExitOnError)
	url := fs.String("url", "", "the server's http:// URL")
	n := fs.Int("n", 500, "clients (pairs of)")
	_ = fs.Parse(args)
	if !strings.HasPrefix(*url, "http://127.") {
		return fmt.Errorf("-url must be on 127.0.0.0/8, not %q", *url)
	}
	ws := "ws" + strings.TrimPrefix(*url, "http") + "/ws"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var clients []*signal.Client
	var lat []time.Duration
	for i := 0; i+1 < *n; i += 2 {
		room := fmt.Sprintf("m%d", i)
		var pair [2]*signal.Client
		for j := range pair {
			c, err := signal.Dial(ctx, ws, nil)
			if err != nil {
				return err
			}
			pair[j] = c
			clients = append(clients, c)
		}
		if _, err := pair[0].Join(ctx, room, nil); err != nil {
			return err
		}
		start := time.Now()
		if _, err := pair[1].Join(ctx, room, nil); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
		if _, err := pair[0].Recv(ctx); err != nil { // peer-joined
			return err
		}
	}
	slices.Sort(lat)
	fmt.Printf(`{"clients":%d,"join_p50_ms":%.3f,"join_p90_ms":%.3f}`+"\n", len(clients),
		ms(lat[len(lat)/2]), ms(lat[len(lat)*9/10]))
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // hold until stdin ends
	for _, c := range clients {
		_ = c.Close()
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
