package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/cluster/clustertest"
)

// benchRooms is how many rooms the move benchmarks hand over.
const benchRooms = 1000

// fillRooms makes n host count rooms of two held seats each, as if their
// members' connections had dropped: claimed in the directory, recorded,
// installed in the server.
func fillRooms(b *testing.B, n *Node, count int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n.parallel(count, func(i int) {
		st := signal.RoomState{Name: fmt.Sprintf("bench-%d", i), Capacity: 2, Created: time.Now(), Seats: []signal.SeatState{
			{ID: "a", Joined: time.Now(), Resume: "x", Unsent: [][]byte{[]byte(`{"type":"message","from":"b","data":1}`)}},
			{ID: "b", Joined: time.Now(), Resume: "y"},
		}}
		rev, err := n.dir.claim(ctx, st.Name, recordOf(n.id, st))
		if err != nil {
			b.Error(err)
			return
		}
		if err := n.srv.ImportRoom(st); err != nil {
			b.Error(err)
			return
		}
		n.own(st.Name, rev)
	})
	if b.Failed() {
		b.FailNow()
	}
}

// hostedEventually waits until n hosts want rooms and returns when.
func hostedEventually(b *testing.B, n *Node, want int, limit time.Duration) time.Time {
	b.Helper()
	deadline := time.Now().Add(limit)
	for n.srv.Stats().Rooms < want {
		if time.Now().After(deadline) {
			b.Fatalf("node hosts %d rooms after %v, want %d", n.srv.Stats().Rooms, limit, want)
		}
		time.Sleep(time.Millisecond) // polling a figure, not synchronising
	}
	return time.Now()
}

// BenchmarkDrainMove1000 measures how long a draining node takes to hand
// 1000 rooms (two held seats each, frames included) to another node:
// from Drain's start until the other node hosts them all.
func BenchmarkDrainMove1000(b *testing.B) {
	for range b.N {
		b.StopTimer()
		natsURL, _ := clustertest.NATS(b)
		from, to := startTestNode(b, natsURL), startTestNode(b, natsURL)
		fillRooms(b, from, benchRooms)
		b.StartTimer()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := from.Drain(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		done := hostedEventually(b, to, benchRooms, 30*time.Second)
		b.ReportMetric(float64(done.Sub(start).Milliseconds()), "ms/1000-rooms")
	}
}

// BenchmarkCrashRehost1000 measures the time from a node's crash to
// another node hosting its 1000 rooms again; a lease (1 s here) of it is
// waiting to be sure the node is dead.
func BenchmarkCrashRehost1000(b *testing.B) {
	for range b.N {
		b.StopTimer()
		natsURL, _ := clustertest.NATS(b)
		dead, survivor := startTestNode(b, natsURL), startTestNode(b, natsURL)
		fillRooms(b, dead, benchRooms)
		// Let the records be written, as a node that ran a while would have.
		deadline := time.Now().Add(30 * time.Second)
		for {
			rooms, err := survivor.dir.hostedBy(context.Background(), dead.id)
			if err == nil && len(rooms) == benchRooms {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("records not written")
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.StartTimer()
		start := time.Now()
		dead.Crash()
		done := hostedEventually(b, survivor, benchRooms, 30*time.Second)
		b.ReportMetric(float64(done.Sub(start).Milliseconds()), "ms/1000-rooms")
		b.ReportMetric(float64(done.Sub(start).Milliseconds()-survivor.cfg.Lease.Milliseconds()), "ms-past-lease")
	}
}
