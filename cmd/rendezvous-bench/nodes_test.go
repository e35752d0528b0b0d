package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// countingServer is a single-node server whose HTTP handler counts the
// WebSocket upgrade requests it receives, by Host header.
type countingServer struct {
	*signal.Server
	URL  string // ws://127.0.0.1:PORT/ws
	Port string

	mu     sync.Mutex
	byHost map[string]int
}

func newCountingServer(t *testing.T, cfg signal.Config) *countingServer {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	s := signal.NewServer(cfg)
	cs := &countingServer{Server: s, byHost: map[string]int{}}
	h := s.Handler()
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = s.HTTPServer()
	hs.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			cs.mu.Lock()
			cs.byHost[r.Host]++
			cs.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
	hs.Start()
	t.Cleanup(func() {
		_ = s.Close()
		hs.Close()
	})
	cs.URL = "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	cs.Port = hs.URL[strings.LastIndexByte(hs.URL, ':')+1:]
	return cs
}

// upgrades is the number of upgrade requests with Host host (all hosts
// when host is "").
func (cs *countingServer) upgrades(host string) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if host != "" {
		return cs.byHost[host]
	}
	n := 0
	for _, v := range cs.byHost {
		n += v
	}
	return n
}

func TestURLFlag(t *testing.T) {
	const a, b, c = "ws://127.0.0.1:2013/ws", "ws://127.0.0.2:2014/ws", "ws://localhost:2015/ws"
	for _, tt := range []struct {
		name    string
		args    []string
		want    []string
		wantErr string // a substring of the error; "" for none
	}{
		{name: "default", want: []string{a}},
		{name: "one", args: []string{"-url", b}, want: []string{b}},
		{name: "a list", args: []string{"-url", a + "," + b + "," + c}, want: []string{a, b, c}},
		{name: "spaces around elements", args: []string{"-url", a + " , " + b}, want: []string{a, b}},
		{name: "repeated", args: []string{"-url", a, "-url", b + "," + c}, want: []string{a, b, c}},
		{name: "empty", args: []string{"-url", ""}, wantErr: `element 1 of "" is empty`},
		{name: "empty element", args: []string{"-url", a + ",," + b}, wantErr: "element 2 of"},
		{name: "trailing comma", args: []string{"-url", a + ","}, wantErr: "element 2 of"},
		{name: "not ws", args: []string{"-url", "http://127.0.0.1:2013/ws"}, wantErr: `scheme must be ws, not "http"`},
		{name: "wss", args: []string{"-url", a + ",wss://127.0.0.1/ws"}, wantErr: `scheme must be ws, not "wss"`},
		{name: "no scheme", args: []string{"-url", "//127.0.0.1:2013/ws"}, wantErr: `scheme must be ws, not ""`},
		{name: "no host", args: []string{"-url", "ws:///ws"}, wantErr: "no host"},
		{name: "not loopback", args: []string{"-url", a + ",ws://10.0.0.1:2013/ws"}, wantErr: "not a loopback address"},
		{name: "IPv6 loopback", args: []string{"-url", "ws://[::1]:2013/ws"}, wantErr: "IPv4 loopback"},
		{name: "unparsable", args: []string{"-url", "ws://127.0.0.1:port/ws"}, wantErr: "invalid port"},
		{name: "twice in one list", args: []string{"-url", a + "," + a}, wantErr: "listed twice"},
		{name: "twice over flags", args: []string{"-url", a, "-url", b + "," + a}, wantErr: "listed twice"},
		{name: "too many", args: []string{"-url", manyURLs(maxURLs + 1)}, wantErr: "at most 64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			fs, o := newFlagSet(&stderr)
			err := fs.Parse(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "-url") {
					t.Fatalf("error %v, want one naming -url with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.urls, tt.want) {
				t.Errorf("urls %q, want %q", o.urls, tt.want)
			}
		})
	}
}

// manyURLs is a -url value of n distinct URLs.
func manyURLs(n int) string {
	var us []string
	for i := 0; i < n; i++ {
		us = append(us, "ws://127.0.0.1:"+strconv.Itoa(3000+i)+"/ws")
	}
	return strings.Join(us, ",")
}

// TestURLFlagExit checks that a bad -url is a usage error: exit code 2
// and a message on stderr, before anything is dialled.
func TestURLFlagExit(t *testing.T) {
	for _, scenario := range []string{"mem", "latency", "throughput", "negotiate", "abuse"} {
		var stderr bytes.Buffer
		args := []string{scenario, "-url", "ws://127.0.0.1:1/ws,,ws://127.0.0.1:2/ws", "-pid", "-1", "-attack", "nojoin"}
		if scenario != "abuse" {
			args = args[:len(args)-2]
		}
		if code := realMain(context.Background(), args, io.Discard, &stderr); code != 2 ||
			!strings.Contains(stderr.String(), `invalid value "ws://127.0.0.1:1/ws,,ws://127.0.0.1:2/ws" for flag -url: element 2`) {
			t.Errorf("%s: exit code %d, want 2; stderr:\n%s", scenario, code, &stderr)
		}
	}
}

// TestNodeOf checks the assignment rule: with n ≥ 2 nodes the members of
// every room are on different nodes, and the clients are spread evenly.
func TestNodeOf(t *testing.T) {
	for n := 1; n <= 6; n++ {
		d := &dialers{nodes: make([]node, n)}
		const rooms = 60 // a multiple of every n: each node gets the same share
		per := make([]int, n)
		for r := 0; r < rooms; r++ {
			a, b := nodeOf(r, 0, n), nodeOf(r, 1, n)
			if n >= 2 && a == b {
				t.Errorf("n=%d room %d: both members on node %d", n, r, a)
			}
			if d.clientNode(2*r) != a || d.clientNode(2*r+1) != b {
				t.Errorf("n=%d room %d: clientNode %d, %d; nodeOf %d, %d", n, r, d.clientNode(2*r), d.clientNode(2*r+1), a, b)
			}
			per[a]++
			per[b]++
		}
		for k, c := range per {
			if c != 2*rooms/n {
				t.Errorf("n=%d: node %d has %d clients, want %d (%v)", n, k, c, 2*rooms/n, per)
			}
		}
	}
}

// TestFleetSpreads joins a fleet over two independent single-node
// servers: each holds half the connections and half the rooms, and every
// join answers "created", so no two members of a room met on one node.
func TestFleetSpreads(t *testing.T) {
	s0 := newCountingServer(t, signal.Config{Rate: rate.Inf})
	s1 := newCountingServer(t, signal.Config{Rate: rate.Inf})
	o := testOptions(t, s0.URL)
	o.urls = []string{s0.URL, s1.URL}
	const n = 12
	ctx := testCtx(t)
	f := newFleet(ctx, o, n)
	defer f.release()
	if err := f.connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.join(ctx); err != nil {
		t.Fatal(err)
	}
	for i, c := range f.clients {
		if c.joinResult != "created" {
			t.Errorf("client %d (room %d): %s, want created (alone on its node)", i, i/2, c.joinResult)
		}
	}
	for k, s := range []*countingServer{s0, s1} {
		if st := s.Stats(); st.Connections != n/2 || st.Rooms != n/2 {
			t.Errorf("node %d: %d connections, %d rooms; want %d and %d", k, st.Connections, st.Rooms, n/2, n/2)
		}
	}
}

// TestMemTwoNodes runs mem from the command line over two independent
// servers (no relay check: their rooms are not shared) and counts the
// upgrades each received.
func TestMemTwoNodes(t *testing.T) {
	s0 := newCountingServer(t, signal.Config{Rate: rate.Inf})
	s1 := newCountingServer(t, signal.Config{Rate: rate.Inf})
	var stdout, stderr bytes.Buffer
	code := realMain(testCtx(t), []string{"mem", "-json", "-url", s0.URL, "-url", s1.URL, "-n", "10", "-pid", "-1",
		"-settle", "0", "-verify=false", "-source-ips", "2"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, &stderr)
	}
	var res memResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Conns != 10 || res.Nodes != 2 || res.JoinLatency.N != 10 || !res.Anomalies.none() {
		t.Errorf("%+v", res)
	}
	if u0, u1 := s0.upgrades(""), s1.upgrades(""); u0 != 5 || u1 != 5 {
		t.Errorf("upgrades %d and %d, want 5 each", u0, u1)
	}
}

// TestLatencyTwoNames runs latency and throughput from the command line
// with two URLs for one server (127.0.0.1 and localhost): rooms are shared
// as in a cluster, every message arrives, and each name carried half the
// clients.
func TestLatencyTwoNames(t *testing.T) {
	for _, scenario := range []string{"latency", "throughput"} {
		t.Run(scenario, func(t *testing.T) {
			s := newCountingServer(t, signal.Config{Rate: rate.Inf})
			local := "ws://localhost:" + s.Port + "/ws"
			var stdout, stderr bytes.Buffer
			code := realMain(testCtx(t), []string{scenario, "-json", "-url", s.URL + "," + local, "-pairs", "3", "-rate", "300",
				"-duration", "200ms", "-warmup", "50ms", "-drain", "2s", "-pid", "-1", "-source-ips", "2"}, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, &stderr)
			}
			var res msgResult
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if res.Delivered == 0 || res.Lost != 0 || !res.Anomalies.none() {
				t.Errorf("delivered %d lost %d anomalies %s", res.Delivered, res.Lost, res.Anomalies)
			}
			if u0, u1 := s.upgrades("127.0.0.1:"+s.Port), s.upgrades("localhost:"+s.Port); u0 != 3 || u1 != 3 {
				t.Errorf("upgrades %d (127.0.0.1) and %d (localhost), want 3 each", u0, u1)
			}
		})
	}
}

// TestNegotiateTwoNames negotiates through one server named two ways.
func TestNegotiateTwoNames(t *testing.T) {
	s := newCountingServer(t, signal.Config{})
	o := testOptions(t, s.URL)
	o.urls = append(o.urls, "ws://localhost:"+s.Port+"/ws")
	o.pairs, o.rounds = 2, 1
	res, err := runNegotiate(testCtx(t), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failures != 0 || res.ThroughServer.N != 2 {
		t.Errorf("%+v", res)
	}
	if u0, u1 := s.upgrades("127.0.0.1:"+s.Port), s.upgrades("localhost:"+s.Port); u0 != 2 || u1 != 2 {
		t.Errorf("upgrades %d (127.0.0.1) and %d (localhost), want 2 each", u0, u1)
	}
}

// TestPIDConns checks which connections mem divides the RSS by.
func TestPIDConns(t *testing.T) {
	d, err := newDialers([]string{"ws://127.0.0.1:1001/ws", "ws://127.0.0.1:1002/ws", "ws://127.0.0.1:1003/ws"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]int{1001: 7, 1002: 8, 1003: 7} // nodes 0 and 2 are process 7
	find := func(port int) int { return pids[port] }
	for _, tt := range []struct {
		pid, conns int
		known      bool
	}{
		{7, 8, true}, // 12 clients: 4 per node
		{8, 4, true},
		{9, 12, false},
	} {
		if c, k := pidConns(d, tt.pid, 12, find); c != tt.conns || k != tt.known {
			t.Errorf("pid %d: %d, %v; want %d, %v", tt.pid, c, k, tt.conns, tt.known)
		}
	}
	one := &dialers{nodes: d.nodes[:1]}
	if c, k := pidConns(one, 9, 12, find); c != 12 || !k {
		t.Errorf("one node: %d, %v; want all 12", c, k)
	}
}

// TestScrapeAll sums /metrics over the nodes, once per host:port.
func TestScrapeAll(t *testing.T) {
	serve := func(heap, conns, closed int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "go_memstats_heap_inuse_bytes "+strconv.Itoa(heap)+"\nprocess_resident_memory_bytes 100\n"+
				"rendezvous_connections_open "+strconv.Itoa(conns)+"\nrendezvous_connections_closed_total{reason=\"slow\"} "+strconv.Itoa(closed)+"\n")
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := serve(1000, 3, 1), serve(2000, 4, 2)
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	us := metricsURLs([]node{{host: host(a)}, {host: host(b)}, {host: host(a)}})
	if len(us) != 2 {
		t.Fatalf("metrics URLs %q, want 2", us)
	}
	m, err := scrapeAll(context.Background(), us)
	if err != nil {
		t.Fatal(err)
	}
	if m.HeapInuse != 3000 || m.RSS != 200 || m.ConnsOpen != 7 || m.Closed["slow"] != 3 {
		t.Errorf("%+v", m)
	}
	a.Close()
	if _, err := scrapeAll(context.Background(), us); err == nil {
		t.Error("a node down: no error")
	}
}

// TestAbuseTwoNames runs attacks through one server named two ways: the
// victims and the attackers (pairs in noack, rooms of their own in
// nojoin) are spread over both names, the attack passes, and the server
// figures are summed over both (the same server counted twice).
func TestAbuseTwoNames(t *testing.T) {
	for _, tt := range []struct {
		attack  string
		n, want int // attackers' -n, and WebSocket upgrades per name
	}{
		{"noack", 2, (2*2 + 2*4) / 2}, // 2 pairs of attackers, 4 victim pairs
		{"nojoin", 6, (6 + 2*4) / 2},
	} {
		t.Run(tt.attack, func(t *testing.T) {
			s := newCountingServer(t, signal.Config{
				JoinTimeout: 300 * time.Millisecond, ResumeWindow: 500 * time.Millisecond, AuthSecret: []byte(testSecret),
			})
			o := abuseOptions(t, s.URL)
			o.urls = append(o.urls, "ws://localhost:"+s.Port+"/ws")
			o.attack, o.n = tt.attack, tt.n
			o.size = 16000
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := runAbuse(ctx, o, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			r := res.Attacks[0]
			if r.Error != "" || len(r.Problems) > 0 || r.MetricsError != "" {
				t.Fatalf("error %q, problems %q, metrics %q", r.Error, r.Problems, r.MetricsError)
			}
			if u0, u1 := s.upgrades("127.0.0.1:"+s.Port), s.upgrades("localhost:"+s.Port); u0 != tt.want || u1 != tt.want {
				t.Errorf("upgrades %d (127.0.0.1) and %d (localhost), want %d each", u0, u1, tt.want)
			}
			// Before the attack the server holds the 8 victims, read twice.
			if r.ServerConns.Before != 2*8 {
				t.Errorf("connections before: %d, want 16 (8 victims, summed over the two names)", r.ServerConns.Before)
			}
		})
	}
}
