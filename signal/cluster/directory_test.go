package cluster

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal/cluster/clustertest"
)

// openTestDirectory opens the room directory on a fresh server.
func openTestDirectory(t *testing.T) *directory {
	t.Helper()
	_, js := newJS(t)
	d, err := openDirectory(testCtx(t), js, "", 1)
	if err != nil {
		t.Fatalf("openDirectory: %v", err)
	}
	return d
}

func TestDirectoryClaimRace(t *testing.T) {
	url, js := newJS(t)
	ctx := testCtx(t)
	if _, err := openDirectory(ctx, js, "", 1); err != nil {
		t.Fatal(err)
	}
	const claimers = 30
	// Each claimer is its own node: its own connection and directory.
	dirs := make([]*directory, claimers)
	for i := range dirs {
		_, js := dial(t, url, fmt.Sprintf("node-%d", i))
		d, err := openDirectory(ctx, js, "", 1)
		if err != nil {
			t.Fatal(err)
		}
		dirs[i] = d
	}
	type result struct {
		host string
		rev  uint64
		err  error
	}
	results := make([]result, claimers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, d := range dirs {
		wg.Go(func() {
			<-start
			host := fmt.Sprintf("node-%d", i)
			rev, err := d.claim(ctx, "hot room ☃", roomRecord{Host: host, Capacity: 4, Created: time.Now()})
			results[i] = result{host, rev, err}
		})
	}
	close(start)
	wg.Wait()
	var winner result
	wins := 0
	for _, r := range results {
		if r.err == nil {
			winner = r
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d claims succeeded, want exactly 1: %+v", wins, results)
	}
	for _, r := range results {
		if r.err == nil {
			continue
		}
		var ce *ClaimedError
		if !errors.Is(r.err, ErrClaimed) || !errors.As(r.err, &ce) {
			t.Fatalf("losing claim: %v, want a *ClaimedError", r.err)
		}
		if ce.Host != winner.host || ce.Rev != winner.rev {
			t.Fatalf("loser saw host %q rev %d, want %q rev %d", ce.Host, ce.Rev, winner.host, winner.rev)
		}
	}
	rec, rev, err := dirs[0].get(ctx, "hot room ☃")
	if err != nil || rec.Host != winner.host || rev != winner.rev {
		t.Fatalf("get = %+v, %d, %v; want host %q rev %d", rec, rev, err, winner.host, winner.rev)
	}
}

func TestDirectoryRecordLifecycle(t *testing.T) {
	d := openTestDirectory(t)
	ctx := testCtx(t)
	const room = "a/b.c*>  ünï"
	if _, _, err := d.get(ctx, room); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("get of an unclaimed room: %v, want ErrNoRoom", err)
	}
	created := time.Now().UTC().Truncate(time.Millisecond)
	rec := roomRecord{Host: "n1", Capacity: 2, Created: created}
	rev1, err := d.claim(ctx, room, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Members = []memberRecord{{ID: "alice", Joined: created}}
	rev2, err := d.update(ctx, room, rec, rev1)
	if err != nil {
		t.Fatalf("update at the current revision: %v", err)
	}
	got, rev, err := d.get(ctx, room)
	if err != nil || rev != rev2 || got.Host != "n1" || len(got.Members) != 1 || got.Members[0].ID != "alice" || !got.Created.Equal(created) || !got.Members[0].AuthExpiry.IsZero() {
		t.Fatalf("get = %+v, %d, %v; want the updated record at rev %d", got, rev, err, rev2)
	}

	// Compare-and-set: writes at the old revision are refused.
	if _, err := d.update(ctx, room, rec, rev1); !errors.Is(err, ErrConflict) {
		t.Fatalf("update at a stale revision: %v, want ErrConflict", err)
	}
	if err := d.release(ctx, room, rev1); !errors.Is(err, ErrConflict) {
		t.Fatalf("release at a stale revision: %v, want ErrConflict", err)
	}
	if _, _, err := d.get(ctx, room); err != nil {
		t.Fatalf("the refused release removed the room: %v", err)
	}

	if err := d.release(ctx, room, rev2); err != nil {
		t.Fatalf("release at the current revision: %v", err)
	}
	if _, _, err := d.get(ctx, room); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("get of a released room: %v, want ErrNoRoom", err)
	}
	if _, err := d.update(ctx, room, rec, rev2); !errors.Is(err, ErrConflict) {
		t.Fatalf("update of a released room: %v, want ErrConflict", err)
	}
	// A released room can be claimed again, by another node.
	if _, err := d.claim(ctx, room, roomRecord{Host: "n2", Capacity: 2}); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	if got, _, _ := d.get(ctx, room); got.Host != "n2" {
		t.Fatalf("host after re-claim = %q, want n2", got.Host)
	}
}

func TestDirectoryBadInput(t *testing.T) {
	d := openTestDirectory(t)
	ctx := testCtx(t)
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"claim empty room", func() error { _, err := d.claim(ctx, "", roomRecord{Host: "n"}); return err }, "empty room name"},
		{"claim without host", func() error { _, err := d.claim(ctx, "r", roomRecord{}); return err }, "without a host"},
		{"claim huge record", func() error {
			_, err := d.claim(ctx, "r", roomRecord{Host: strings.Repeat("h", maxRoomRecord)})
			return err
		}, "exceeds"},
		{"update at revision 0", func() error { _, err := d.update(ctx, "r", roomRecord{Host: "n"}, 0); return err }, "revision 0"},
		{"release at revision 0", func() error { return d.release(ctx, "r", 0) }, "revision 0"},
		{"get empty room", func() error { _, _, err := d.get(ctx, ""); return err }, "empty room name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
	if _, err := openDirectory(ctx, nil, "bad.prefix", 1); err == nil || !strings.Contains(err.Error(), "bucket prefix") {
		t.Fatalf("bad prefix: %v", err)
	}
}

func TestDirectoryListAndHostedBy(t *testing.T) {
	d := openTestDirectory(t)
	ctx := testCtx(t)
	if all, err := d.list(ctx); err != nil || len(all) != 0 {
		t.Fatalf("list of an empty directory = %v, %v", all, err)
	}
	hosts := map[string]string{"r1": "n1", "r2": "n2", "r3": "n1", "r4": "n3", "gone": "n1"}
	revs := map[string]uint64{}
	for room, host := range hosts {
		rev, err := d.claim(ctx, room, roomRecord{Host: host, Capacity: 2})
		if err != nil {
			t.Fatal(err)
		}
		revs[room] = rev
	}
	if err := d.release(ctx, "gone", revs["gone"]); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		node string
		want []string
	}{
		{"n1", []string{"r1", "r3"}},
		{"n2", []string{"r2"}},
		{"n9", nil},
	}
	for _, tt := range tests {
		got, err := d.hostedBy(ctx, tt.node)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range got {
			names = append(names, e.Room)
			if e.Rev != revs[e.Room] || e.Record.Host != tt.node {
				t.Errorf("hostedBy(%s): %+v, want rev %d", tt.node, e, revs[e.Room])
			}
		}
		if fmt.Sprint(names) != fmt.Sprint(tt.want) {
			t.Errorf("hostedBy(%s) = %v, want %v", tt.node, names, tt.want)
		}
	}
	all, err := d.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range all {
		names = append(names, e.Room)
	}
	if want := "[r1 r2 r3 r4]"; fmt.Sprint(names) != want {
		t.Fatalf("list = %v, want %s", names, want)
	}
}

// TestDirectorySurvivesServerRestart: the directory is file-stored, so a
// NATS server restarting in place keeps every room, and the directory
// works again once the connection is back.
func TestDirectorySurvivesServerRestart(t *testing.T) {
	url, srv := clustertest.NATS(t)
	_, js := dial(t, url, "n1")
	ctx := testCtx(t)
	d, err := openDirectory(ctx, js, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := d.claim(ctx, "kept", roomRecord{Host: "n1", Capacity: 3})
	if err != nil {
		t.Fatal(err)
	}
	clustertest.Restart(t, srv)
	waitFor(t, 5*time.Second, "the directory answers after the restart", func() bool {
		rec, got, err := d.get(ctx, "kept")
		return err == nil && got == rev && rec.Host == "n1"
	})
	if _, err := d.update(ctx, "kept", roomRecord{Host: "n2", Capacity: 3}, rev); err != nil {
		t.Fatalf("update after the restart: %v", err)
	}
}
