package signal

import (
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/mux"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

// Defaults of Config. A zero Config gives these.
const (
	DefaultCapacity        = 2
	DefaultMaxCapacity     = 16
	DefaultMaxMessageBytes = 64 << 10
	DefaultRate            = 50
	DefaultBurst           = 200
	DefaultSendQueue       = 256
	DefaultPingInterval    = 20 * time.Second
	DefaultPongTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultMaxConns        = 100000
	DefaultShutdownTimeout = 10 * time.Second
	DefaultResumeWindow    = 15 * time.Second
	DefaultResumeQueue     = 256
	DefaultResumeBytes     = 256 << 10

	DefaultConnBufferBytes = 1 << 20
	DefaultJoinTimeout     = 30 * time.Second
	DefaultMessageTimeout  = 10 * time.Second
	DefaultMaxConnsPerIP   = 1000
	DefaultUpgradeRate     = 200
	DefaultUpgradeBurst    = 400
	DefaultReadTimeout     = 10 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultMaxHeaderBytes  = 16 << 10
	DefaultMaxTokenBytes   = 4 << 10
)

// Config configures a Server. The zero value is a working configuration
// with the defaults above.
type Config struct {
	// Capacity is the capacity of a room whose creator asks for none
	// (default 2, the origin's rule).
	Capacity int
	// MaxCapacity is the largest capacity a join may ask for (default 16).
	MaxCapacity int
	// MaxMessageBytes is the largest frame accepted; a larger one closes
	// the connection with close code 1009 (default 64 KiB).
	MaxMessageBytes int64
	// Rate and Burst set each connection's token bucket, in messages per
	// second (defaults 50 and 200). rate.Inf turns rate limiting off.
	Rate  rate.Limit
	Burst int
	// SendQueue is the number of outgoing messages a connection may have
	// waiting; when it is full the connection is dropped as a slow consumer
	// (default 256).
	SendQueue int
	// PingInterval and PongTimeout govern keepalive: a ping is sent every
	// PingInterval, and a connection that sends nothing (not even a pong)
	// for PongTimeout is closed (defaults 20 s and 30 s).
	PingInterval time.Duration
	PongTimeout  time.Duration
	// WriteTimeout is the deadline of every write (default 10 s).
	WriteTimeout time.Duration
	// MaxConns is the number of open connections past which upgrades are
	// refused with 503 (default 100000).
	MaxConns int
	// AllowedOrigins lists the browser origins that may connect, either as
	// full origins ("https://app.example.org") or as hosts
	// ("app.example.org"); "*" allows any. Empty means the server's own
	// host only. Requests without an Origin header are always allowed.
	AllowedOrigins []string
	// ICEServers is sent to every member in created and joined (STUN
	// servers, TURN servers with static credentials).
	ICEServers []ICEServer
	// TURN, when it has URLs, adds a TURN server to every member's
	// iceServers, with fresh ephemeral credentials when TURN.Secret is set.
	TURN TURNConfig
	// AuthSecret, when set, makes join require a token: an HS256 JWT
	// signed with this secret (see TokenClaims and MintToken).
	AuthSecret []byte
	// ResumeWindow is how long the seat of a connection that dropped
	// without leave is held for a resume (default 15 s; negative: seats
	// are released at once). ResumeQueue and ResumeQueueBytes bound the
	// frames kept for an absent member (defaults 256 and 256 KiB); past
	// them the seat is released.
	ResumeWindow     time.Duration
	ResumeQueue      int
	ResumeQueueBytes int
	// ConnBufferBytes bounds, in bytes, the frames kept for one
	// connection or seat: those queued for writing, those written but not
	// yet acknowledged (kept for a resume), those held for an absent member,
	// and a message being read. A connection whose queue alone would pass
	// it is dropped as a slow consumer; older unacknowledged frames are
	// forgotten first (default 1 MiB; at least twice MaxMessageBytes).
	ConnBufferBytes int
	// BufferBudget bounds, in bytes, the frames buffered for all
	// connections together. Past it the connections holding the most are
	// dropped as slow consumers until the total is back under 90 % of it
	// (default: a quarter of the machine's memory, at least 64 MiB).
	BufferBudget int64
	// JoinTimeout closes a connection that is in no room this long after
	// it opened or left its room: it must send a valid join in time
	// (default 30 s; negative: never).
	JoinTimeout time.Duration
	// MessageTimeout bounds how long one message may take to arrive once
	// its first frame has begun: a message still unfinished then closes
	// the connection (default 10 s).
	MessageTimeout time.Duration
	// MaxConnsPerIP is the number of open connections one client address
	// (an IPv6 /64) may have; past it upgrades get HTTP 429 (default 1000;
	// negative: no limit). Behind a reverse proxy every client has the
	// proxy's address: turn it off there.
	MaxConnsPerIP int
	// UpgradeRate and UpgradeBurst bound the WebSocket upgrades one client
	// address may make, per second (defaults 200 and 400; a negative rate:
	// no limit). Past them upgrades get HTTP 429.
	UpgradeRate  float64
	UpgradeBurst int
	// ReadTimeout bounds reading one HTTP request, headers and body;
	// IdleTimeout closes a keep-alive connection idle this long;
	// MaxHeaderBytes bounds request headers. They configure HTTPServer
	// (defaults 10 s, 60 s, 16 KiB).
	ReadTimeout    time.Duration
	IdleTimeout    time.Duration
	MaxHeaderBytes int
	// AdminToken, when set, enables the admin API under /api, for requests
	// that carry it as a bearer token.
	AdminToken string
	// DisableMetrics turns off /metrics.
	DisableMetrics bool
	// ClientLog makes the server send log messages to clients about what
	// it does for them (the origin's log event).
	ClientLog bool
	// ShutdownTimeout bounds Close (default 10 s).
	ShutdownTimeout time.Duration
	// Files, when set, is served at / (the browser client), with a strict
	// Content-Security-Policy; a site of the user's own is marked with
	// SiteFiles, which serves it without that policy and without
	// directory listings.
	Files fs.FS
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger

	// The fields below let a cluster (package signal/cluster) run many
	// servers as one; a single server leaves them unset.

	// ResumeKey, when set, is the key resume tokens are signed with, so
	// that a token minted by one server verifies on another that shares
	// it (at least 32 bytes). Unset, each server makes a random one.
	ResumeKey []byte
	// HostsRoom, when set, is asked before a join creates a room, or a
	// resume looks for a room, that does not exist here: false refuses
	// the join with error code moved. It is called with the server's lock
	// held and must not block.
	HostsRoom func(room string) bool
	// OnRoomChange, when set, is called whenever a room's membership or a
	// seat's resume token changes, and when the room ends (Snapshot then
	// finds no room). It is called with the server's lock held and must
	// not block.
	OnRoomChange func(room string)
	// Gateway, when set, takes every WebSocket connection that comes over
	// the network once the server has accepted it (origin, limits, the
	// upgrade): a cluster gateway that tunnels it to its room's host. It
	// runs the connection until it ends. So do connections made with
	// DialInProcess (the Socket.IO gateway's); those of DialTunnel stay
	// with the server.
	Gateway func(ws *websocket.Conn, remote string)
	// Collectors are added to the server's /metrics; their metrics must
	// not collide with the server's own (NewServer panics).
	Collectors []prometheus.Collector
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Capacity, DefaultCapacity)
	def(&c.MaxCapacity, DefaultMaxCapacity)
	def(&c.Burst, DefaultBurst)
	def(&c.SendQueue, DefaultSendQueue)
	def(&c.MaxConns, DefaultMaxConns)
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	defDur(&c.PingInterval, DefaultPingInterval)
	defDur(&c.PongTimeout, DefaultPongTimeout)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
	if c.ResumeWindow == 0 {
		c.ResumeWindow = DefaultResumeWindow
	}
	def(&c.ResumeQueue, DefaultResumeQueue)
	def(&c.ConnBufferBytes, DefaultConnBufferBytes)
	c.ConnBufferBytes = max(c.ConnBufferBytes, int(2*c.MaxMessageBytes))
	if c.BufferBudget <= 0 {
		c.BufferBudget = defaultBufferBudget()
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	defDur(&c.MessageTimeout, DefaultMessageTimeout)
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.UpgradeRate == 0 {
		c.UpgradeRate = DefaultUpgradeRate
	}
	def(&c.UpgradeBurst, DefaultUpgradeBurst)
	defDur(&c.ReadTimeout, DefaultReadTimeout)
	defDur(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	def(&c.ResumeQueueBytes, DefaultResumeBytes)
	if c.TURN.TTL <= 0 {
		c.TURN.TTL = DefaultTURNTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ICEServers == nil {
		c.ICEServers = []ICEServer{}
	}
	return c
}

// Server is a signaling server: it keeps rooms and relays signals between
// the members of each room. It does not listen by itself; serve Handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader
	handler  http.Handler

	metrics    *metrics
	resumes    *resumeTokens
	jwtParser  *jwt.Parser
	rateAbuse  int           // messages refused for rate in one rateWindow past which a connection is closed
	idleLinger time.Duration // see conn.read
	idleConns  atomic.Int64  // connections parked in conn.idle

	addrs            *addrLimits
	lastMaxConnsWarn atomic.Int64 // unix nanoseconds; see warnEvery
	lastAddrWarn     atomic.Int64

	nconns   atomic.Int64 // open connections, for MaxConns and /healthz
	buffered atomic.Int64 // bytes of frames buffered for all connections and seats (see addBuffered)

	bgmu      sync.Mutex     // guards the fields below
	bgClosed  bool           // set by Shutdown: no more background work
	shedding  bool           // shed runs
	pipes     *pipeListener  // DialInProcess's listener, started on first use
	pipesHTTP *http.Server   // serves pipes
	bgwg      sync.WaitGroup // background work (shed, serving pipes)
	nextID    atomic.Uint64

	mu         sync.RWMutex
	rooms      map[string]*room     // guarded by mu
	tombstones map[string]tombstone // guarded by mu; by resume token
	conns      map[*conn]struct{}   // guarded by mu
	closing    bool                 // guarded by mu; set once by Shutdown or Drain
	draining   bool                 // guarded by mu; set once by Drain: seats are held, not released

	wg  sync.WaitGroup // every connection goroutine
	gwg sync.WaitGroup // connections run by Config.Gateway

	closeOnce sync.Once
	closed    chan struct{} // closed when Shutdown has finished
}

// NewServer returns a Server configured by cfg.
func NewServer(cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		rooms:      make(map[string]*room),
		tombstones: make(map[string]tombstone),
		conns:      make(map[*conn]struct{}),
		closed:     make(chan struct{}),

		addrs:      newAddrLimits(cfg),
		resumes:    newResumeTokens(cfg.ResumeKey),
		jwtParser:  newJWTParser(),
		rateAbuse:  2 * cfg.Burst,
		idleLinger: idleLinger,
	}
	s.metrics = newMetrics(s)
	s.upgrader = websocket.Upgrader{
		// gorilla's own read buffer only ever holds part of one frame (see
		// frameConn), and its pooled write buffers fit a typical frame.
		ReadBufferSize:   128,
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 10 * time.Second,
		CheckOrigin:      s.checkOrigin,
	}
	r := mux.NewRouter()
	r.UseEncodedPath() // room names in /api paths may hold escaped slashes
	r.HandleFunc("/ws", s.serveWS).Methods(http.MethodGet)
	r.HandleFunc("/healthz", s.serveHealth).Methods(http.MethodGet, http.MethodHead)
	if !cfg.DisableMetrics {
		r.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	}
	s.adminRoutes(r.PathPrefix("/api").Subrouter())
	if cfg.Files != nil {
		r.PathPrefix("/").Handler(staticHandler(cfg.Files)).Methods(http.MethodGet, http.MethodHead)
	}
	s.handler = r
	return s
}

// Handler returns the server's HTTP handler: the WebSocket endpoint at
// /ws, /healthz, /metrics, the admin API under /api, and Config.Files at /.
func (s *Server) Handler() http.Handler { return s.handler }

// checkOrigin allows requests without an Origin (not from a browser), the
// server's own origin, and those in Config.AllowedOrigins.
func (s *Server) checkOrigin(r *http.Request) bool {
	return OriginAllowed(r, s.cfg.AllowedOrigins)
}

// OriginAllowed reports whether a browser request may open a connection:
// a request without an Origin header (not from a browser) may; one whose
// Origin's host is the request's Host (the server's own origin) may; and
// so may one whose Origin is listed in allowed, as a full origin
// ("https://app.example.org"), as a host ("app.example.org", any scheme),
// or as "*" (any origin). Comparisons ignore case. It is the rule of
// Config.AllowedOrigins, which the Socket.IO endpoint applies too.
func OriginAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, origin) || strings.EqualFold(a, u.Host) {
			return true
		}
	}
	return false
}

// refuse answers an upgrade that cannot be taken with status and counts it.
func (s *Server) refuse(w http.ResponseWriter, status int, reason, text string) {
	s.metrics.refused.WithLabelValues(reason).Inc()
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, text, status)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	closing := s.closing
	s.mu.RUnlock()
	if closing {
		s.refuse(w, http.StatusServiceUnavailable, refusedShutdown, "server is shutting down")
		return
	}
	key := AddrKey(r.RemoteAddr)
	pipe, _ := r.Context().Value(pipeConnKey{}).(*addrConn)
	tunnel := pipe != nil && pipe.tunnel // counted by the gateway that opened it
	refused := ""
	if !tunnel {
		refused = s.addrs.acquire(key, time.Now())
	}
	release := func() {
		if !tunnel {
			s.addrs.release(key)
		}
	}
	switch refused {
	case "":
	case refusedPerIP:
		s.log.Debug("connection refused: too many connections from the address", "remote", r.RemoteAddr)
		s.refuse(w, http.StatusTooManyRequests, refusedPerIP, "too many connections from your address")
		return
	case refusedUpgradeRate:
		s.log.Debug("connection refused: too many upgrades from the address", "remote", r.RemoteAddr)
		s.refuse(w, http.StatusTooManyRequests, refusedUpgradeRate, "too many new connections from your address; retry in a second")
		return
	default:
		s.warnEvery(&s.lastAddrWarn, "connection refused: too many client addresses at once", "remote", r.RemoteAddr)
		s.refuse(w, http.StatusServiceUnavailable, refusedAddrTable, "too many clients")
		return
	}
	if n := s.nconns.Add(1); n > int64(s.cfg.MaxConns) {
		s.nconns.Add(-1)
		release()
		s.warnEvery(&s.lastMaxConnsWarn, "connection refused: too many connections", "remote", r.RemoteAddr, "max_conns", s.cfg.MaxConns)
		s.refuse(w, http.StatusServiceUnavailable, refusedMaxConns, "too many connections")
		return
	}
	hj := &hijacker{ResponseWriter: w, maxPayload: s.cfg.MaxMessageBytes, writeTimeout: s.cfg.WriteTimeout}
	ws, err := s.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		// Upgrade has answered with an HTTP error already.
		s.nconns.Add(-1)
		release()
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	gateway := s.cfg.Gateway != nil && !tunnel
	var c *conn
	if !gateway {
		c = newConn(s, ws, hj.fc, r.RemoteAddr)
		c.addr, c.uncounted = key, tunnel
		if pipe != nil {
			c.written = pipe.written // no other goroutine has c yet
		}
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.nconns.Add(-1)
		release()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "going away"), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	if gateway {
		s.gwg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.gwg.Done()
			s.cfg.Gateway(ws, r.RemoteAddr)
			s.nconns.Add(-1)
			release()
		}()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	// The handler returns now: net/http's per-request state is released and
	// the connection lives on its own goroutine.
	go c.readLoop()
}

// warnInterval is the least time between two warnings of one kind that a
// flood of clients could otherwise repeat without end.
const warnInterval = 10 * time.Second

// warnEvery logs msg at warning level unless it was logged (through the
// same last) within warnInterval.
func (s *Server) warnEvery(last *atomic.Int64, msg string, args ...any) {
	now := time.Now().UnixNano()
	prev := last.Load()
	if now-prev < int64(warnInterval) || !last.CompareAndSwap(prev, now) {
		return
	}
	s.log.Warn(msg, args...)
}

// Stats is a snapshot of the server's load.
type Stats struct {
	Connections int   // open WebSocket connections
	Rooms       int   // rooms that exist
	Buffered    int64 // bytes of frames buffered for connections and held seats
}

// Stats returns the server's current load.
func (s *Server) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Connections: int(s.nconns.Load()), Rooms: len(s.rooms), Buffered: s.buffered.Load()}
}

type health struct {
	Status      string `json:"status"`
	Connections int64  `json:"connections"`
	Rooms       int    `json:"rooms"`
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	h := health{Status: "ok", Connections: s.nconns.Load(), Rooms: len(s.rooms)}
	if s.closing {
		h.Status = "shutting-down"
	}
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}

// Shutdown stops accepting connections, sends every client a close frame
// 1001 "going away" after what is already queued for it, and waits for the
// clients to close their side. When ctx ends first, the remaining
// connections are closed at once; Shutdown then returns ctx.Err(). It
// always waits for every connection goroutine to exit. Calling it again
// waits for the first call to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	first := false
	s.closeOnce.Do(func() { first = true })
	if !first {
		<-s.closed
		return nil
	}
	defer close(s.closed)

	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.stopBackground()
	s.mu.Lock()
	for _, r := range s.rooms {
		// Every member hears of every other, then all leave at once.
		for _, m := range r.members {
			left := mustJSON(peerMsg{Type: TypePeerLeft, Room: r.name, ID: m.id, Reason: ReasonShutdown})
			for _, o := range r.members {
				if o != m {
					s.deliver(o, left)
				}
			}
		}
		for _, m := range slices.Clone(r.members) {
			s.dropMemberLocked(m, ReasonShutdown)
		}
	}
	for c := range s.conns {
		c.closeAfterQueue(websocket.CloseGoingAway, "going away", reasonShutdown)
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); s.gwg.Wait(); s.bgwg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	left := slices.Collect(maps.Keys(s.conns))
	s.mu.Unlock()
	for _, c := range left {
		c.abort(reasonShutdown)
	}
	<-done
	return ctx.Err()
}

// Close is Shutdown bounded by Config.ShutdownTimeout. It is safe to call
// more than once.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.nconns.Add(-1)
	if !c.uncounted {
		s.addrs.release(c.addr)
	}
	s.wg.Done()
}

// Config returns the server's configuration, with the defaults filled in.
func (s *Server) Config() Config { return s.cfg }
