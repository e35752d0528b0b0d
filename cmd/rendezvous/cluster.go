package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal/cluster"
)

// clusterOptions are the flags of cluster mode (-nats and those that need
// it). Without -nats the server is a single node and never touches NATS.
type clusterOptions struct {
	nats      string
	natsCreds string
	secret    string
	name      string
	nodeID    string
	lease     time.Duration
	replicas  int
}

// register adds the cluster flags to fs.
func (c *clusterOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&c.nats, "nats", "", "cluster mode: the NATS `servers` (JetStream on), comma-separated nats:// or tls:// URLs; "+
		"every node given the same servers and -cluster-name shares one set of rooms")
	fs.StringVar(&c.natsCreds, "nats-creds", "", "cluster mode: a NATS credentials `file` (.creds: user JWT and NKey seed)")
	fs.StringVar(&c.secret, "cluster-secret", "", "cluster mode: a `secret` every node shares, that signs resume tokens "+
		"(at least 32 characters; without it a key is made once in the cluster's KV bucket and shared through it)")
	fs.StringVar(&c.name, "cluster-name", cluster.DefaultPrefix, "cluster mode: the `name` of the cluster's KV buckets and subjects; "+
		"clusters with different names share nothing on one NATS")
	fs.StringVar(&c.nodeID, "node-id", "", "cluster mode: this node's `id` (A-Z a-z 0-9 _ -, at most 64; default: random at every start)")
	fs.DurationVar(&c.lease, "lease", cluster.DefaultLease, "cluster mode: how long a node that stopped sending heartbeats counts as alive; "+
		"then the rooms it hosted are re-hosted on the others")
	fs.IntVar(&c.replicas, "nats-replicas", 1, "cluster mode: replicas of the KV buckets a node creates (3 on a 3-server NATS cluster)")
}

// on reports whether cluster mode is on.
func (c *clusterOptions) on() bool { return c.nats != "" }

// check refuses cluster flags without -nats and bad values.
func (c *clusterOptions) check(fs *flag.FlagSet) error {
	if !c.on() {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "nats-creds", "cluster-secret", "cluster-name", "node-id", "lease", "nats-replicas":
				set = append(set, "-"+f.Name)
			}
		})
		if len(set) > 0 {
			return fmt.Errorf("%s need cluster mode (-nats)", strings.Join(set, ", "))
		}
		return nil
	}
	for _, u := range strings.Split(c.nats, ",") {
		u = strings.TrimSpace(u)
		if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			return fmt.Errorf("-nats: %q is not a nats:// or tls:// URL", u)
		}
	}
	if c.natsCreds != "" {
		if _, err := os.Stat(c.natsCreds); err != nil {
			return fmt.Errorf("-nats-creds: %w", err)
		}
	}
	if c.secret != "" && len(c.secret) < 32 {
		return errors.New("-cluster-secret must be at least 32 characters (e.g. openssl rand -hex 32)")
	}
	if c.lease < time.Second {
		return fmt.Errorf("-lease %s: want at least 1s", c.lease)
	}
	if c.replicas < 1 || c.replicas > 5 {
		return fmt.Errorf("-nats-replicas %d: want 1 to 5", c.replicas)
	}
	return nil
}

// config is the cluster's configuration.
func (c *clusterOptions) config(url string, log *slog.Logger) cluster.Config {
	return cluster.Config{
		NATS:     cluster.NATSOptions{URLs: c.nats, CredsFile: c.natsCreds},
		Secret:   []byte(c.secret),
		Prefix:   c.name,
		NodeID:   c.nodeID,
		URL:      url,
		Lease:    c.lease,
		Replicas: c.replicas,
		Logger:   log,
	}
}
