package cluster_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio/siotest"
)

// TestSocketIOAcrossNodes: the Socket.IO gateway of one node takes its
// clients through the cluster like WebSocket clients, so a Socket.IO
// client and a protocol v1 client on another node share a room.
func TestSocketIOAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 2, signal.Config{})
	gw, err := socketio.New(nodes[0].Server(), socketio.Config{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw.Wrap(nodes[0].Handler()))
	t.Cleanup(func() { hs.Close(); _ = gw.Close() })

	s := siotest.Dial(t, hs.URL, siotest.Options{})
	s.Connect("")
	s.Emit(socketio.EventCreateOrJoin, `"mixed"`)
	created := s.Expect(socketio.EventCreated, `"mixed"`)
	sID := strings.Trim(created.Arg(1), `"`)

	v := dial(t, nodes[1].URL)
	j := join(t, v, "mixed", nil)
	if j.Type != signal.TypeJoined || len(j.Peers) != 1 || j.Peers[0] != sID {
		t.Fatalf("v1 client on the other node joined with %+v, want peers [%s]", j, sID)
	}
	s.Expect(socketio.EventJoin, `"mixed"`)
	s.Expect(socketio.EventReady, `"mixed"`)
	s.Emit(socketio.EventMessage, `{"n":1}`)
	if m := recvType(t, v, signal.TypeMessage); m.From != sID || string(m.Data) != `{"n":1}` {
		t.Fatalf("v1 got %+v", m)
	}
	if err := v.Send(&signal.Message{Type: signal.TypeMessage, Data: []byte(`"hi"`)}); err != nil {
		t.Fatal(err)
	}
	s.Expect(socketio.EventMessage, `"hi"`)
	s.Close()
	if pl := recvType(t, v, signal.TypePeerLeft); pl.ID != sID {
		t.Fatalf("peer-left %+v", pl)
	}
}
