package signal_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// resumePair starts a created room with a and b; it returns a's created
// message (with its resume token) and b's id.
func resumePair(t *testing.T, s *signaltest.Server, room string) (a, b *tc, created *signal.Message, bid string) {
	t.Helper()
	a, b = dial(t, s), dial(t, s)
	created = a.join(room)
	if created.Resume == "" {
		t.Fatal("created carries no resume token")
	}
	j := b.join(room)
	if j.Resume == "" || j.Resume == created.Resume {
		t.Fatalf("joined resume token %q: want a fresh one", j.Resume)
	}
	a.expect(signal.TypePeerJoined)
	return a, b, created, j.ID
}

func (c *tc) resume(room, token string, received *uint64) *signal.Message {
	c.t.Helper()
	m := &signal.Message{Type: signal.TypeJoin, Room: room, Resume: token, Received: received}
	if err := c.Send(m); err != nil {
		c.t.Fatal(err)
	}
	return c.next()
}

func TestResumeDeliversMissedMessagesInOrder(t *testing.T) {
	s := start(t, signal.Config{Rate: rate.Inf})
	a, b, created, bid := resumePair(t, s, "blip")
	a.Abort()
	eventually(t, "the server to notice the drop", func() bool { _, n, _ := health(t, s); return n == 1 })

	sdp := sdpJSON()
	b.sendf(`{"type":"offer","to":%q,"sdp":%s}`, created.ID, sdp)
	for i := range 5 {
		b.sendf(`{"type":"candidate","to":%q,"candidate":{"candidate":"c%d"}}`, created.ID, i)
	}
	b.send(`{"type":"message","data":"broadcast"}`)

	a2 := dial(t, s)
	j := a2.resume("blip", created.Resume, nil)
	if j.Type != signal.TypeJoined || !j.Resumed || j.ID != created.ID || len(j.Peers) != 1 || j.Peers[0] != bid {
		t.Fatalf("resume: got %+v, want joined resumed with the same id and peers [%s]", j, bid)
	}
	if m := a2.expect(signal.TypeOffer); m.From != bid || m.SDP != minimalSDP {
		t.Fatalf("offer: %+v", m)
	}
	for i := range 5 {
		if m := a2.expect(signal.TypeCandidate); string(m.Candidate) != fmt.Sprintf(`{"candidate":"c%d"}`, i) {
			t.Fatalf("candidate %d: %s", i, m.Candidate)
		}
	}
	a2.expect(signal.TypeMessage)
	// b saw neither peer-left nor peer-joined for the blip, and the pair
	// relays as before.
	b.sync()
	a2.sendf(`{"type":"answer","to":%q,"sdp":%s}`, bid, sdp)
	if m := b.expect(signal.TypeAnswer); m.From != created.ID {
		t.Fatalf("answer from %q", m.From)
	}
}

// TestResumeLosesNothingMidStream cuts a connection while messages stream
// to it, before the server can notice, and checks that the resumed
// connection gets exactly the messages the old one did not read.
func TestResumeLosesNothingMidStream(t *testing.T) {
	s := start(t, signal.Config{Rate: rate.Inf, SendQueue: 1024})
	a, b, created, _ := resumePair(t, s, "stream")
	const n = 200 // in flight at the cut: fewer than ResumeQueue (256)
	go func() {
		for i := range n {
			if b.SendRaw(fmt.Appendf(nil, `{"type":"message","data":%d}`, i)) != nil {
				return
			}
		}
	}()
	next := 0
	for next < 40 {
		m := a.expect(signal.TypeMessage)
		if string(m.Data) != strconv.Itoa(next) {
			t.Fatalf("got %s, want %d", m.Data, next)
		}
		next++
	}
	// Everything a's client read before the cut counts as received, even
	// what it had buffered but not handed to the test.
	a.Abort()
	received := a.Received()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		m, err := a.Recv(ctx)
		cancel()
		if err != nil {
			break
		}
		if m.Type == signal.TypeMessage && string(m.Data) == strconv.Itoa(next) {
			next++
		}
	}
	a2 := dial(t, s)
	if j := a2.resume("stream", created.Resume, &received); !j.Resumed {
		t.Fatalf("resume: %+v", j)
	}
	for ; next < n; next++ {
		m := a2.expect(signal.TypeMessage)
		if string(m.Data) != strconv.Itoa(next) {
			t.Fatalf("after resume got %s, want %d (nothing lost, nothing twice)", m.Data, next)
		}
	}
	a2.sync()
}

func TestResumeReplacesGhost(t *testing.T) {
	s := start(t, signal.Config{})
	a, b, created, bid := resumePair(t, s, "ghost")
	a2 := dial(t, s)
	j := a2.resume("ghost", created.Resume, nil)
	if !j.Resumed || j.ID != created.ID || j.Peers[0] != bid {
		t.Fatalf("resume: %+v", j)
	}
	if ce := a.closed(); ce == nil || ce.Code != signal.CloseReplaced {
		t.Fatalf("ghost closed with %v, want %d", ce, signal.CloseReplaced)
	}
	b.send(`{"type":"message","data":"to the new one"}`)
	if m := a2.expect(signal.TypeMessage); string(m.Data) != `"to the new one"` {
		t.Fatalf("got %s", m.Data)
	}
	b.sync() // no peer-left, no peer-joined
	// A room of two is not "full" after the reconnect: the seat moved.
	if _, _, rooms := health(t, s); rooms != 1 {
		t.Fatalf("rooms = %d", rooms)
	}
}

func TestResumeFailed(t *testing.T) {
	s := start(t, signal.Config{ResumeWindow: 100 * time.Millisecond})
	a, b, created, _ := resumePair(t, s, "rf")
	c := dial(t, s)
	for name, frame := range map[string]string{
		"garbage":       `{"type":"join","room":"rf","resume":"nope","ref":"r"}`,
		"other room":    fmt.Sprintf(`{"type":"join","room":"other","resume":%q,"ref":"r"}`, created.Resume),
		"tampered":      fmt.Sprintf(`{"type":"join","room":"rf","resume":%q,"ref":"r"}`, tamper(created.Resume)),
		"not a string":  `{"type":"join","room":"rf","resume":5,"ref":"r"}`,
		"bad received":  fmt.Sprintf(`{"type":"join","room":"rf","resume":%q,"received":-1,"ref":"r"}`, created.Resume),
		"received text": fmt.Sprintf(`{"type":"join","room":"rf","resume":%q,"received":"3","ref":"r"}`, created.Resume),
	} {
		c.t = t
		c.send(frame)
		if m := c.expectError(signal.CodeResumeFailed, "r"); m.Message == "" {
			t.Fatalf("%s: no message", name)
		}
	}
	// After the window: peer-left timeout, and the token is refused.
	a.Abort()
	if m := b.expect(signal.TypePeerLeft); m.Reason != signal.ReasonTimeout {
		t.Fatalf("peer-left %+v, want timeout", m)
	}
	c.sendf(`{"type":"join","room":"rf","resume":%q,"ref":"late"}`, created.Resume)
	c.expectError(signal.CodeResumeFailed, "late")
	// The client can join fresh.
	if m := c.join("rf"); m.Type != signal.TypeJoined || m.ID == created.ID {
		t.Fatalf("fresh join: %+v", m)
	}
}

func TestResumeQueueOverflowReleasesSeat(t *testing.T) {
	s := start(t, signal.Config{Rate: rate.Inf, ResumeQueue: 4})
	a, b, created, _ := resumePair(t, s, "of")
	a.Abort()
	eventually(t, "the drop", func() bool { _, n, _ := health(t, s); return n == 1 })
	for i := range 5 {
		b.sendf(`{"type":"message","data":%d}`, i)
	}
	if m := b.expect(signal.TypePeerLeft); m.ID != created.ID || m.Reason != signal.ReasonTimeout {
		t.Fatalf("peer-left %+v, want timeout", m)
	}
	c := dial(t, s)
	c.sendf(`{"type":"join","room":"of","resume":%q,"ref":"x"}`, created.Resume)
	c.expectError(signal.CodeResumeFailed, "x")
}

func TestJoinTokens(t *testing.T) {
	secret := []byte("s3cret")
	s := start(t, signal.Config{AuthSecret: secret, MaxCapacity: 8})
	mint := func(room, sub string, capacity int, ttl time.Duration) string {
		t.Helper()
		tok, err := signal.MintToken(secret, room, sub, capacity, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sign := func(claims jwt.MapClaims, key []byte, method jwt.SigningMethod) string {
		t.Helper()
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	exp := time.Now().Add(time.Hour).Unix()
	bad := map[string]string{
		"missing":        "",
		"garbage":        "not.a.jwt",
		"bad signature":  sign(jwt.MapClaims{"room": "auth", "exp": exp}, []byte("other"), jwt.SigningMethodHS256),
		"wrong room":     mint("elsewhere", "", 0, time.Hour),
		"expired":        sign(jwt.MapClaims{"room": "auth", "exp": time.Now().Add(-time.Minute).Unix()}, secret, jwt.SigningMethodHS256),
		"no exp":         sign(jwt.MapClaims{"room": "auth"}, secret, jwt.SigningMethodHS256),
		"alg none":       "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + base64.RawURLEncoding.EncodeToString([]byte(`{"room":"auth","exp":9999999999}`)) + ".",
		"HS512":          sign(jwt.MapClaims{"room": "auth", "exp": exp}, secret, jwt.SigningMethodHS512),
		"sub mismatch":   mint("auth", "alice", 0, time.Hour),
		"cap too small":  mint("auth", "", 2, time.Hour),
		"token a number": "",
	}
	c := dial(t, s)
	i := 0
	for name, tok := range bad {
		frame := fmt.Sprintf(`{"type":"join","room":"auth","id":"bob","capacity":3,"token":%q,"ref":%q}`, tok, name)
		if name == "token a number" {
			frame = fmt.Sprintf(`{"type":"join","room":"auth","token":7,"ref":%q}`, name)
		}
		if i == 4 { // a fresh connection every four failures, below the limit of five
			c = dial(t, s)
			i = 0
		}
		i++
		c.send(frame)
		c.expectError(signal.CodeUnauthorized, name)
	}

	// Good tokens: exact room, wildcard, sub grants the id, cap allows the capacity.
	a := dial(t, s)
	a.sendf(`{"type":"join","room":"auth","capacity":3,"token":%q}`, mint("auth", "alice", 3, time.Hour))
	if m := a.expect(signal.TypeCreated); m.ID != "alice" || m.Capacity != 3 {
		t.Fatalf("created %+v, want id alice (from sub) and capacity 3", m)
	}
	b := dial(t, s)
	b.sendf(`{"type":"join","room":"auth","token":%q}`, mint("*", "", 0, time.Hour))
	b.expect(signal.TypeJoined)
	a.expect(signal.TypePeerJoined)

	// Five failures close the connection with 1008.
	d := dial(t, s)
	for range 5 {
		d.send(`{"type":"join","room":"auth","ref":"nope"}`)
		d.expectError(signal.CodeUnauthorized, "nope")
	}
	if ce := d.closed(); ce == nil || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("close = %v, want 1008", ce)
	}
}

func TestMintTokenValidates(t *testing.T) {
	for _, tt := range []struct {
		secret, room, sub string
		ttl               time.Duration
	}{
		{"", "r", "", time.Hour},
		{"s", "", "", time.Hour},
		{"s", "r", "bad id", time.Hour},
		{"s", "r", "", 0},
	} {
		if _, err := signal.MintToken([]byte(tt.secret), tt.room, tt.sub, 0, tt.ttl); err == nil {
			t.Errorf("MintToken(%+v) succeeded", tt)
		}
	}
}

func TestICEServersAndTURNCredentials(t *testing.T) {
	stun := signal.ICEServer{URLs: []string{"stun:127.0.0.1:3478"}}
	turnURLs := []string{"turn:127.0.0.1:3478?transport=udp"}
	t.Run("ephemeral", func(t *testing.T) {
		s := start(t, signal.Config{ICEServers: []signal.ICEServer{stun}, TURN: signal.TURNConfig{URLs: turnURLs, Secret: "turnsecret", TTL: time.Hour}})
		c := dial(t, s)
		before := time.Now()
		m := c.join("ice")
		if len(m.ICEServers) != 2 || m.ICEServers[0].URLs[0] != stun.URLs[0] {
			t.Fatalf("iceServers %+v", m.ICEServers)
		}
		turn := m.ICEServers[1]
		expiry, id, ok := strings.Cut(turn.Username, ":")
		if !ok || id != m.ID {
			t.Fatalf("username %q, want <expiry>:%s", turn.Username, m.ID)
		}
		unix, err := strconv.ParseInt(expiry, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if lo, hi := before.Add(time.Hour).Unix(), time.Now().Add(time.Hour).Unix(); unix < lo || unix > hi {
			t.Fatalf("expiry %d, want issue time + 1h in [%d, %d]", unix, lo, hi)
		}
		mac := hmac.New(sha1.New, []byte("turnsecret"))
		mac.Write([]byte(turn.Username))
		if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); turn.Credential != want {
			t.Fatalf("credential %q, want %q", turn.Credential, want)
		}
		// Each joiner gets its own.
		d := dial(t, s)
		if m2 := d.join("ice"); m2.ICEServers[1].Username == turn.Username {
			t.Fatal("second joiner got the same TURN username")
		}
	})
	t.Run("static", func(t *testing.T) {
		s := start(t, signal.Config{TURN: signal.TURNConfig{URLs: turnURLs, Username: "u", Credential: "p"}})
		m := dial(t, s).join("ice")
		if len(m.ICEServers) != 1 || m.ICEServers[0].Username != "u" || m.ICEServers[0].Credential != "p" {
			t.Fatalf("iceServers %+v", m.ICEServers)
		}
	})
}

func apiDo(t *testing.T, s *signaltest.Server, method, path, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.HTTP.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body
}

func TestAdminAPI(t *testing.T) {
	t.Run("off without a token", func(t *testing.T) {
		s := start(t, signal.Config{})
		for _, path := range []string{"/api/rooms", "/api/rooms/x"} {
			if code, _ := apiDo(t, s, http.MethodGet, path, "anything"); code != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", path, code)
			}
		}
	})
	s := start(t, signal.Config{AdminToken: "adm1n", MaxCapacity: 4})
	for _, tok := range []string{"", "wrong"} {
		if code, _ := apiDo(t, s, http.MethodGet, "/api/rooms", tok); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", tok, code)
		}
	}
	a, b, c := dial(t, s), dial(t, s), dial(t, s)
	a.send(`{"type":"join","room":"a/b room","capacity":3}`)
	aid := a.expect(signal.TypeCreated).ID
	bid := b.join("a/b room").ID
	a.expect(signal.TypePeerJoined)
	cid := c.join("a/b room").ID
	a.expect(signal.TypePeerJoined)
	b.expect(signal.TypePeerJoined)

	code, body := apiDo(t, s, http.MethodGet, "/api/rooms", "adm1n")
	rooms, _ := body["rooms"].([]any)
	if code != http.StatusOK || len(rooms) != 1 {
		t.Fatalf("GET /api/rooms: %d %v", code, body)
	}
	if r := rooms[0].(map[string]any); r["room"] != "a/b room" || r["members"] != 3.0 || r["capacity"] != 3.0 {
		t.Fatalf("room %v", r)
	}
	code, body = apiDo(t, s, http.MethodGet, "/api/rooms/a%2Fb%20room", "adm1n")
	peers, _ := body["peers"].([]any)
	if code != http.StatusOK || len(peers) != 3 {
		t.Fatalf("GET room: %d %v", code, body)
	}
	p0 := peers[0].(map[string]any)
	if p0["id"] != aid || !strings.HasPrefix(p0["remote"].(string), "127.0.0.1:") || p0["joined"] == "" {
		t.Fatalf("member %v", p0)
	}
	if code, _ := apiDo(t, s, http.MethodGet, "/api/rooms/nope", "adm1n"); code != http.StatusNotFound {
		t.Fatalf("unknown room: %d", code)
	}

	// Kick c: it gets error kicked and close 1008; the others see peer-left kicked.
	if code, _ := apiDo(t, s, http.MethodDelete, "/api/rooms/a%2Fb%20room/peers/"+cid, "adm1n"); code != http.StatusOK {
		t.Fatalf("kick: %d", code)
	}
	c.expectError(signal.CodeKicked, "")
	if ce := c.closed(); ce == nil || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("kicked close = %v", ce)
	}
	for _, o := range []*tc{a, b} {
		if m := o.expect(signal.TypePeerLeft); m.ID != cid || m.Reason != signal.ReasonKicked {
			t.Fatalf("peer-left %+v", m)
		}
	}
	if code, _ := apiDo(t, s, http.MethodDelete, "/api/rooms/a%2Fb%20room/peers/"+cid, "adm1n"); code != http.StatusNotFound {
		t.Fatalf("second kick: %d, want 404", code)
	}

	// Close the room: members get room-closed and are in no room; they stay connected.
	if code, _ := apiDo(t, s, http.MethodDelete, "/api/rooms/a%2Fb%20room", "adm1n"); code != http.StatusOK {
		t.Fatalf("close room: %d", code)
	}
	a.expectError(signal.CodeRoomClosed, "")
	if m := b.expect(signal.TypePeerLeft); m.ID != aid || m.Reason != signal.ReasonRoomClosed {
		t.Fatalf("peer-left %+v", m)
	}
	b.expectError(signal.CodeRoomClosed, "")
	_ = bid
	a.send(`{"type":"leave","ref":"l"}`)
	a.expectError(signal.CodeNotJoined, "l")
	if _, _, rooms := health(t, s); rooms != 0 {
		t.Fatalf("rooms = %d after close", rooms)
	}
}

func scrape(t *testing.T, s *signaltest.Server) string {
	t.Helper()
	resp, err := http.Get(s.HTTP.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	return string(b)
}

func TestMetrics(t *testing.T) {
	s := start(t, signal.Config{})
	a, b, created, _ := resumePair(t, s, "m")
	dial(t, s).send(`{"type":"join","room":"m","ref":"f"}`)
	a.send(`{"type":"message","data":1}`)
	b.expect(signal.TypeMessage)
	a.send(`{"type":"bogus","ref":"x"}`)
	a.expectError(signal.CodeUnknownType, "x")
	a.Abort()
	eventually(t, "the drop", func() bool { _, n, _ := health(t, s); return n == 2 })
	dial(t, s).resume("m", created.Resume, nil)
	eventually(t, "the full join to count", func() bool { return strings.Contains(scrape(t, s), `rendezvous_joins_total{result="full"} 1`) })
	text := scrape(t, s)
	for _, want := range []string{
		`rendezvous_connections_open 3`,
		`rendezvous_rooms_open 1`,
		`rendezvous_joins_total{result="created"} 1`,
		`rendezvous_joins_total{result="joined"} 1`,
		`rendezvous_joins_total{result="resumed"} 1`,
		`rendezvous_messages_relayed_total{type="message"} 1`,
		`rendezvous_errors_total{code="unknown-type"} 1`,
		`rendezvous_connections_closed_total{reason="disconnected"} 1`,
		`rendezvous_resumes_total{result="ok"} 1`,
		`rendezvous_relay_latency_seconds_count 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	off := start(t, signal.Config{DisableMetrics: true})
	resp, err := http.Get(off.HTTP.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("metrics off: %s", resp.Status)
	}
}

// A connection waiting to take over a seat cannot join elsewhere meanwhile.
func TestResumeThenJoinElsewhere(t *testing.T) {
	s := start(t, signal.Config{})
	_, _, created, _ := resumePair(t, s, "two-rooms")
	a2 := dial(t, s)
	a2.sendf(`{"type":"join","room":"two-rooms","resume":%q}`, created.Resume)
	a2.send(`{"type":"join","room":"other","ref":"second"}`)
	var sawResumed, sawRefusal bool
	for !sawResumed || !sawRefusal {
		m := a2.next()
		switch {
		case m.Type == signal.TypeJoined && m.Resumed:
			sawResumed = true
		case m.Type == signal.TypeError && m.Code == signal.CodeAlreadyJoined && m.Ref == "second":
			sawRefusal = true
		case m.Type == signal.TypeCreated:
			t.Fatalf("joined a second room while resuming: %+v", m)
		}
	}
}

// A member removed by an operator while it was away learns why when it
// tries to resume, instead of coming back as a newcomer.
func TestResumeAfterKickOrClose(t *testing.T) {
	for _, tt := range []struct {
		name, path, code string
	}{
		{"kicked", "/peers/", signal.CodeKicked},
		{"room closed", "", signal.CodeRoomClosed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, signal.Config{AdminToken: "t"})
			a, _, created, _ := resumePair(t, s, "k")
			a.Abort()
			eventually(t, "the drop", func() bool { _, n, _ := health(t, s); return n == 1 })
			path := "/api/rooms/k"
			if tt.path != "" {
				path += tt.path + created.ID
			}
			if code, _ := apiDo(t, s, http.MethodDelete, path, "t"); code != http.StatusOK {
				t.Fatalf("DELETE %s: %d", path, code)
			}
			a2 := dial(t, s)
			a2.sendf(`{"type":"join","room":"k","resume":%q,"ref":"r"}`, created.Resume)
			a2.expectError(tt.code, "r")
		})
	}
}

func TestStaticFilesAllowCrossOriginImport(t *testing.T) {
	s := start(t, signal.Config{Files: fstest.MapFS{"signal.js": {Data: []byte("export {}")}}})
	resp, err := http.Get(s.HTTP.URL + "/signal.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%s, Access-Control-Allow-Origin %q", resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// What a replaced connection sends until it learns it was replaced is
// still read and relayed, for up to a second, before the seat moves.
func TestResumeReplacingGhostKeepsItsLastFrames(t *testing.T) {
	s := start(t, signal.Config{})
	ghost := rawDial(t, s, nil)
	ghost.SetCloseHandler(func(int, string) error { return nil }) // do not answer the close
	created := rawJoin(t, ghost, "gf")
	b := dial(t, s)
	b.join("gf")
	a2 := dial(t, s)
	a2.sendf(`{"type":"join","room":"gf","resume":%q}`, created.Resume)
	// The ghost reads on until the server's 4001, then sends more.
	for {
		_, _, err := ghost.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != signal.CloseReplaced {
				t.Fatalf("ghost closed with %d", ce.Code)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if err := ghost.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"message","data":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if m := b.expect(signal.TypeMessage); string(m.Data) != strconv.Itoa(i) || m.From != created.ID {
			t.Fatalf("got %+v, want message %d from %s", m, i, created.ID)
		}
	}
	if j := a2.next(); j.Type != signal.TypeJoined || !j.Resumed {
		t.Fatalf("resume: %+v", j)
	}
	b.sync() // no peer-left, no peer-joined
}

// tamper changes the last two characters of a token.
func tamper(token string) string {
	suffix := "AA"
	if strings.HasSuffix(token, suffix) {
		suffix = "BB"
	}
	return token[:len(token)-2] + suffix
}
