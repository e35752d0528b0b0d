package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

const testSecret = "rvb-test-secret"

// abuseServer is an in-process server with short timeouts and join
// tokens (tokenflood needs them), and abuseOptions the matching options.
func abuseServer(t *testing.T) *signaltest.Server {
	return signaltest.New(t, signal.Config{
		JoinTimeout:    300 * time.Millisecond,
		MessageTimeout: 300 * time.Millisecond,
		ReadTimeout:    300 * time.Millisecond,
		IdleTimeout:    300 * time.Millisecond,
		ResumeWindow:   500 * time.Millisecond,
		AuthSecret:     []byte(testSecret),
	})
}

func abuseOptions(t *testing.T, url string) *options {
	o := testOptions(t, url)
	o.scenario = "abuse"
	o.n, o.size, o.rate = 0, 0, 40
	o.duration = 300 * time.Millisecond
	o.baseline = 200 * time.Millisecond
	o.drain = 5 * time.Second
	o.grace = 5 * time.Second // generous: the tests check bounds, not speeds
	o.authSecret = testSecret
	o.joinTimeout, o.messageTimeout, o.readTimeout, o.idleTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	o.resumeWindow = 500 * time.Millisecond
	o.pid = -1
	return o
}

// smallN keeps the attacks small for the tests.
var smallN = map[string]int{"noack": 2, "held": 2, "nojoin": 20, "fragment": 5, "pingflood": 2,
	"tokenflood": 2, "rateflood": 1, "idlehttp": 10, "slowbody": 10}

// TestAbuse runs each attack end to end against an in-process server
// with short timeouts and checks that the result is complete and
// consistent: the victim measured before and during the attack and lost
// nothing, the server's figures were read, every attacker is accounted
// for, and the attacks with a timeout saw the server end every target.
func TestAbuse(t *testing.T) {
	srv := abuseServer(t)
	for _, sp := range attackSpecs {
		t.Run(sp.name, func(t *testing.T) {
			o := abuseOptions(t, srv.URL)
			o.attack = sp.name
			o.n = smallN[sp.name]
			if sp.name == "noack" || sp.name == "held" {
				o.size = 16000
				o.duration = 600 * time.Millisecond // held drops after a third of it
			}
			if sp.name == "tokenflood" {
				o.attackRate = 200
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			t0 := time.Now()
			res, err := runAbuse(ctx, o, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(t0); el > 30*time.Second {
				t.Errorf("took %s", el)
			}
			if len(res.Attacks) != 1 {
				t.Fatalf("%d attacks", len(res.Attacks))
			}
			r := res.Attacks[0]
			if r.Error != "" {
				t.Fatalf("error: %s", r.Error)
			}
			checkAttack(t, sp, o, r)
			var buf bytes.Buffer
			res.print(&buf)
			t.Log("\n" + buf.String())
			for _, want := range []string{"abuse " + sp.name + ":", "victim RTT", "server heap", "attackers", "ended by"} {
				if !strings.Contains(buf.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, &buf)
				}
			}
		})
	}
}

func checkAttack(t *testing.T, sp *attackSpec, o *options, r *attackResult) {
	t.Helper()
	n := o.n
	v := r.Victim
	// Round trips are recorded in the phase they come back in; the attack
	// phase (at least -duration) always sees some.
	if int64(v.Baseline.N+v.Attack.N) > v.Completed || v.Attack.N == 0 || v.Attack.P50 <= 0 || v.Attack.P99 < v.Attack.P50 || v.Attack.Max < v.Attack.P99 {
		t.Errorf("victim: baseline %+v, attack %+v", v.Baseline, v.Attack)
	}
	if v.Sent == 0 || v.Lost != 0 || v.Completed != v.Sent || !v.Anomalies.none() || v.Error != "" {
		t.Errorf("victim: sent %d completed %d lost %d anomalies %s error %q", v.Sent, v.Completed, v.Lost, v.Anomalies, v.Error)
	}
	if r.MetricsError != "" {
		t.Errorf("metrics: %s", r.MetricsError)
	}
	if r.HeapInuse.Before <= 0 || r.HeapInuse.Peak < r.HeapInuse.Before || r.HeapInuse.After <= 0 ||
		r.RSS.Before <= 0 || r.RSS.Peak < r.RSS.Before || r.RSS.After <= 0 {
		t.Errorf("heap %+v, RSS %+v", r.HeapInuse, r.RSS)
	}
	// The victim's two connections are open before; the attackers add to
	// the peak (plain HTTP connections are not WebSocket connections).
	if r.ServerConns.Before < 2 || r.ServerConns.Peak < r.ServerConns.Before {
		t.Errorf("server connections %+v", r.ServerConns)
	}
	if r.Seconds < o.duration.Seconds() {
		t.Errorf("attack lasted %.3f s, less than -duration %s", r.Seconds, o.duration)
	}
	conns := n
	if sp.name == "noack" || sp.name == "held" {
		conns = 2 * n
	}
	if r.Conns < conns || r.Targets < n {
		t.Errorf("conns %d targets %d, want at least %d and %d", r.Conns, r.Targets, conns, n)
	}
	if r.EndedByServer+r.OpenAtEnd != r.Targets || r.EndedAfter.N != r.EndedByServer {
		t.Errorf("targets %d: %d ended by the server (%d timed), %d open", r.Targets, r.EndedByServer, r.EndedAfter.N, r.OpenAtEnd)
	}
	ended := 0
	for _, c := range r.Ended {
		ended += c
	}
	if ended < r.EndedByServer {
		t.Errorf("ended %v, but %d targets ended by the server", r.Ended, r.EndedByServer)
	}
	if sp.unit != "" && r.Sent <= 0 {
		t.Errorf("sent %d %s", r.Sent, sp.unit)
	}
	if timeout, _ := sp.timeout(o); timeout > 0 {
		// The server ends every target, within its timeout + grace.
		if r.HeldPastTimeout != 0 || r.EndedByServer != r.Targets || r.Timeout != timeout.Seconds() {
			t.Errorf("timeout %v s: %d of %d held past it, %d ended", r.Timeout, r.HeldPastTimeout, r.Targets, r.EndedByServer)
		}
		if r.EndedAfter.Max > (timeout+o.grace).Seconds()*1000 {
			t.Errorf("ended after %+v", r.EndedAfter)
		}
	}
	switch sp.name {
	case "noack":
		if r.Targets != n {
			t.Errorf("%d receivers, want %d", r.Targets, n)
		}
	case "tokenflood":
		if r.Replies["created"]+r.Replies["joined"] != 0 {
			t.Errorf("the server accepted bad tokens: %v", r.Replies)
		}
		if len(r.Replies)+len(r.Ended) == 0 {
			t.Errorf("the server neither answered nor closed: replies %v, ended %v", r.Replies, r.Ended)
		}
	case "rateflood", "pingflood":
		if len(r.Replies)+len(r.Ended) == 0 && sp.name == "rateflood" {
			t.Errorf("the server neither answered nor closed: replies %v, ended %v", r.Replies, r.Ended)
		}
	}
	for _, p := range r.Problems {
		// A flood's p99 depends on the machine (and -race); the rest is
		// the server's behaviour, which these settings bound.
		if !strings.HasPrefix(p, "victim p99") {
			t.Errorf("problem: %s", p)
		}
	}
}

// TestAbuseJSON runs an attack through the command line: one JSON line on
// stdout, the summary on stderr, exit code 0 when the server ended every
// attacker in time.
func TestAbuseJSON(t *testing.T) {
	srv := abuseServer(t)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := realMain(ctx, []string{"abuse", "-attack", "nojoin", "-json", "-url", srv.URL, "-n", "10", "-source-ips", "2",
		"-duration", "300ms", "-baseline", "200ms", "-settle", "0", "-join-timeout", "300ms", "-grace", "5s",
		"-auth-secret", testSecret, "-pid", "-1"}, &stdout, &stderr)
	if code != 0 {
		t.Errorf("exit code %d; stderr:\n%s", code, &stderr)
	}
	if n := strings.Count(stdout.String(), "\n"); n != 1 {
		t.Fatalf("stdout has %d lines, want 1:\n%s", n, &stdout)
	}
	var res abuseResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Scenario != "abuse" || len(res.Attacks) != 1 || res.Attacks[0].Attack != "nojoin" || res.Attacks[0].Targets != 10 ||
		res.Attacks[0].EndedByServer != 10 || res.Attacks[0].Timeout != 0.3 {
		t.Errorf("%s", &stdout)
	}
	if !strings.Contains(stderr.String(), "abuse nojoin: 10 connections") {
		t.Errorf("no summary on stderr:\n%s", &stderr)
	}
}

// TestAbuseHeldPastTimeout: against a server whose join timeout is longer
// than the one given, the attackers count as held and the run fails.
func TestAbuseHeldPastTimeout(t *testing.T) {
	srv := signaltest.New(t, signal.Config{JoinTimeout: time.Minute})
	o := abuseOptions(t, srv.URL)
	o.authSecret = ""
	o.attack, o.n = "nojoin", 4
	o.grace = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := runAbuse(ctx, o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Attacks[0]
	if r.HeldPastTimeout != 4 || r.OpenAtEnd != 4 || r.EndedByServer != 0 || !res.bad() || len(r.Problems) == 0 {
		t.Errorf("held %d open %d ended %d problems %q", r.HeldPastTimeout, r.OpenAtEnd, r.EndedByServer, r.Problems)
	}
	// Held until timeout + grace after the last attacker began.
	if r.Seconds < (o.joinTimeout + o.grace).Seconds() {
		t.Errorf("attack lasted %.3f s", r.Seconds)
	}
}

func TestAbuseUsage(t *testing.T) {
	var stderr bytes.Buffer
	if code := realMain(context.Background(), []string{"abuse", "-attack", "nosuch"}, io.Discard, &stderr); code != 2 {
		t.Errorf("unknown attack: exit code %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "noack, held, nojoin") {
		t.Errorf("no list of attacks: %s", &stderr)
	}
	srv := signaltest.New(t, signal.Config{})
	stderr.Reset()
	if code := realMain(testCtx(t), []string{"abuse", "-attack", "tokenflood", "-url", srv.URL, "-pid", "-1"}, io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "-auth-secret") {
		t.Errorf("tokenflood without -auth-secret: exit code %d, stderr %s", code, &stderr)
	}
}

// TestAppendFrame checks the raw frames against gorilla's reader.
func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{'p'}, n)
		got := make(chan []byte, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			up := websocket.Upgrader{}
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				got <- nil
				return
			}
			defer ws.Close()
			_, m, _ := ws.ReadMessage()
			got <- m
		}))
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		// A fragmented message with a ping in between.
		half := n / 2
		b := appendFrame(nil, false, opText, payload[:half])
		b = appendFrame(b, true, opPing, []byte("x"))
		b = appendFrame(b, true, 0, payload[half:])
		if _, err := ws.NetConn().Write(b); err != nil {
			t.Fatal(err)
		}
		m := <-got
		ws.Close()
		srv.Close()
		if !bytes.Equal(m, payload) {
			t.Errorf("%d bytes: read %d", n, len(m))
		}
	}
}

func TestBadToken(t *testing.T) {
	tok := badToken(61440)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(tok) < 60000 || len(tok) > 61440 {
		t.Fatalf("%d parts, %d bytes", len(parts), len(tok))
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Room string
		Exp  int64
	}
	if err := json.Unmarshal(claims, &c); err != nil || c.Room != "*" || c.Exp < time.Now().Unix() {
		t.Errorf("claims %+v: %v", c, err)
	}
}

func TestScrapeMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `# HELP go_memstats_heap_inuse_bytes x
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.2345e+07
go_memstats_alloc_bytes 1e+07
process_resident_memory_bytes 3.3554432e+07
rendezvous_connections_open 12
rendezvous_connections_closed_total{reason="join-timeout"} 2000
rendezvous_connections_closed_total{reason="slow"} 3
`)
	}))
	defer srv.Close()
	m, err := scrapeMetrics(context.Background(), srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if m.HeapInuse != 12345000 || m.HeapAlloc != 1e7 || m.RSS != 33554432 || m.ConnsOpen != 12 ||
		m.Closed["join-timeout"] != 2000 || m.Closed["slow"] != 3 {
		t.Errorf("%+v", m)
	}
}

func TestEndHow(t *testing.T) {
	for err, want := range map[error]string{
		&websocket.CloseError{Code: 1008, Text: "join timeout"}:   "1008 join timeout",
		&websocket.CloseError{Code: 1006, Text: "unexpected EOF"}: "EOF (no close frame)",
		&websocket.CloseError{Code: 1009}:                         "1009",
		io.EOF:                                                    "EOF",
	} {
		if got := endHow(err); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
}
