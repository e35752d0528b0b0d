package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// epoch is the base of the timestamps carried in message frames. Sender and
// receiver are in this process, so a monotonic offset from epoch is an exact
// one-way latency clock.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// dialers spreads client connections over several loopback source
// addresses (one address has only ~28k ephemeral ports towards one server
// address) and over the server nodes of -url (see nodeOf).
type dialers struct {
	nodes []node
	ds    []*websocket.Dialer
}

// node is one server of -url.
type node struct {
	url  string // ws:// URL
	host string // host:port of the server
}

// maxURLs bounds -url: a cluster of more nodes than that is not a
// loopback benchmark.
const maxURLs = 64

// newDialers checks the server URLs (see checkURL) and makes dialers for
// sourceIPs source addresses.
func newDialers(urls []string, sourceIPs int) (*dialers, error) {
	if len(urls) == 0 {
		return nil, errors.New("-url: no server URL")
	}
	if len(urls) > maxURLs {
		return nil, fmt.Errorf("-url: %d URLs, at most %d", len(urls), maxURLs)
	}
	if sourceIPs < 1 {
		sourceIPs = 1
	}
	if sourceIPs > 250 {
		return nil, errors.New("-source-ips: at most 250 (127.0.0.2 … 127.0.0.251)")
	}
	d := &dialers{}
	for _, raw := range urls {
		host, err := checkURL(raw)
		if err != nil {
			return nil, fmt.Errorf("-url: %w", err)
		}
		d.nodes = append(d.nodes, node{url: raw, host: host})
	}
	for i := 0; i < sourceIPs; i++ {
		nd := &net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))},
			Timeout:   10 * time.Second,
			Control:   bindNoPort,
		}
		d.ds = append(d.ds, &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: 10 * time.Second,
			// Frames are ~350 bytes: small buffers keep 50k clients cheap
			// for the generator and still write each frame in one syscall.
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
		})
	}
	return d, nil
}

// checkURL checks one server URL: ws://, a loopback IPv4 host (or
// localhost), and returns its host:port (port 80 when it has none).
func checkURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "ws" {
		return "", fmt.Errorf("%q: scheme must be ws, not %q", raw, u.Scheme)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q: no host", raw)
	}
	if err := checkLoopback(u.Hostname()); err != nil {
		return "", err
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80"), nil
	}
	return u.Host, nil
}

// parseURLList splits a -url value at its commas and checks each URL
// (checkURL). Empty elements are errors.
func parseURLList(v string) ([]string, error) {
	var urls []string
	for k, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("element %d of %q is empty", k+1, v)
		}
		if _, err := checkURL(p); err != nil {
			return nil, err
		}
		urls = append(urls, p)
	}
	return urls, nil
}

// urlFlag is the -url flag: server URLs, comma-separated, and the flag
// may be repeated. The first value given replaces the default; a URL
// given twice is an error (its rooms would not be spread).
type urlFlag struct {
	list *[]string
	set  bool
}

func (f *urlFlag) String() string {
	if f == nil || f.list == nil {
		return ""
	}
	return strings.Join(*f.list, ",")
}

func (f *urlFlag) Set(v string) error {
	urls, err := parseURLList(v)
	if err != nil {
		return err
	}
	if !f.set {
		*f.list, f.set = nil, true
	}
	for _, u := range urls {
		if slices.Contains(*f.list, u) {
			return fmt.Errorf("%q is listed twice", u)
		}
		*f.list = append(*f.list, u)
	}
	if len(*f.list) > maxURLs {
		return fmt.Errorf("%d URLs, at most %d", len(*f.list), maxURLs)
	}
	return nil
}

// nodeOf is the server node (index into -url) of member m (0: "a", 1:
// "b") of room r among n nodes: (r + m) mod n. The two members of a room
// are on different nodes whenever n ≥ 2, and the clients are spread
// evenly over the nodes (each node holds n/2 … n/2+1 of every n rooms'
// members).
func nodeOf(r, m, n int) int {
	return (r + m) % n
}

// clientNode is the node of fleet client i, which is member i%2 of room
// i/2 (the fleet's layout; negotiate numbers its peers the same way).
func (d *dialers) clientNode(i int) int {
	return nodeOf(i/2, i%2, len(d.nodes))
}

// urlOf is the URL that fleet client i dials.
func (d *dialers) urlOf(i int) string {
	return d.nodes[d.clientNode(i)].url
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux 4.2+): with a
// source address bound, the kernel picks the port at connect time, per
// destination, instead of at bind time among all ports in use, which is
// slow with tens of thousands of sockets and runs out sooner.
const ipBindAddressNoPort = 24

func bindNoPort(network, address string, rc syscall.RawConn) error {
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	return nil
}

// checkLoopback refuses targets outside 127.0.0.0/8 (and ::1): this tool
// is for loopback load tests only.
func checkLoopback(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("host %q is not a loopback address; rendezvous-bench only targets 127.0.0.0/8", host)
	}
	if ip.To4() == nil {
		return fmt.Errorf("use an IPv4 loopback address (127.x.y.z), not %q, so that -source-ips works", host)
	}
	return nil
}

// source is the source address client i dials from.
func (d *dialers) source(i int) string {
	return net.IPv4(127, 0, 0, byte(2+i%len(d.ds))).String()
}

// dial connects fleet client i: from source address i, to its node
// (clientNode).
func (d *dialers) dial(ctx context.Context, i int) (*websocket.Conn, error) {
	return d.dialAt(ctx, i, d.clientNode(i))
}

// dialAt connects from source address src to server node k.
func (d *dialers) dialAt(ctx context.Context, src, k int) (*websocket.Conn, error) {
	ws, resp, err := d.ds[src%len(d.ds)].DialContext(ctx, d.nodes[k%len(d.nodes)].url, nil)
	if err != nil {
		if resp != nil {
			return nil, &upgradeError{err: err, status: resp.Status, code: resp.StatusCode}
		}
		return nil, err
	}
	return ws, nil
}

// upgradeError is a WebSocket upgrade the server answered with an HTTP
// status other than 101 (429 past its per-address limits, 503 past
// -max-conns).
type upgradeError struct {
	err    error
	status string
	code   int
}

func (e *upgradeError) Error() string { return fmt.Sprintf("%v (HTTP %s)", e.err, e.status) }
func (e *upgradeError) Unwrap() error { return e.err }

// dialTCP opens a plain TCP connection from source address src to server
// node k (the abuse scenario's HTTP attacks).
func (d *dialers) dialTCP(ctx context.Context, src, k int) (net.Conn, error) {
	return d.ds[src%len(d.ds)].NetDialContext(ctx, "tcp", d.nodes[k%len(d.nodes)].host)
}

// subset returns dialers that use only the source addresses [from, to),
// towards the same nodes.
func (d *dialers) subset(from, to int) *dialers {
	return &dialers{nodes: d.nodes, ds: d.ds[from:to]}
}

// Message frames. The body (the data string) is about -size bytes and
// starts with a fixed-width timestamp and sequence number that are patched
// in place before each send, so sending allocates nothing:
//
//	{"type":"message","to":"b","data":"t=0000000000000000000 s=0000000000 xxxx…"}
//
// The server relays it as {"type":"message","from":"a","data":"t=… s=… xxxx…"}.
const (
	tsDigits  = 19
	seqDigits = 10
)

var dataMarker = []byte(`"data":"t=`)

// frameTemplate returns a message frame to peer id `to` with a body of
// about size bytes, and the offsets of the timestamp and sequence digits.
func frameTemplate(to string, size int) (frame []byte, tOff, sOff int) {
	head := `{"type":"message","to":"` + to + `","data":"t=`
	b := []byte(head)
	tOff = len(b)
	b = append(b, bytes.Repeat([]byte{'0'}, tsDigits)...)
	b = append(b, " s="...)
	sOff = len(b)
	b = append(b, bytes.Repeat([]byte{'0'}, seqDigits)...)
	b = append(b, ' ')
	body := len(b) - len(head) + 2 // t= counts too
	for i := 0; body < size; i, body = i+1, body+1 {
		b = append(b, 'a'+byte(i%26))
	}
	b = append(b, `"}`...)
	return b, tOff, sOff
}

// putDigits writes v as exactly len(dst) decimal digits.
func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = '0' + byte(v%10)
		v /= 10
	}
}

// parseDigits reads n decimal digits; ok is false when they are not digits.
func parseDigits(b []byte) (v uint64, ok bool) {
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// run is the state shared by the clients of one scenario run.
type run struct {
	delivered atomic.Int64 // message frames received, all clients
	stop      atomic.Bool  // senders and window refills stop
	closing   atomic.Bool  // the run is closing its connections; read errors are expected
	readers   sync.WaitGroup

	mu         sync.Mutex
	errCodes   map[string]int // error messages from the server, by code
	unexpected map[string]int // other unexpected frames, by type
	readErrs   int            // connections that ended before the run closed them
	firstErr   string         // the first of those errors
	peerLeft   map[string]int // peer-left by reason

	// onMessage, when set (before any client starts), runs on a client's
	// reader goroutine after each message it receives (the throughput
	// window refill).
	onMessage func(c *client)
}

func newRun() *run {
	return &run{errCodes: map[string]int{}, unexpected: map[string]int{}, peerLeft: map[string]int{}}
}

// client is one load-generating connection. Its reader goroutine is the
// only reader; writes are serialised by wmu.
type client struct {
	r       *run
	idx     int
	ws      *websocket.Conn
	id      string // requested peer id, "a" or "b"
	room    string
	partner *client

	wmu   sync.Mutex
	frame []byte // message frame to partner (guarded by wmu)
	tOff  int
	sOff  int
	seq   uint64 // next sequence number to send (guarded by wmu)
	sent  int64  // frames written (guarded by wmu)

	joinedAt   atomic.Int64  // time (now()) created/joined arrived; 0 before
	joined     chan struct{} // receives one value on created/joined/full/error-before-join
	joinResult string
	peerJoined atomic.Bool

	// Owned by the reader goroutine until the run has closed connections.
	buf       []byte
	lat       []int64 // one-way latencies of received messages, ns
	lastTS    uint64  // timestamp and sequence number of the last message received
	lastSeq   uint64
	recvd     int64
	nextSeq   uint64 // expected sequence number of the next message
	reordered int64  // messages whose sequence number was not the expected one
	malformed int64
}

func newClient(r *run, idx int, ws *websocket.Conn, size int) *client {
	c := &client{r: r, idx: idx, ws: ws, joined: make(chan struct{}, 1), buf: make([]byte, 0, 1024)}
	if idx%2 == 0 {
		c.id = "a"
	} else {
		c.id = "b"
	}
	to := "b"
	if c.id == "b" {
		to = "a"
	}
	c.frame, c.tOff, c.sOff = frameTemplate(to, size)
	return c
}

// sendJoin writes a join for room with the client's own id, and token
// when not empty.
func (c *client) sendJoin(room, token string) error {
	c.room = room
	m := map[string]string{"type": "join", "room": room, "id": c.id}
	if token != "" {
		m["token"] = token
	}
	b, _ := json.Marshal(m)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// No write deadline: a deadline would outlive the join and fail later
	// writes; the fleet's watchdog closes every connection at -timeout.
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// sendMessage writes the next message frame to the partner, stamped with
// the current time.
func (c *client) sendMessage() error {
	c.wmu.Lock()
	putDigits(c.frame[c.sOff:c.sOff+seqDigits], c.seq)
	putDigits(c.frame[c.tOff:c.tOff+tsDigits], uint64(now()))
	err := c.ws.WriteMessage(websocket.TextMessage, c.frame)
	if err == nil {
		c.seq++
		c.sent++
	}
	c.wmu.Unlock()
	return err
}

// echo sends the last message received back to the partner, with its
// timestamp and sequence number: the partner's latency is then a round
// trip. It runs on the reader goroutine (from run.onMessage).
func (c *client) echo() error {
	c.wmu.Lock()
	putDigits(c.frame[c.sOff:c.sOff+seqDigits], c.lastSeq)
	putDigits(c.frame[c.tOff:c.tOff+tsDigits], c.lastTS)
	err := c.ws.WriteMessage(websocket.TextMessage, c.frame)
	if err == nil {
		c.sent++
	}
	c.wmu.Unlock()
	return err
}

func (c *client) sentCount() int64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sent
}

// start runs the reader goroutine.
func (c *client) start() {
	c.r.readers.Add(1)
	go c.readLoop()
}

func (c *client) readLoop() {
	defer c.r.readers.Done()
	for {
		_, rd, err := c.ws.NextReader()
		if err != nil {
			if !c.r.closing.Load() {
				c.r.mu.Lock()
				c.r.readErrs++
				if c.r.firstErr == "" {
					c.r.firstErr = fmt.Sprintf("client %d (%s): %v", c.idx, c.ws.LocalAddr(), err)
				}
				c.r.mu.Unlock()
			}
			return
		}
		c.buf = c.buf[:0]
		for {
			if len(c.buf) == cap(c.buf) {
				c.buf = append(c.buf, 0)[:len(c.buf)]
			}
			n, err := rd.Read(c.buf[len(c.buf):cap(c.buf)])
			c.buf = c.buf[:len(c.buf)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				if !c.r.closing.Load() {
					c.r.mu.Lock()
					c.r.readErrs++
					if c.r.firstErr == "" {
						c.r.firstErr = fmt.Sprintf("client %d: %v", c.idx, err)
					}
					c.r.mu.Unlock()
				}
				return
			}
		}
		c.handle(c.buf)
	}
}

var messagePrefix = []byte(`{"type":"message"`)

func (c *client) handle(f []byte) {
	if bytes.HasPrefix(f, messagePrefix) {
		t := now()
		i := bytes.Index(f, dataMarker)
		if i < 0 || len(f) < i+len(dataMarker)+tsDigits+3+seqDigits {
			c.malformed++
			return
		}
		p := f[i+len(dataMarker):]
		ts, ok1 := parseDigits(p[:tsDigits])
		seq, ok2 := parseDigits(p[tsDigits+3 : tsDigits+3+seqDigits])
		if !ok1 || !ok2 {
			c.malformed++
			return
		}
		c.lat = append(c.lat, t-int64(ts))
		c.lastTS, c.lastSeq = ts, seq
		if seq != c.nextSeq {
			c.reordered++
		}
		c.nextSeq = seq + 1
		c.recvd++
		c.r.delivered.Add(1)
		if c.r.onMessage != nil {
			c.r.onMessage(c)
		}
		return
	}
	var m struct {
		Type   string `json:"type"`
		Code   string `json:"code"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(f, &m); err != nil {
		c.r.mu.Lock()
		c.r.unexpected["not-json"]++
		c.r.mu.Unlock()
		return
	}
	switch m.Type {
	case "created", "joined", "full":
		c.joinedAt.Store(now())
		c.joinResult = m.Type
		select {
		case c.joined <- struct{}{}:
		default:
		}
	case "peer-joined":
		c.peerJoined.Store(true)
	case "peer-left":
		if c.r.closing.Load() {
			return // our own closing of the partner
		}
		c.r.mu.Lock()
		c.r.peerLeft[m.Reason]++
		c.r.mu.Unlock()
	case "error":
		c.r.mu.Lock()
		c.r.errCodes[m.Code]++
		c.r.mu.Unlock()
		if c.joinedAt.Load() == 0 {
			c.joinResult = "error " + m.Code
			select {
			case c.joined <- struct{}{}:
			default:
			}
		}
	case "log":
	default:
		c.r.mu.Lock()
		c.r.unexpected[m.Type]++
		c.r.mu.Unlock()
	}
}

// closeAll closes every connection at once (no close handshake) and waits
// for the reader goroutines.
func closeAll(r *run, clients []*client) {
	r.closing.Store(true)
	r.stop.Store(true)
	for _, c := range clients {
		if c != nil {
			_ = c.ws.NetConn().Close()
		}
	}
	r.readers.Wait()
}

// runID makes room names unique per run, so that runs against the same
// server never meet each other's rooms.
func runID() string {
	return strconv.FormatInt(time.Now().UnixNano()%1e12, 36)
}
