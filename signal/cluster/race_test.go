package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// raceJoins dials count clients, spread over the nodes in turn, then lets
// them all send join at once, and returns each one's answer (a message,
// or the error of Join).
func raceJoins(t *testing.T, nodes []*testNode, count int, room string, opts *signal.JoinOptions) (answers []*signal.Message, errs []error) {
	t.Helper()
	clients := make([]*signal.Client, count)
	for i := range clients {
		clients[i] = dial(t, nodes[i%len(nodes)].URL)
	}
	answers, errs = make([]*signal.Message, count), make([]error, count)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			answers[i], errs[i] = c.Join(ctx, room, opts)
		}()
	}
	close(start)
	wg.Wait()
	return answers, errs
}

// TestRaceForSeats has 60 clients on 3 nodes race for the 2 seats of one
// room: exactly 2 get one, the 58 others get full; three times, with
// fresh rooms.
func TestRaceForSeats(t *testing.T) {
	_, nodes := startCluster(t, 3, signal.Config{})
	for round := range 3 {
		room := fmt.Sprintf("seats-%d", round)
		answers, errs := raceJoins(t, nodes, 60, room, nil)
		seated, full := 0, 0
		ids := make(map[string]bool)
		for i, m := range answers {
			switch err := errs[i]; {
			case err == nil && (m.Type == signal.TypeCreated || m.Type == signal.TypeJoined):
				seated++
				ids[m.ID] = true
			case errors.Is(err, signal.ErrRoomFull) && m != nil && m.Capacity == 2 && m.Room == room:
				full++
			default:
				t.Errorf("round %d, client %d (node %d): %+v, %v", round, i, i%3, m, err)
			}
		}
		if seated != 2 || full != 58 || len(ids) != 2 {
			t.Fatalf("round %d: %d seated (%d ids), %d full; want 2 and 58", round, seated, len(ids), full)
		}
		t.Logf("round %d: 2 seated, 58 full", round)
	}
}

// TestRaceForID has 30 clients on 3 nodes race to join one room with the
// same requested id: exactly one wins, the 29 others get id-taken; three
// times, with fresh rooms.
func TestRaceForID(t *testing.T) {
	_, nodes := startCluster(t, 3, signal.Config{MaxCapacity: 64})
	for round := range 3 {
		room := fmt.Sprintf("id-%d", round)
		answers, errs := raceJoins(t, nodes, 30, room, &signal.JoinOptions{ID: "wanted", Capacity: 64})
		won, taken := 0, 0
		for i, m := range answers {
			var pe *signal.Error
			switch err := errs[i]; {
			case err == nil && m.ID == "wanted":
				won++
			case errors.As(err, &pe) && pe.Code == "id-taken":
				taken++
			default:
				t.Errorf("round %d, client %d (node %d): %+v, %v", round, i, i%3, m, err)
			}
		}
		if won != 1 || taken != 29 {
			t.Fatalf("round %d: %d won, %d id-taken; want 1 and 29", round, won, taken)
		}
	}
}
