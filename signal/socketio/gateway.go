// Package socketio serves the Socket.IO endpoint of Rendezvous: the
// origin tutorial's events (create or join, created, join, joined, ready,
// full, message, log, bye) for unmodified Socket.IO clients 1.x to 4.x, at
// /socket.io/ beside protocol v1.
//
// It is a gateway, not a second room server: for every Socket.IO socket it
// opens an in-process protocol v1 connection to the signal.Server
// (Server.DialInProcess, counted against the Socket.IO client's address)
// and translates between the two, so that every rule and limit of protocol
// v1 applies to Socket.IO clients by construction, and a Socket.IO member
// and a protocol v1 member can share a room. PROTOCOL.md's section
// "Socket.IO endpoint" gives the translation. The Engine.IO and Socket.IO
// protocols come from github.com/zishang520/socket.io (Engine.IO 3 and 4,
// polling and WebSocket with upgrade).
//
//	srv := signal.NewServer(cfg)
//	gw, err := socketio.New(srv, socketio.Config{})
//	...
//	hs := srv.HTTPServer()
//	hs.Handler = gw.Wrap(srv.Handler())
//	...
//	go hs.Shutdown(ctx) // stop accepting; it returns once the long polls have ended
//	srv.Shutdown(ctx)   // every member, Socket.IO ones too, hears peer-left "shutdown"
//	gw.Shutdown(ctx)    // the sessions left, and their long polls (up to a ping interval)
package socketio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// ClientVersion is the version of the npm package socket.io-client whose
// browser bundle the endpoint stands for: /socket.io/socket.io.js redirects
// to its copy on the official CDN unless Config.ClientFile is set, and
// the tests run this version (testdata/node/package.json).
const ClientVersion = "4.8.3"

// ClientCDNURL is where /socket.io/socket.io.js redirects when no
// Config.ClientFile is given: the minified bundle of ClientVersion on the
// CDN that the Socket.IO documentation names
// (https://cdn.socket.io/<version>/socket.io.min.js).
const ClientCDNURL = "https://cdn.socket.io/" + ClientVersion + "/socket.io.min.js"

// Path is the prefix the endpoint is served under.
const Path = "/socket.io/"

// Defaults of Config. A zero Config gives these.
const (
	DefaultPingInterval    = 25 * time.Second // Engine.IO's own default
	DefaultPingTimeout     = 20 * time.Second // Engine.IO's own default
	DefaultConnectTimeout  = 10 * time.Second
	DefaultDialTimeout     = 10 * time.Second
	DefaultSendQueue       = signal.DefaultSendQueue
	DefaultSendBufferBytes = 1 << 20
	DefaultEventBacklog    = 1024
	DefaultBacklogBytes    = 4 << 20
)

// Dialer opens protocol v1 connections to a signaling server for the
// gateway's clients. *signal.Server satisfies it.
type Dialer interface {
	// DialInProcess returns a connection to the server's handler on which
	// the server sees a client at remote ("ip:port").
	DialInProcess(ctx context.Context, remote string) (net.Conn, error)
}

// Config configures a Gateway. The zero value is a working configuration
// with the defaults above.
type Config struct {
	// ClientLog forwards the protocol v1 server's log messages to clients
	// as the origin's log event (['Message from server:', text]), and
	// errors as log too. Set it together with signal.Config.ClientLog.
	ClientLog bool
	// MaxMessageBytes is the largest Socket.IO message (a WebSocket frame,
	// a polling request body) accepted (default
	// signal.DefaultMaxMessageBytes; pass the signal server's). A larger
	// WebSocket message closes the connection; a larger polling body gets
	// HTTP 413. A message whose protocol v1 frame is over the signal
	// server's limit ends the connection there.
	MaxMessageBytes int64
	// ClientFile, when set, is served at /socket.io/socket.io.js (and
	// /socket.io/socket.io.min.js): a browser bundle of the npm package
	// socket.io-client, e.g. its dist/socket.io.min.js. When empty those
	// paths redirect to ClientCDNURL.
	ClientFile string
	// AllowedOrigins lists the browser origins that may connect besides
	// the server's own, checked by signal.OriginAllowed as the signal
	// server checks its own (full origins, hosts, or "*"); others get
	// HTTP 403. Pass the signal server's.
	AllowedOrigins []string
	// PingInterval and PingTimeout are Engine.IO's heartbeat: a client
	// that does not answer (EIO 4) or ping (EIO 3) in time is closed
	// (defaults 25 s and 20 s, Engine.IO's).
	PingInterval time.Duration
	PingTimeout  time.Duration
	// ConnectTimeout closes an Engine.IO session whose client has not
	// connected to Socket.IO within it (default 10 s).
	ConnectTimeout time.Duration
	// DialTimeout bounds opening a client's protocol v1 connection
	// (default 10 s).
	DialTimeout time.Duration
	// V1ReadTimeout is how long a client's protocol v1 connection may
	// stay silent before the gateway takes the server for gone and ends
	// the session. The signal server pings every signal.Config.PingInterval,
	// so it must be longer than that (default
	// signal.DefaultClientReadTimeout, 45 s, for the default 20 s pings;
	// cmd/rendezvous passes -ping-interval + -pong-timeout).
	V1ReadTimeout time.Duration
	// SendQueue and SendBufferBytes bound what waits to be sent to one
	// client (Engine.IO packets, and their bytes); past either the client
	// is dropped as a slow consumer (defaults 256 and 1 MiB).
	SendQueue       int
	SendBufferBytes int64
	// EventBacklog and BacklogBytes bound the events one client has sent
	// that wait to be handled; past either its connection is closed
	// (defaults 1024 and 4 MiB). The protocol v1 rate limit, which
	// applies first, keeps honest clients far below them.
	EventBacklog int
	BacklogBytes int64
	// MaxSessions bounds the Engine.IO sessions open at once (default
	// signal.DefaultMaxConns); MaxSessionsPerIP those of one client
	// address (default signal.DefaultMaxConnsPerIP; negative: no limit).
	// Past them handshakes get HTTP 503 and 429. The protocol v1 limits
	// (connections and upgrades per address) apply on top, when a client
	// connects to Socket.IO.
	MaxSessions      int
	MaxSessionsPerIP int
	// Logger receives the gateway's logs (default slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = signal.DefaultMaxMessageBytes
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&c.PingInterval, DefaultPingInterval)
	dur(&c.PingTimeout, DefaultPingTimeout)
	dur(&c.ConnectTimeout, DefaultConnectTimeout)
	dur(&c.DialTimeout, DefaultDialTimeout)
	dur(&c.V1ReadTimeout, signal.DefaultClientReadTimeout)
	if c.SendQueue <= 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.SendBufferBytes <= 0 {
		c.SendBufferBytes = DefaultSendBufferBytes
	}
	if c.EventBacklog <= 0 {
		c.EventBacklog = DefaultEventBacklog
	}
	if c.BacklogBytes <= 0 {
		c.BacklogBytes = DefaultBacklogBytes
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = signal.DefaultMaxConns
	}
	if c.MaxSessionsPerIP == 0 {
		c.MaxSessionsPerIP = signal.DefaultMaxConnsPerIP
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// frameSlack is what the Socket.IO framing of a message adds to its data
// (`42["message",` and `]`), allowed on top of MaxMessageBytes.
const frameSlack = 1024

// Gateway is the Socket.IO endpoint. Its methods are safe for concurrent
// use.
type Gateway struct {
	cfg    Config
	dialer Dialer
	log    *slog.Logger
	io     *socket.Server
	eio    http.Handler
	limits *sessionLimits
	wpool  *sync.Pool // write buffers of the protocol v1 connections

	client     []byte // Config.ClientFile's content; nil: redirect
	clientETag string
	clientMod  time.Time

	// linkMu is held while the library makes a new session's client, and
	// linking is then that session's gate (see beforeClient).
	linkMu  sync.Mutex
	linking *gate

	gmu   sync.Mutex
	gates map[engine.Socket]*gate // guarded by gmu; open sessions

	seq atomic.Uint64 // numbers the sessions in the logs

	mu       sync.Mutex
	closing  bool                  // guarded by mu
	sessions map[*session]struct{} // guarded by mu
	wg       sync.WaitGroup        // the sessions' goroutines (addWorker)
}

// New returns a gateway whose clients join the rooms of the server d
// dials. It fails when Config.ClientFile cannot be read.
func New(d Dialer, cfg Config) (*Gateway, error) {
	cfg = cfg.withDefaults()
	g := &Gateway{
		cfg:      cfg,
		dialer:   d,
		log:      cfg.Logger,
		limits:   newSessionLimits(cfg.MaxSessions, cfg.MaxSessionsPerIP),
		wpool:    &sync.Pool{},
		sessions: make(map[*session]struct{}),
		gates:    make(map[engine.Socket]*gate),
	}
	if cfg.ClientFile != "" {
		b, err := os.ReadFile(cfg.ClientFile)
		if err != nil {
			return nil, fmt.Errorf("socketio: client bundle: %w", err)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("socketio: client bundle %s is empty", cfg.ClientFile)
		}
		sum := sha256.Sum256(b)
		g.client = b
		g.clientETag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
		g.clientMod = time.Now()
		if fi, err := os.Stat(cfg.ClientFile); err == nil {
			g.clientMod = fi.ModTime()
		}
	} else {
		g.log.Info("socket.io: /socket.io/socket.io.js redirects to the official CDN; to serve the client bundle from this server, "+
			"fetch it with npm and pass it with -socketio-client: npm pack socket.io-client@"+ClientVersion+
			" && tar -xzf socket.io-client-"+ClientVersion+".tgz package/dist/socket.io.min.js",
			"cdn", ClientCDNURL)
	}

	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	opts.SetAllowEIO3(true)
	opts.SetPingInterval(cfg.PingInterval)
	opts.SetPingTimeout(cfg.PingTimeout)
	opts.SetConnectTimeout(cfg.ConnectTimeout)
	opts.SetMaxHttpBufferSize(cfg.MaxMessageBytes + frameSlack)
	opts.SetParser(&rawParser{maxEvents: int64(cfg.EventBacklog), maxBytes: cfg.BacklogBytes, gate: func() *gate { return g.linking }})
	// Origins are checked before a request reaches the engine (serveEngine);
	// this only makes it answer the allowed ones' preflights and reflect
	// them in Access-Control-Allow-Origin.
	opts.SetCors(&types.Cors{Origin: func(string) bool { return true }, Credentials: true, Methods: "GET,POST"})
	opts.SetPath(strings.TrimSuffix(Path, "/"))
	g.io = socket.NewServer(nil, opts)
	g.io.Use(g.admit)
	_ = g.io.On("connection", g.onConnection)
	// The engine is made here rather than by ServeHandler so that the
	// gateway's listeners of its connection event come around the
	// library's, which makes the client and its decoder.
	eio := engine.NewServer(opts)
	_ = eio.On("connection", g.beforeClient)
	g.io.Bind(eio)
	_ = eio.On("connection", g.afterClient)
	g.eio = eio
	return g, nil
}

// Mount adds the endpoint to r: everything under /socket.io/. Mount it
// before any catch-all route of r.
func (g *Gateway) Mount(r *mux.Router) {
	r.PathPrefix(Path).Handler(g.Handler())
}

// Wrap returns a handler that serves the endpoint under /socket.io/ and
// passes every other request to next as it is (no path cleaning, which a
// router in front of signal.Server.Handler would do to the admin API's
// escaped room names):
//
//	hs := srv.HTTPServer()
//	hs.Handler = gw.Wrap(srv.Handler())
func (g *Gateway) Wrap(next http.Handler) http.Handler {
	h := g.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, Path) {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler returns the endpoint's HTTP handler: the client bundle at
// /socket.io/socket.io.js and /socket.io/socket.io.min.js, and Engine.IO
// (polling and WebSocket) for the rest of /socket.io/. Other paths get
// 404.
func (g *Gateway) Handler() http.Handler { return http.HandlerFunc(g.serveHTTP) }

func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == Path+"socket.io.js" || r.URL.Path == Path+"socket.io.min.js":
		g.serveClient(w, r)
	case strings.HasPrefix(r.URL.Path, Path):
		g.serveEngine(w, r)
	default:
		http.NotFound(w, r)
	}
}

// serveClient serves Config.ClientFile, or redirects to the CDN.
func (g *Gateway) serveClient(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Like the browser client at /, other sites may load it.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if g.client == nil {
		http.Redirect(w, r, ClientCDNURL, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "application/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", g.clientETag)
	http.ServeContent(w, r, "socket.io.js", g.clientMod, bytes.NewReader(g.client))
}

// resKey is the request context key of a handshake's *reservation.
type resKey struct{}

// serveEngine checks a request against the endpoint's rules and passes it
// to the engine.
func (g *Gateway) serveEngine(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	closing := g.closing
	g.mu.Unlock()
	if closing {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	if !signal.OriginAllowed(r, g.cfg.AllowedOrigins) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		if !g.limitBody(w, r) {
			return
		}
	}
	if q.Get("sid") != "" {
		g.eio.ServeHTTP(w, r)
		return
	}
	if r.Method == http.MethodOptions {
		g.eio.ServeHTTP(w, r) // a CORS preflight
		return
	}
	// A handshake: it opens a session if the limits allow one.
	res := &reservation{l: g.limits, key: signal.AddrKey(r.RemoteAddr)}
	switch why := g.limits.acquire(res.key); why {
	case "":
	case refusedPerAddr:
		g.log.Debug("socket.io handshake refused", "remote", r.RemoteAddr, "reason", why)
		w.Header().Set("Retry-After", "1")
		http.Error(w, why, http.StatusTooManyRequests)
		return
	default:
		g.log.Debug("socket.io handshake refused", "remote", r.RemoteAddr, "reason", why)
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	defer res.release(true)
	g.eio.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), resKey{}, res)))
}

// limitBody answers a polling body over the size limit with 413 and
// reports false. A body of unknown length is read here, up to the limit
// (the engine would cut it silently and parse the rest).
func (g *Gateway) limitBody(w http.ResponseWriter, r *http.Request) bool {
	max := g.cfg.MaxMessageBytes + frameSlack
	if r.ContentLength > max {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return false
	}
	if r.ContentLength >= 0 || r.Body == nil {
		return true
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	_ = r.Body.Close()
	switch {
	case err != nil:
		http.Error(w, "cannot read request body", http.StatusBadRequest)
		return false
	case int64(len(b)) > max:
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	return true
}

// beforeClient runs first on a new Engine.IO session: it makes the
// session's gate and holds linkMu, so that the decoder the library makes
// next (rawParser.NewDecoder, in the same goroutine) finds the gate in
// linking. afterClient, which runs last, lets go of it.
func (g *Gateway) beforeClient(args ...any) {
	g.linkMu.Lock()
	g.linking = nil
	conn, ok := args[0].(engine.Socket)
	if !ok {
		return
	}
	gt := newGate(conn)
	gt.onRefused = g.logRefused
	g.linking = gt
	g.gmu.Lock()
	g.gates[conn] = gt
	g.gmu.Unlock()
	_ = conn.Once("close", func(...any) {
		gt.shut()
		g.gmu.Lock()
		delete(g.gates, conn)
		g.gmu.Unlock()
	})
	if conn.ReadyState() == "closed" {
		gt.shut()
		g.gmu.Lock()
		delete(g.gates, conn)
		g.gmu.Unlock()
	}
}

// afterClient counts the new session against the limits, with the
// reservation its handshake took, and lets go of linkMu.
func (g *Gateway) afterClient(args ...any) {
	g.linking = nil
	g.linkMu.Unlock()
	conn, ok := args[0].(engine.Socket)
	if !ok {
		return
	}
	res, _ := conn.Request().Request().Context().Value(resKey{}).(*reservation)
	if res == nil || !res.claim() {
		conn.Close(true) // not through serveEngine: cannot be counted
		return
	}
	_ = conn.Once("close", func(...any) { res.release(false) })
	if conn.ReadyState() == "closed" {
		res.release(false)
	}
	g.mu.Lock()
	closing := g.closing
	g.mu.Unlock()
	if closing {
		conn.Close(true)
	}
}

// logRefused logs why a client's session was ended for what it sent.
func (g *Gateway) logRefused(conn engine.Socket, err error) {
	g.log.Debug("socket.io session closed: bad input", "remote", conn.RemoteAddress(), "err", err)
}

// gateOf returns the gate of an Engine.IO session, nil when it has ended.
func (g *Gateway) gateOf(conn engine.Socket) *gate {
	g.gmu.Lock()
	defer g.gmu.Unlock()
	return g.gates[conn]
}

// onConnection runs once a socket is connected (and recorded so by the
// library): its events may now pass the gate.
func (g *Gateway) onConnection(args ...any) {
	if sock, ok := args[0].(*socket.Socket); ok {
		if gt := g.gateOf(sock.Conn()); gt != nil {
			gt.connected()
		}
	}
}

// Sessions returns the number of Engine.IO sessions open.
func (g *Gateway) Sessions() int { return g.limits.count() }

// Shutdown refuses new requests, disconnects every Socket.IO client (its
// protocol v1 connection closes, so the members of its room get
// peer-left), and waits for the gateway's goroutines. When ctx ends first
// the remaining protocol v1 connections are aborted; Shutdown then returns
// ctx.Err(). Call it before waiting for the HTTP server's Shutdown, which
// waits for requests to end (a long poll lasts up to a ping interval), and
// after the signal server's Shutdown, so that the members of a Socket.IO
// client's room hear that it left for the shutdown and the client gets
// the error "shutdown".
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	sessions := make([]*session, 0, len(g.sessions))
	for s := range g.sessions {
		sessions = append(sessions, s)
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	// Each session ends as when its protocol v1 connection ends: its client
	// is told why (after the signal server's Shutdown: "shutdown"), then
	// disconnected once that has been written. Closing the sockets first
	// could cut those last packets off.
	for _, s := range sessions {
		s.v1.close()
	}
	select {
	case <-done:
		g.io.Close(nil)
		return nil
	case <-ctx.Done():
	}
	g.io.Close(nil)
	for _, s := range sessions {
		s.v1.abort()
	}
	<-done
	return ctx.Err()
}

// Close is Shutdown bounded by 10 s.
func (g *Gateway) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return g.Shutdown(ctx)
}

// addWorker counts a goroutine that Shutdown waits for (it calls
// g.wg.Done); false once the gateway is shutting down.
func (g *Gateway) addWorker() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.wg.Add(1)
	return true
}

// track adds s to the sessions whose connections Shutdown aborts when its
// time is up; false once the gateway is shutting down.
func (g *Gateway) track(s *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.sessions[s] = struct{}{}
	return true
}

func (g *Gateway) untrack(s *session) {
	g.mu.Lock()
	delete(g.sessions, s)
	g.mu.Unlock()
}
