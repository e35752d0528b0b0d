package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// The gateway side of a node: every client WebSocket that comes to this
// node (gwConn) is tunnelled to the host of the client's room, chosen at
// its first join. Until then, and for a connection whose first frame is
// not a join, the tunnel goes to this node's own server, which answers as
// a single server would. The host numbers the frames it writes from the
// count this gateway has written to the client, so pings, pongs and a
// resume's received mean the same as on a single server.

// gwOut is a frame queued for one side of a tunnel: text, ping, pong,
// close (body: a WebSocket close payload) or abort (no body: cut the
// connection without a close).
type gwOut struct {
	kind byte
	body []byte
}

// closeGrace is how long a connection closed by this side may take to
// answer the close frame before its socket is closed.
const closeGrace = time.Second

// A client creates rooms (directory writes) at most claimRate a second,
// after a burst of claimBurst; past that its joins of new rooms wait.
const (
	claimRate  = 5
	claimBurst = 20
)

// maxQueued bounds the frames queued for one side of a tunnel, besides
// its bytes (the server's ConnBufferBytes).
const maxQueued = 1024

// gwConn is a client's WebSocket on this gateway. run reads the client
// and forwards its frames to the host; frames from the host are queued
// and written by writeLoop, which runs while there are some.
type gwConn struct {
	n      *Node
	ws     *websocket.Conn
	remote string

	linkMu   sync.Mutex // held while sending to the host and while re-routing
	host     string     // guarded by linkMu: node the tunnel goes to; "" while there is none
	lastJoin []byte     // guarded by linkMu: the last join sent, re-sent when its room moved

	mu         sync.Mutex
	tunnel     string        // guarded by mu: id of the current tunnel; frames of any other are dropped
	queue      []gwOut       // guarded by mu: frames for the client
	queueBytes int           // guarded by mu
	sent       uint64        // guarded by mu: text frames queued for the client since it connected
	writing    bool          // guarded by mu: writeLoop runs
	closing    bool          // guarded by mu: a close is queued or sent: no more frames
	done       bool          // guarded by mu: run has finished
	joinTimer  *time.Timer   // guarded by mu: closes a client that opens no tunnel in time
	claims     *rate.Limiter // rooms the client may create: each is a directory write
	writers    sync.WaitGroup
}

// serveClient is the server's Config.Gateway: it runs one client
// connection until it ends.
func (n *Node) serveClient(ws *websocket.Conn, remote string) {
	g := &gwConn{n: n, ws: ws, remote: remote, claims: rate.NewLimiter(claimRate, claimBurst)}
	n.gwMu.Lock()
	if n.gwClosed {
		n.gwMu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(signal.CloseServiceRestart, "service restart"), time.Now().Add(closeGrace))
		_ = ws.Close()
		return
	}
	n.gwWG.Add(1)
	n.gwAll[g] = struct{}{}
	n.gwMu.Unlock()
	defer n.gwWG.Done()
	g.run()
}

// run reads the client's frames and forwards them, until the connection
// ends.
func (g *gwConn) run() {
	n := g.n
	defer g.finish()
	g.ws.SetReadLimit(n.maxMessage)
	// The client must send something every pong timeout, and finish a
	// message it has begun within the message timeout, pongs or not.
	var msgDeadline time.Time // while a message is being read; owned by this goroutine
	extend := func() {
		d := time.Now().Add(n.pongWait)
		if !msgDeadline.IsZero() && msgDeadline.Before(d) {
			d = msgDeadline
		}
		_ = g.ws.SetReadDeadline(d)
	}
	extend()
	// Control frames are limited as on a single server (10/s, burst 20):
	// the gateway answers pings itself.
	control := rate.NewLimiter(10, 20)
	g.ws.SetPingHandler(func(p string) error {
		if !control.Allow() {
			return errControlFlood
		}
		extend()
		return g.ws.WriteControl(websocket.PongMessage, []byte(p), time.Now().Add(n.writeWait))
	})
	g.ws.SetPongHandler(func(p string) error {
		if !control.Allow() {
			return errControlFlood
		}
		extend()
		g.linkMu.Lock()
		if g.host != "" {
			g.toHost(kindPong, []byte(p))
		}
		g.linkMu.Unlock()
		return nil
	})
	if n.joinWait > 0 {
		g.mu.Lock()
		g.joinTimer = time.AfterFunc(n.joinWait, g.onJoinTimeout)
		g.mu.Unlock()
	}
	for {
		_, r, err := g.ws.NextReader()
		var data []byte
		if err == nil {
			msgDeadline = time.Now().Add(n.msgWait)
			extend()
			data, err = io.ReadAll(r)
			if err != nil && !time.Now().Before(msgDeadline) {
				err = errMessageTimeout
			}
			msgDeadline = time.Time{}
		}
		if err != nil {
			g.readEnded(err)
			return
		}
		extend()
		if err := g.forward(data); err != nil {
			if !errors.Is(err, errClientClosing) {
				n.log.Debug("gateway: no host for the client", "remote", g.remote, "err", err)
				g.closeClient(signal.CloseServiceRestart, "no host for the room; try again")
			}
			g.drainClient()
			return
		}
	}
}

// onJoinTimeout closes a client that has sent nothing that opened a
// tunnel within the join timeout (once a tunnel is open, its host's own
// timer takes over).
func (g *gwConn) onJoinTimeout() {
	g.linkMu.Lock()
	idle := g.host == ""
	g.linkMu.Unlock()
	if idle {
		g.closeClient(websocket.ClosePolicyViolation, "no join within "+g.n.joinWait.String())
	}
}

// readEnded forwards the end of the client's connection to the host: its
// close, or a drop (the host then holds the seat for a resume).
func (g *gwConn) readEnded(err error) {
	g.mu.Lock()
	closing := g.closing
	g.mu.Unlock()
	switch {
	case errors.Is(err, errControlFlood):
		g.closeNow(websocket.ClosePolicyViolation, "too many control frames")
	case errors.Is(err, errMessageTimeout):
		g.closeNow(websocket.ClosePolicyViolation, "message not complete within "+g.n.msgWait.String())
	}
	g.linkMu.Lock()
	defer g.linkMu.Unlock()
	if g.host == "" || closing {
		return // nothing to tell, or this side ended the tunnel already
	}
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla sent the client 1009; the client is gone, not dropped.
		g.toHost(kindClose, closeBody(websocket.CloseMessageTooBig, "message too big"))
	case errors.Is(err, errControlFlood), errors.Is(err, errMessageTimeout):
		g.toHost(kindClose, closeBody(websocket.ClosePolicyViolation, err.Error()))
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
		g.toHost(kindClose, closeBody(ce.Code, ce.Text))
	default:
		g.toHost(kindAbort, nil)
	}
	g.host = ""
}

// errClientClosing stops routing a client whose connection is closing.
var errClientClosing = errors.New("cluster: the client connection is closing")

// errControlFlood ends a client that sends too many pings or pongs;
// errMessageTimeout one that does not finish a message in time.
var (
	errControlFlood   = errors.New("cluster: too many control frames")
	errMessageTimeout = errors.New("cluster: message not complete in time")
)

// closeNow sends the client a close frame at once.
func (g *gwConn) closeNow(code int, text string) {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	_ = g.ws.WriteControl(websocket.CloseMessage, closeBody(code, text), time.Now().Add(closeGrace))
}

// forward sends one client frame to the host, opening the tunnel first if
// there is none.
func (g *gwConn) forward(data []byte) error {
	g.linkMu.Lock()
	defer g.linkMu.Unlock()
	room, isJoin := joinRoom(data)
	if isJoin {
		g.lastJoin = data
	}
	if g.host == "" {
		if !isJoin {
			room = "" // not a join: this node's server answers it
		}
		return g.routeLocked(room, data)
	}
	g.toHost(kindText, data)
	return nil
}

// joinRoom reports whether frame is a join, and its room. Only frames
// that mention "join" are decoded.
func joinRoom(frame []byte) (room string, ok bool) {
	if !bytes.Contains(frame, []byte(`"join"`)) {
		return "", false
	}
	var j struct {
		Type string `json:"type"`
		Room string `json:"room"`
	}
	if json.Unmarshal(frame, &j) != nil || j.Type != signal.TypeJoin {
		return "", false
	}
	return j.Room, true
}

// routeLocked opens a tunnel to room's host (this node for "") and sends
// first on it, retrying while the room's host is changing (a move, a
// crash, a claim racing another) for up to twice the lease. g.linkMu is
// held.
func (g *gwConn) routeLocked(room string, first []byte) error {
	n := g.n
	deadline := time.Now().Add(2*n.cfg.Lease + time.Second)
	backoff := 25 * time.Millisecond
	for {
		host, err := n.hostFor(n.ctx, room, g.claims)
		if err == nil {
			if err = g.openLocked(host, room); err == nil {
				g.toHost(kindText, first)
				return nil
			}
			if errors.Is(err, errClientClosing) {
				return err
			}
		}
		if time.Now().Add(backoff).After(deadline) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			return n.ctx.Err()
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// openLocked opens a new tunnel to host. g.linkMu is held.
func (g *gwConn) openLocked(host, room string) error {
	n := g.n
	tunnel := n.id + "." + strconv.FormatUint(n.nextTunnel.Add(1), 10)
	g.mu.Lock()
	if g.done || g.closing {
		g.mu.Unlock()
		return errClientClosing
	}
	old := g.tunnel
	g.tunnel = tunnel
	written := g.sent
	g.mu.Unlock()
	n.gwMu.Lock()
	delete(n.gws, old)
	n.gws[tunnel] = g
	n.gwMu.Unlock()
	body := openBody{Remote: g.remote, Room: room, Written: written}
	var err error
	if host == n.id {
		err = n.openEnd(n.id, tunnel, body)
	} else {
		err = n.requestOpen(host, tunnel, body)
	}
	if err != nil {
		n.gwMu.Lock()
		delete(n.gws, tunnel)
		n.gwMu.Unlock()
		return err
	}
	g.host = host
	g.mu.Lock()
	if g.joinTimer != nil {
		g.joinTimer.Stop()
		g.joinTimer = nil
	}
	g.mu.Unlock()
	n.met.tunnels.Inc()
	return nil
}

// requestOpen asks the remote host to open a tunnel end.
func (n *Node) requestOpen(host, tunnel string, body openBody) error {
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(n.ctx, openTimeout)
	defer cancel()
	reply, err := n.nc.RequestWithContext(ctx, n.subject(host, "open"), appendEnvelope(nil, kindOpen, tunnel, b))
	if err != nil {
		return fmt.Errorf("cluster: open a tunnel to node %s: %w", host, err)
	}
	if string(reply.Data) != "ok" {
		return fmt.Errorf("cluster: node %s refused the tunnel: %s", host, reply.Data)
	}
	return nil
}

// reroute moves the client to its room's new host after the host of the
// tunnel said the room is not there: the tunnel is closed and the last
// join is sent again, through a fresh lookup.
func (g *gwConn) reroute(tunnel, room string) {
	g.linkMu.Lock()
	defer g.linkMu.Unlock()
	g.mu.Lock()
	current := g.tunnel == tunnel && !g.done && !g.closing
	g.mu.Unlock()
	if !current || g.host == "" || g.lastJoin == nil {
		return
	}
	g.toHost(kindClose, closeBody(websocket.CloseNormalClosure, "moved"))
	g.host = ""
	g.n.met.rerouted.Inc()
	if err := g.routeLocked(room, g.lastJoin); err != nil {
		g.n.log.Debug("gateway: no host for the room", "room", room, "err", err)
		g.closeClient(signal.CloseServiceRestart, "no host for the room; try again")
	}
}

// toHost sends the host one frame of the current tunnel. g.linkMu is
// held and g.host is set.
func (g *gwConn) toHost(kind byte, body []byte) {
	g.mu.Lock()
	tunnel := g.tunnel
	g.mu.Unlock()
	if err := g.n.sendTo(g.host, "h", kind, tunnel, body); err != nil {
		// The frame is lost on the way: the client resumes, and re-sends
		// what the host did not handle.
		g.closeClient(signal.CloseServiceRestart, "service restart")
	}
}

// push queues a frame of tunnel for the client; frames of an older
// tunnel are dropped. A client whose queue overflows is closed as slow.
func (g *gwConn) push(tunnel string, o gwOut) {
	g.mu.Lock()
	if g.tunnel != tunnel || g.closing || g.done {
		g.mu.Unlock()
		return
	}
	if o.kind == kindText {
		if len(g.queue) >= maxQueued || g.queueBytes+len(o.body) > g.n.queueBytes {
			g.mu.Unlock()
			g.n.met.slow.Inc()
			g.closeClient(websocket.ClosePolicyViolation, "slow consumer")
			// The host hears of it off this goroutine, which delivers
			// every client's frames and must not wait for one client.
			g.n.bg.Add(1)
			go func() {
				defer g.n.bg.Done()
				g.linkMu.Lock()
				if g.host != "" {
					g.toHost(kindClose, closeBody(websocket.ClosePolicyViolation, "slow consumer"))
					g.host = ""
				}
				g.linkMu.Unlock()
			}()
			return
		}
		g.sent++
		g.queueBytes += len(o.body)
	}
	if o.kind == kindClose || o.kind == kindAbort {
		g.closing = true
	}
	g.queue = append(g.queue, o)
	g.startWriterLocked()
	g.mu.Unlock()
}

// closeClient sends the client a close frame after what is queued, and
// takes no more frames.
func (g *gwConn) closeClient(code int, text string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing || g.done {
		return
	}
	g.closing = true
	g.queue = append(g.queue, gwOut{kind: kindClose, body: closeBody(code, text)})
	g.startWriterLocked()
}

// drainClient waits, for at most closeGrace, for the client to answer a
// close, reading and discarding what it still sends.
func (g *gwConn) drainClient() {
	_ = g.ws.SetReadDeadline(time.Now().Add(closeGrace))
	for {
		if _, _, err := g.ws.ReadMessage(); err != nil {
			return
		}
	}
}

func (g *gwConn) startWriterLocked() {
	if !g.writing && !g.done {
		g.writing = true
		g.writers.Add(1)
		go g.writeLoop()
	}
}

// writeLoop writes the queued frames to the client, and exits when there
// are none.
func (g *gwConn) writeLoop() {
	defer g.writers.Done()
	n := g.n
	for {
		g.mu.Lock()
		batch := g.queue
		g.queue = nil
		g.queueBytes = 0
		if len(batch) == 0 || g.done {
			g.writing = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		// After a close the client has closeGrace to answer; on an error
		// run sees the connection end and tells the host.
		writeFrames(g.ws, batch, n.writeWait)
	}
}

// writeFrames writes a batch of queued frames to ws, in order: text
// frames, pings, pongs, a close (after which ws's reader has closeGrace
// to see the answer), or an abort, which closes ws's connection at once
// (a drop), as does any write that fails.
func writeFrames(ws *websocket.Conn, batch []gwOut, wait time.Duration) {
	for _, o := range batch {
		var err error
		deadline := time.Now().Add(wait)
		switch o.kind {
		case kindText:
			_ = ws.SetWriteDeadline(deadline)
			err = ws.WriteMessage(websocket.TextMessage, o.body)
		case kindPing:
			err = ws.WriteControl(websocket.PingMessage, o.body, deadline)
		case kindPong:
			err = ws.WriteControl(websocket.PongMessage, o.body, deadline)
		case kindClose:
			err = ws.WriteControl(websocket.CloseMessage, o.body, time.Now().Add(closeGrace))
			_ = ws.SetReadDeadline(time.Now().Add(closeGrace))
		case kindAbort:
			err = errors.New("abort")
		}
		if err != nil {
			_ = ws.NetConn().Close()
			return
		}
	}
}

// finish ends the connection once run has returned.
func (g *gwConn) finish() {
	n := g.n
	g.mu.Lock()
	g.done = true
	tunnel := g.tunnel
	if g.joinTimer != nil {
		g.joinTimer.Stop()
		g.joinTimer = nil
	}
	g.mu.Unlock()
	_ = g.ws.Close()
	g.writers.Wait()
	n.gwMu.Lock()
	delete(n.gws, tunnel)
	delete(n.gwAll, g)
	n.gwMu.Unlock()
}

// closeBody is a WebSocket close payload.
func closeBody(code int, text string) []byte {
	if len(text) > maxControlBody-2 {
		text = text[:maxControlBody-2]
	}
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(b, text...)
}

// onTunnel returns the handler of one of this node's tunnel subjects: it
// hands each envelope to deliver (toGateway or toHostEnd).
func (n *Node) onTunnel(side string, deliver func(kind byte, tunnel string, body []byte)) nats.MsgHandler {
	return func(m *nats.Msg) {
		kind, tunnel, body, err := parseEnvelope(m.Data)
		if err != nil {
			n.log.Warn("bad tunnel message", "side", side, "err", err)
			return
		}
		n.met.fromNATS.Inc()
		deliver(kind, tunnel, body)
	}
}

// toGateway hands a frame from a host to the client of tunnel.
func (n *Node) toGateway(kind byte, tunnel string, body []byte) {
	n.gwMu.Lock()
	g := n.gws[tunnel]
	n.gwMu.Unlock()
	if g == nil {
		return // the client has gone, or moved on to another tunnel
	}
	switch kind {
	case kindText, kindPing:
		g.push(tunnel, gwOut{kind: kind, body: body})
	case kindClose, kindAbort:
		// The host ended the tunnel: the client connection ends with it
		// (closing, nothing more goes to the host).
		g.push(tunnel, gwOut{kind: kind, body: body})
	case kindMoved:
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			g.reroute(tunnel, string(body))
		}()
	}
}

// closeClients closes every client of this gateway with code. With
// abortRemote, the tunnels to other nodes are cut as drops, so that their
// hosts hold the seats for the clients' resumes; tunnels to this node are
// left to its server.
func (n *Node) closeClients(code int, text string, abortRemote bool) {
	n.gwMu.Lock()
	n.gwClosed = true
	all := make([]*gwConn, 0, len(n.gwAll))
	for g := range n.gwAll {
		all = append(all, g)
	}
	n.gwMu.Unlock()
	for _, g := range all {
		g.linkMu.Lock()
		switch {
		case g.host == "":
		case abortRemote && g.host != n.id:
			g.toHost(kindAbort, nil)
			g.host = ""
		case abortRemote:
			g.linkMu.Unlock()
			continue // the server's Drain closes it through the tunnel
		default:
			g.toHost(kindClose, closeBody(code, text))
			g.host = ""
		}
		g.linkMu.Unlock()
		g.closeClient(code, text)
	}
}
