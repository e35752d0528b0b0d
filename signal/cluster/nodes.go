package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultLease is how long a node counts as alive after its last
// heartbeat was received. Nodes beat three times per lease.
const DefaultLease = 3 * time.Second

const (
	// minLease keeps heartbeats (lease/3) from flooding NATS.
	minLease = 300 * time.Millisecond
	// nodesMaxAgeLeases is the nodes bucket's MaxAge in leases: the key
	// of a node that crashed is dropped after this long.
	nodesMaxAgeLeases = 5
	// maxPeers bounds the registry's table; heartbeats of further nodes
	// are ignored with a warning.
	maxPeers = 4096
)

// validNodeID matches node ids: they are KV keys and NATS subject tokens.
var validNodeID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// nodeInfo is a node's heartbeat: the JSON value of its key in the nodes
// bucket.
type nodeInfo struct {
	ID       string    `json:"id"`
	URL      string    `json:"url,omitempty"` // the node's HTTP base URL, informational
	Started  time.Time `json:"started"`
	Draining bool      `json:"draining,omitempty"` // takes no new rooms
	Rooms    int       `json:"rooms"`              // rooms it hosts
	Beat     time.Time `json:"beat"`               // when the node sent this (its clock)
}

// nodesConfig configures a node registry.
type nodesConfig struct {
	Prefix   string        // bucket prefix; "" for DefaultPrefix
	Replicas int           // replicas of the nodes bucket if this node creates it; 0 means 1
	Self     nodeInfo      // this node; ID required, Beat and Rooms are filled in
	Lease    time.Duration // 0 for DefaultLease
	Rooms    func() int    // rooms this node hosts, read at each heartbeat; nil for 0
	Log      *slog.Logger  // nil for slog.Default()
}

// nodes is the node registry: it keeps this node's heartbeat key in the
// KV bucket <prefix>_nodes fresh, and watches the bucket to judge every
// node alive or dead.
//
// A node is alive while its last heartbeat arrived here less than a lease
// ago and its key was not deleted. Arrival is timed by this node's clock,
// so clocks need not agree; only at start-up, for keys already in the
// bucket, the server's timestamp says how old a heartbeat is (capped at a
// lease), so that a node that crashed before this one started is reported
// down within a lease instead of counted alive for one. onDown callbacks
// fire once per alive-to-dead change of every node other than this one;
// if this node loses NATS for longer than a lease, it reports every other
// node down (its view is all it has: directory writes, which need NATS,
// are what keep two hosts from owning one room).
type nodes struct {
	js    jetstream.JetStream
	cfg   jetstream.KeyValueConfig // of the bucket, to create it again
	kv    jetstream.KeyValue
	self  nodeInfo
	lease time.Duration
	rooms func() int
	log   *slog.Logger

	kick      chan struct{} // a heartbeat is wanted now (cap 1)
	stopBeat  context.CancelFunc
	beatDone  chan struct{}
	stopWatch context.CancelFunc
	watchDone chan struct{}
	callbacks sync.WaitGroup // running onDown callbacks
	left      atomic.Bool    // leave was called: no more heartbeats
	closeOnce sync.Once

	mu        sync.Mutex
	draining  bool
	peers     map[string]*peer // by node id
	downs     []func(id string)
	recovered []func()
	rr        uint64 // round-robin among pick's ties
}

// peer is what the registry knows of one node.
type peer struct {
	info nodeInfo
	seen time.Time // local time its last heartbeat arrived
	up   bool      // reported alive (not yet reported down)
}

// newNodes opens the nodes bucket (creating it if needed), writes this
// node's first heartbeat, reads every node's last one, and starts the
// heartbeat and watch loops. Stop them with close (after leave, to exit
// gracefully).
func newNodes(ctx context.Context, js jetstream.JetStream, cfg nodesConfig) (*nodes, error) {
	if !validNodeID.MatchString(cfg.Self.ID) {
		return nil, fmt.Errorf("cluster: node id %q: want 1 to 64 of A-Z a-z 0-9 _ -", cfg.Self.ID)
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease < minLease {
		return nil, fmt.Errorf("cluster: lease %v is shorter than %v", cfg.Lease, minLease)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("cluster: nodes bucket replicas %d: want 1 to 5", cfg.Replicas)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Self.Started.IsZero() {
		cfg.Self.Started = time.Now()
	}
	bucket, err := bucketName(cfg.Prefix, "nodes")
	if err != nil {
		return nil, err
	}
	bcfg := jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "rendezvous node heartbeats",
		History:     1,
		Storage:     jetstream.MemoryStorage,
		Replicas:    cfg.Replicas,
		TTL:         nodesMaxAgeLeases * cfg.Lease,
	}
	kv, err := bindBucket(ctx, js, bcfg)
	if err != nil {
		return nil, err
	}
	n := &nodes{
		js:        js,
		cfg:       bcfg,
		kv:        kv,
		self:      cfg.Self,
		lease:     cfg.Lease,
		rooms:     cfg.Rooms,
		log:       cfg.Log.With("node", cfg.Self.ID),
		kick:      make(chan struct{}, 1),
		beatDone:  make(chan struct{}),
		watchDone: make(chan struct{}),
		peers:     make(map[string]*peer),
	}
	if err := n.beat(ctx, false); err != nil {
		return nil, fmt.Errorf("cluster: first heartbeat: %w", err)
	}
	w, err := n.watchInitial(ctx)
	if err != nil {
		return nil, err
	}
	beatCtx, stopBeat := context.WithCancel(context.Background())
	watchCtx, stopWatch := context.WithCancel(context.Background())
	n.stopBeat, n.stopWatch = stopBeat, stopWatch
	go n.beatLoop(beatCtx)
	go n.watchLoop(watchCtx, w)
	return n, nil
}

// heartbeat is this node's current record.
func (n *nodes) heartbeat() nodeInfo {
	info := n.self
	n.mu.Lock()
	info.Draining = n.draining
	n.mu.Unlock()
	if n.rooms != nil {
		info.Rooms = n.rooms()
	}
	info.Beat = time.Now()
	return info
}

// beat writes one heartbeat, bounded by a lease. With rebind, it first
// makes sure the bucket exists, creating it again if it is gone (it is in
// memory: a single NATS server that restarts loses it).
func (n *nodes) beat(ctx context.Context, rebind bool) error {
	data, err := json.Marshal(n.heartbeat())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.lease)
	defer cancel()
	if rebind {
		if _, err := bindBucket(ctx, n.js, n.cfg); err != nil {
			return err
		}
	}
	_, err = n.kv.Put(ctx, n.self.ID, data)
	return err
}

// beatLoop writes a heartbeat every lease/3, and at once when kicked,
// until ctx ends. After a failure it checks the bucket before each try.
// It logs when heartbeats start failing and when they recover, not each
// failure.
func (n *nodes) beatLoop(ctx context.Context) {
	defer close(n.beatDone)
	ticker := time.NewTicker(n.lease / 3)
	defer ticker.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-n.kick:
		}
		err := n.beat(ctx, failing)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			n.log.Warn("cluster: heartbeat failed; other nodes will count this one dead if it lasts a lease", "lease", n.lease, "err", err)
			failing = true
		case err == nil && failing:
			n.log.Info("cluster: heartbeats recovered")
			failing = false
			n.fireRecovered()
		}
	}
}

// watchInitial starts the bucket watcher and applies every node's current
// heartbeat, so that alive is complete when newNodes returns.
func (n *nodes) watchInitial(ctx context.Context) (*watch, error) {
	// The watcher lives until close (watchLoop stops it), not until ctx
	// ends; ctx bounds the replay.
	w, err := startWatch(context.Background(), n.kv)
	if err != nil {
		return nil, fmt.Errorf("cluster: watch nodes: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			w.stop()
			return nil, fmt.Errorf("cluster: watch nodes: %w", ctx.Err())
		case e, ok := <-w.updates():
			if !ok {
				w.stop()
				return nil, errors.New("cluster: watch nodes: watcher closed while reading current heartbeats")
			}
			if e == nil {
				return w, nil
			}
			n.apply(e, true)
		}
	}
}

// watchLoop applies heartbeats as they arrive and judges expiry with one
// timer set to the earliest lease end, until ctx ends.
//
// It also watches the watcher: this node's own heartbeats pass through it,
// so if none has arrived for a lease while heartbeats are being sent and
// NATS is connected, the watcher is stuck or gone (a NATS server restarted
// without the in-memory bucket leaves nats.go's watcher waiting forever),
// and it starts another, which replays every node's current heartbeat.
func (n *nodes) watchLoop(ctx context.Context, w *watch) {
	defer close(n.watchDone)
	timer := time.NewTimer(n.lease)
	defer timer.Stop()
	selfSeen := time.Now() // last arrival of this node's own heartbeat
	replaying := false     // the watcher is delivering the bucket's current values
	fresh := true          // this node's heartbeat came through the current watcher
	for {
		var updates <-chan jetstream.KeyValueEntry
		if w != nil {
			updates = w.updates()
		}
		select {
		case <-ctx.Done():
			if w != nil {
				w.stop()
			}
			return
		case e, ok := <-updates:
			switch {
			case !ok:
				n.log.Warn("cluster: node watcher closed; starting another")
				w.stop()
				w = nil
			case e == nil:
				replaying = false
			default:
				if e.Key() == n.self.ID {
					selfSeen, fresh = time.Now(), true
				}
				n.apply(e, replaying)
			}
		case <-timer.C:
		}
		if time.Since(selfSeen) >= n.lease && !n.left.Load() && n.js.Conn().IsConnected() {
			if w != nil {
				n.log.Warn("cluster: this node's heartbeats stopped arriving through the node watcher; starting another")
				w.stop()
			}
			w = n.rewatch(ctx)
			replaying = w != nil
			selfSeen = time.Now() // give the new watcher a lease
			fresh = false         // and judge no one until it has caught up
		}
		// Judge the others only while this node's own heartbeats come
		// back through the watcher: when they do not (this node is
		// starved of CPU, or the watcher is behind), every heartbeat
		// looks old, and live nodes would be called dead.
		next := n.lease / 4
		if fresh && time.Since(selfSeen) < n.lease/2+n.lease/3 {
			next = n.expire()
		}
		timer.Reset(max(min(next, time.Until(selfSeen.Add(n.lease))), time.Millisecond))
	}
}

// rewatch starts a new watcher, or returns nil if it cannot yet.
func (n *nodes) rewatch(ctx context.Context) *watch {
	w, err := startWatch(ctx, n.kv)
	if err != nil {
		n.log.Warn("cluster: start node watcher", "err", err)
		return nil
	}
	return w
}

// apply records one heartbeat or deletion. initial marks the values
// already in the bucket when a watcher started.
func (n *nodes) apply(e jetstream.KeyValueEntry, initial bool) {
	id := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		n.mu.Lock()
		p, ok := n.peers[id]
		delete(n.peers, id)
		n.mu.Unlock()
		if ok && p.up {
			n.fireDown(id)
		}
		return
	}
	var info nodeInfo
	if err := json.Unmarshal(e.Value(), &info); err != nil || info.ID != id {
		n.log.Warn("cluster: ignoring a malformed heartbeat", "key", id, "err", err)
		return
	}
	seen := time.Now()
	if initial {
		age := min(max(time.Since(e.Created()), 0), n.lease)
		seen = seen.Add(-age)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.peers[id]
	if !ok {
		if len(n.peers) >= maxPeers {
			n.log.Warn("cluster: too many nodes; ignoring a heartbeat", "id", id, "max", maxPeers)
			return
		}
		p = &peer{}
		n.peers[id] = p
	}
	p.info, p.seen, p.up = info, seen, true
}

// expire reports down every node whose lease ran out, forgets it, and
// returns how long until the next lease could run out.
func (n *nodes) expire() time.Duration {
	now := time.Now()
	next := n.lease
	var down []string
	n.mu.Lock()
	for id, p := range n.peers {
		left := p.seen.Add(n.lease).Sub(now)
		if left <= 0 {
			delete(n.peers, id)
			down = append(down, id)
			continue
		}
		next = min(next, left)
	}
	n.mu.Unlock()
	sort.Strings(down)
	for _, id := range down {
		n.fireDown(id)
	}
	return next
}

// fireDown runs the onDown callbacks for id, each on its own goroutine
// (close waits for them). This node is never reported.
func (n *nodes) fireDown(id string) {
	if id == n.self.ID {
		n.log.Info("cluster: this node is no longer seen alive (it left, or its heartbeats stopped arriving)")
		return
	}
	n.log.Info("cluster: node down", "id", id)
	n.mu.Lock()
	fns := append([]func(string){}, n.downs...)
	n.mu.Unlock()
	for _, f := range fns {
		n.callbacks.Add(1)
		go func() {
			defer n.callbacks.Done()
			f(id)
		}()
	}
}

// onDown registers f to be called, on a goroutine of its own, with the id
// of each other node that goes from alive to dead.
// onRecovered registers f, called (on its own goroutine) when this node's
// heartbeats succeed again after failing: the others may have counted it
// dead meanwhile and taken its rooms over.
func (n *nodes) onRecovered(f func()) {
	n.mu.Lock()
	n.recovered = append(n.recovered, f)
	n.mu.Unlock()
}

// fireRecovered runs the onRecovered callbacks.
func (n *nodes) fireRecovered() {
	n.mu.Lock()
	fns := append([]func(){}, n.recovered...)
	n.mu.Unlock()
	for _, f := range fns {
		n.callbacks.Add(1)
		go func() {
			defer n.callbacks.Done()
			f()
		}()
	}
}

func (n *nodes) onDown(f func(id string)) {
	n.mu.Lock()
	n.downs = append(n.downs, f)
	n.mu.Unlock()
}

// alive returns the live nodes, this one included if its heartbeats
// arrive, sorted by id.
func (n *nodes) alive() []nodeInfo {
	now := time.Now()
	n.mu.Lock()
	out := make([]nodeInfo, 0, len(n.peers))
	for _, p := range n.peers {
		if now.Sub(p.seen) < n.lease {
			out = append(out, p.info)
		}
	}
	n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// isAlive reports whether node id is alive.
func (n *nodes) isAlive(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.peers[id]
	return ok && time.Since(p.seen) < n.lease
}

// pick chooses a live, non-draining node not in exclude to host a room:
// one of those hosting the fewest rooms (as of their last heartbeat),
// taking turns among ties so that a burst of picks between heartbeats
// spreads. ok is false when there is none.
func (n *nodes) pick(exclude ...string) (id string, ok bool) {
	var best []string
	fewest := 0
	for _, info := range n.alive() {
		if info.Draining || contains(exclude, info.ID) {
			continue
		}
		switch {
		case len(best) == 0 || info.Rooms < fewest:
			best, fewest = append(best[:0], info.ID), info.Rooms
		case info.Rooms == fewest:
			best = append(best, info.ID)
		}
	}
	if len(best) == 0 {
		return "", false
	}
	n.mu.Lock()
	turn := n.rr
	n.rr++
	n.mu.Unlock()
	return best[turn%uint64(len(best))], true
}

// contains reports whether list holds s.
func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// setDraining sets whether this node takes new rooms, and sends a
// heartbeat at once so that others stop picking it.
func (n *nodes) setDraining(draining bool) {
	n.mu.Lock()
	n.draining = draining
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default: // a heartbeat is already due
	}
}

// leave stops heartbeats and deletes this node's key, so that the other
// nodes see it down at once rather than after a lease. Call it before
// close on a graceful exit.
func (n *nodes) leave(ctx context.Context) error {
	n.left.Store(true)
	n.stopBeat()
	<-n.beatDone
	if err := n.kv.Delete(ctx, n.self.ID); err != nil {
		return fmt.Errorf("cluster: delete heartbeat of node %s: %w", n.self.ID, err)
	}
	return nil
}

// close stops the heartbeat and watch loops and waits for them and for
// running onDown callbacks. Without leave, other nodes see this one down
// when its lease runs out.
func (n *nodes) close() {
	n.closeOnce.Do(func() {
		n.stopBeat()
		n.stopWatch()
		<-n.beatDone
		<-n.watchDone
		n.callbacks.Wait()
	})
}
