package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSOptions says how a node connects to NATS.
type NATSOptions struct {
	// URLs lists the servers, comma-separated: nats://host:4222 for plain
	// TCP, tls://host:4222 for TLS verified against the system roots.
	URLs string
	// CredsFile is a NATS credentials file (JWT and seed); empty for none.
	CredsFile string
	// Name names the connection in the server's monitoring, e.g. the node id.
	Name string
	// Logger receives disconnects, reconnects and asynchronous errors;
	// nil means slog.Default().
	Logger *slog.Logger
}

const (
	// reconnectWait and reconnectJitter pace reconnect attempts: a node
	// retries forever, a quarter second apart plus up to 100 ms of jitter
	// (up to 500 ms with TLS), so that a restarted server is found fast
	// and a fleet of nodes does not reconnect in lockstep.
	reconnectWait      = 250 * time.Millisecond
	reconnectJitter    = 100 * time.Millisecond
	reconnectJitterTLS = 500 * time.Millisecond
	// reconnectBufSize bounds what nats.go buffers while disconnected;
	// publishes beyond it fail at once rather than grow memory. Tunnel
	// frames are small and time-sensitive, so a few MiB is plenty.
	reconnectBufSize = 4 << 20
	// connectTimeout bounds each dial to one server.
	connectTimeout = 5 * time.Second
)

// connect opens the NATS connection a node shares between the directory,
// the node registry and the tunnels, and checks that the server offers
// JetStream. ctx bounds the JetStream check (the dial itself is bounded by
// connectTimeout per server). On error nothing stays open.
func connect(ctx context.Context, o NATSOptions) (*nats.Conn, jetstream.JetStream, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	urls := strings.TrimSpace(o.URLs)
	if urls == "" {
		return nil, nil, errors.New("cluster: no NATS server URL given")
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(connectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitterTLS),
		nats.ReconnectBufSize(reconnectBufSize),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn("cluster: disconnected from NATS", "url", nc.ConnectedUrlRedacted(), "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("cluster: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("cluster: NATS error", "subject", subject, "err", err)
		}),
	}
	if o.CredsFile != "" {
		// nats.go reads the file only when it dials; check it first so
		// that a typo says so instead of "authorization violation".
		if _, err := os.Stat(o.CredsFile); err != nil {
			return nil, nil, fmt.Errorf("cluster: NATS credentials file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: connect to NATS at %s: %w", urls, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("cluster: JetStream: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, nil, fmt.Errorf("cluster: JetStream is not enabled on the NATS server (start nats-server with -js): %w", err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// A NATS cluster without JetStream does not answer at all.
			return nil, nil, fmt.Errorf("cluster: no JetStream answer from %s: is JetStream enabled on the NATS servers (-js)? %w", nc.ConnectedUrlRedacted(), err)
		}
		return nil, nil, fmt.Errorf("cluster: JetStream account info from %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	return nc, js, nil
}
