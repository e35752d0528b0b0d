package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
)

// The host side of a node: each tunnel from a gateway (another node's or
// this one's) ends here in a protocol v1 connection to this node's
// server, made in-process (signal.Server.DialTunnel). The server runs
// every rule of the protocol on it as on a network connection; hostEnd
// only carries frames: client frames from the gateway into the
// connection, and what the server writes (frames, pings, its close) back
// to the gateway.

// hostEnd is the host's end of one tunnel.
type hostEnd struct {
	n      *Node
	tunnel string
	gw     string          // node id of the client's gateway
	ws     *websocket.Conn // the client side of the in-process connection

	mu         sync.Mutex
	queue      []gwOut // guarded by mu: frames for the server (text, pong, close, abort)
	queueBytes int     // guarded by mu
	writing    bool    // guarded by mu: writeLoop runs
	ended      bool    // guarded by mu: the gateway ended the tunnel (close or abort queued)
	joinRoom   string  // guarded by mu: the room of the last join through the tunnel
	writers    sync.WaitGroup
}

// movedPrefix starts the error frame the server sends for a join of a
// room it does not host (signal.CodeMoved).
var movedPrefix = []byte(`{"type":"error","code":"moved"`)

// createdPrefix and joinedPrefix start the server's answers to a join
// that took a seat.
var (
	createdPrefix = []byte(`{"type":"created"`)
	joinedPrefix  = []byte(`{"type":"joined"`)
)

// onOpen answers a gateway's request to open a tunnel here.
func (n *Node) onOpen(m *nats.Msg) {
	kind, tunnel, body, err := parseEnvelope(m.Data)
	if err == nil && kind != kindOpen {
		err = errors.New("not an open")
	}
	var ob openBody
	if err == nil {
		err = json.Unmarshal(body, &ob)
	}
	gw, _, ok := cutTunnel(tunnel)
	if err == nil && !ok {
		err = errors.New("bad tunnel id")
	}
	if err == nil {
		err = n.openEnd(gw, tunnel, ob)
	}
	reply := []byte("ok")
	if err != nil {
		reply = []byte(err.Error())
	}
	_ = m.Respond(reply)
}

// cutTunnel splits a tunnel id "<gateway node>.<number>".
func cutTunnel(tunnel string) (gw, num string, ok bool) {
	i := bytes.LastIndexByte([]byte(tunnel), '.')
	if i <= 0 || i == len(tunnel)-1 {
		return "", "", false
	}
	return tunnel[:i], tunnel[i+1:], true
}

// errDraining refuses new tunnels on a node that is draining.
var errDraining = errors.New("cluster: this node is draining")

// openEnd opens the host end of tunnel for gateway gw.
func (n *Node) openEnd(gw, tunnel string, ob openBody) error {
	n.hostMu.Lock()
	if n.hostClosed || n.draining.Load() {
		n.hostMu.Unlock()
		return errDraining
	}
	if _, dup := n.ends[tunnel]; dup {
		n.hostMu.Unlock()
		return errors.New("cluster: tunnel exists")
	}
	e := &hostEnd{n: n, tunnel: tunnel, gw: gw}
	n.ends[tunnel] = e // reserved: frames that follow the open queue up
	n.endWG.Add(1)
	n.hostMu.Unlock()

	ctx, cancel := context.WithTimeout(n.ctx, openTimeout)
	defer cancel()
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return n.srv.DialTunnel(ctx, ob.Remote, ob.Written)
		},
		HandshakeTimeout: openTimeout,
		// A pipe has no buffer of its own: small reads cost little, and
		// write buffers are only held while writing.
		ReadBufferSize:  512,
		WriteBufferSize: 4096,
		WriteBufferPool: &n.writeBufs,
	}
	ws, _, err := d.DialContext(ctx, "ws://in-process/ws", nil)
	if err != nil {
		n.hostMu.Lock()
		delete(n.ends, tunnel)
		n.hostMu.Unlock()
		n.endWG.Done()
		return err
	}
	ws.SetPingHandler(func(p string) error {
		return n.sendTo(gw, "g", kindPing, tunnel, []byte(p)) // an error ends pump: a drop
	})
	e.mu.Lock()
	e.ws = ws
	e.startWriterLocked() // frames may have queued during the handshake
	e.mu.Unlock()
	go e.pump()
	return nil
}

// pump forwards what the server writes on the tunnel's connection to the
// gateway, until the connection ends.
func (e *hostEnd) pump() {
	n := e.n
	defer func() {
		e.mu.Lock()
		e.ended = true
		e.mu.Unlock()
		e.writers.Wait()
		_ = e.ws.Close()
		n.hostMu.Lock()
		delete(n.ends, e.tunnel)
		n.hostMu.Unlock()
		n.endWG.Done()
	}()
	for {
		_, data, err := e.ws.ReadMessage()
		if err != nil {
			e.mu.Lock()
			ended := e.ended
			e.mu.Unlock()
			if ended {
				return // the gateway ended it: nothing to tell
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure && ce.Code != websocket.CloseNoStatusReceived {
				n.sendTo(e.gw, "g", kindClose, e.tunnel, closeBody(ce.Code, ce.Text))
			} else {
				n.sendTo(e.gw, "g", kindAbort, e.tunnel, nil)
			}
			return
		}
		if bytes.HasPrefix(data, movedPrefix) {
			// The join was for a room hosted elsewhere: the gateway routes
			// the client again. The frame is the server's answer to the
			// gateway, not to the client.
			room, _ := e.lastRoom()
			if n.sendTo(e.gw, "g", kindMoved, e.tunnel, []byte(room)) != nil {
				return
			}
			continue
		}
		if bytes.HasPrefix(data, createdPrefix) || bytes.HasPrefix(data, joinedPrefix) {
			// A seat: the room's record names its member before the
			// member hears of it, so that a crash of this node from now
			// on cannot lose the seat.
			if room, ok := e.lastRoom(); ok {
				n.sync.waitWritten(room)
			}
		}
		if n.sendTo(e.gw, "g", kindText, e.tunnel, data) != nil {
			// The frame is lost on the way: cut the connection, so that
			// the server holds the seat and replays it on the resume.
			_ = e.ws.NetConn().Close()
			return
		}
	}
}

// lastRoom is the room of the last join that came through the tunnel.
func (e *hostEnd) lastRoom() (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.joinRoom, e.joinRoom != ""
}

// toHostEnd hands a frame from a gateway to its tunnel's end here.
func (n *Node) toHostEnd(kind byte, tunnel string, body []byte) {
	n.hostMu.Lock()
	e := n.ends[tunnel]
	n.hostMu.Unlock()
	if e == nil {
		// Ended already. A gateway that still sends on it missed the
		// end (NATS lost it): tell it again, so that its client resumes.
		if kind != kindClose && kind != kindAbort {
			if gw, _, ok := cutTunnel(tunnel); ok {
				_ = n.sendTo(gw, "g", kindAbort, tunnel, nil)
			}
		}
		return
	}
	e.push(gwOut{kind: kind, body: body})
}

// push queues a frame from the gateway for the server. A gateway that
// sends faster than the server reads past the queue's bounds has its
// tunnel cut (the server holds the seat).
func (e *hostEnd) push(o gwOut) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		return
	}
	switch o.kind {
	case kindText:
		if room, ok := joinRoom(o.body); ok {
			e.joinRoom = room
		}
		if len(e.queue) >= maxQueued || e.queueBytes+len(o.body) > e.n.queueBytes {
			o = gwOut{kind: kindAbort}
			e.n.met.slow.Inc()
		} else {
			e.queueBytes += len(o.body)
		}
	case kindPong, kindClose, kindAbort:
	default:
		return
	}
	if o.kind == kindClose || o.kind == kindAbort {
		e.ended = true
	}
	e.queue = append(e.queue, o)
	e.startWriterLocked()
}

func (e *hostEnd) startWriterLocked() {
	if !e.writing && e.ws != nil && len(e.queue) > 0 {
		e.writing = true
		e.writers.Add(1)
		go e.writeLoop()
	}
}

// writeLoop writes the queued frames into the server's connection.
func (e *hostEnd) writeLoop() {
	defer e.writers.Done()
	wait := e.n.writeWait
	for {
		e.mu.Lock()
		batch := e.queue
		e.queue = nil
		e.queueBytes = 0
		if len(batch) == 0 {
			e.writing = false
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
		// After a close the server answers and closes; pump then ends.
		// An abort is a drop: the server holds the seat.
		writeFrames(e.ws, batch, wait)
	}
}

// closeEnds cuts every tunnel end here, as drops, and refuses new ones.
func (n *Node) closeEnds() {
	n.hostMu.Lock()
	n.hostClosed = true
	ends := make([]*hostEnd, 0, len(n.ends))
	for _, e := range n.ends {
		ends = append(ends, e)
	}
	n.hostMu.Unlock()
	for _, e := range ends {
		e.push(gwOut{kind: kindAbort})
	}
}

// sendTo sends a tunnel frame to endpoint ("h": host side, "g": gateway
// side) of node: directly when it is this node, else over NATS.
// A frame that cannot be published (NATS is down and its reconnect
// buffer full) is an error: the tunnel has lost it, and its callers end
// the tunnel as a drop, so that the client resumes and nothing is lost
// unknowingly.
func (n *Node) sendTo(node, endpoint string, kind byte, tunnel string, body []byte) error {
	if node == n.id {
		if endpoint == "h" {
			n.toHostEnd(kind, tunnel, body)
		} else {
			n.toGateway(kind, tunnel, body)
		}
		return nil
	}
	if err := n.nc.Publish(n.subject(node, endpoint), appendEnvelope(nil, kind, tunnel, body)); err != nil {
		n.log.Debug("tunnel: publish failed", "to", node, "err", err)
		return err
	}
	n.met.toNATS.Inc()
	return nil
}
