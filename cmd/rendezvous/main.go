// Command rendezvous is the Rendezvous WebRTC signaling server.
//
// It serves the WebSocket endpoint at /ws (protocol v1, see PROTOCOL.md),
// the origin tutorial's Socket.IO events at /socket.io/ (package
// signal/socketio), the browser client at / (or, with -static, a directory
// of the user's own), /healthz, /metrics, and the admin API under /api.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	ossignal "os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/cmd/internal/flagenv"
	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/cluster"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio"
	"github.com/rendezvous-rtc/rendezvous/web"
)

const envPrefix = "RENDEZVOUS"

const usageHeader = `rendezvous: a WebRTC signaling server (rooms + signal relay, protocol v1).

Usage:
  rendezvous [flags]              run the server
  rendezvous token [token flags]  mint a join token (see rendezvous token -h)

Serves the WebSocket endpoint at /ws, the Socket.IO endpoint at /socket.io/
(the origin tutorial's events; -socketio=false turns it off), the browser
client at / (or the directory given with -static), /healthz, /metrics, and
the admin API under /api (with -admin-token).

In place of the tutorial's "node server.js", in the folder of its
index.html and js/client.js:
  rendezvous -static .

Browsers on other devices (a phone on the same network) need HTTPS for the
camera and microphone; without a certificate of your own:
  rendezvous -tls-self-signed

Cluster mode: nodes that share a NATS server (JetStream on) serve one set
of rooms behind any load balancer; SIGTERM drains a node (its rooms move,
its clients resume elsewhere with close code 1012):
  rendezvous -nats nats://127.0.0.1:4222
`

func main() {
	ctx, stop := ossignal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

type options struct {
	addr            string
	capacity        int
	maxCapacity     int
	maxMessageBytes int64
	rate            float64
	burst           int
	sendQueue       int
	pingInterval    time.Duration
	pongTimeout     time.Duration
	writeTimeout    time.Duration
	maxConns        int
	maxConnsPerIP   int
	upgradeRate     float64
	upgradeBurst    int
	connBufferBytes int
	bufferBudget    int64
	joinTimeout     time.Duration
	messageTimeout  time.Duration
	readTimeout     time.Duration
	idleTimeout     time.Duration
	maxHeaderBytes  int
	origins         string
	tlsCert         string
	tlsKey          string
	tlsSelfSigned   bool
	shutdownTimeout time.Duration
	clientLog       bool
	logFormat       string
	logLevel        string
	stun            stringList
	turn            stringList
	turnSecret      string
	turnTTL         time.Duration
	turnUser        string
	turnPass        string
	authSecret      string
	resumeWindow    time.Duration
	adminToken      string
	metrics         bool
	pprof           string
	releaseMemory   bool
	socketio        bool
	socketioClient  string
	static          string
	cluster         clusterOptions
}

// stringList is a repeatable flag; each value may also hold several
// comma-separated items (as an environment variable does).
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

func newFlagSet(stderr io.Writer) (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("rendezvous", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", ":2013", "`address` to listen on")
	fs.IntVar(&o.capacity, "capacity", signal.DefaultCapacity, "capacity of a room whose creator asks for none")
	fs.IntVar(&o.maxCapacity, "max-capacity", signal.DefaultMaxCapacity, "largest room capacity a join may ask for")
	fs.Int64Var(&o.maxMessageBytes, "max-message-bytes", signal.DefaultMaxMessageBytes, "largest frame in `bytes`; a larger one closes the connection (1009)")
	fs.Float64Var(&o.rate, "rate", signal.DefaultRate, "messages per second per connection (token bucket); 0 turns rate limiting off")
	fs.IntVar(&o.burst, "burst", signal.DefaultBurst, "token bucket burst, in messages")
	fs.IntVar(&o.sendQueue, "send-queue", signal.DefaultSendQueue, "outgoing messages queued per connection before it is dropped as a slow consumer")
	fs.DurationVar(&o.pingInterval, "ping-interval", signal.DefaultPingInterval, "WebSocket ping period")
	fs.DurationVar(&o.pongTimeout, "pong-timeout", signal.DefaultPongTimeout, "close a connection that sends nothing, not even a pong, for this long")
	fs.DurationVar(&o.writeTimeout, "write-timeout", signal.DefaultWriteTimeout, "deadline of every write")
	fs.IntVar(&o.maxConns, "max-conns", signal.DefaultMaxConns, "open connections past which upgrades get HTTP 503")
	fs.IntVar(&o.maxConnsPerIP, "max-conns-per-ip", signal.DefaultMaxConnsPerIP, "open connections one client address (IPv6: its /64) may have, past which its upgrades get HTTP 429; 0: no limit (use 0 behind a reverse proxy)")
	fs.Float64Var(&o.upgradeRate, "upgrade-rate", signal.DefaultUpgradeRate, "WebSocket upgrades per second one client address may make (token bucket), past which they get HTTP 429; 0: no limit")
	fs.IntVar(&o.upgradeBurst, "upgrade-burst", signal.DefaultUpgradeBurst, "burst of -upgrade-rate, in upgrades")
	fs.IntVar(&o.connBufferBytes, "conn-buffer-bytes", signal.DefaultConnBufferBytes, "`bytes` of frames kept per connection (queued, unacknowledged, held for an absent member, being read); a connection whose queue passes it is dropped as a slow consumer")
	fs.Int64Var(&o.bufferBudget, "buffer-budget", 0, "`bytes` of frames buffered for all connections together, past which those holding the most are dropped as slow consumers; 0: a quarter of the machine's memory (at least 64 MiB)")
	fs.DurationVar(&o.joinTimeout, "join-timeout", signal.DefaultJoinTimeout, "close a connection that is in no room this long after it opened or left its room; 0: never")
	fs.DurationVar(&o.messageTimeout, "message-timeout", signal.DefaultMessageTimeout, "close a connection whose message has begun to arrive but not finished within this time")
	fs.DurationVar(&o.readTimeout, "read-timeout", signal.DefaultReadTimeout, "deadline for reading an HTTP request, headers and body")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", signal.DefaultIdleTimeout, "close a keep-alive HTTP connection idle this long")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", signal.DefaultMaxHeaderBytes, "largest HTTP request header, in `bytes` (net/http allows 4096 more)")
	fs.StringVar(&o.origins, "origins", "", "comma-separated browser origins allowed to connect besides the server's own (https://host, host, or * for any)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate `file` (serve https/wss; needs -tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key `file`")
	fs.BoolVar(&o.tlsSelfSigned, "tls-self-signed", false, "serve https/wss with an ECDSA P-256 certificate made at start for localhost, 127.0.0.1, ::1, this machine's name and addresses; "+
		"logs its SHA-256 fingerprint to compare with the browser's warning (not with -tls-cert/-tls-key)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", signal.DefaultShutdownTimeout, "on SIGINT/SIGTERM, how long to wait for clients to close")
	fs.BoolVar(&o.clientLog, "client-log", false, "send clients log messages about what the server does for them")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Var(&o.stun, "stun", "STUN server `URL` for iceServers, e.g. stun:stun.example.org:3478 (repeatable)")
	fs.Var(&o.turn, "turn", "TURN server `URL` for iceServers, e.g. turn:turn.example.org:3478?transport=udp (repeatable)")
	fs.StringVar(&o.turnSecret, "turn-secret", "", "shared secret of the TURN server (coturn static-auth-secret): each joiner gets ephemeral credentials")
	fs.DurationVar(&o.turnTTL, "turn-ttl", signal.DefaultTURNTTL, "lifetime of ephemeral TURN credentials")
	fs.StringVar(&o.turnUser, "turn-user", "", "static TURN username (without -turn-secret)")
	fs.StringVar(&o.turnPass, "turn-pass", "", "static TURN password (without -turn-secret)")
	fs.StringVar(&o.authSecret, "auth-secret", "", "HS256 secret: join then needs a token (mint with: rendezvous token)")
	fs.DurationVar(&o.resumeWindow, "resume-window", signal.DefaultResumeWindow, "how long a dropped connection's seat is held for a resume; 0 turns resume off")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token that enables the admin API under /api")
	fs.BoolVar(&o.metrics, "metrics", true, "serve Prometheus metrics at /metrics")
	fs.BoolVar(&o.releaseMemory, "release-memory", true, "return freed memory to the OS once a burst of connections settles")
	fs.StringVar(&o.pprof, "pprof", "", "serve /debug/pprof on this loopback `address` (e.g. 127.0.0.1:6060); off when empty")
	fs.BoolVar(&o.socketio, "socketio", true, "serve the Socket.IO endpoint (the origin tutorial's events) at /socket.io/")
	fs.StringVar(&o.socketioClient, "socketio-client", "", "serve this `file` at /socket.io/socket.io.js: the browser bundle of the npm package socket.io-client "+
		"(its dist/socket.io.min.js); without it that path redirects to "+socketio.ClientCDNURL)
	fs.StringVar(&o.static, "static", "", "serve this `directory` at / instead of the browser client, as node-static did (no Content-Security-Policy, no directory listings, no names beginning with . but .well-known)")
	o.cluster.register(fs)
	fs.Usage = flagenv.Usage(fs, envPrefix, usageHeader)
	return fs, o
}

// run runs the server until ctx ends (or the token subcommand), and
// returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], stdout, stderr, getenv)
	}
	fs, o := newFlagSet(stderr)
	if err := parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "rendezvous: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rendezvous: unexpected argument %q (see -h)\n", fs.Arg(0))
		return 2
	}
	if err := o.cluster.check(fs); err != nil {
		fmt.Fprintf(stderr, "rendezvous: %v\n", err)
		return 2
	}
	log, err := newLogger(stderr, o.logFormat, o.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "rendezvous: %v\n", err)
		return 2
	}
	cfg, err := o.config(log)
	if err != nil {
		fmt.Fprintf(stderr, "rendezvous: %v\n", err)
		return 2
	}
	if o.static != "" {
		// Everything served is looked up inside the directory, which
		// symbolic links cannot leave either.
		root, err := os.OpenRoot(o.static)
		if err != nil {
			fmt.Fprintf(stderr, "rendezvous: -static: %v\n", err)
			return 2
		}
		defer root.Close()
		cfg.Files = signal.SiteFiles(root.FS())
	}
	if err := serve(ctx, o, cfg, log); err != nil {
		fmt.Fprintf(stderr, "rendezvous: %v\n", err)
		return 1
	}
	return 0
}

// parse sets fs's flags from the environment, then from args.
func parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	return flagenv.Parse(fs, envPrefix, args, getenv)
}

// config checks the options and turns them into the server's
// configuration. Where a flag's 0 means "off", the Config field that
// means off is negative (its 0 means "the default").
func (o *options) config(log *slog.Logger) (signal.Config, error) {
	cfg := signal.Config{
		Capacity:        o.capacity,
		MaxCapacity:     o.maxCapacity,
		MaxMessageBytes: o.maxMessageBytes,
		Rate:            rate.Limit(o.rate),
		Burst:           o.burst,
		SendQueue:       o.sendQueue,
		PingInterval:    o.pingInterval,
		PongTimeout:     o.pongTimeout,
		WriteTimeout:    o.writeTimeout,
		MaxConns:        o.maxConns,
		MaxConnsPerIP:   offIfZero(o.maxConnsPerIP),
		UpgradeRate:     offIfZero(o.upgradeRate),
		UpgradeBurst:    o.upgradeBurst,
		ConnBufferBytes: o.connBufferBytes,
		BufferBudget:    o.bufferBudget,
		JoinTimeout:     offIfZero(o.joinTimeout),
		MessageTimeout:  o.messageTimeout,
		ReadTimeout:     o.readTimeout,
		IdleTimeout:     o.idleTimeout,
		MaxHeaderBytes:  o.maxHeaderBytes,
		ShutdownTimeout: o.shutdownTimeout,
		ClientLog:       o.clientLog,
		Files:           web.FS(),
		Logger:          log,
		AuthSecret:      []byte(o.authSecret),
		AdminToken:      o.adminToken,
		DisableMetrics:  !o.metrics,
		ResumeWindow:    offIfZero(o.resumeWindow),
		TURN: signal.TURNConfig{URLs: o.turn, Secret: o.turnSecret, TTL: o.turnTTL,
			Username: o.turnUser, Credential: o.turnPass},
	}
	if o.rate == 0 {
		cfg.Rate = rate.Inf
	}
	if len(o.stun) > 0 {
		cfg.ICEServers = []signal.ICEServer{{URLs: o.stun}}
	}
	for _, origin := range strings.Split(o.origins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, origin)
		}
	}
	return cfg, o.check()
}

// offIfZero maps a flag's 0, "off", to the negative value by which
// signal.Config turns the same limit off.
func offIfZero[T int | float64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// check reports the first option that is out of range or contradicts
// another.
func (o *options) check() error {
	for _, u := range o.stun {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") {
			return fmt.Errorf("-stun %q: want a stun: or stuns: URL", u)
		}
	}
	for _, u := range o.turn {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return fmt.Errorf("-turn %q: want a turn: or turns: URL", u)
		}
	}
	if (o.turnSecret != "" || o.turnUser != "") && len(o.turn) == 0 {
		return errors.New("-turn-secret and -turn-user need at least one -turn URL")
	}
	if o.turnSecret != "" && o.turnUser != "" {
		return errors.New("use -turn-secret (ephemeral credentials) or -turn-user/-turn-pass (static), not both")
	}
	if o.pprof != "" {
		host, _, err := net.SplitHostPort(o.pprof)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("-pprof %q: want a loopback address such as 127.0.0.1:6060", o.pprof)
		}
	}
	// !(v >= 0) also refuses NaN.
	for _, f := range []struct {
		name string
		v    float64
	}{{"-rate", o.rate}, {"-upgrade-rate", o.upgradeRate}} {
		if !(f.v >= 0) {
			return fmt.Errorf("%s must be 0 (off) or positive, not %g", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name   string
		v      int64
		zeroOK bool // 0 means off (or, for -buffer-budget, the default)
	}{
		{"-capacity", int64(o.capacity), false},
		{"-max-capacity", int64(o.maxCapacity), false},
		{"-max-message-bytes", o.maxMessageBytes, false},
		{"-burst", int64(o.burst), false},
		{"-send-queue", int64(o.sendQueue), false},
		{"-ping-interval", int64(o.pingInterval), false},
		{"-pong-timeout", int64(o.pongTimeout), false},
		{"-write-timeout", int64(o.writeTimeout), false},
		{"-max-conns", int64(o.maxConns), false},
		{"-max-conns-per-ip", int64(o.maxConnsPerIP), true},
		{"-upgrade-burst", int64(o.upgradeBurst), false},
		{"-conn-buffer-bytes", int64(o.connBufferBytes), false},
		{"-buffer-budget", o.bufferBudget, true},
		{"-join-timeout", int64(o.joinTimeout), true},
		{"-message-timeout", int64(o.messageTimeout), false},
		{"-read-timeout", int64(o.readTimeout), false},
		{"-idle-timeout", int64(o.idleTimeout), false},
		{"-max-header-bytes", int64(o.maxHeaderBytes), false},
		{"-shutdown-timeout", int64(o.shutdownTimeout), false},
		{"-turn-ttl", int64(o.turnTTL), false},
		{"-resume-window", int64(o.resumeWindow), true},
	} {
		switch {
		case f.zeroOK && f.v < 0:
			return fmt.Errorf("%s must not be negative", f.name)
		case !f.zeroOK && f.v <= 0:
			return fmt.Errorf("%s must be positive", f.name)
		}
	}
	if o.capacity < 2 || o.maxCapacity < 2 || o.capacity > o.maxCapacity {
		return fmt.Errorf("need 2 <= -capacity (%d) <= -max-capacity (%d)", o.capacity, o.maxCapacity)
	}
	if int64(o.connBufferBytes) < 2*o.maxMessageBytes {
		return fmt.Errorf("-conn-buffer-bytes (%d) must be at least twice -max-message-bytes (%d)", o.connBufferBytes, o.maxMessageBytes)
	}
	if o.pingInterval >= o.pongTimeout {
		return fmt.Errorf("-ping-interval (%s) must be shorter than -pong-timeout (%s)", o.pingInterval, o.pongTimeout)
	}
	if o.tlsSelfSigned && (o.tlsCert != "" || o.tlsKey != "") {
		return errors.New("-tls-self-signed makes its own certificate: use it or -tls-cert/-tls-key, not both")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if o.socketioClient != "" {
		if !o.socketio {
			return errors.New("-socketio-client needs the Socket.IO endpoint (-socketio=false turns it off)")
		}
		fi, err := os.Stat(o.socketioClient)
		switch {
		case err != nil:
			return fmt.Errorf("-socketio-client: %w", err)
		case !fi.Mode().IsRegular() || fi.Size() == 0:
			return fmt.Errorf("-socketio-client %s: want the bundle's .js file (npm package socket.io-client, dist/socket.io.min.js)", o.socketioClient)
		}
	}
	return nil
}

// gatewayConfig returns the Socket.IO endpoint's configuration: the
// server's limits that have a counterpart there. The rest apply to its
// clients through their protocol v1 connections.
func (o *options) gatewayConfig(cfg signal.Config, log *slog.Logger) socketio.Config {
	return socketio.Config{
		ClientLog:        o.clientLog,
		MaxMessageBytes:  o.maxMessageBytes,
		ClientFile:       o.socketioClient,
		AllowedOrigins:   cfg.AllowedOrigins,
		SendQueue:        o.sendQueue,
		SendBufferBytes:  int64(o.connBufferBytes),
		MaxSessions:      o.maxConns,
		MaxSessionsPerIP: offIfZero(o.maxConnsPerIP),
		// The server pings every -ping-interval: a connection silent for
		// longer than the pong timeout after that is gone.
		V1ReadTimeout: o.pingInterval + o.pongTimeout,
		Logger:        log,
	}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format must be text or json, not %q", format)
}

// serve listens on o.addr and serves until ctx ends, then shuts down: it
// stops accepting, closes every client with 1001 (a Socket.IO client gets
// the error "shutdown" and a disconnect) and waits for them at most
// o.shutdownTimeout. It logs "listening" with the bound address.
func serve(ctx context.Context, o *options, cfg signal.Config, log *slog.Logger) error {
	var srv *signal.Server
	var node *cluster.Node
	handler := http.Handler(nil)
	if o.cluster.on() {
		// Cluster mode: the node makes the server, and tunnels its clients
		// to the hosts of their rooms.
		var err error
		if node, err = cluster.New(ctx, o.cluster.config(listenURL("http", addrOf(o.addr)), log), cfg); err != nil {
			return err
		}
		srv, handler = node.Server(), node.Handler()
	} else {
		srv = signal.NewServer(cfg)
		handler = srv.Handler()
	}
	closeAll := func(gw *socketio.Gateway, srv *signal.Server) {
		if node != nil {
			_ = node.Close()
		}
		closeAll(gw, srv)
	}
	// The limits of -read-timeout, -idle-timeout and -max-header-bytes;
	// net/http's own errors (mostly a client's, such as a failed TLS
	// handshake) are logged at debug level.
	hs := srv.HTTPServer()
	hs.Handler = handler
	var gw *socketio.Gateway
	if o.socketio {
		var err error
		if gw, err = socketio.New(srv, o.gatewayConfig(cfg, log)); err != nil {
			closeAll(nil, srv)
			return err
		}
		// In front of the server's handler rather than on a router, which
		// would clean the admin API's escaped room names.
		hs.Handler = gw.Wrap(handler)
	}
	var selfSigned tls.Certificate
	if o.tlsSelfSigned {
		var err error
		if selfSigned, err = useSelfSigned(hs, time.Now()); err != nil {
			closeAll(gw, srv)
			return err
		}
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		closeAll(gw, srv)
		return err
	}
	ln = srv.Listener(ln) // at most -max-conns (plus headroom for plain HTTP)
	scheme := "http"
	if o.tlsCert != "" || o.tlsSelfSigned {
		scheme = "https"
	}
	log.Info("listening", "addr", ln.Addr().String(), "url", listenURL(scheme, ln.Addr()))
	if o.tlsSelfSigned {
		logSelfSigned(log, selfSigned, ln.Addr())
	}
	if scheme == "http" {
		log.Info("browsers on other devices need HTTPS for the camera and microphone (-tls-self-signed, or -tls-cert/-tls-key); localhost works without")
	}
	if o.pprof != "" {
		stop, err := servePprof(o.pprof, log)
		if err != nil {
			_ = ln.Close()
			closeAll(gw, srv)
			return err
		}
		defer stop()
	}
	errc := make(chan error, 1)
	go func() {
		if scheme == "https" { // with -tls-self-signed, files "" and hs.TLSConfig's certificate
			errc <- hs.ServeTLS(ln, o.tlsCert, o.tlsKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	if o.releaseMemory {
		go releaseMemoryAfterBursts(ctx, srv, log)
	}
	select {
	case err := <-errc:
		closeAll(gw, srv)
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", o.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	// Stop accepting at once. hs.Shutdown returns when the requests being
	// served have ended: Socket.IO long polls (up to 25 s) end below.
	// WebSocket connections are the signal server's and the gateway's.
	hsDone := make(chan error, 1)
	go func() { hsDone <- hs.Shutdown(sctx) }()
	// The signal server first: every member of a room, Socket.IO ones
	// included, hears peer-left "shutdown" for the others, and each
	// Socket.IO client, its protocol v1 connection closed with 1001, gets
	// error "shutdown" and a disconnect. Then the gateway ends the
	// sessions left (those in no room yet) and the long polls.
	if node != nil {
		// Cluster mode: the rooms move to the other nodes and the clients
		// resume there (1012), rather than end.
		err = node.Drain(sctx)
	} else {
		err = srv.Shutdown(sctx)
	}
	if gw != nil {
		if gerr := gw.Shutdown(sctx); err == nil {
			err = gerr
		}
	}
	if herr := <-hsDone; err == nil {
		err = herr
	}
	if err != nil {
		log.Warn("shutdown timed out; remaining connections were closed", "err", err)
		_ = hs.Close()
	}
	log.Info("stopped")
	return nil
}

// closeAll closes the gateway, when there is one, and the server at once
// (bounded by their own timeouts), for a server that could not start.
func closeAll(gw *socketio.Gateway, srv *signal.Server) {
	if gw != nil {
		_ = gw.Close()
	}
	_ = srv.Close()
}

// listenURL is the address to open in a browser for a server listening
// on addr: localhost when it listens on every interface (":2013" binds
// [::], which no browser opens), the address itself otherwise.
func listenURL(scheme string, addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return fmt.Sprintf("%s://%s/", scheme, addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(host, port))
}

// servePprof serves net/http/pprof's handlers on addr, on a mux of their
// own, and returns a function that stops it.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)} // per connection, as the server's
	go func() { _ = hs.Serve(ln) }()
	log.Info("pprof listening", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { _ = hs.Close() }, nil
}

// releaseMemoryAfterBursts returns freed memory to the OS when the number
// of connections has moved by a tenth (and at least 1000) since the last
// time and then held still for a tick. A burst of joins leaves behind
// the large stacks and buffers of its handling, which Go otherwise gives
// back only slowly; an idle connection needs far less.
func releaseMemoryAfterBursts(ctx context.Context, srv *signal.Server, log *slog.Logger) {
	const tick = 2 * time.Second
	t := time.NewTicker(tick)
	defer t.Stop()
	released, prev := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := srv.Stats().Connections
		if n == prev && abs(n-released) >= max(1000, released/10) {
			start := time.Now()
			debug.FreeOSMemory()
			log.Debug("released memory after a burst", "connections", n, "took", time.Since(start))
			released = n
		}
		prev = n
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// addrOf is the TCP address of a -addr value, for the URL a cluster node
// reports (nil when it does not parse).
func addrOf(addr string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return &net.TCPAddr{}
	}
	return a
}
