package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Config configures a Node. The zero value works, given NATS.URLs.
type Config struct {
	// NATS says how to reach the NATS servers (JetStream on).
	NATS NATSOptions
	// Secret is shared by every node of the cluster: resume tokens are
	// signed with it, so that a token one node minted verifies on every
	// other. Empty: a random key is created once in the KV bucket
	// <Prefix>_cluster and shared through it.
	Secret []byte
	// Prefix names the cluster's KV buckets and subjects (default
	// DefaultPrefix): clusters with different prefixes share nothing.
	Prefix string
	// NodeID names this node (1–64 of A–Z a–z 0–9 _ -; default: random,
	// new at every start).
	NodeID string
	// URL is this node's HTTP base URL, for /healthz and logs only.
	URL string
	// Lease is how long a node that stopped sending heartbeats counts as
	// alive; then its rooms are re-hosted (default DefaultLease).
	Lease time.Duration
	// Replicas is the replica count of the KV buckets this node creates
	// (default 1; use 3 on a 3-node NATS cluster).
	Replicas int
	// Logger receives the node's logs (default slog.Default()).
	Logger *slog.Logger
}

// Timeouts of the cluster's requests between nodes.
const (
	// startTimeout bounds New when its context has no deadline.
	startTimeout = 30 * time.Second
	// openTimeout bounds opening a tunnel to a host.
	openTimeout = 2 * time.Second
	// requestTimeout bounds an admin or move request.
	requestTimeout = 5 * time.Second
	// claimCheck is how long after claiming a room a node checks that the
	// join really created it, and releases the claim if not.
	claimCheck = 2 * time.Second
)

// Node is one node of a cluster: a signal.Server hosting some of the
// cluster's rooms, and a gateway that tunnels each of its clients to the
// host of the client's room. Serve Handler in place of the server's.
type Node struct {
	cfg    Config
	id     string
	log    *slog.Logger
	srv    *signal.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	dir    *directory
	nodes  *nodes
	subs   []*nats.Subscription
	met    *nodeMetrics
	ctx    context.Context // ends when the node stops
	cancel context.CancelFunc
	bg     sync.WaitGroup // background work: syncers, re-hosting, claim checks

	maxMessage int64         // the server's MaxMessageBytes
	pongWait   time.Duration // the server's PongTimeout
	msgWait    time.Duration // the server's MessageTimeout
	joinWait   time.Duration // the server's JoinTimeout
	writeWait  time.Duration // the server's WriteTimeout
	queueBytes int           // the server's ConnBufferBytes: a gateway connection's queue bound

	writeBufs sync.Pool // the tunnel ends' WebSocket write buffers

	draining atomic.Bool // Drain began: no new tunnels, no new rooms
	stopOnce sync.Once

	ownMu  sync.Mutex
	owned  map[string]uint64 // guarded by ownMu: rooms this node hosts → revision of their record
	moving bool              // guarded by ownMu: Drain is handing the rooms over; no releases
	sync   *syncer

	gwMu       sync.Mutex
	gws        map[string]*gwConn   // guarded by gwMu: this gateway's client connections, by current tunnel id
	gwAll      map[*gwConn]struct{} // guarded by gwMu: every client connection
	gwClosed   bool                 // guarded by gwMu: no more client connections
	nextTunnel atomic.Uint64
	gwWG       sync.WaitGroup // running gateway connections

	moves map[string]*partialMove // moves arriving in parts, by id; only onMove's goroutine uses it

	hostMu     sync.Mutex
	ends       map[string]*hostEnd // guarded by hostMu: tunnels hosted here, by tunnel id
	hostClosed bool                // guarded by hostMu
	endWG      sync.WaitGroup      // running tunnel ends
}

// New connects to NATS, joins the cluster and returns the node, with its
// signal.Server made from scfg (whose cluster fields New sets). ctx bounds
// the start (30 s when it has no deadline).
func New(ctx context.Context, cfg Config, scfg signal.Config) (*Node, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		cfg.NodeID = hex.EncodeToString(b[:])
	}
	if scfg.ResumeWindow < 0 {
		return nil, errors.New("cluster: resume must be on (a positive resume window): rooms move between nodes as held seats")
	}
	if cfg.NATS.Name == "" {
		cfg.NATS.Name = "rendezvous " + cfg.NodeID
	}
	if cfg.NATS.Logger == nil {
		cfg.NATS.Logger = cfg.Logger
	}
	nc, js, err := connect(ctx, cfg.NATS)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, id: cfg.NodeID, log: cfg.Logger.With("node", cfg.NodeID), nc: nc, js: js,
		owned: make(map[string]uint64), gws: make(map[string]*gwConn), gwAll: make(map[*gwConn]struct{}), moves: make(map[string]*partialMove), ends: make(map[string]*hostEnd)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*Node, error) {
		n.cancel()
		if n.nodes != nil {
			n.nodes.close()
		}
		nc.Close()
		return nil, err
	}
	if n.dir, err = openDirectory(ctx, js, cfg.Prefix, cfg.Replicas); err != nil {
		return fail(err)
	}
	key := cfg.Secret
	if len(key) == 0 {
		if key, err = sharedKey(ctx, js, cfg.Prefix, cfg.Replicas); err != nil {
			return fail(err)
		}
	}

	n.met = newNodeMetrics(n)
	scfg.ResumeKey = key
	scfg.HostsRoom = n.hosts
	scfg.OnRoomChange = n.roomChanged
	scfg.Gateway = n.serveClient
	scfg.Collectors = append(scfg.Collectors, n.met.collectors()...)
	if scfg.Logger == nil {
		scfg.Logger = cfg.Logger
	}
	n.srv = signal.NewServer(scfg)
	eff := n.srv.Config()
	n.maxMessage, n.pongWait, n.msgWait, n.joinWait, n.writeWait, n.queueBytes =
		eff.MaxMessageBytes, eff.PongTimeout, eff.MessageTimeout, eff.JoinTimeout, eff.WriteTimeout, eff.ConnBufferBytes
	n.sync = newSyncer(n)

	if n.nodes, err = newNodes(ctx, js, nodesConfig{Prefix: cfg.Prefix, Replicas: cfg.Replicas, Lease: cfg.Lease,
		Self: nodeInfo{ID: n.id, URL: cfg.URL, Started: time.Now()}, Rooms: n.hostedCount, Log: n.log}); err != nil {
		_ = n.srv.Close()
		return fail(err)
	}
	n.nodes.onDown(n.nodeDown)
	n.nodes.onRecovered(n.fence)
	for _, s := range []struct {
		subject string
		handle  nats.MsgHandler
	}{
		{n.subject(n.id, "h"), n.onTunnel("host", n.toHostEnd)},
		{n.subject(n.id, "g"), n.onTunnel("gateway", n.toGateway)},
		{n.subject(n.id, "open"), n.onOpen},
		{n.subject(n.id, "admin"), n.onAdmin},
		{n.subject(n.id, "move"), n.onMove},
	} {
		sub, err := nc.Subscribe(s.subject, s.handle)
		if err != nil {
			n.nodes.close()
			_ = n.srv.Close()
			return fail(fmt.Errorf("cluster: subscribe %s: %w", s.subject, err))
		}
		// The handlers only queue; a generous pending limit keeps a burst
		// from being dropped as a slow consumer.
		_ = sub.SetPendingLimits(1<<20, 256<<20)
		n.subs = append(n.subs, sub)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		n.nodes.close()
		_ = n.srv.Close()
		return fail(fmt.Errorf("cluster: subscribe: %w", err))
	}
	n.log.Info("joined the cluster", "nats", nc.ConnectedUrlRedacted(), "lease", cfg.Lease, "prefix", cfg.Prefix)
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.id }

// Server returns the node's room server. Its Handler must not be served
// directly: serve the node's Handler.
func (n *Node) Server() *signal.Server { return n.srv }

// subject returns the NATS subject of a node's endpoint: "h" (tunnel
// frames to its host side), "g" (to its gateway side), "open", "admin",
// "move".
func (n *Node) subject(node, endpoint string) string {
	return n.cfg.Prefix + ".node." + node + "." + endpoint
}

// sharedKey returns the cluster's resume-token key from the KV bucket
// <prefix>_cluster, creating it on first use.
func sharedKey(ctx context.Context, js jetstream.JetStream, prefix string, replicas int) ([]byte, error) {
	name, err := bucketName(prefix, "cluster")
	if err != nil {
		return nil, err
	}
	kv, err := bindBucket(ctx, js, jetstream.KeyValueConfig{Bucket: name, History: 1, Replicas: replicas, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if _, err := kv.Create(ctx, "resume-key", key); err == nil {
		return key, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("cluster: create the shared resume key: %w", err)
	}
	e, err := kv.Get(ctx, "resume-key")
	if err != nil {
		return nil, fmt.Errorf("cluster: read the shared resume key: %w", err)
	}
	if len(e.Value()) < 32 {
		return nil, fmt.Errorf("cluster: the shared resume key in bucket %s is too short", name)
	}
	return e.Value(), nil
}

// hosts is the server's Config.HostsRoom: whether this node owns room.
func (n *Node) hosts(room string) bool {
	n.ownMu.Lock()
	defer n.ownMu.Unlock()
	_, ok := n.owned[room]
	return ok
}

// own records that this node hosts room, at revision rev of its record.
func (n *Node) own(room string, rev uint64) {
	n.ownMu.Lock()
	n.owned[room] = rev
	n.ownMu.Unlock()
}

// hostedCount returns how many rooms this node hosts.
func (n *Node) hostedCount() int {
	n.ownMu.Lock()
	defer n.ownMu.Unlock()
	return len(n.owned)
}

// Close leaves the cluster at once, without handing rooms over (use Drain
// for that): the node's clients and rooms end as on a single server's
// shutdown. It waits for the node's goroutines.
func (n *Node) Close() error {
	n.stop()
	return n.srv.Close()
}

// stop closes the gateway's clients with 1001, leaves the cluster and
// stops the node's own goroutines. The server is left to its caller.
func (n *Node) stop() {
	n.stopOnce.Do(func() {
		n.closeClients(1001, "going away", false)
		n.closeEnds()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		n.releaseAll(ctx)
		_ = n.nodes.leave(ctx)
		cancel()
		n.nodes.close()
		n.cancel()
		for _, s := range n.subs {
			_ = s.Unsubscribe()
		}
		n.bg.Wait()
		n.gwWG.Wait()
		n.endWG.Wait()
		n.nc.Close()
	})
}

// releaseAll frees the directory records of the rooms this node still
// hosts when it stops without handing them over: the rooms end here, and
// must not be rebuilt elsewhere as if it had crashed. After Drain there
// are none.
func (n *Node) releaseAll(ctx context.Context) {
	n.ownMu.Lock()
	n.moving = true // the syncer leaves the records alone from now on
	rooms := make([]string, 0, len(n.owned))
	revs := make([]uint64, 0, len(n.owned))
	for room, rev := range n.owned {
		rooms = append(rooms, room)
		revs = append(revs, rev)
	}
	clear(n.owned)
	n.ownMu.Unlock()
	n.parallel(len(rooms), func(i int) {
		_ = n.dir.release(ctx, rooms[i], revs[i])
	})
}
