package signal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// Tests of the primitives that move rooms between servers (move.go):
// Drain, ImportRoom, the per-seat count of frames read, gaps, HostsRoom,
// OnRoomChange, DialTunnel and a shared ResumeKey.

// moveKey is a resume key shared by the servers of a test cluster.
var moveKey = []byte("0123456789abcdef0123456789abcdef")

// dialURL connects a test client to url (a CutProxy's, say).
func dialURL(t *testing.T, url string) *tc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := signal.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &tc{t: t, Client: c}
}

// resumeOn resumes c's seat in room with token and received, and returns
// the joined, failing unless it is a resume of seat id.
func (c *tc) resumeOn(room, token, id string, received *uint64) *signal.Message {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	j, err := c.Join(ctx, room, &signal.JoinOptions{Resume: token, Received: received})
	if err != nil {
		c.t.Fatalf("resume %q as %s: %v", room, id, err)
	}
	if j.Type != signal.TypeJoined || !j.Resumed || j.ID != id {
		c.t.Fatalf("resume %q: got %+v, want joined resumed as %s", room, j, id)
	}
	return j
}

// ended reads c until its connection ends and returns the messages that
// were still to read and the close frame the server sent. It fails on a
// peer-left: a member whose server drains sees none.
func (c *tc) ended() ([]*signal.Message, *websocket.CloseError) {
	c.t.Helper()
	var msgs []*signal.Message
	for range 10000 { // more than any test sends
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		m, err := c.Recv(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			c.t.Fatal("connection still open")
		}
		if err != nil {
			ce, _ := c.CloseError()
			return msgs, ce
		}
		if m.Type == signal.TypePeerLeft {
			c.t.Fatalf("got %+v while the server drained", m)
		}
		msgs = append(msgs, m)
	}
	c.t.Fatal("connection never ended")
	return nil, nil
}

// drain drains s within wait and returns its rooms.
func drain(t *testing.T, s *signaltest.Server) []signal.RoomState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return s.Drain(ctx)
}

// stateOf returns the state of room among states.
func stateOf(t *testing.T, states []signal.RoomState, room string) signal.RoomState {
	t.Helper()
	for _, st := range states {
		if st.Name == room {
			return st
		}
	}
	t.Fatalf("no room %q among %d drained", room, len(states))
	return signal.RoomState{}
}

// seatOf returns seat id of st.
func seatOf(t *testing.T, st signal.RoomState, id string) signal.SeatState {
	t.Helper()
	for _, seat := range st.Seats {
		if seat.ID == id {
			return seat
		}
	}
	t.Fatalf("room %q has no seat %s", st.Name, id)
	return signal.SeatState{}
}

// readOf returns joined's read, failing when it has none.
func readOf(t *testing.T, j *signal.Message) uint64 {
	t.Helper()
	if j.Read == nil {
		t.Fatalf("joined %+v has no read", j)
	}
	if j.Gap {
		t.Fatalf("joined %+v has read and gap", j)
	}
	return *j.Read
}

// waitHeld waits until s holds seat id of room without a connection.
func waitHeld(t *testing.T, s *signaltest.Server, room, id string) {
	t.Helper()
	eventually(t, fmt.Sprintf("seat %s of %q held", id, room), func() bool {
		st, ok := s.Snapshot(room)
		if !ok {
			return false
		}
		i := slices.IndexFunc(st.Seats, func(seat signal.SeatState) bool { return seat.ID == id })
		return i >= 0 && !st.Seats[i].Connected
	})
}

// TestDrainImportRoundTrip moves a room from server A to server B: A's
// clients get 1012, the state carries every frame alice had not read,
// and on B both resume their seats with their tokens: alice gets exactly
// what she missed, each learns how many of its frames were handled, no
// one sees peer-left, and the room relays as before.
func TestDrainImportRoundTrip(t *testing.T) {
	cfg := signal.Config{Rate: rate.Inf, ResumeKey: moveKey}
	a, b := start(t, cfg), start(t, cfg)
	alice, bob := dial(t, a), dial(t, a)
	ac := alice.join("move")
	bj := bob.join("move")
	alice.expect(signal.TypePeerJoined)

	// alice sends bob 3 messages, which he reads.
	for i := range 3 {
		alice.sendf(`{"type":"message","data":"a%d"}`, i)
	}
	for i := range 3 {
		if m := bob.expect(signal.TypeMessage); string(m.Data) != fmt.Sprintf(`"a%d"`, i) || m.From != ac.ID {
			t.Fatalf("bob got %+v, want a%d from alice", m, i)
		}
	}
	// bob sends alice n messages, of which the test reads none: her
	// client stops reading once its buffer is full, so that some frames
	// are written to her but not received (nor acknowledged: the client
	// answers pings only as it reads).
	const n = 100
	for i := range n {
		bob.sendf(`{"type":"message","data":%d}`, i)
	}
	bob.sync()                // handled: every message is queued for alice
	const aliceFrames = 2 + n // created, peer-joined, the messages

	began := time.Now()
	states := drain(t, a)
	t.Logf("Drain took %v", time.Since(began))
	received := alice.Received() // her client is still stuck on a full buffer
	if received >= aliceFrames {
		t.Fatalf("alice received all %d frames before the drain: the test needs some she did not", received)
	}
	if a.HasRoom("move") || len(a.Rooms()) != 0 || len(states) != 1 {
		t.Fatalf("after Drain: HasRoom %v, rooms %v, %d states", a.HasRoom("move"), a.Rooms(), len(states))
	}
	st := stateOf(t, states, "move")
	if st.Capacity != 2 || len(st.Seats) != 2 {
		t.Fatalf("state %+v: want capacity 2 and 2 seats", st)
	}
	as, bs := seatOf(t, st, ac.ID), seatOf(t, st, bj.ID)
	if as.Resume == "" || bs.Resume == "" || as.Connected || bs.Connected || as.Gap || bs.Gap {
		t.Fatalf("seats %+v %+v: want tokens, not connected, no gap", as, bs)
	}
	if as.Read != 3 || bs.Read != n+1 { // bob's sync probe counts
		t.Fatalf("seat reads: alice %d bob %d, want 3 and %d", as.Read, bs.Read, n+1)
	}
	// alice's frames in the state are numbered from RecentBase and run to
	// her last frame; every one she did not receive is there.
	frames := slices.Concat(as.Recent, as.Unsent)
	if as.RecentBase == 0 || as.RecentBase > received+1 || as.RecentBase+uint64(len(frames))-1 != aliceFrames {
		t.Fatalf("alice's state keeps frames %d…%d (%d recent, %d unsent); she received %d of %d",
			as.RecentBase, as.RecentBase+uint64(len(frames))-1, len(as.Recent), len(as.Unsent), received, aliceFrames)
	}
	for i, f := range frames {
		k := as.RecentBase + uint64(i) // the frame's number on her connection
		var m signal.Message
		if err := json.Unmarshal(f, &m); err != nil {
			t.Fatalf("frame %d in the state: %v", k, err)
		}
		if k > 2 && (m.Type != signal.TypeMessage || string(m.Data) != strconv.FormatUint(k-3, 10)) {
			t.Fatalf("frame %d in the state is %s, want message %d", k, f, k-3)
		}
	}

	// Both were closed with 1012, after what was queued for them.
	rest, ce := alice.ended()
	if ce == nil || ce.Code != signal.CloseServiceRestart {
		t.Fatalf("alice closed with %v, want %d", ce, signal.CloseServiceRestart)
	}
	if len(rest) != n {
		t.Fatalf("alice's old connection delivered %d messages, want %d", len(rest), n)
	}
	if _, ce := bob.ended(); ce == nil || ce.Code != signal.CloseServiceRestart {
		t.Fatalf("bob closed with %v, want %d", ce, signal.CloseServiceRestart)
	}

	if err := b.ImportRoom(st); err != nil {
		t.Fatalf("import: %v", err)
	}
	if info, ok := b.Room("move"); !ok || info.Members != 2 || info.Peers[0].Connected || info.Peers[1].Connected {
		t.Fatalf("imported room: %+v %v, want 2 held seats", info, ok)
	}
	// alice resumes with the count her client had when the drain ended:
	// she gets the messages after it, once each, in order.
	alice2 := dial(t, b)
	j := alice2.resumeOn("move", ac.Resume, ac.ID, &received)
	if len(j.Peers) != 1 || j.Peers[0] != bj.ID {
		t.Fatalf("alice's joined peers %v, want [%s]", j.Peers, bj.ID)
	}
	if r := readOf(t, j); r != 3 {
		t.Fatalf("alice's read = %d, want 3", r)
	}
	for k := received + 1; k <= aliceFrames; k++ {
		if m := alice2.expect(signal.TypeMessage); string(m.Data) != strconv.FormatUint(k-3, 10) || m.From != bj.ID {
			t.Fatalf("replayed %+v, want message %d from bob", m, k-3)
		}
	}
	alice2.sync() // nothing twice, no peer-left

	bobReceived := bob.Received()
	bob2 := dial(t, b)
	if r := readOf(t, bob2.resumeOn("move", bj.Resume, bj.ID, &bobReceived)); r != n+1 {
		t.Fatalf("bob's read = %d, want %d", r, n+1)
	}
	bob2.sync()
	alice2.sync() // bob's resume shows nothing to alice

	bob2.send(`{"type":"message","data":"on b"}`)
	if m := alice2.expect(signal.TypeMessage); string(m.Data) != `"on b"` || m.From != bj.ID {
		t.Fatalf("alice on B got %+v", m)
	}
	alice2.sendf(`{"type":"message","to":%q,"data":"back"}`, bj.ID)
	if m := bob2.expect(signal.TypeMessage); string(m.Data) != `"back"` || m.From != ac.ID {
		t.Fatalf("bob on B got %+v", m)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	began = time.Now()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after Drain: %v", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("Shutdown after Drain took %v", d)
	}
	if buf := a.Stats().Buffered; buf != 0 {
		t.Fatalf("A still counts %d bytes buffered after Drain", buf)
	}
}

// TestReadCountsEveryFrame: a resume's read counts every frame the
// server handled from the seat's connections after the join that took it
// (relays and frames that got errors alike), not the join nor the resume,
// and it goes on across resumes.
func TestReadCountsEveryFrame(t *testing.T) {
	s := start(t, signal.Config{Rate: rate.Inf})
	px := signaltest.NewCutProxy(t, s.URL)
	a := dialURL(t, px.URL)
	created := a.join("count")
	b := dial(t, s)
	bid := b.join("count").ID
	a.expect(signal.TypePeerJoined)

	frames := []struct {
		frame string
		code  string // the error it gets, or
		typ   string // what b receives
	}{
		{`{"type":"message","data":1}`, "", signal.TypeMessage},
		{fmt.Sprintf(`{"type":"candidate","to":%q,"candidate":null}`, bid), "", signal.TypeCandidate},
		{`{"type":`, signal.CodeBadJSON, ""},
		{`{"type":"nonsense","ref":"r"}`, signal.CodeUnknownType, ""},
		{`{"type":"message","to":"nobody","data":2,"ref":"r"}`, signal.CodeUnknownPeer, ""},
		{`{"type":"join","room":"count","ref":"r"}`, signal.CodeAlreadyJoined, ""},
		{fmt.Sprintf(`{"type":"offer","to":%q,"sdp":"not sdp","ref":"r"}`, bid), signal.CodeInvalidSDP, ""},
	}
	for _, f := range frames {
		a.send(f.frame)
		if f.typ != "" {
			b.expect(f.typ)
			continue
		}
		if m := a.expect(signal.TypeError); m.Code != f.code {
			t.Fatalf("%s: got error %q, want %q", f.frame, m.Code, f.code)
		}
	}
	a.sync()
	k := uint64(len(frames) + 1) // and the sync probe

	px.CutAll()
	waitHeld(t, s, "count", created.ID)
	if st, _ := s.Snapshot("count"); seatOf(t, st, created.ID).Read != k {
		t.Fatalf("snapshot read = %d, want %d", seatOf(t, st, created.ID).Read, k)
	}
	a2 := dial(t, s)
	j := a2.resumeOn("count", created.Resume, created.ID, nil)
	if r := readOf(t, j); r != k {
		t.Fatalf("read = %d after %d frames, want %d", r, k, k)
	}

	// Two more frames and a sync on the resumed connection: the count
	// goes on, and the resume itself is not counted.
	a2.send(`{"type":"message","data":3}`)
	a2.send(`{"type":"leave-not","ref":"r"}`)
	a2.expectError(signal.CodeUnknownType, "r")
	a2.sync()
	a2.Abort()
	waitHeld(t, s, "count", created.ID)
	if r := readOf(t, dial(t, s).resumeOn("count", j.Resume, created.ID, nil)); r != k+3 {
		t.Fatalf("second read = %d, want %d", r, k+3)
	}
	if m := b.expect(signal.TypeMessage); string(m.Data) != "3" {
		t.Fatalf("b got %+v, want message 3", m)
	}
	b.sync() // b saw no peer-left
}

// TestImportGapSeats: a seat imported with Gap resumes with gap and no
// read; its next resume has read again, counting the frames from the
// resume that reported the gap on (as the peer package expects).
func TestImportGapSeats(t *testing.T) {
	for _, staleRead := range []uint64{0, 7} {
		t.Run(fmt.Sprintf("imported read %d", staleRead), func(t *testing.T) {
			cfg := signal.Config{Rate: rate.Inf, ResumeKey: moveKey}
			a, b := start(t, cfg), start(t, cfg)
			alice, bob := dial(t, a), dial(t, a)
			ac := alice.join("gap")
			bj := bob.join("gap")
			alice.expect(signal.TypePeerJoined)
			bob.send(`{"type":"message","data":"lost?"}`)
			st := stateOf(t, drain(t, a), "gap")
			// Rebuilt after a crash: no frames, and reads that may be stale.
			for i := range st.Seats {
				st.Seats[i].Gap, st.Seats[i].Read = true, staleRead
				st.Seats[i].Recent, st.Seats[i].RecentBase, st.Seats[i].Unsent = nil, 0, nil
			}
			if err := b.ImportRoom(st); err != nil {
				t.Fatalf("import: %v", err)
			}
			alice2, bob2 := dial(t, b), dial(t, b)
			j := alice2.resumeOn("gap", ac.Resume, ac.ID, nil)
			if !j.Gap || j.Read != nil {
				t.Fatalf("alice's resume: gap %v read %v, want gap and no read", j.Gap, j.Read)
			}
			if jb := bob2.resumeOn("gap", bj.Resume, bj.ID, nil); !jb.Gap || jb.Read != nil {
				t.Fatalf("bob's resume: gap %v read %v, want gap and no read", jb.Gap, jb.Read)
			}
			alice2.sync() // nothing replayed
			alice2.send(`{"type":"message","data":"after"}`)
			if m := bob2.expect(signal.TypeMessage); string(m.Data) != `"after"` {
				t.Fatalf("bob got %+v", m)
			}
			alice2.sync()
			alice2.Abort()
			waitHeld(t, b, "gap", ac.ID)
			j = dial(t, b).resumeOn("gap", j.Resume, ac.ID, nil)
			// alice2 sent 3 frames: two sync probes and a message.
			r := readOf(t, j)
			if r != 3 { // not staleRead+3: the count starts again at the gap, as the clients' do
				t.Fatalf("read after the gap = %d, want 3 (frames since the resume that reported the gap)", r)
			}
		})
	}
}

// TestHostsRoom: a server that does not host a room refuses to create it
// and to resume a seat of it (error moved), but serves a room that exists
// here.
func TestHostsRoom(t *testing.T) {
	var hosts atomic.Bool
	var asked sync.Map // rooms HostsRoom was asked about
	s := start(t, signal.Config{ResumeKey: moveKey, HostsRoom: func(room string) bool {
		asked.Store(room, true)
		return hosts.Load()
	}})

	// While hosting: a room that will end, and one that lives on.
	hosts.Store(true)
	gone := dial(t, s)
	goneJ := gone.join("gone")
	gone.send(`{"type":"leave"}`)
	eventually(t, "room gone ended", func() bool { return !s.HasRoom("gone") })
	owner, guest := dial(t, s), dial(t, s)
	oc := owner.join("kept")

	hosts.Store(false)
	c := dial(t, s)
	c.send(`{"type":"join","room":"elsewhere","ref":"j"}`)
	c.expectError(signal.CodeMoved, "j")
	if _, ok := asked.Load("elsewhere"); !ok || s.HasRoom("elsewhere") {
		t.Fatal("HostsRoom was not asked about the new room, or the room was created")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.Join(ctx, "gone", &signal.JoinOptions{Resume: goneJ.Resume}); !errors.Is(err, &signal.Error{Code: signal.CodeMoved}) {
		t.Fatalf("resume for a room absent here: %v, want %s", err, signal.CodeMoved)
	}
	// A room that exists here is served: joins and resumes.
	if j := guest.join("kept"); j.Type != signal.TypeJoined {
		t.Fatalf("join of an existing room: %+v", j)
	}
	owner.expect(signal.TypePeerJoined)
	owner.Abort()
	waitHeld(t, s, "kept", oc.ID)
	dial(t, s).resumeOn("kept", oc.Resume, oc.ID, nil)
	// The refused connection can still join once the room is hosted.
	hosts.Store(true)
	if j := c.join("elsewhere"); j.Type != signal.TypeCreated {
		t.Fatalf("join while hosting: %+v", j)
	}
}

// roomChanges records OnRoomChange calls.
type roomChanges struct {
	mu    sync.Mutex
	calls []string // guarded by mu
}

func (r *roomChanges) record(room string) {
	r.mu.Lock()
	r.calls = append(r.calls, room)
	r.mu.Unlock()
}

// count returns how many calls were for room.
func (r *roomChanges) count(room string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c == room {
			n++
		}
	}
	return n
}

// TestOnRoomChange: the callback hears of joins, resumes, leaves, the end
// of a room, and rooms that move out (Drain) and in (ImportRoom).
func TestOnRoomChange(t *testing.T) {
	var rc, rc2 roomChanges
	s := start(t, signal.Config{ResumeKey: moveKey, OnRoomChange: rc.record})
	s2 := start(t, signal.Config{ResumeKey: moveKey, OnRoomChange: rc2.record})

	// A join has told the callback before its reply goes out; so has a
	// resume.
	alice, bob := dial(t, s), dial(t, s)
	alice.join("rc")
	if n := rc.count("rc"); n < 1 {
		t.Fatalf("%d calls after the room was created", n)
	}
	n := rc.count("rc")
	bj := bob.join("rc")
	if rc.count("rc") <= n {
		t.Fatal("no call for a join")
	}
	alice.expect(signal.TypePeerJoined)
	bob.Abort()
	waitHeld(t, s, "rc", bj.ID)
	n = rc.count("rc")
	bob = dial(t, s)
	bj = bob.resumeOn("rc", bj.Resume, bj.ID, nil)
	if rc.count("rc") <= n {
		t.Fatal("no call for a resume")
	}
	// A leave is told as it is handled; alice hears of it too.
	n = rc.count("rc")
	bob.send(`{"type":"leave"}`)
	alice.expect(signal.TypePeerLeft)
	eventually(t, "a call for a leave", func() bool { return rc.count("rc") > n })
	// The last leave ends the room.
	n = rc.count("rc")
	alice.send(`{"type":"leave"}`)
	eventually(t, "a call for the room's end", func() bool { return rc.count("rc") > n && !s.HasRoom("rc") })
	if other := rc.count("other"); other != 0 {
		t.Fatalf("%d calls for a room never used", other)
	}

	// A room that drains out, and in elsewhere.
	alice.join("moves")
	n = rc.count("moves")
	st := stateOf(t, drain(t, s), "moves")
	if rc.count("moves") <= n {
		t.Fatal("no call for a room that drained out")
	}
	if err := s2.ImportRoom(st); err != nil {
		t.Fatal(err)
	}
	if rc2.count("moves") < 1 {
		t.Fatal("no call for an imported room")
	}
}

// TestImportRoomValidation: ImportRoom refuses a state that could not
// have come from a valid room, a room that exists, and a closed server.
func TestImportRoomValidation(t *testing.T) {
	s := start(t, signal.Config{ConnBufferBytes: 256 << 10, ResumeQueueBytes: 64 << 10})
	const limit = 256<<10 + 64<<10 // frames a seat may keep
	now := time.Now()
	valid := func(name string) signal.RoomState {
		return signal.RoomState{Name: name, Capacity: 2, Created: now, Seats: []signal.SeatState{
			{ID: "a", Joined: now, Resume: "tok-a"}, {ID: "b", Joined: now, Resume: "tok-b"}}}
	}
	live := dial(t, s)
	live.join("live")
	if err := s.ImportRoom(valid("twice")); err != nil {
		t.Fatalf("valid state: %v", err)
	}
	atLimit := valid("at-limit")
	atLimit.Seats[0].Recent, atLimit.Seats[0].RecentBase = [][]byte{make([]byte, 200000)}, 5
	atLimit.Seats[0].Unsent = [][]byte{make([]byte, limit-200000)}
	if err := s.ImportRoom(atLimit); err != nil {
		t.Fatalf("a seat with frames at the limit: %v", err)
	}

	cases := map[string]func(*signal.RoomState){
		"empty room name":  func(st *signal.RoomState) { st.Name = "" },
		"control in name":  func(st *signal.RoomState) { st.Name = "bad\x00room" },
		"capacity 1":       func(st *signal.RoomState) { st.Capacity, st.Seats = 1, st.Seats[:1] },
		"capacity too big": func(st *signal.RoomState) { st.Capacity = signal.DefaultMaxCapacity + 1 },
		"no seats":         func(st *signal.RoomState) { st.Seats = nil },
		"more seats than capacity": func(st *signal.RoomState) {
			st.Seats = append(st.Seats, signal.SeatState{ID: "c", Resume: "tok-c"})
		},
		"duplicate id":   func(st *signal.RoomState) { st.Seats[1].ID = "a" },
		"bad id":         func(st *signal.RoomState) { st.Seats[1].ID = "not an id!" },
		"empty id":       func(st *signal.RoomState) { st.Seats[1].ID = "" },
		"no resume":      func(st *signal.RoomState) { st.Seats[1].Resume = "" },
		"recent too big": func(st *signal.RoomState) { st.Seats[0].Recent = [][]byte{make([]byte, limit+1)} },
		"frames too big": func(st *signal.RoomState) {
			st.Seats[1].Recent = [][]byte{make([]byte, 200000)}
			st.Seats[1].Unsent = [][]byte{make([]byte, limit-200000+1)}
		},
		"exists (imported)": func(st *signal.RoomState) { st.Name = "twice" },
		"exists (joined)":   func(st *signal.RoomState) { st.Name = "live" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			st := valid("v-" + strings.ReplaceAll(name, " ", "-"))
			mutate(&st)
			before, had := s.Stats().Buffered, s.HasRoom(st.Name)
			info, _ := s.Room(st.Name)
			err := s.ImportRoom(st)
			if err == nil {
				t.Fatal("imported")
			}
			if !strings.Contains(err.Error(), "import room") {
				t.Errorf("error %q does not say what failed", err)
			}
			after, _ := s.Room(st.Name)
			if s.HasRoom(st.Name) != had || after.Members != info.Members || s.Stats().Buffered != before {
				t.Fatalf("a refused import changed the server: room %v → %v, buffered %d → %d", info, after, before, s.Stats().Buffered)
			}
		})
	}

	off := start(t, signal.Config{ResumeWindow: -1})
	if err := off.ImportRoom(valid("off")); err == nil || off.HasRoom("off") {
		t.Fatalf("import with resume off: %v", err)
	}
	closed := start(t, signal.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := closed.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := closed.ImportRoom(valid("late")); !errors.Is(err, signal.ErrServerClosed) || closed.HasRoom("late") {
		t.Fatalf("import after Shutdown: %v, want ErrServerClosed", err)
	}
}

// tunnelClient is a bare WebSocket client over DialTunnel that records
// the pings it gets and answers none of them (so that nothing it reads
// is acknowledged).
type tunnelClient struct {
	ws    *websocket.Conn
	pings chan uint64
	msgs  chan signal.Message
	done  chan struct{}
}

func dialTunnel(t *testing.T, s *signaltest.Server, written uint64) *tunnelClient {
	t.Helper()
	d := &websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return s.DialTunnel(ctx, "192.0.2.9:1", written)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := d.DialContext(ctx, "ws://in-process/ws", nil)
	if err != nil {
		t.Fatalf("dial tunnel: %v", err)
	}
	c := &tunnelClient{ws: ws, pings: make(chan uint64, 1024), msgs: make(chan signal.Message, 1024), done: make(chan struct{})}
	ws.SetPingHandler(func(data string) error {
		n, err := strconv.ParseUint(data, 10, 64)
		if err != nil {
			t.Errorf("ping payload %q is not a count", data)
		}
		select {
		case c.pings <- n:
		default: // enough recorded
		}
		return nil
	})
	go func() {
		defer close(c.done)
		for {
			var m signal.Message
			if err := ws.ReadJSON(&m); err != nil {
				return
			}
			c.msgs <- m // the tests read far fewer than the buffer holds
		}
	}()
	t.Cleanup(func() { _ = ws.Close(); <-c.done })
	return c
}

func (c *tunnelClient) next(t *testing.T) signal.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(wait):
		t.Fatal("no message on the tunnel")
		return signal.Message{}
	}
}

// TestDialTunnel: a connection from DialTunnel numbers its frames from
// written+1: its pings carry counts from written on, and a resume's
// received counts them so.
func TestDialTunnel(t *testing.T) {
	const written = 100
	s := start(t, signal.Config{PingInterval: 50 * time.Millisecond, Rate: rate.Inf})
	c := dialTunnel(t, s, written)
	select {
	case n := <-c.pings:
		if n < written {
			t.Fatalf("first ping carries %d, want ≥ %d", n, written)
		}
	case <-time.After(wait):
		t.Fatal("no ping")
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"tun"}`)); err != nil {
		t.Fatal(err)
	}
	created := c.next(t) // frame 101
	if created.Type != signal.TypeCreated {
		t.Fatalf("got %+v", created)
	}
	bob := dial(t, s)
	bob.join("tun")
	c.next(t) // peer-joined, frame 102
	for i := range 3 {
		bob.sendf(`{"type":"message","data":%d}`, i) // frames 103…105
	}
	for i := range 3 {
		if m := c.next(t); m.Type != signal.TypeMessage || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("got %+v, want message %d", m, i)
		}
	}
	// Pings after the frames count them on top of written.
	deadline := time.After(wait)
	for n := uint64(0); n < written+5; {
		select {
		case n = <-c.pings:
		case <-deadline:
			t.Fatalf("no ping counts the 5 frames on top of %d", written)
		}
	}
	// The tunnel drops; the client read frames up to 103 (of this
	// numbering): the resume re-sends 104 and 105.
	_ = c.ws.NetConn().Close()
	waitHeld(t, s, "tun", created.ID)
	received := uint64(written + 3)
	a2 := dial(t, s)
	a2.resumeOn("tun", created.Resume, created.ID, &received)
	for i := 1; i < 3; i++ {
		if m := a2.expect(signal.TypeMessage); string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("replayed %+v, want message %d", m, i)
		}
	}
	a2.sync()
}

// TestResumeKey: a token minted by one server resumes on another that
// shares its ResumeKey, and on no other.
func TestResumeKey(t *testing.T) {
	other := []byte("fedcba9876543210fedcba9876543210")
	cases := []struct {
		name   string
		ka, kb []byte
		ok     bool
	}{
		{"shared key", moveKey, moveKey, true},
		{"different key", moveKey, other, false},
		{"no keys", nil, nil, false},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			a := start(t, signal.Config{ResumeKey: tt.ka})
			b := start(t, signal.Config{ResumeKey: tt.kb})
			alice, bob := dial(t, a), dial(t, a)
			ac := alice.join("rk")
			bob.join("rk")
			st := stateOf(t, drain(t, a), "rk")
			if err := b.ImportRoom(st); err != nil {
				t.Fatal(err)
			}
			alice2 := dial(t, b)
			if tt.ok {
				alice2.resumeOn("rk", ac.Resume, ac.ID, nil)
				return
			}
			alice2.sendf(`{"type":"join","room":"rk","resume":%q,"ref":"r"}`, ac.Resume)
			alice2.expectError(signal.CodeResumeFailed, "r")
		})
	}
}
