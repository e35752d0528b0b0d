package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

func testOptions(t *testing.T, url string) *options {
	t.Helper()
	fs, o := newFlagSet(io.Discard)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	o.urls = []string{url}
	o.sourceIPs = 2
	o.concurrency = 8
	o.drain = 2 * time.Second
	o.settle = 0
	o.rssPoll = 20 * time.Millisecond
	return o
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newServer(t *testing.T) *signaltest.Server {
	return signaltest.New(t, signal.Config{Rate: rate.Inf})
}

func TestMem(t *testing.T) {
	srv := newServer(t)
	o := testOptions(t, srv.URL)
	o.n = 21 // rounded down to 20
	o.pid = os.Getpid()
	res, err := runMem(testCtx(t), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns != 20 || res.Rooms != 10 {
		t.Errorf("conns %d rooms %d, want 20 and 10", res.Conns, res.Rooms)
	}
	if res.JoinLatency.N != 20 || res.JoinLatency.P50 <= 0 || res.JoinLatency.P99 < res.JoinLatency.P50 {
		t.Errorf("join latency %+v", res.JoinLatency)
	}
	if res.JoinsPerSec <= 0 || res.ConnectsPerSec <= 0 {
		t.Errorf("rates: %v joins/s, %v connects/s", res.JoinsPerSec, res.ConnectsPerSec)
	}
	if res.RSSBeforeKB <= 0 || res.RSSAfterKB <= 0 {
		t.Errorf("RSS %d → %d KB", res.RSSBeforeKB, res.RSSAfterKB)
	}
	if res.RelaySent != 10 || res.RelayDelivered != 10 || res.RoomsRelaying != 10 {
		t.Errorf("relay check: sent %d delivered %d rooms %d, want 10", res.RelaySent, res.RelayDelivered, res.RoomsRelaying)
	}
	if !res.Anomalies.none() {
		t.Errorf("anomalies: %s", res.Anomalies)
	}
}

func TestLatency(t *testing.T) {
	srv := newServer(t)
	o := testOptions(t, srv.URL)
	o.pairs = 5
	o.rate = 1000
	o.duration = 300 * time.Millisecond
	res, err := runLatency(testCtx(t), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 300 || res.Delivered != 300 || res.Lost != 0 {
		t.Errorf("sent %d delivered %d lost %d, want 300, 300, 0", res.Sent, res.Delivered, res.Lost)
	}
	if res.Senders != 10 || res.Latency.N != 300 || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
		t.Errorf("senders %d, latency %+v", res.Senders, res.Latency)
	}
	if !res.Anomalies.none() {
		t.Errorf("anomalies: %s", res.Anomalies)
	}
}

func TestThroughput(t *testing.T) {
	srv := newServer(t)
	o := testOptions(t, srv.URL)
	o.pairs = 4
	o.window = 3
	o.warmup = 50 * time.Millisecond
	o.duration = 300 * time.Millisecond
	o.oneway = true
	res, err := runThroughput(testCtx(t), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Senders != 4 || res.Sent < 4*3 || res.Delivered != res.Sent || res.Lost != 0 {
		t.Errorf("senders %d sent %d delivered %d lost %d", res.Senders, res.Sent, res.Delivered, res.Lost)
	}
	if res.Rate <= 0 || float64(res.Delivered) < res.Rate*res.Seconds {
		t.Errorf("rate %v/s over %v s, but delivered %d", res.Rate, res.Seconds, res.Delivered)
	}
	if !res.Anomalies.none() {
		t.Errorf("anomalies: %s", res.Anomalies)
	}
}

// TestRateLimitedIsLoss checks that what the server refuses is reported:
// at the default rate limit, a burst over it is lost with rate-limited
// errors, and the exit code says so.
func TestRateLimitedIsLoss(t *testing.T) {
	srv := signaltest.New(t, signal.Config{Rate: 1, Burst: 2})
	var stdout, stderr bytes.Buffer
	code := realMain(testCtx(t), []string{"latency", "-json", "-url", srv.URL, "-pairs", "1", "-rate", "100",
		"-duration", "100ms", "-drain", "300ms", "-source-ips", "1"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit code %d, want 1; stderr:\n%s", code, &stderr)
	}
	var res msgResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%s", err, &stdout)
	}
	// The server answers the first message it refuses in a window with
	// rate-limited and drops the rest of the window's silently.
	if rl := res.Anomalies.ErrorCodes[signal.CodeRateLimited]; res.Sent != 10 || res.Lost == 0 || res.Delivered+res.Lost != res.Sent || rl < 1 || rl > int(res.Lost) {
		t.Errorf("sent %d delivered %d lost %d errors %v", res.Sent, res.Delivered, res.Lost, res.Anomalies.ErrorCodes)
	}
	if !strings.Contains(stderr.String(), "latency: 1 pairs") {
		t.Errorf("no human summary on stderr:\n%s", &stderr)
	}
}

func TestJSONLine(t *testing.T) {
	srv := newServer(t)
	var stdout, stderr bytes.Buffer
	code := realMain(testCtx(t), []string{"mem", "-json", "-url", srv.URL, "-n", "6", "-pid", "-1", "-settle", "0"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, &stderr)
	}
	if n := strings.Count(stdout.String(), "\n"); n != 1 {
		t.Errorf("stdout has %d lines, want 1:\n%s", n, &stdout)
	}
	var res memResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Scenario != "mem" || res.Conns != 6 || res.RoomsRelaying != 3 {
		t.Errorf("%+v", res)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"ws://10.0.0.1:2013/ws", "ws://example.org/ws", "wss://127.0.0.1/ws"} {
		if _, err := newDialers([]string{u}, 1); err == nil {
			t.Errorf("%s: accepted", u)
		}
	}
	// A usage error (exit 2), caught while parsing the flags.
	var stderr bytes.Buffer
	if code := realMain(context.Background(), []string{"mem", "-url", "ws://192.0.2.1:2013/ws", "-pid", "-1"}, io.Discard, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "not a loopback address") {
		t.Errorf("exit code %d, want 2; stderr:\n%s", code, &stderr)
	}
}

func TestFrame(t *testing.T) {
	f, tOff, sOff := frameTemplate("b", 300)
	putDigits(f[tOff:tOff+tsDigits], 1234567890123)
	putDigits(f[sOff:sOff+seqDigits], 42)
	var m struct{ Type, To, Data string }
	if err := json.Unmarshal(f, &m); err != nil {
		t.Fatalf("%v: %s", err, f)
	}
	if m.Type != "message" || m.To != "b" || len(m.Data) != 300 || !strings.HasPrefix(m.Data, "t=0000001234567890123 s=0000000042 ") {
		t.Errorf("%+v (data %d bytes)", m, len(m.Data))
	}
	// The relayed form parses back.
	relayed := []byte(`{"type":"message","from":"a","data":"` + m.Data + `"}`)
	c := &client{r: newRun()}
	c.nextSeq = 42
	c.handle(relayed)
	if c.recvd != 1 || c.reordered != 0 || c.malformed != 0 || len(c.lat) != 1 {
		t.Errorf("recvd %d reordered %d malformed %d", c.recvd, c.reordered, c.malformed)
	}
}

func TestSummarize(t *testing.T) {
	var ns []int64
	for i := 100; i >= 1; i-- {
		ns = append(ns, int64(i)*1e6)
	}
	d := summarize(ns)
	if d.N != 100 || d.P50 != 50 || d.P90 != 90 || d.P99 != 99 || d.Max != 100 {
		t.Errorf("%+v", d)
	}
}

func TestNegotiate(t *testing.T) {
	srv := signaltest.New(t, signal.Config{}) // default limits: negotiation stays under them
	o := testOptions(t, srv.URL)
	o.pairs = 2
	o.rounds = 1
	res, err := runNegotiate(testCtx(t), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failures != 0 || res.ThroughServer.N != 2 || res.InProcess.N != 2 {
		t.Errorf("%+v", res)
	}
	if res.ThroughServer.P50 <= 0 || res.InProcess.P50 <= 0 || res.ServerPerSec <= 0 || res.InProcessPerSec <= 0 {
		t.Errorf("%+v", res)
	}
}
