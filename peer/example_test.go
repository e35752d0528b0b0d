package peer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rendezvous-rtc/rendezvous/peer"
	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// Two peers meet in a room of an in-process signaling server and talk over
// a real WebRTC data channel on the loopback interface. In a test, use
// signaltest.New(t, signal.Config{}) instead of Start/Stop: it stops the
// server with t.Cleanup.
func Example() {
	srv := signaltest.Start(signal.Config{})
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// LoopbackAPI: without loopback candidates pion cannot connect on a
	// machine whose only interface is lo.
	api, err := peer.LoopbackAPI()
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := peer.Config{
		URL:          srv.URL,
		Room:         "example",
		API:          api,
		DataChannels: []peer.DataChannelConfig{{Label: "chat"}},
	}
	cfg.ID = "alice"
	alice, err := peer.Join(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()
	cfg.ID = "bob"
	bob, err := peer.Join(ctx, cfg) // the newcomer offers to alice
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()

	if _, err := bob.WaitDataChannel(ctx, "alice", "chat"); err != nil {
		fmt.Println(err)
		return
	}
	if err := bob.SendText("alice", "chat", "hello"); err != nil {
		fmt.Println(err)
		return
	}
	for e := range alice.Events() {
		switch e.Type {
		case peer.EventJoined:
			fmt.Println("alice created the room:", e.Created)
		case peer.EventPeerJoined:
			fmt.Println(e.Remote, "joined")
		case peer.EventDataChannelOpen:
			fmt.Printf("channel %q with %s is open\n", e.Label, e.Remote)
		case peer.EventMessage:
			fmt.Printf("%s says %s\n", e.Remote, e.Data)
			return
		}
	}
	// Output:
	// alice created the room: true
	// bob joined
	// channel "chat" with bob is open
	// bob says hello
}
