// Command rendezvous is the Rendezvous WebRTC signaling server.
//
// It serves the WebSocket endpoint at /ws (protocol v1, see PROTOCOL.md),
// the browser client at /, and /healthz.
package main

import (
	"context"
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
	"github.com/rendezvous-rtc/rendezvous/web"
)

const envPrefix = "RENDEZVOUS"

const usageHeader = `rendezvous: a WebRTC signaling server (rooms + signal relay, protocol v1).

Usage:
  rendezvous [flags]              run the server
  rendezvous token [token flags]  mint a join token (see rendezvous token -h)

Serves the WebSocket endpoint at /ws, the browser client at /, /healthz,
/metrics, and the admin API under /api (with -admin-token).
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
	origins         string
	tlsCert         string
	tlsKey          string
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
	fs.StringVar(&o.origins, "origins", "", "comma-separated browser origins (https://host or host; * for any) allowed to connect; empty: the server's own host")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate `file` (serve https/wss; needs -tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key `file`")
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
		ShutdownTimeout: o.shutdownTimeout,
		ClientLog:       o.clientLog,
		Files:           web.FS(),
		Logger:          log,
		AuthSecret:      []byte(o.authSecret),
		AdminToken:      o.adminToken,
		DisableMetrics:  !o.metrics,
		ResumeWindow:    o.resumeWindow,
		TURN: signal.TURNConfig{URLs: o.turn, Secret: o.turnSecret, TTL: o.turnTTL,
			Username: o.turnUser, Credential: o.turnPass},
	}
	if o.resumeWindow == 0 {
		cfg.ResumeWindow = -1 // off
	}
	if len(o.stun) > 0 {
		cfg.ICEServers = []signal.ICEServer{{URLs: o.stun}}
	}
	for _, u := range o.stun {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") {
			return cfg, fmt.Errorf("-stun %q: want a stun: or stuns: URL", u)
		}
	}
	for _, u := range o.turn {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return cfg, fmt.Errorf("-turn %q: want a turn: or turns: URL", u)
		}
	}
	if (o.turnSecret != "" || o.turnUser != "") && len(o.turn) == 0 {
		return cfg, errors.New("-turn-secret and -turn-user need at least one -turn URL")
	}
	if o.turnSecret != "" && o.turnUser != "" {
		return cfg, errors.New("use -turn-secret (ephemeral credentials) or -turn-user/-turn-pass (static), not both")
	}
	if o.turnTTL <= 0 || o.resumeWindow < 0 {
		return cfg, errors.New("-turn-ttl must be positive and -resume-window not negative")
	}
	if o.pprof != "" {
		host, _, err := net.SplitHostPort(o.pprof)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return cfg, fmt.Errorf("-pprof %q: want a loopback address such as 127.0.0.1:6060", o.pprof)
		}
	}
	switch {
	case o.rate == 0:
		cfg.Rate = rate.Inf
	case o.rate < 0:
		return cfg, fmt.Errorf("-rate must be 0 (off) or positive, not %g", o.rate)
	}
	positive := map[string]int64{
		"-capacity": int64(o.capacity), "-max-capacity": int64(o.maxCapacity), "-max-message-bytes": o.maxMessageBytes,
		"-burst": int64(o.burst), "-send-queue": int64(o.sendQueue), "-max-conns": int64(o.maxConns),
		"-ping-interval": int64(o.pingInterval), "-pong-timeout": int64(o.pongTimeout),
		"-write-timeout": int64(o.writeTimeout), "-shutdown-timeout": int64(o.shutdownTimeout),
	}
	for name, v := range positive {
		if v <= 0 {
			return cfg, fmt.Errorf("%s must be positive", name)
		}
	}
	if o.capacity < 2 || o.maxCapacity < 2 || o.capacity > o.maxCapacity {
		return cfg, fmt.Errorf("need 2 <= -capacity (%d) <= -max-capacity (%d)", o.capacity, o.maxCapacity)
	}
	if o.pingInterval >= o.pongTimeout {
		return cfg, fmt.Errorf("-ping-interval (%s) must be shorter than -pong-timeout (%s)", o.pingInterval, o.pongTimeout)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return cfg, errors.New("-tls-cert and -tls-key go together")
	}
	for _, origin := range strings.Split(o.origins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, origin)
		}
	}
	return cfg, nil
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
// stops accepting, closes every client with 1001 and waits for them at
// most o.shutdownTimeout.
func serve(ctx context.Context, o *options, cfg signal.Config, log *slog.Logger) error {
	srv := signal.NewServer(cfg)
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	log.Info("listening", "addr", ln.Addr().String(), "url", fmt.Sprintf("%s://%s/", scheme, ln.Addr()))
	if o.pprof != "" {
		stop, err := servePprof(o.pprof, log)
		if err != nil {
			_ = ln.Close()
			return err
		}
		defer stop()
	}
	errc := make(chan error, 1)
	go func() {
		if o.tlsCert != "" {
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
		_ = srv.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", o.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	_ = hs.Shutdown(sctx) // stop accepting; WebSocket connections are the signal server's
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown timed out; remaining connections were closed", "err", err)
	}
	log.Info("stopped")
	return nil
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
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
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
