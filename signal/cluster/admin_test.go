package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// apiCall makes an admin API request with token (none when empty) and
// decodes the JSON answer into out (when not nil); it returns the status.
func apiCall(t *testing.T, method, url, token string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, body)
		}
	}
	return resp.StatusCode
}

// health is the part of /healthz the tests read.
type health struct {
	Status string `json:"status"`
	Node   string `json:"node"`
	NATS   string `json:"nats"`
	Nodes  []struct {
		ID string `json:"id"`
	} `json:"nodes"`
}

// getHealth returns a node's /healthz and its status code.
func getHealth(t *testing.T, base string) (health, int) {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("healthz: %v", err)
	}
	return h, resp.StatusCode
}

// metric returns the value of a metric without labels on a node's
// /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not on %s/metrics", name, base)
	return 0
}

// TestAdminAcrossNodes: the admin API answers for the whole cluster on
// every node, and /healthz and /metrics tell about the cluster.
func TestAdminAcrossNodes(t *testing.T) {
	const token = "admin-secret"
	_, nodes := startCluster(t, 3, signal.Config{AdminToken: token})
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	// Room i is hosted on node i, its second member on node i+1.
	names := []string{"adm-0", "adm-1", "adm-2"}
	type members struct {
		a, b     *signal.Client
		aID, bID string
	}
	rooms := make([]members, 3)
	for i, name := range names {
		a, b, aID, bID := pair(t, nodes[i], nodes[(i+1)%3], name)
		rooms[i] = members{a, b, aID, bID}
	}

	t.Run("rooms lists every room once on every node", func(t *testing.T) {
		for _, n := range nodes {
			var out struct {
				Rooms       []signal.RoomInfo `json:"rooms"`
				Unreachable []string          `json:"unreachable"`
			}
			if code := apiCall(t, http.MethodGet, n.Base+"/api/rooms", token, &out); code != http.StatusOK {
				t.Fatalf("GET /api/rooms on %s: %d", n.ID(), code)
			}
			var got []string
			for _, r := range out.Rooms {
				got = append(got, r.Room)
				if r.Members != 2 {
					t.Errorf("room %s has %d members, want 2", r.Room, r.Members)
				}
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(names, ",") || len(out.Unreachable) > 0 {
				t.Fatalf("GET /api/rooms on %s: %v (unreachable %v), want %v", n.ID(), got, out.Unreachable, names)
			}
		}
	})

	t.Run("room from a node that does not host it", func(t *testing.T) {
		var info signal.RoomInfo
		if code := apiCall(t, http.MethodGet, n1.Base+"/api/rooms/adm-0", token, &info); code != http.StatusOK {
			t.Fatalf("GET: %d", code)
		}
		ids := []string{}
		for _, p := range info.Peers {
			ids = append(ids, p.ID)
		}
		sort.Strings(ids)
		want := []string{rooms[0].aID, rooms[0].bID}
		sort.Strings(want)
		if info.Room != "adm-0" || info.Members != 2 || strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Fatalf("GET /api/rooms/adm-0 on n1: %+v", info)
		}
	})

	t.Run("401 and 404", func(t *testing.T) {
		for _, tc := range []struct {
			method, path, token string
			want                int
		}{
			{http.MethodGet, "/api/rooms", "", http.StatusUnauthorized},
			{http.MethodGet, "/api/rooms", "wrong", http.StatusUnauthorized},
			{http.MethodDelete, "/api/rooms/adm-0", "wrong", http.StatusUnauthorized},
			{http.MethodGet, "/api/rooms/nope", token, http.StatusNotFound},
			{http.MethodDelete, "/api/rooms/nope", token, http.StatusNotFound},
			{http.MethodDelete, "/api/rooms/adm-0/peers/nobody", token, http.StatusNotFound},
			{http.MethodGet, "/api/nothing", token, http.StatusNotFound},
		} {
			if code := apiCall(t, tc.method, n2.Base+tc.path, tc.token, nil); code != tc.want {
				t.Errorf("%s %s (token %q): %d, want %d", tc.method, tc.path, tc.token, code, tc.want)
			}
		}
	})

	t.Run("close a room from a node that does not host it", func(t *testing.T) {
		var out struct {
			Closed  bool `json:"closed"`
			Members int  `json:"members"`
		}
		// adm-1 is hosted on n1, its members are on n1 and n2: close from n0.
		if code := apiCall(t, http.MethodDelete, n0.Base+"/api/rooms/adm-1", token, &out); code != http.StatusOK || !out.Closed || out.Members != 2 {
			t.Fatalf("DELETE: %d %+v", code, out)
		}
		for _, c := range []*signal.Client{rooms[1].a, rooms[1].b} {
			expectError(t, c, signal.CodeRoomClosed)
		}
		if code := apiCall(t, http.MethodGet, n2.Base+"/api/rooms/adm-1", token, nil); code != http.StatusNotFound {
			t.Fatalf("GET after close: %d, want 404", code)
		}
	})

	t.Run("kick from a node that does not host the room", func(t *testing.T) {
		// adm-2 is hosted on n2, its members are on n2 and n0: kick from n1.
		r := rooms[2]
		if code := apiCall(t, http.MethodDelete, n1.Base+"/api/rooms/adm-2/peers/"+r.bID, token, nil); code != http.StatusOK {
			t.Fatalf("kick: %d", code)
		}
		expectError(t, r.b, signal.CodeKicked)
		if code := waitClosed(t, r.b); code != 1008 {
			t.Fatalf("kicked member closed with %d, want 1008", code)
		}
		if pl := recvType(t, r.a, signal.TypePeerLeft); pl.ID != r.bID || pl.Reason != signal.ReasonKicked {
			t.Fatalf("peer-left %+v", pl)
		}
	})

	t.Run("healthz", func(t *testing.T) {
		want := []string{n0.ID(), n1.ID(), n2.ID()}
		sort.Strings(want)
		for _, n := range nodes {
			h, code := getHealth(t, n.Base)
			var ids []string
			for _, x := range h.Nodes {
				ids = append(ids, x.ID)
			}
			sort.Strings(ids)
			if code != http.StatusOK || h.Status != "ok" || h.Node != n.ID() || h.NATS != "connected" ||
				strings.Join(ids, ",") != strings.Join(want, ",") {
				t.Fatalf("healthz of %s: %d %+v (nodes %v)", n.ID(), code, h, ids)
			}
		}
	})

	t.Run("metrics and a drain", func(t *testing.T) {
		// adm-0 relayed across nodes: n1's gateway forwarded b's frames.
		sendData(t, rooms[0].b, rooms[0].aID, `1`)
		expectData(t, rooms[0].a, rooms[0].bID, `1`)
		for _, n := range []*testNode{n0, n1} {
			if v := metric(t, n.Base, "rendezvous_cluster_forwarded_out_total"); v <= 0 {
				t.Errorf("%s forwarded_out_total %v, want > 0", n.ID(), v)
			}
			if v := metric(t, n.Base, "rendezvous_cluster_forwarded_in_total"); v <= 0 {
				t.Errorf("%s forwarded_in_total %v, want > 0", n.ID(), v)
			}
		}
		if v := metric(t, n0.Base, "rendezvous_cluster_rooms_hosted"); v != 1 {
			t.Errorf("n0 rooms_hosted %v, want 1", v)
		}
		if v := metric(t, n0.Base, "rendezvous_cluster_nodes_alive"); v != 3 {
			t.Errorf("n0 nodes_alive %v, want 3", v)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := n0.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		h, code := getHealth(t, n0.Base)
		if code != http.StatusServiceUnavailable || h.Status != "draining" {
			t.Fatalf("healthz of a drained node: %d %+v, want 503 draining", code, h)
		}
		if v := metric(t, n0.Base, "rendezvous_cluster_drains_total"); v != 1 {
			t.Errorf("drains_total %v, want 1", v)
		}
		if v := metric(t, n0.Base, "rendezvous_cluster_rooms_moved_total"); v != 1 {
			t.Errorf("rooms_moved_total %v, want 1 (adm-0)", v)
		}
		recv := metric(t, n1.Base, "rendezvous_cluster_rooms_received_total") + metric(t, n2.Base, "rendezvous_cluster_rooms_received_total")
		if recv != 1 {
			t.Errorf("rooms_received_total on n1 + n2: %v, want 1", recv)
		}
		// The moved room is listed once, by its new host.
		var out struct {
			Rooms []signal.RoomInfo `json:"rooms"`
		}
		apiCall(t, http.MethodGet, n2.Base+"/api/rooms", token, &out)
		var got []string
		for _, r := range out.Rooms {
			got = append(got, r.Room)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != "adm-0,adm-2" {
			t.Fatalf("rooms after the drain: %v, want adm-0 (moved) and adm-2", got)
		}
	})
}

// TestAdminOffInCluster: without an admin token the API is not there, on
// any node.
func TestAdminOffInCluster(t *testing.T) {
	_, nodes := startCluster(t, 2, signal.Config{})
	for _, n := range nodes {
		if code := apiCall(t, http.MethodGet, n.Base+"/api/rooms", "anything", nil); code != http.StatusNotFound {
			t.Fatalf("GET /api/rooms without an admin token configured: %d, want 404", code)
		}
	}
}
