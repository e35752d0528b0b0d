package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// closeWriterTimeout bounds how long Close waits for queued messages (the
// leave) to be written before it aborts the signaling connection.
const closeWriterTimeout = 2 * time.Second

// Peer is a member of a room with one PeerConnection per remote member.
// Its methods are safe for concurrent use.
type Peer struct {
	cfg  Config
	api  *webrtc.API
	base *slog.Logger // Config.Logger, or a discarding one

	room    string                      // read-only after Join
	initial []string                    // members already in the room (joined.peers); read-only
	log     atomic.Pointer[slog.Logger] // base with the room and this peer's current id

	events *eventQueue
	out    *outbox
	cl     *codelab // the codelab dialect's state; nil in protocol v1 (Config.Codelab)

	ctx    context.Context    // ends when Close starts; stops the run loop
	cancel context.CancelFunc // cancels ctx

	// owned by the run loop
	early      map[string][]webrtc.ICECandidateInit // candidates from members with no PeerConnection yet
	iceServers []webrtc.ICEServer                   // from created/joined plus Config.ICEServers
	resume     string                               // the seat's resume token; empty when none
	mids       uint64                               // mids given by assignMids
	inbox      inbox                                // work for the run loop from other goroutines

	mu       sync.Mutex
	client   *link               // guarded by mu; the current signaling connection, written only by the run loop
	id       string              // guarded by mu; this peer's id in the room
	capacity int                 // guarded by mu
	remotes  map[string]*remote  // guarded by mu; written only by the run loop and Close
	changed  chan struct{}       // guarded by mu; closed and replaced when any remote's state changes
	closing  bool                // guarded by mu; set once by Close: no new goroutines
	extra    []webrtc.TrackLocal // guarded by mu; the tracks of AddTrack, at most maxExtraTracks

	runDone    chan struct{}  // closed when the run loop has ended
	writerDone chan struct{}  // closed when the writer has ended
	eventsDone chan struct{}  // closed when the event dispatcher has ended
	stopEvents chan struct{}  // closed by Close to end the event dispatcher
	aux        sync.WaitGroup // RTCP readers and OnTrack callbacks; Add only under mu while !closing

	closeOnce sync.Once
	closed    chan struct{} // closed when Close has finished
}

// Join connects to the signaling server at cfg.URL, joins cfg.Room and
// returns the Peer, which then negotiates with every member of the room,
// present or future, and resumes its seat if the signaling connection
// drops (Config.ResumeWindow). It returns an error wrapping ErrConnect
// when the server cannot be reached, ErrRoomFull when the room is full,
// ErrUnauthorized when the server refuses Config.Token, ErrConfig for a
// bad cfg, or the server's *signal.Error (e.g. id-taken).
func Join(ctx context.Context, cfg Config) (*Peer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	api, err := cfg.api()
	if err != nil {
		return nil, err
	}
	base := cfg.Logger
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	client, err := dial(ctx, cfg.URL, cfg.Dial)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrConnect, cfg.URL, err)
	}
	m, err := joinRoom(ctx, client, cfg.Room, cfg.freshJoin())
	if err != nil {
		client.Abort()
		return nil, err
	}
	var pushed func(*signal.Message)
	if cfg.hooks != nil {
		pushed = cfg.hooks.pushed
	}
	p := &Peer{
		cfg:        cfg,
		api:        api,
		base:       base,
		room:       m.Room,
		initial:    m.Peers,
		events:     newEventQueue(),
		out:        newOutbox(pushed),
		early:      make(map[string][]webrtc.ICECandidateInit),
		remotes:    make(map[string]*remote),
		changed:    make(chan struct{}),
		runDone:    make(chan struct{}),
		writerDone: make(chan struct{}),
		eventsDone: make(chan struct{}),
		stopEvents: make(chan struct{}),
		closed:     make(chan struct{}),
	}
	if cfg.Codelab != nil {
		p.cl = newCodelab(cfg.Codelab)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.seat(client, m)

	go func() {
		defer close(p.eventsDone)
		p.events.run(p.stopEvents)
	}()
	go func() {
		defer close(p.writerDone)
		p.out.run(p.logger)
	}()
	go func() {
		defer close(p.runDone)
		p.run()
	}()
	return p, nil
}

// freshJoin returns the options of a join that asks for a new seat.
func (c *Config) freshJoin() *signal.JoinOptions {
	return &signal.JoinOptions{ID: c.ID, Capacity: c.Capacity, Token: c.Token}
}

// joinRoom sends join on c and waits for created or joined. Errors wrap
// ErrRoomFull or ErrUnauthorized (with the server's error) where they
// apply.
func joinRoom(ctx context.Context, c *link, room string, opts *signal.JoinOptions) (*signal.Message, error) {
	m, err := c.Join(ctx, room, opts)
	switch {
	case err == nil:
		return m, nil
	case errors.Is(err, signal.ErrRoomFull):
		return nil, fmt.Errorf("peer: join %q: %w: %w", room, ErrRoomFull, err)
	case errors.Is(err, &signal.Error{Code: signal.CodeUnauthorized}):
		return nil, fmt.Errorf("peer: join %q: %w: %w", room, ErrUnauthorized, err)
	}
	return nil, fmt.Errorf("peer: join %q: %w", room, err)
}

// takeSeat records what created or joined m says of the seat on
// connection c: id, capacity, resume token and ICE servers; it returns the
// seat's logger.
func (p *Peer) takeSeat(c *link, m *signal.Message) *slog.Logger {
	log := p.base.With("room", m.Room, "id", m.ID)
	p.log.Store(log)
	p.mu.Lock()
	p.client, p.id, p.capacity = c, m.ID, m.Capacity
	p.mu.Unlock()
	p.resume = m.Resume
	p.iceServers = append(iceServers(m.ICEServers, log), p.cfg.ICEServers...)
	return log
}

// seat takes the new seat that created or joined m gives, on connection c:
// it records the id, capacity, resume token and ICE servers, attaches c
// to the outbox and emits EventJoined. It runs in Join, then on the run
// loop.
func (p *Peer) seat(c *link, m *signal.Message) {
	log := p.takeSeat(c, m)
	p.emit(Event{Type: EventJoined, Room: m.Room, ID: m.ID, Peers: m.Peers, Created: m.Type == signal.TypeCreated})
	log.Debug("joined", "created", m.Type == signal.TypeCreated, "peers", m.Peers)
	p.out.attach(c)
}

func (p *Peer) logger() *slog.Logger { return p.log.Load() }

// currentClient returns the current signaling connection.
func (p *Peer) currentClient() *link {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client
}

// ID returns this peer's id in the room. It changes only when the peer
// lost its seat and joined again with an id the server chose
// (EventSeatLost, then EventJoined).
func (p *Peer) ID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id
}

// Room returns the room's name.
func (p *Peer) Room() string { return p.room }

// Capacity returns the room's capacity.
func (p *Peer) Capacity() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.capacity
}

// Events returns the event stream: every Event in order, starting with
// EventJoined. Events wait in an unbounded buffer until read, so pion is
// never blocked by a slow reader, but a peer whose events are never read
// keeps them all in memory: read them. The channel is closed when Close
// has finished; events not yet read then are dropped.
func (p *Peer) Events() <-chan Event { return p.events.out }

// Done is closed when Close has finished.
func (p *Peer) Done() <-chan struct{} { return p.closed }

// Remotes returns the ids of the members this peer has a PeerConnection
// with, in no particular order.
func (p *Peer) Remotes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.remotes))
	for id := range p.remotes {
		ids = append(ids, id)
	}
	return ids
}

// PeerConnection returns the PeerConnection with member remoteID, or nil.
// Use it to read stats or states; do not renegotiate on it.
func (p *Peer) PeerConnection(remoteID string) *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.remotes[remoteID]; r != nil {
		return r.pc
	}
	return nil
}

// Close leaves the room: it sends leave, closes every PeerConnection and
// the signaling connection, and waits for the peer's goroutines (and
// OnTrack callbacks) to end. While the peer is reconnecting it returns at
// once, without leave (the server releases the seat when its resume
// window ends). It is safe to call more than once and from
// several goroutines; every call returns once the peer is closed. Do not
// call it from Config.Prepare or Config.OnTrack, which it waits for.
func (p *Peer) Close() error {
	p.closeOnce.Do(p.close)
	<-p.closed
	return nil
}

func (p *Peer) close() {
	defer close(p.closed)
	p.mu.Lock()
	p.closing = true
	p.broadcastLocked()
	p.mu.Unlock()

	// Leave first (in the codelab dialect, say "bye" first), so the others
	// learn at once; nothing is queued after it.
	if p.cl != nil {
		p.out.push(codelabSignal("", codelabBye)) // the codelab's hang-up
	}
	p.out.push(&signal.Message{Type: signal.TypeLeave})
	p.out.close()
	p.cancel()
	<-p.runDone

	// The run loop has ended: no PeerConnection is created any more.
	p.mu.Lock()
	remotes := p.remotes
	p.remotes = make(map[string]*remote)
	p.broadcastLocked()
	p.mu.Unlock()
	for _, r := range remotes {
		r.close()
	}

	// The run loop has ended: p.client no longer changes.
	client := p.currentClient()
	select {
	case <-p.writerDone:
	case <-time.After(closeWriterTimeout):
		p.logger().Debug("signaling writes stuck; aborting the connection")
		client.Abort()
		<-p.writerDone
	}
	_ = client.Close()
	p.aux.Wait()
	close(p.stopEvents)
	<-p.eventsDone
}

// emit queues an event; it never blocks.
func (p *Peer) emit(e Event) { p.events.push(e) }

// broadcastLocked wakes every waiter. p.mu must be held.
func (p *Peer) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// spawn runs f on a new goroutine counted in p.aux, unless Close has
// started; it reports whether f runs.
func (p *Peer) spawn(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.aux.Add(1)
	go func() {
		defer p.aux.Done()
		f()
	}()
	return true
}

// enter counts the calling goroutine in p.aux, unless Close has started;
// the caller must call p.aux.Done when it reports true.
func (p *Peer) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.aux.Add(1)
	return true
}
