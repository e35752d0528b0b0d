//go:build linux

package main

// Cluster mode end to end, through a real load balancer: HAProxy
// (testdata/haproxy.cfg.tmpl, the configuration README shows) in front of
// three rendezvous processes sharing a nats-server process, with a call
// across two nodes that outlives a drain (SIGTERM) and a crash (SIGKILL)
// of the node that hosts its room.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// runMainEnv, set to 1 in the environment, makes the test binary run the
// command instead of its tests: the cluster test's nodes are this binary,
// so that they are built with the test's flags (-race included).
const runMainEnv = "CMD_RENDEZVOUS_TEST_RUN_MAIN"

func init() {
	if os.Getenv(runMainEnv) == "1" {
		main() // exits
	}
}

const (
	// e2eWait bounds every wait of the cluster test: a process to start
	// or stop, a client to be closed, a resume to succeed.
	e2eWait = 20 * time.Second
	// e2eLease is the nodes' -lease: how long a killed node's rooms wait
	// to be re-hosted.
	e2eLease = time.Second
	// e2eRehostSlack is how long after a killed node's lease its rooms'
	// members may take to resume elsewhere: the re-hosting and the
	// clients' backoff, with room for a loaded machine.
	e2eRehostSlack = 5 * time.Second
	// e2eAdminToken enables the nodes' admin API.
	e2eAdminToken = "cluster-e2e-admin-token"
	// e2eRoom is the room of the call.
	e2eRoom = "e2e"
)

// TestClusterThroughHAProxy runs a call between two clients that
// HAProxy's round-robin puts on different nodes of a 3-node cluster. The
// node hosting the room is drained (SIGTERM): its clients are closed with
// 1012, resume through HAProxy with their tokens, and find their seats
// with nothing lost or repeated, no peer-left, and the node exits 0. Then
// the node that hosts the room next is killed (SIGKILL): after its lease
// the clients resume through HAProxy with gap, and relay again.
func TestClusterThroughHAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server and runs HAProxy and three nodes")
	}
	haproxy := needHAProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*e2eWait)
	defer cancel()

	natsURL := startNATS(t, ctx, buildNATS(t))
	nodes := make([]*e2eNode, 3)
	for i := range nodes {
		nodes[i] = startNode(t, ctx, natsURL, fmt.Sprintf("node%d", i))
	}
	waitClusterFormed(t, ctx, nodes)
	lb := startHAProxy(t, ctx, haproxy, nodes)

	// Two members, one after the other through round-robin: each lands
	// on the next node. Which node's gateway opened a tunnel for each
	// join says where it is.
	alice := &e2eMember{name: "alice", lb: lb}
	bob := &e2eMember{name: "bob", lb: lb}
	alice.join(t, ctx)
	aliceNode := gatewayOf(t, ctx, nodes, map[string]float64{})
	bob.join(t, ctx)
	bobNode := gatewayOf(t, ctx, nodes, map[string]float64{aliceNode.id: 1})
	if aliceNode == bobNode {
		t.Fatalf("both members are on %s: round-robin should have spread them", aliceNode.id)
	}
	t.Logf("alice is on %s, bob on %s", aliceNode.id, bobNode.id)
	alice.peer, bob.peer = bob.id, alice.id
	if pj := alice.next(t, ctx, signal.TypePeerJoined); pj.ID != bob.id {
		t.Fatalf("alice saw peer-joined %q, want bob's %q", pj.ID, bob.id)
	}
	relayBothWays(t, ctx, alice, bob, 3)
	checkAdminRoom(t, ctx, lb, alice.id, bob.id)

	// Drain the room's host. Alice's join claimed the room for her
	// gateway.
	host := roomHost(t, ctx, nodes)
	if host != aliceNode {
		t.Fatalf("the room is hosted on %s, want alice's gateway %s (the first join claims it)", host.id, aliceNode.id)
	}
	start := time.Now()
	if err := host.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Alice's connection was on the drained node: closed with 1012, she
	// resumes at once.
	alice.waitClosed(t, ctx)
	alice.wantClose(t, signal.CloseServiceRestart)
	alice.resume(t, ctx, false)
	t.Logf("drain: alice resumed %v after SIGTERM", time.Since(start))
	// Bob's gateway lives on; the room's host moving closes him with 1012
	// too (PROTOCOL.md), unless his gateway follows the room on its own.
	// Either way, what alice sends him now reaches him once.
	n := alice.out + 1
	alice.send(t, n)
	bob.expectOrResume(t, ctx, n)
	if bob.resumed {
		t.Logf("drain: bob was closed with 1012 and resumed %v after SIGTERM", time.Since(start))
	} else {
		t.Logf("drain: bob kept his connection (%v after SIGTERM)", time.Since(start))
	}
	relayBothWays(t, ctx, bob, alice, 3)
	exitCtx, cancelExit := context.WithTimeout(ctx, e2eWait)
	defer cancelExit()
	if err := host.waitExit(exitCtx); err != nil {
		t.Fatalf("the drained node: %v; log:\n%s", err, host.logs)
	}
	t.Logf("drain: %s exited 0 %v after SIGTERM", host.id, host.ended.Sub(start))
	checkAdminRoom(t, ctx, lb, alice.id, bob.id)

	// Kill the room's new host.
	live := make([]*e2eNode, 0, len(nodes))
	for _, n := range nodes {
		if n != host {
			live = append(live, n)
		}
	}
	host = roomHost(t, ctx, live)
	start = time.Now()
	host.killed = true
	if err := host.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Every member loses its connection: dropped when it was on the dead
	// node, closed with 1012 after the lease when only the room was.
	// Each resumes as soon as its connection ends, as a client would: the
	// one dropped at once retries until its room is re-hosted.
	members := []*e2eMember{alice, bob}
	ended := make([]<-chan time.Duration, len(members))
	for i, m := range members {
		ended[i] = m.endedSince(ctx, start)
	}
	for range members {
		var m *e2eMember
		var after time.Duration
		select {
		case after = <-ended[0]:
			m, ended[0] = members[0], nil
		case after = <-ended[1]:
			m, ended[1] = members[1], nil
		}
		m.waitClosed(t, ctx) // the connection has ended: it returns at once
		ce, ok := m.c.CloseError()
		t.Logf("crash: %s's connection ended %v after SIGKILL (%v)", m.name, after, ce)
		if ok && ce.Code != signal.CloseServiceRestart && ce.Code != websocket.CloseAbnormalClosure {
			t.Fatalf("%s was closed with %d %q after the crash, want 1012 or a dropped connection (1006)", m.name, ce.Code, ce.Text)
		}
		m.resume(t, ctx, true)
		took := time.Since(start)
		t.Logf("crash: %s resumed with gap %v after SIGKILL (lease %v)", m.name, took, e2eLease)
		if took > e2eLease+e2eRehostSlack {
			t.Errorf("%s resumed %v after the crash, want within the lease (%v) + %v", m.name, took, e2eLease, e2eRehostSlack)
		}
	}
	relayBothWays(t, ctx, alice, bob, 3)
	checkAdminRoom(t, ctx, lb, alice.id, bob.id)
}

// needHAProxy returns the haproxy binary: on PATH, or where Debian puts
// it (/usr/sbin, not on every user's PATH). Without one it skips the
// test, saying how to install it, unless CI=true, where it fails it.
func needHAProxy(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("haproxy")
	if err != nil {
		path, err = exec.LookPath("/usr/sbin/haproxy")
	}
	if err != nil {
		const hint = "apt-get install -y haproxy"
		if os.Getenv("CI") == "true" {
			t.Fatalf("haproxy is not installed, and CI=true requires the load-balancer test: %s", hint)
		}
		t.Skipf("haproxy is not installed; to run this test: %s", hint)
	}
	return path
}

// e2eProc is a process the test started, its output kept.
type e2eProc struct {
	name   string
	cmd    *exec.Cmd
	logs   *logSink      // stdout and stderr
	exited chan struct{} // closed once Wait has returned
	err    error         // Wait's result, set before exited is closed
	ended  time.Time     // when Wait returned, set before exited is closed
}

// startProc starts bin with args and env (nil: the test's). The process
// dies with the test binary, and is stopped when the test ends.
func startProc(t *testing.T, name string, env []string, bin string, args ...string) *e2eProc {
	t.Helper()
	p := &e2eProc{name: name, logs: newLogSink(), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs // one writer: one pipe, one goroutine
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.ended = time.Now()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop ends the process if it still runs: SIGTERM, then SIGKILL if it has
// not exited within exitTimeout. It returns Wait's error.
func (p *e2eProc) stop() error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(exitTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited // a killed process always ends
	return fmt.Errorf("%s did not exit within %s of SIGTERM, killed: %w", p.name, exitTimeout, p.err)
}

// waitExit waits for the process to exit, and returns an error unless it
// exited 0.
func (p *e2eProc) waitExit(ctx context.Context) error {
	select {
	case <-p.exited:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("%s has not exited: %w", p.name, ctx.Err())
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// httpGet GETs url, with the admin token when admin is set.
func httpGet(ctx context.Context, url string, admin bool) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if admin {
		req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// poll calls cond every 50 ms until it returns nil, p exits (p may be
// nil) or ctx ends, and returns cond's last error in those cases.
func poll(ctx context.Context, p *e2eProc, cond func() error) error {
	var exited <-chan struct{}
	if p != nil {
		exited = p.exited
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-exited:
			return fmt.Errorf("%s exited (%v); last: %w", p.name, p.err, err)
		case <-ctx.Done():
			return fmt.Errorf("%w; last: %w", ctx.Err(), err)
		}
	}
}

// buildNATS builds nats-server from the module's dependency.
func buildNATS(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nats-server")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("build nats-server: %v\n%s", err, out)
	}
	return bin
}

// startNATS runs nats-server with JetStream on random ports and returns
// its client URL once its /healthz (JetStream included) is ok.
func startNATS(t *testing.T, ctx context.Context, bin string) string {
	t.Helper()
	for attempt := 1; ; attempt++ { // a free port may be taken before the server binds it
		port, monitor := freePort(t), freePort(t)
		p := startProc(t, "nats-server", nil, bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port),
			"-m", strconv.Itoa(monitor), "-sd", t.TempDir())
		health := fmt.Sprintf("http://127.0.0.1:%d/healthz", monitor)
		err := poll(ctx, p, func() error {
			code, body, err := httpGet(ctx, health, false)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("healthz: HTTP %d %s", code, body)
			}
			return err
		})
		if err == nil {
			return fmt.Sprintf("nats://127.0.0.1:%d", port)
		}
		_ = p.stop()
		if attempt == 3 || ctx.Err() != nil {
			t.Fatalf("nats-server not ready: %v; log:\n%s", err, p.logs)
		}
	}
}

// e2eNode is a rendezvous process in cluster mode.
type e2eNode struct {
	*e2eProc
	id     string
	addr   string // host:port it listens on
	killed bool   // the test killed it: no exit status to check
}

// startNode runs the command (this test binary) as node id of the
// cluster on natsURL and returns it once it listens. When the test ends
// it is stopped with SIGTERM and must exit 0, unless the test killed it.
func startNode(t *testing.T, ctx context.Context, natsURL, id string) *e2eNode {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix+"_") { // the node's flags are the test's alone
			env = append(env, kv)
		}
	}
	env = append(env, runMainEnv+"=1")
	n := &e2eNode{id: id}
	n.e2eProc = startProc(t, id, env, exe, "-addr", "127.0.0.1:0", "-nats", natsURL, "-node-id", id,
		"-lease", e2eLease.String(), "-max-conns-per-ip", "0", "-upgrade-rate", "0", "-admin-token", e2eAdminToken)
	t.Cleanup(func() {
		if err := n.stop(); err != nil && !n.killed {
			t.Errorf("node %s: %v; log:\n%s", id, err, n.logs)
		}
	})
	rec, err := n.logs.wait(ctx, n.exited, isListening)
	if err != nil {
		t.Fatalf("node %s did not listen: %v; log:\n%s", id, err, n.logs)
	}
	n.addr = rec.attrs["addr"]
	return n
}

// e2eHealth is what the test reads of a node's /healthz.
type e2eHealth struct {
	Status string `json:"status"`
	Node   string `json:"node"`
	Nodes  []struct {
		ID string `json:"id"`
	} `json:"nodes"`
	Rooms int `json:"rooms"` // rooms the node hosts
}

// health reads n's /healthz, straight from n.
func (n *e2eNode) health(ctx context.Context) (e2eHealth, error) {
	var h e2eHealth
	_, body, err := httpGet(ctx, "http://"+n.addr+"/healthz", false)
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return h, fmt.Errorf("node %s /healthz: %w: %s", n.id, err, body)
	}
	return h, nil
}

// waitClusterFormed waits until every node sees every node alive.
func waitClusterFormed(t *testing.T, ctx context.Context, nodes []*e2eNode) {
	t.Helper()
	for _, n := range nodes {
		err := poll(ctx, n.e2eProc, func() error {
			h, err := n.health(ctx)
			if err == nil && (h.Status != "ok" || len(h.Nodes) != len(nodes)) {
				err = fmt.Errorf("node %s: status %s, sees %d nodes", n.id, h.Status, len(h.Nodes))
			}
			return err
		})
		if err != nil {
			t.Fatalf("cluster not formed: %v; log:\n%s", err, n.logs)
		}
	}
}

// roomHost returns the one node of nodes whose /healthz says it hosts a
// room (the test has one room), waiting while the room moves.
func roomHost(t *testing.T, ctx context.Context, nodes []*e2eNode) *e2eNode {
	t.Helper()
	var host *e2eNode
	err := poll(ctx, nil, func() error {
		host = nil
		for _, n := range nodes {
			h, err := n.health(ctx)
			if err != nil {
				return err
			}
			if h.Rooms == 0 {
				continue
			}
			if host != nil || h.Rooms != 1 {
				return fmt.Errorf("%s and %s host rooms (%d): want one room on one node", host.id, n.id, h.Rooms)
			}
			host = n
		}
		if host == nil {
			return errors.New("no node hosts the room")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("finding the room's host: %v", err)
	}
	return host
}

// gatewayOf returns the node whose gateway opened a tunnel since the
// counts in before (rendezvous_cluster_tunnels_opened_total by node id;
// absent is 0): the node of the client that just joined.
func gatewayOf(t *testing.T, ctx context.Context, nodes []*e2eNode, before map[string]float64) *e2eNode {
	t.Helper()
	var found *e2eNode
	for _, n := range nodes {
		v, err := n.tunnelsOpened(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch d := v - before[n.id]; {
		case d == 0:
		case d == 1 && found == nil:
			found = n
		default:
			t.Fatalf("node %s opened %v tunnels for one join (before: %v)", n.id, d, before)
		}
	}
	if found == nil {
		t.Fatal("no node opened a tunnel for the join")
	}
	return found
}

// tunnelsOpened reads rendezvous_cluster_tunnels_opened_total from n's
// /metrics.
func (n *e2eNode) tunnelsOpened(ctx context.Context) (float64, error) {
	const name = "rendezvous_cluster_tunnels_opened_total"
	code, body, err := httpGet(ctx, "http://"+n.addr+"/metrics", false)
	if err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("node %s /metrics: HTTP %d %v", n.id, code, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("node %s /metrics has no %s", n.id, name)
}

// e2eLB is HAProxy, running.
type e2eLB struct {
	*e2eProc
	base string // http://127.0.0.1:port
}

// haproxyConfig is what testdata/haproxy.cfg.tmpl is rendered with.
type haproxyConfig struct {
	Bind    string // the frontend's address
	Servers []haproxyServer
}

type haproxyServer struct{ Name, Addr string }

// startHAProxy runs HAProxy in front of nodes, configured from
// testdata/haproxy.cfg.tmpl, and returns it once it answers /healthz.
func startHAProxy(t *testing.T, ctx context.Context, bin string, nodes []*e2eNode) *e2eLB {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "haproxy.cfg.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for attempt := 1; ; attempt++ { // a free port may be taken before HAProxy binds it
		cfg := haproxyConfig{Bind: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		for _, n := range nodes {
			cfg.Servers = append(cfg.Servers, haproxyServer{Name: n.id, Addr: n.addr})
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, cfg); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, fmt.Sprintf("haproxy-%d.cfg", attempt))
		if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-c", "-f", file).CombinedOutput(); err != nil {
			t.Fatalf("haproxy -c: the configuration is invalid: %v\n%s\n%s", err, out, b.String())
		}
		lb := &e2eLB{e2eProc: startProc(t, "haproxy", nil, bin, "-db", "-f", file), base: "http://" + cfg.Bind}
		err := poll(ctx, lb.e2eProc, func() error {
			code, body, err := httpGet(ctx, lb.base+"/healthz", false)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("healthz through haproxy: HTTP %d %s", code, body)
			}
			return err
		})
		if err == nil {
			return lb
		}
		_ = lb.stop()
		if attempt == 3 || ctx.Err() != nil {
			t.Fatalf("haproxy not ready: %v; log:\n%s", err, lb.logs)
		}
	}
}

// checkAdminRoom checks, through HAProxy (so on any node), that the admin
// API sees the room with exactly the two members ids.
func checkAdminRoom(t *testing.T, ctx context.Context, lb *e2eLB, ids ...string) {
	t.Helper()
	code, body, err := httpGet(ctx, lb.base+"/api/rooms/"+e2eRoom, true)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/rooms/%s: HTTP %d %v %s", e2eRoom, code, err, body)
	}
	var info signal.RoomInfo
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("GET /api/rooms/%s: %v: %s", e2eRoom, err, body)
	}
	got := map[string]bool{}
	for _, p := range info.Peers {
		got[p.ID] = true
	}
	if info.Members != len(ids) || len(got) != len(ids) || !got[ids[0]] || !got[ids[1]] {
		t.Fatalf("GET /api/rooms/%s: %s, want members %v", e2eRoom, body, ids)
	}
}

// e2eMember is a client in the call, connected through HAProxy, that
// numbers the messages it sends its partner and checks those it receives.
type e2eMember struct {
	name    string
	lb      *e2eLB
	c       *signal.Client
	id      string
	peer    string // the partner's id
	token   string // the newest resume token
	sent    uint64 // frames sent since the join that took the seat (PROTOCOL.md, Resume)
	out     int    // the number of the last message sent to the partner
	in      int    // the number of the last message received from it
	resumed bool   // the last connection ended and the member resumed

	sawPeerJoined bool // the partner's peer-joined came
}

// dial connects to HAProxy's /ws.
func (m *e2eMember) dial(ctx context.Context) (*signal.Client, error) {
	return signal.Dial(ctx, "ws"+strings.TrimPrefix(m.lb.base, "http")+"/ws", nil)
}

// join connects and takes a seat in the room.
func (m *e2eMember) join(t *testing.T, ctx context.Context) {
	t.Helper()
	c, err := m.dial(ctx)
	if err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
	t.Cleanup(func() { _ = m.c.Close() })
	m.c = c
	j, err := c.Join(ctx, e2eRoom, nil)
	if err != nil {
		t.Fatalf("%s: join: %v", m.name, err)
	}
	m.id, m.token = j.ID, j.Resume
}

// send sends the partner message number n.
func (m *e2eMember) send(t *testing.T, n int) {
	t.Helper()
	if n != m.out+1 {
		t.Fatalf("%s sends %d after %d", m.name, n, m.out)
	}
	if err := m.c.Send(&signal.Message{Type: signal.TypeMessage, To: m.peer, Data: json.RawMessage(strconv.Itoa(n))}); err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
	m.out = n
	m.sent++
}

// next returns the next message of type typ, failing on a peer-left or
// a close.
func (m *e2eMember) next(t *testing.T, ctx context.Context, typ string) *signal.Message {
	t.Helper()
	for {
		msg, err := m.c.Recv(ctx)
		if err != nil {
			t.Fatalf("%s waiting for %s: %v", m.name, typ, err)
		}
		m.check(t, msg)
		if msg.Type == typ {
			return msg
		}
	}
}

// check fails on what a member must not see during the call, and checks
// the numbering of the partner's messages.
func (m *e2eMember) check(t *testing.T, msg *signal.Message) {
	t.Helper()
	switch msg.Type {
	case signal.TypePeerLeft, signal.TypeError:
		t.Fatalf("%s got %+v", m.name, msg)
	case signal.TypePeerJoined: // the partner's first join only: a resume is no newcomer
		if msg.ID != m.peer || m.sawPeerJoined {
			t.Fatalf("%s got %+v, want one peer-joined, for %q", m.name, msg, m.peer)
		}
		m.sawPeerJoined = true
	case signal.TypeMessage:
		if msg.From != m.peer || string(msg.Data) != strconv.Itoa(m.in+1) {
			t.Fatalf("%s got message %s from %q, want %d from %q: lost, repeated or misrouted", m.name, msg.Data, msg.From, m.in+1, m.peer)
		}
		m.in++
	}
}

// expect receives the partner's message n.
func (m *e2eMember) expect(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	m.next(t, ctx, signal.TypeMessage)
	if m.in != n {
		t.Fatalf("%s got message %d, want %d", m.name, m.in, n)
	}
}

// expectOrResume receives the partner's message n, resuming first if the
// connection is closed with 1012 before it comes.
func (m *e2eMember) expectOrResume(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	m.resumed = false
	for m.in < n {
		msg, err := m.c.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s waiting for message %d: %v", m.name, n, err)
			}
			m.wantClose(t, signal.CloseServiceRestart)
			m.resume(t, ctx, false)
			continue
		}
		m.check(t, msg)
	}
	if m.in != n {
		t.Fatalf("%s got message %d, want %d", m.name, m.in, n)
	}
}

// waitClosed waits for the connection to end, checking what it delivered
// before its end.
func (m *e2eMember) waitClosed(t *testing.T, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, e2eWait)
	defer cancel()
	for {
		msg, err := m.c.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s's connection was not closed within %v", m.name, e2eWait)
			}
			return
		}
		m.check(t, msg)
	}
}

// endedSince returns a channel that gets the time from start to the end
// of the member's current connection, or e2eWait if it has not ended
// then.
func (m *e2eMember) endedSince(ctx context.Context, start time.Time) <-chan time.Duration {
	ch := make(chan time.Duration, 1)
	done := m.c.Done()
	go func() {
		timer := time.NewTimer(e2eWait)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
		case <-ctx.Done():
		}
		ch <- time.Since(start)
	}()
	return ch
}

// wantClose checks that the connection ended with a close frame of code.
func (m *e2eMember) wantClose(t *testing.T, code int) {
	t.Helper()
	if ce, ok := m.c.CloseError(); !ok || ce.Code != code {
		t.Fatalf("%s's connection ended with %v (close frame: %v), want %d", m.name, ce, ok, code)
	}
}

// resume takes the seat back on a new connection through HAProxy,
// retrying with backoff while the attempt cannot connect or is closed
// (a node not ready for it yet, or the room not re-hosted yet). It
// checks the resumed joined: same id, and read equal to the frames sent
// or, when gap, gap and no read.
func (m *e2eMember) resume(t *testing.T, ctx context.Context, gap bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, e2eWait)
	defer cancel()
	received := m.c.Received()
	_ = m.c.Close()
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		c, err := m.dial(ctx)
		if err == nil {
			var j *signal.Message
			j, err = c.Join(ctx, e2eRoom, &signal.JoinOptions{Resume: m.token, Received: &received})
			if err == nil {
				m.c, m.resumed = c, true
				m.checkResumed(t, j, gap, attempt)
				return
			}
			_ = c.Close()
			if perr := (*signal.Error)(nil); errors.As(err, &perr) {
				t.Fatalf("%s: resume: %v", m.name, err) // refused, not a node in the way
			}
		}
		t.Logf("%s: resume attempt %d: %v", m.name, attempt, err)
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			t.Fatalf("%s could not resume within %v: %v", m.name, e2eWait, err)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// checkResumed checks the joined of a resume.
func (m *e2eMember) checkResumed(t *testing.T, j *signal.Message, gap bool, attempt int) {
	t.Helper()
	if j.Type != signal.TypeJoined || !j.Resumed || j.ID != m.id || j.Resume == "" {
		t.Fatalf("%s resumed with %+v, want joined, resumed, id %s and a new token", m.name, j, m.id)
	}
	m.token = j.Resume
	read := "none"
	if j.Read != nil {
		read = strconv.FormatUint(*j.Read, 10)
	}
	t.Logf("%s resumed on attempt %d: gap %v, read %s", m.name, attempt, j.Gap, read)
	switch {
	case gap && (!j.Gap || j.Read != nil):
		t.Fatalf("%s resumed after a crash with gap %v, read %s: want gap and no read", m.name, j.Gap, read)
	case gap:
		m.sent = 0 // the count starts again after a gap
	case j.Gap || j.Read == nil || *j.Read != m.sent:
		t.Fatalf("%s resumed after a drain with gap %v, read %s: want read %d (the frames it sent)", m.name, j.Gap, read, m.sent)
	}
	if len(j.Peers) != 1 || j.Peers[0] != m.peer {
		t.Fatalf("%s resumed with peers %v, want [%s]", m.name, j.Peers, m.peer)
	}
}

// relayBothWays has a send b n messages, and b send a n, and checks that
// each arrives once, in order.
func relayBothWays(t *testing.T, ctx context.Context, a, b *e2eMember, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, e2eWait)
	defer cancel()
	for _, way := range [][2]*e2eMember{{a, b}, {b, a}} {
		from, to := way[0], way[1]
		first := from.out + 1
		for i := first; i < first+n; i++ {
			from.send(t, i)
		}
		for i := first; i < first+n; i++ {
			to.expect(t, ctx, i)
		}
	}
}
