package cluster

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/cluster/clustertest"
)

// TestDrainMovesLargeRoomInParts: a room whose state is larger than a
// NATS message (its seats keep over a megabyte of frames) moves in parts,
// every frame with it, in order.
func TestDrainMovesLargeRoomInParts(t *testing.T) {
	natsURL, _ := clustertest.NATS(t)
	from, to := startTestNode(t, natsURL), startTestNode(t, natsURL)
	var frames [][]byte
	for i := range 150 { // 150 × 8 KiB: 1.2 MB of frames, 1.6 MB as JSON
		f := fmt.Appendf(nil, `{"type":"message","from":"b","data":"%d %s"}`, i, bytes.Repeat([]byte("x"), 8<<10))
		frames = append(frames, f)
	}
	st := signal.RoomState{Name: "big", Capacity: 2, Created: time.Now(), Seats: []signal.SeatState{
		{ID: "a", Joined: time.Now(), Resume: "x", Unsent: frames},
		{ID: "b", Joined: time.Now(), Resume: "y"},
	}}
	ctx := testCtx(t)
	rev, err := from.dir.claim(ctx, st.Name, recordOf(from.id, st))
	if err != nil {
		t.Fatal(err)
	}
	if err := from.srv.ImportRoom(st); err != nil {
		t.Fatal(err)
	}
	from.own(st.Name, rev)
	if max := from.nc.MaxPayload(); max >= 1400<<10 {
		t.Fatalf("max_payload %d: the room would fit in one message", max)
	}
	if err := from.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _, err := to.dir.get(ctx, "big")
	if err != nil || rec.Host != to.id {
		t.Fatalf("record %+v %v, want host %s", rec, err, to.id)
	}
	got, ok := to.srv.Export("big") // takes it out, to read its frames
	if !ok {
		t.Fatal("the other node does not host the room")
	}
	var seat signal.SeatState
	for _, s := range got.Seats {
		if s.ID == "a" {
			seat = s
		}
	}
	if len(seat.Unsent) != len(frames) {
		t.Fatalf("moved %d frames, want %d", len(seat.Unsent), len(frames))
	}
	for i := range frames {
		if !bytes.Equal(seat.Unsent[i], frames[i]) {
			t.Fatalf("frame %d changed in the move", i)
		}
	}
}

// TestCollectPart: parts of a move are taken in order only, within the
// bounds; anything else is refused and the move forgotten.
func TestCollectPart(t *testing.T) {
	n := &Node{moves: make(map[string]*partialMove)}
	for _, tt := range []struct {
		name    string
		headers []string
		want    string // the whole move, or "" for none
		wantErr bool   // the last part is refused
	}{
		{"in order", []string{"a 0 3", "a 1 3", "a 2 3"}, "012", false},
		{"starts past 0", []string{"b 1 3"}, "", true},
		{"skips a part", []string{"c 0 3", "c 2 3"}, "", true},
		{"parts change", []string{"d 0 3", "d 1 4"}, "", true},
		{"one part only", []string{"e 0 1"}, "", true},
		{"part past the end", []string{"f 3 3"}, "", true},
		{"garbage", []string{"nonsense"}, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var whole []byte
			var err error
			for i, h := range tt.headers {
				whole, err = n.collectPart(h, []byte(fmt.Sprint(i)))
				if err != nil && i < len(tt.headers)-1 {
					t.Fatalf("part %d: %v", i, err)
				}
			}
			if (err != nil) != tt.wantErr || string(whole) != tt.want {
				t.Fatalf("got %q, %v; want %q, error %v", whole, err, tt.want, tt.wantErr)
			}
		})
	}
	if len(n.moves) != 0 {
		t.Fatalf("%d moves left behind", len(n.moves))
	}
	for i := range maxMovesInParts {
		if _, err := n.collectPart(fmt.Sprintf("m%d 0 2", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.collectPart("over 0 2", []byte("x")); err == nil {
		t.Fatalf("a move past %d unfinished ones was taken", maxMovesInParts)
	}
}
