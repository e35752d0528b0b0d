package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// The events of the origin tutorial, and the gateway's additions.
const (
	// Client → server.
	EventCreateOrJoin = "create or join" // (room)
	EventMessage      = "message"        // (data); also server → client
	EventBye          = "bye"            // (): leave the room

	// Server → client.
	EventCreated = "created" // (room, id)
	EventJoin    = "join"    // (room): someone joined your room
	EventJoined  = "joined"  // (room, id)
	EventReady   = "ready"   // (room): the room has two or more members
	EventFull    = "full"    // (room)
	EventLog     = "log"     // ([strings]), with Config.ClientLog
	EventError   = "error"   // ({code, message}): the gateway's addition
)

// Bye is the message data a member receives when another member of its
// room leaves (the origin codelab's hang-up signal).
const Bye = "bye"

// logPrefix heads the array of every log event, as in the origin.
const logPrefix = "Message from server:"

// session is one Socket.IO socket and its protocol v1 connection. The
// socket's events (handled on the library's queue for the socket) become
// protocol v1 messages; pump turns what the server sends into events.
type session struct {
	g     *Gateway
	sock  *socket.Socket
	conn  engine.Socket
	v1    *v1Conn
	log   *slog.Logger // immutable
	plog  *slog.Logger // pump's own: log with the room and peer id
	token string       // join token from the Socket.IO handshake, if any

	ctx    context.Context // ends when the Socket.IO side has ended
	cancel context.CancelFunc

	// What waits in the engine to be sent to the client.
	outPackets, outBytes atomic.Int64
}

// admit is the namespace middleware: it opens the protocol v1 connection
// of a connecting socket, or refuses the socket (connect_error, or error
// for Socket.IO 1.x/2.x clients) with the reason. The dial runs on the
// session's own goroutine, which then pumps (the library may call admit
// while it holds Gateway.linkMu).
func (g *Gateway) admit(sock *socket.Socket, next func(*socket.ExtendedError)) {
	conn := sock.Conn()
	gt := g.gateOf(conn)
	if !g.addWorker() {
		if gt != nil {
			gt.shut()
		}
		next(socket.NewExtendedError("the server is shutting down", map[string]any{"code": "unavailable", "message": "the server is shutting down"}))
		return
	}
	go g.run(sock, conn, gt, next)
}

// run is a session's goroutine: it dials, admits or refuses the socket,
// and pumps.
func (g *Gateway) run(sock *socket.Socket, conn engine.Socket, gt *gate, next func(*socket.ExtendedError)) {
	defer g.wg.Done()
	remote := conn.RemoteAddress()
	// Not the socket's id: with Engine.IO 3 it is the session id, which
	// would let a reader of the logs take the session over.
	log := g.log.With("remote", remote, "socketio_conn", g.seq.Add(1), "eio", conn.Protocol())
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.DialTimeout)
	v1, err := g.dial(ctx, remote)
	cancel()
	if err != nil {
		code, msg := refusal(err)
		log.Debug("socket.io connection refused", "err", err)
		if gt != nil {
			gt.shut()
		}
		// 1.x/2.x clients get the data alone: it says it all.
		next(socket.NewExtendedError(msg, map[string]any{"code": code, "message": msg}))
		return
	}
	s := &session{g: g, sock: sock, conn: conn, v1: v1, log: log, plog: log, token: joinToken(sock)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer s.cancel()
	if !g.track(s) {
		v1.abort()
		next(socket.NewExtendedError("the server is shutting down", map[string]any{"code": "unavailable", "message": "the server is shutting down"}))
		return
	}
	defer g.untrack(s)
	sock.Use(s.onEvent)
	_ = sock.On("disconnect", func(args ...any) {
		s.log.Debug("socket.io client disconnected", "reason", fmt.Sprint(args...))
		s.end()
	})
	_ = sock.On("error", func(args ...any) { s.log.Debug("socket.io client error", "err", fmt.Sprint(args...)) })
	_ = conn.On("packetCreate", s.onPacketCreate)
	_ = conn.On("flush", s.onFlush)
	// A socket whose client goes away before it is connected gets no
	// disconnect event.
	_ = conn.Once("close", func(...any) { s.end() })
	if conn.ReadyState() == "closed" {
		s.end()
	}
	log.Debug("socket.io client connected", "transport", conn.Transport().Name())
	next(nil)
	s.pump()
}

// joinToken returns the join token of the socket's handshake: "token" in
// the Socket.IO auth payload (clients 3.x/4.x) or in the query string.
func joinToken(sock *socket.Socket) string {
	if h := sock.Handshake(); h != nil {
		switch v := h.Auth["token"].(type) {
		case string:
			return v
		case []string: // Socket.IO 2.x: the namespace's query
			if len(v) > 0 {
				return v[0]
			}
		}
	}
	if r := sock.Request(); r != nil && r.Request() != nil {
		return r.Request().URL.Query().Get("token")
	}
	return ""
}

// onEvent handles one event from the client (a socket middleware that
// never passes the event on: no listener would take it). It runs on the
// library's queue for the socket, in the order the events came.
func (s *session) onEvent(args []any, _ func(error)) {
	var (
		t    *ticket
		raws []json.RawMessage
	)
	for _, a := range args[1:] {
		switch v := a.(type) {
		case json.RawMessage:
			raws = append(raws, v)
		case *ticket:
			t = v
		}
	}
	defer t.done()
	name, _ := args[0].(string)
	var frame []byte
	switch name {
	case EventCreateOrJoin:
		frame = append([]byte(nil), `{"type":"join"`...)
		if len(raws) > 0 {
			frame = append(append(frame, `,"room":`...), raws[0]...)
		}
		if s.token != "" {
			frame = append(frame, `,"token":`...)
			frame = appendJSONString(frame, s.token)
		}
		frame = append(frame, '}')
	case EventMessage:
		frame = append([]byte(nil), `{"type":"message"`...)
		if len(raws) > 0 {
			frame = append(append(frame, `,"data":`...), raws[0]...)
		}
		frame = append(frame, '}')
	case EventBye:
		frame = []byte(`{"type":"leave"}`)
	default:
		// The server answers a type it does not know with unknown-type,
		// echoing ref, and counts the message against the rate limit like
		// any other: the flood rules apply to unknown events too.
		frame = append([]byte(nil), `{"type":"socket.io-event","ref":`...)
		frame = appendJSONString(frame, unknownRefPrefix+truncate(name, maxRefBytes-len(unknownRefPrefix)))
		frame = append(frame, '}')
	}
	if err := s.v1.send(frame); err != nil {
		s.log.Debug("socket.io event not forwarded", "event", truncate(name, 64), "err", err)
	}
}

// unknownRefPrefix marks the ref of an unknown event sent to the server.
const (
	unknownRefPrefix = "event:"
	maxRefBytes      = 64 // protocol v1's limit
)

// end is called when the Socket.IO side has ended: the protocol v1
// connection closes too, and pump returns.
func (s *session) end() {
	s.cancel()
	s.v1.close()
}

// pump delivers what the protocol v1 server sends to the Socket.IO client,
// until either side ends, then closes both.
func (s *session) pump() {
	defer s.v1.abort()
	for {
		b, err := s.v1.read()
		if err != nil {
			if s.ctx.Err() == nil {
				s.serverEnded(err)
			}
			return
		}
		m := new(signal.Message)
		if err := json.Unmarshal(b, m); err != nil {
			s.plog.Warn("socket.io: the signaling server sent a frame that is not a message", "err", err)
			s.serverEnded(err)
			return
		}
		s.deliver(m)
		if n, b := s.outPackets.Load(), s.outBytes.Load(); n > int64(s.g.cfg.SendQueue) || b > s.g.cfg.SendBufferBytes {
			s.plog.Debug("socket.io client dropped: slow consumer", "packets", n, "bytes", b)
			s.conn.Close(true)
			s.v1.close()
			return
		}
	}
}

// serverEnded tells the client why its protocol v1 connection ended
// (join timeout, rate abuse, a message over the size limit, shutdown, a
// kick...) and disconnects it.
func (s *session) serverEnded(err error) {
	code, msg := closeReason(err)
	s.plog.Debug("socket.io client disconnected by the signaling server", "code", code, "reason", msg)
	s.emitError(code, msg)
	// A DISCONNECT packet: the client does not reconnect by itself.
	s.sock.Disconnect(false)
	s.closeAfterSend()
}

// closeSendTimeout bounds how long closeAfterSend waits for what is queued
// to be written.
const closeSendTimeout = 5 * time.Second

// closeAfterSend closes the client's Engine.IO connection once what was
// queued for it has been written. The library's WebSocket transport, asked
// to close, closes its connection at once, dropping what its writer has
// not written yet (such as the DISCONNECT and error packets just sent);
// the polling transport sends what is queued with the next poll by itself.
func (s *session) closeAfterSend() {
	t := s.conn.Transport()
	if t.Name() == "websocket" {
		ready := make(chan struct{}, 1)
		onReady := func(...any) {
			select {
			case ready <- struct{}{}:
			default:
			}
		}
		_ = t.On("ready", onReady)
		timeout := time.NewTimer(closeSendTimeout)
	wait:
		for !(t.Writable() && s.outPackets.Load() <= 0) && s.conn.ReadyState() == "open" {
			select {
			case <-ready:
			case <-timeout.C:
				break wait
			}
		}
		timeout.Stop()
		t.RemoveListener("ready", onReady)
	}
	s.conn.Close(false)
}

// deliver translates one protocol v1 message into events (PROTOCOL.md,
// "Socket.IO endpoint").
func (s *session) deliver(m *signal.Message) {
	switch m.Type {
	case signal.TypeCreated:
		s.plog = s.log.With("room", m.Room, "peer", m.ID)
		s.emit(EventCreated, m.Room, m.ID)
	case signal.TypeJoined:
		s.plog = s.log.With("room", m.Room, "peer", m.ID)
		s.emit(EventJoined, m.Room, m.ID)
		s.emit(EventReady, m.Room)
	case signal.TypePeerJoined:
		s.emit(EventJoin, m.Room)
		s.emit(EventReady, m.Room)
	case signal.TypePeerLeft:
		s.emit(EventMessage, Bye)
	case signal.TypeFull:
		s.emit(EventFull, m.Room)
	case signal.TypeMessage:
		s.emit(EventMessage, m.Data)
	case signal.TypeOffer, signal.TypeAnswer:
		s.emit(EventMessage, signal.CodelabSDP{Type: m.Type, SDP: m.SDP})
	case signal.TypeCandidate:
		if c, err := m.ICECandidate(); err == nil && c != nil {
			s.emit(EventMessage, signal.CodelabCandidate{Type: signal.TypeCandidate, Label: c.SDPMLineIndex, ID: c.SDPMid, Candidate: c.Candidate})
		}
	case signal.TypeError:
		code, msg := m.Code, m.Message
		if code == signal.CodeUnknownType && len(m.Ref) > len(unknownRefPrefix) && m.Ref[:len(unknownRefPrefix)] == unknownRefPrefix {
			code = "unknown-event"
			msg = fmt.Sprintf("unknown event %q: this server handles %q, %q and %q", m.Ref[len(unknownRefPrefix):], EventCreateOrJoin, EventMessage, EventBye)
		}
		s.emitError(code, msg)
	case signal.TypeLog:
		if s.g.cfg.ClientLog {
			s.emit(EventLog, []string{logPrefix, m.Message})
		}
	}
}

// emitError sends the error event, and with Config.ClientLog a log event
// with its text.
func (s *session) emitError(code, msg string) {
	s.emit(EventError, map[string]any{"code": code, "message": msg})
	if s.g.cfg.ClientLog {
		s.emit(EventLog, []string{logPrefix, "Error (" + code + "): " + msg})
	}
}

func (s *session) emit(event string, args ...any) {
	if err := s.sock.Emit(event, args...); err != nil {
		s.log.Debug("socket.io emit failed", "event", event, "err", err)
	}
}

// onPacketCreate and onFlush count what waits in the engine for the
// client: a packet is created when it is queued, and flushed when it is
// handed to the transport.
func (s *session) onPacketCreate(args ...any) {
	if p, ok := args[0].(*packet.Packet); ok {
		s.outPackets.Add(1)
		s.outBytes.Add(packetSize(p))
	}
}

func (s *session) onFlush(args ...any) {
	if ps, ok := args[0].([]*packet.Packet); ok {
		var n int64
		for _, p := range ps {
			n += packetSize(p)
		}
		s.outPackets.Add(-int64(len(ps)))
		s.outBytes.Add(-n)
	}
}

func packetSize(p *packet.Packet) int64 {
	if l, ok := p.Data.(interface{ Len() int }); ok {
		return int64(l.Len())
	}
	return 0
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, err := json.Marshal(s) // invalid UTF-8 becomes U+FFFD
	if err != nil {
		panic(errors.New("socketio: marshal string: " + err.Error()))
	}
	return append(b, q...)
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
