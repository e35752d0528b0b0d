// Package cluster lets many rendezvous nodes share rooms over NATS.
//
// A Node wraps a signal.Server. Each room has one host node, which runs
// the room logic of package signal unchanged; the node that holds a
// client's WebSocket (its gateway, gateway.go) tunnels the client's frames
// to the host as envelopes (envelope.go) on core NATS, where each tunnel
// ends in an in-process protocol v1 connection to the host's server
// (host.go). So every rule of the protocol holds across nodes by
// construction, and a relay between members on two nodes takes two NATS
// hops. Tunnels between a gateway and itself skip NATS.
//
// Which node hosts a room, and who is in it, lives in a JetStream
// key/value bucket written only with compare-and-set (directory.go; kept up
// to date by sync.go): the first gateway to need a room claims it for its
// own node, so capacity and ids are checked in one place. Which nodes are
// alive is judged from heartbeat keys in a second bucket (nodes.go).
// connect (nats.go) opens the NATS connection all of these share.
//
// Rooms move (drain.go): a draining node hands each room it hosts, seats,
// tokens and kept frames, to a live node and closes its clients with 1012;
// they resume there, and since both directions' frames are counted per
// seat, nothing is lost or repeated. When a node dies, the survivors
// rebuild its rooms from the bucket once its lease has passed, and the
// resumes say gap. The admin API and /healthz answer for the whole
// cluster (admin.go).
//
// Tests embed a real NATS server (package clustertest).
package cluster
