package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/gorilla/mux"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Handler returns the node's HTTP handler: the server's (the WebSocket
// endpoint, whose connections the node tunnels, /metrics, the files),
// with /healthz and the admin API answering for the whole cluster.
func (n *Node) Handler() http.Handler {
	r := mux.NewRouter()
	r.UseEncodedPath()
	r.HandleFunc("/healthz", n.serveHealth).Methods(http.MethodGet, http.MethodHead)
	api := r.PathPrefix("/api").Subrouter()
	api.Use(n.srv.RequireAdmin)
	api.HandleFunc("/rooms", n.apiRooms).Methods(http.MethodGet)
	api.HandleFunc("/rooms/{room}", n.apiRoom).Methods(http.MethodGet, http.MethodDelete)
	api.HandleFunc("/rooms/{room}/peers/{id}", n.apiKick).Methods(http.MethodDelete)
	api.NotFoundHandler = n.srv.RequireAdmin(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		apiJSON(w, http.StatusNotFound, map[string]string{"error": "no such API route"})
	}))
	r.NotFoundHandler = n.srv.Handler()
	r.MethodNotAllowedHandler = n.srv.Handler()
	return r
}

// clusterHealth is /healthz in cluster mode.
type clusterHealth struct {
	Status      string     `json:"status"` // ok, draining, nats-disconnected
	Node        string     `json:"node"`
	NATS        string     `json:"nats"` // the NATS connection's state
	Nodes       []nodeInfo `json:"nodes"`
	Connections int        `json:"connections"`
	Rooms       int        `json:"rooms"` // rooms this node hosts
}

func (n *Node) serveHealth(w http.ResponseWriter, _ *http.Request) {
	st := n.srv.Stats()
	h := clusterHealth{Status: "ok", Node: n.id, NATS: strings.ToLower(n.nc.Status().String()),
		Nodes: n.nodes.alive(), Connections: st.Connections, Rooms: n.hostedCount()}
	switch {
	case n.draining.Load():
		h.Status = "draining"
	case !n.nc.IsConnected():
		h.Status = "nats-disconnected"
	}
	code := http.StatusOK
	if h.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	apiJSON(w, code, h)
}

// adminRequest is an admin API call forwarded to the node that hosts the
// room (or, for rooms, to every node).
type adminRequest struct {
	Op   string `json:"op"` // rooms, room, close, kick
	Room string `json:"room,omitempty"`
	ID   string `json:"id,omitempty"`
}

// adminReply answers an adminRequest.
type adminReply struct {
	Rooms   []signal.RoomInfo `json:"rooms,omitempty"`
	Room    *signal.RoomInfo  `json:"room,omitempty"`
	Found   bool              `json:"found"`
	Members int               `json:"members,omitempty"`
}

// admin runs an admin request on this node's server.
func (n *Node) admin(req adminRequest) adminReply {
	switch req.Op {
	case "rooms":
		return adminReply{Rooms: n.srv.Rooms(), Found: true}
	case "room":
		info, ok := n.srv.Room(req.Room)
		if !ok {
			return adminReply{}
		}
		return adminReply{Room: &info, Found: true}
	case "close":
		members, ok := n.srv.CloseRoom(req.Room)
		return adminReply{Found: ok, Members: members}
	case "kick":
		return adminReply{Found: n.srv.Kick(req.Room, req.ID)}
	}
	return adminReply{}
}

// onAdmin answers an admin request from another node.
func (n *Node) onAdmin(m *nats.Msg) {
	var req adminRequest
	if json.Unmarshal(m.Data, &req) != nil {
		_ = m.Respond([]byte(`{}`))
		return
	}
	b, _ := json.Marshal(n.admin(req))
	_ = m.Respond(b)
}

// adminAt runs req on node.
func (n *Node) adminAt(ctx context.Context, node string, req adminRequest) (adminReply, error) {
	if node == n.id {
		return n.admin(req), nil
	}
	b, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	m, err := n.nc.RequestWithContext(ctx, n.subject(node, "admin"), b)
	if err != nil {
		return adminReply{}, err
	}
	var rep adminReply
	err = json.Unmarshal(m.Data, &rep)
	return rep, err
}

// apiRooms lists every room of the cluster once: each live node lists
// the rooms it hosts.
func (n *Node) apiRooms(w http.ResponseWriter, r *http.Request) {
	nodes := n.nodes.alive()
	var mu sync.Mutex
	byName := make(map[string]signal.RoomInfo)
	var failed []string
	n.parallel(len(nodes), func(i int) {
		rep, err := n.adminAt(r.Context(), nodes[i].ID, adminRequest{Op: "rooms"})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed = append(failed, nodes[i].ID)
			return
		}
		for _, info := range rep.Rooms {
			byName[info.Room] = info // a room moving between two nodes is listed once
		}
	})
	rooms := make([]signal.RoomInfo, 0, len(byName))
	for _, info := range byName {
		rooms = append(rooms, info)
	}
	sort.Slice(rooms, func(i, j int) bool { return rooms[i].Room < rooms[j].Room })
	out := map[string]any{"rooms": rooms}
	if len(failed) > 0 {
		sort.Strings(failed)
		out["unreachable"] = failed // these nodes' rooms are missing
	}
	apiJSON(w, http.StatusOK, out)
}

// apiRoom describes (GET) or closes (DELETE) a room, on its host.
func (n *Node) apiRoom(w http.ResponseWriter, r *http.Request) {
	room, ok := pathVar(w, r, "room")
	if !ok {
		return
	}
	op := "room"
	if r.Method == http.MethodDelete {
		op = "close"
	}
	rep, ok := n.adminOnHost(w, r, adminRequest{Op: op, Room: room})
	if !ok {
		return
	}
	switch {
	case !rep.Found:
		apiJSON(w, http.StatusNotFound, map[string]string{"error": "no such room"})
	case op == "room":
		apiJSON(w, http.StatusOK, rep.Room)
	default:
		apiJSON(w, http.StatusOK, map[string]any{"room": room, "closed": true, "members": rep.Members})
	}
}

// apiKick removes a member, on its room's host.
func (n *Node) apiKick(w http.ResponseWriter, r *http.Request) {
	room, ok := pathVar(w, r, "room")
	if !ok {
		return
	}
	id, ok := pathVar(w, r, "id")
	if !ok {
		return
	}
	rep, ok := n.adminOnHost(w, r, adminRequest{Op: "kick", Room: room, ID: id})
	if !ok {
		return
	}
	if !rep.Found {
		apiJSON(w, http.StatusNotFound, map[string]string{"error": "no such member in that room"})
		return
	}
	apiJSON(w, http.StatusOK, map[string]any{"room": room, "id": id, "kicked": true})
}

// adminOnHost runs req on the host of req.Room. It answers the request
// itself (and returns false) when the room has no host or the host
// cannot be reached.
func (n *Node) adminOnHost(w http.ResponseWriter, r *http.Request, req adminRequest) (adminReply, bool) {
	rec, _, err := n.dir.get(r.Context(), req.Room)
	if errors.Is(err, ErrNoRoom) {
		return adminReply{}, true // Found false: 404
	}
	if err != nil {
		apiJSON(w, http.StatusBadGateway, map[string]string{"error": "the room directory is unreachable: " + err.Error()})
		return adminReply{}, false
	}
	rep, err := n.adminAt(r.Context(), rec.Host, req)
	if err != nil {
		apiJSON(w, http.StatusBadGateway, map[string]string{"error": "the room's host " + rec.Host + " did not answer: " + err.Error()})
		return adminReply{}, false
	}
	return rep, true
}

func pathVar(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	v, err := url.PathUnescape(mux.Vars(r)[name])
	if err != nil {
		apiJSON(w, http.StatusBadRequest, map[string]string{"error": "bad escape in " + name})
		return "", false
	}
	return v, true
}

func apiJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// nodeMetrics are the cluster's counters, on the server's /metrics.
type nodeMetrics struct {
	toNATS, fromNATS prometheus.Counter // tunnel frames over NATS
	tunnels          prometheus.Counter // tunnels opened by this gateway
	rerouted         prometheus.Counter // tunnels moved after a host said moved
	slow             prometheus.Counter // tunnel sides cut for a full queue
	claimed          prometheus.Counter // rooms claimed by this node
	rehosted         prometheus.Counter // rooms taken over from dead nodes
	moved            prometheus.Counter // rooms handed over by Drain
	received         prometheus.Counter // rooms taken from draining nodes
	drains           prometheus.Counter
	conflicts        prometheus.Counter // records another node changed under this one
	extra            []prometheus.Collector
}

func newNodeMetrics(n *Node) *nodeMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "rendezvous_cluster_" + name, Help: help})
	}
	m := &nodeMetrics{
		toNATS:    c("forwarded_out_total", "Tunnel frames this node sent to other nodes over NATS."),
		fromNATS:  c("forwarded_in_total", "Tunnel frames this node received from other nodes over NATS."),
		tunnels:   c("tunnels_opened_total", "Tunnels this node's gateway opened to room hosts (itself included)."),
		rerouted:  c("tunnels_rerouted_total", "Tunnels moved to another host because the room was not where the directory said."),
		slow:      c("tunnels_slow_total", "Tunnel sides cut because their queue was full."),
		claimed:   c("rooms_claimed_total", "Rooms this node claimed for a join."),
		rehosted:  c("rooms_rehosted_total", "Rooms this node took over from a node that died."),
		moved:     c("rooms_moved_total", "Rooms this node handed to other nodes while draining."),
		received:  c("rooms_received_total", "Rooms this node took from draining nodes."),
		drains:    c("drains_total", "Drains of this node."),
		conflicts: c("record_conflicts_total", "Room records another node changed while this node hosted the room."),
	}
	m.extra = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rendezvous_cluster_rooms_hosted", Help: "Rooms this node hosts."},
			func() float64 { return float64(n.hostedCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rendezvous_cluster_nodes_alive", Help: "Nodes this node sees alive, itself included."},
			func() float64 {
				if n.nodes == nil {
					return 0
				}
				return float64(len(n.nodes.alive()))
			}),
	}
	return m
}

func (m *nodeMetrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{m.toNATS, m.fromNATS, m.tunnels, m.rerouted, m.slow, m.claimed,
		m.rehosted, m.moved, m.received, m.drains, m.conflicts}, m.extra...)
}
