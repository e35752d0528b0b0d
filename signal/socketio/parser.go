package socketio

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Errors the decoder returns; the library then closes the client's
// Engine.IO connection.
var (
	errBinary     = errors.New("socketio: binary packets are not supported")
	errBadEvent   = errors.New("socketio: malformed event packet")
	errEventFlood = errors.New("socketio: too many events waiting to be handled")
)

// rawParser is the Socket.IO parser of the gateway. It encodes as the
// library's parser does (an argument of type json.RawMessage is written as
// it is), and decodes EVENT packets itself so that each argument stays the
// JSON text the client sent (json.RawMessage): the library's own decoder
// turns objects into map[string]any, which re-encodes them with sorted keys
// and every number as a float64. Every other text packet goes to the
// library's decoder. Binary packets, which protocol v1 cannot carry, and
// acknowledgements, which the gateway never asks for, are refused.
type rawParser struct {
	maxEvents int64 // events decoded but not yet handled, per client
	maxBytes  int64 // their bytes, per client
	// gate returns the gate of the client whose decoder is being made
	// (Gateway.linking).
	gate func() *gate
}

func (p *rawParser) NewEncoder() parser.Encoder { return parser.NewEncoder() }

func (p *rawParser) NewDecoder() parser.Decoder {
	return &rawDecoder{
		Decoder: parser.NewDecoder(),
		backlog: &backlog{maxEvents: p.maxEvents, maxBytes: p.maxBytes},
		gate:    p.gate(),
	}
}

// gate holds a client's events back until its socket is connected. The
// library answers a client's CONNECT before it records the socket as
// connected, and closes a client whose event arrives in between ("invalid
// state"); a client that emits as soon as it is connected (the origin's
// page does) loses that race now and then. The decoder waits at the gate
// (at most gateTimeout) instead.
type gate struct {
	conn   engine.Socket // immutable: the client's Engine.IO session
	eio3   bool          // immutable: the server connects the client by itself
	open   chan struct{} // closed once the socket is connected
	closed chan struct{} // closed when the connection has ended or was refused
	once   sync.Once
	conce  sync.Once
	// onRefused, when set, is told why the decoder refused a message.
	onRefused func(engine.Socket, error)
}

func newGate(conn engine.Socket) *gate {
	return &gate{conn: conn, eio3: conn.Protocol() == 3, open: make(chan struct{}), closed: make(chan struct{})}
}

func (g *gate) connected() { g.once.Do(func() { close(g.open) }) }

// refused ends the session of a client that sent what the decoder
// refuses.
func (g *gate) refused(err error) {
	if g.onRefused != nil {
		g.onRefused(g.conn, err)
	}
	g.shut()
	g.conn.Close(true)
}
func (g *gate) shut() { g.conce.Do(func() { close(g.closed) }) }

// gateTimeout bounds how long an event waits for its socket's connection.
const gateTimeout = 15 * time.Second

// backlog counts the events of one client that were decoded and queued
// for the gateway but not yet handled. The library queues them without
// bound; the decoder refuses the client's next packet (and the library
// closes its connection) once the backlog is over its limits.
type backlog struct {
	maxEvents, maxBytes int64
	events, bytes       atomic.Int64
}

// ticket is appended to the arguments of every decoded event; the gateway
// calls done once it has handled the event.
type ticket struct {
	b    *backlog
	size int64
	once atomic.Bool
}

func (t *ticket) done() {
	if t != nil && t.once.CompareAndSwap(false, true) {
		t.b.events.Add(-1)
		t.b.bytes.Add(-t.size)
	}
}

// rawDecoder embeds the library's decoder, whose listeners receive the
// packets this one decodes too.
type rawDecoder struct {
	parser.Decoder
	backlog    *backlog
	gate       *gate       // nil: none (not made through the gateway)
	sawConnect atomic.Bool // a CONNECT packet came
}

// Add decodes one Engine.IO message. A message it refuses ends the
// client's session at once: the library would close it in order, and a
// polling transport closed while no poll is pending keeps a timer (and its
// goroutine) for 30 s, even once the session is gone.
func (d *rawDecoder) Add(data any) error {
	err := d.add(data)
	if err != nil && d.gate != nil {
		d.gate.refused(err)
		return nil
	}
	return err
}

func (d *rawDecoder) add(data any) error {
	var s string
	switch v := data.(type) {
	case string:
		s = v
	case *types.StringBuffer:
		s = v.String()
	case *strings.Reader:
		b := make([]byte, v.Len())
		_, _ = v.Read(b)
		s = string(b)
	default:
		return errBinary
	}
	if s == "" {
		return errBadEvent
	}
	switch parser.PacketType(s[0] - '0') {
	case parser.EVENT:
	case parser.ACK:
		return nil // never asked for: nothing waits for it
	case parser.BINARY_EVENT, parser.BINARY_ACK:
		return errBinary
	case parser.CONNECT:
		d.sawConnect.Store(true)
		return d.Decoder.Add(s)
	default:
		return d.Decoder.Add(s)
	}
	p, err := decodeEvent(s)
	if err != nil {
		return err
	}
	if g := d.gate; g != nil && (g.eio3 || d.sawConnect.Load()) {
		// An event before any CONNECT (Engine.IO 4) goes on: the library
		// refuses it.
		select {
		case <-g.open:
		default:
			t := time.NewTimer(gateTimeout)
			select {
			case <-g.open:
			case <-g.closed:
			case <-t.C:
			}
			t.Stop()
		}
	}
	size := int64(len(s))
	if d.backlog.events.Add(1) > d.backlog.maxEvents || d.backlog.bytes.Add(size) > d.backlog.maxBytes {
		d.backlog.events.Add(-1)
		d.backlog.bytes.Add(-size)
		return errEventFlood
	}
	args := p.Data.([]any)
	p.Data = append(args, &ticket{b: d.backlog, size: size})
	d.Emit("decoded", p)
	return nil
}

// maxNamespaceBytes bounds a namespace name in a packet.
const maxNamespaceBytes = 256

// decodeEvent parses `2[/nsp,][id][JSON array]`: an EVENT packet whose
// array holds the event name (a string) and then its arguments. The
// arguments are kept as the JSON the client sent.
func decodeEvent(s string) (*parser.Packet, error) {
	p := &parser.Packet{Type: parser.EVENT, Nsp: "/"}
	s = s[1:]
	if strings.HasPrefix(s, "/") {
		i := strings.IndexByte(s, ',')
		if i < 0 || i > maxNamespaceBytes {
			return nil, errBadEvent
		}
		p.Nsp, s = s[:i], s[i+1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 {
		if i > 20 {
			return nil, errBadEvent
		}
		id, err := strconv.ParseUint(s[:i], 10, 64)
		if err != nil {
			return nil, errBadEvent
		}
		p.Id = &id
		s = s[i:]
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil || len(raw) == 0 {
		return nil, errBadEvent
	}
	var name string
	if err := json.Unmarshal(raw[0], &name); err != nil {
		return nil, errBadEvent
	}
	args := make([]any, 0, len(raw)+2) // room for the ticket and an ack
	args = append(args, name)
	for _, r := range raw[1:] {
		args = append(args, r)
	}
	p.Data = args
	return p, nil
}
