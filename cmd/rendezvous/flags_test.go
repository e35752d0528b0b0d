package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/cmd/internal/flagenv"
	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio/siotest"
)

// exitTimeout bounds how long run may take to exit: after bad flags, or
// once its context is cancelled (more than the default -shutdown-timeout).
const exitTimeout = 15 * time.Second

// soon bounds the wait for what a setting brings about. The rows set
// their timeouts to a fraction of a second, and the defaults they are
// told apart from are 10 s or more.
const soon = 5 * time.Second

// oneGiB, as -conn-buffer-bytes, lets a connection hold a whole flood.
const oneGiB = "1073741824"

// setting is one flag and its value. A row gives its settings either on
// the command line or as RENDEZVOUS_ variables.
type setting struct{ flag, value string }

// TestFlagsReachServer checks, for each flag whose effect can be seen from
// outside, that it reaches the server's behaviour, given on the command
// line and given as its environment variable: each row starts the
// command through run with its settings and observes the effect over
// HTTP or WebSocket, an effect the default would not have.
func TestFlagsReachServer(t *testing.T) {
	certFile, keyFile, certPool := writeCert(t)
	siteDir, page := writeSite(t)
	bundle, bundleBody := writeBundle(t)
	for _, tt := range []struct {
		name  string
		set   []setting
		check func(t *testing.T, ctx context.Context, s *testServer)
	}{
		{"admin-token", []setting{{"admin-token", "T"}}, checkAdminToken},
		{"origins", []setting{{"origins", "https://app.example.org"}}, checkOrigins},
		{"resume-window 0", []setting{{"resume-window", "0"}}, checkResumeOff},
		{"resume-window", []setting{{"resume-window", "300ms"}}, checkResumeWindow},
		{"capacity", []setting{{"capacity", "3"}}, checkCapacity},
		{"max-capacity", []setting{{"max-capacity", "20"}}, checkMaxCapacity},
		{"max-message-bytes", []setting{{"max-message-bytes", "1024"}}, checkMaxMessageBytes},
		{"rate and burst", []setting{{"rate", "0.1"}, {"burst", "3"}}, checkRateAndBurst},
		{"rate 0", []setting{{"rate", "0"}, {"burst", "1"}}, checkRateOff},
		{"send-queue", []setting{{"send-queue", "2"}, {"conn-buffer-bytes", oneGiB}, {"rate", "0"}}, checkFloodDropped},
		{"conn-buffer-bytes", []setting{{"conn-buffer-bytes", oneGiB}, {"rate", "0"}, {"write-timeout", "1m"}}, checkFloodDelivered},
		{"buffer-budget", []setting{{"buffer-budget", "1048576"}, {"conn-buffer-bytes", oneGiB}, {"rate", "0"}}, checkFloodDropped},
		{"write-timeout", []setting{{"write-timeout", "1s"}, {"conn-buffer-bytes", oneGiB}, {"rate", "0"}}, checkWriteTimeout},
		{"ping-interval and pong-timeout", []setting{{"ping-interval", "100ms"}, {"pong-timeout", "500ms"}}, checkPingPong},
		{"max-conns", []setting{{"max-conns", "1"}}, checkSecondUpgrade(http.StatusServiceUnavailable)},
		{"max-conns-per-ip", []setting{{"max-conns-per-ip", "1"}}, checkSecondUpgrade(http.StatusTooManyRequests)},
		{"max-conns-per-ip 0", []setting{{"max-conns-per-ip", "0"}, {"upgrade-rate", "0"}}, checkConnsPerIPOff},
		{"upgrade-rate and upgrade-burst", []setting{{"upgrade-rate", "0.01"}, {"upgrade-burst", "2"}}, checkUpgradeRate},
		{"upgrade-rate 0", []setting{{"upgrade-rate", "0"}, {"upgrade-burst", "1"}}, checkUpgradeRateOff},
		{"join-timeout", []setting{{"join-timeout", "200ms"}}, checkJoinTimeout},
		{"message-timeout", []setting{{"message-timeout", "200ms"}}, checkMessageTimeout},
		{"read-timeout", []setting{{"read-timeout", "200ms"}}, checkReadTimeout},
		{"idle-timeout", []setting{{"idle-timeout", "200ms"}}, checkIdleTimeout},
		{"max-header-bytes", []setting{{"max-header-bytes", "1024"}}, checkMaxHeaderBytes},
		{"shutdown-timeout", []setting{{"shutdown-timeout", "300ms"}, {"conn-buffer-bytes", oneGiB}, {"rate", "0"}}, checkShutdownTimeout},
		{"auth-secret", []setting{{"auth-secret", "s3cret"}}, checkAuthSecret},
		{"client-log", []setting{{"client-log", "true"}}, checkClientLog},
		{"metrics false", []setting{{"metrics", "false"}}, checkMetricsOff},
		{"stun", []setting{{"stun", "stun:a.example.org:3478"}, {"stun", "stun:b.example.org:3478"}}, checkSTUN},
		{"turn, turn-secret and turn-ttl", []setting{{"turn", "turn:turn.example.org:3478?transport=udp"}, {"turn-secret", "S"}, {"turn-ttl", "1h"}}, checkTURNSecret},
		{"turn-user and turn-pass", []setting{{"turn", "turn:turn.example.org:3478"}, {"turn-user", "u"}, {"turn-pass", "p"}}, checkTURNStatic},
		{"tls-cert and tls-key", []setting{{"tls-cert", certFile}, {"tls-key", keyFile}}, checkTLS(certPool)},
		{"pprof", []setting{{"pprof", "127.0.0.1:0"}}, checkPprof},
		{"log-format", []setting{{"log-format", "json"}}, checkLogFormat},
		{"log-level", []setting{{"log-level", "debug"}}, checkLogLevel},
		{"socketio false", []setting{{"socketio", "false"}}, checkSocketIOOff},
		{"socketio-client", []setting{{"socketio-client", bundle}}, checkSocketIOClient(bundleBody)},
		{"static", []setting{{"static", siteDir}}, checkStatic(page)},
	} {
		for _, via := range []string{"flag", "env"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				t.Parallel()
				var args []string
				env := map[string]string{}
				for _, s := range tt.set {
					if via == "flag" {
						args = append(args, "-"+s.flag+"="+s.value)
						continue
					}
					name := flagenv.Name(envPrefix, s.flag)
					if env[name] != "" {
						env[name] += "," // a repeatable flag
					}
					env[name] += s.value
				}
				s := startServer(t, args, env)
				ctx, cancel := context.WithTimeout(context.Background(), 2*exitTimeout)
				defer cancel()
				tt.check(t, ctx, s)
			})
		}
	}
}

// checkAdminToken: the admin API answers the token, and refuses another.
func checkAdminToken(t *testing.T, ctx context.Context, s *testServer) {
	if code, body := get(t, ctx, s.url("/api/rooms"), http.Header{"Authorization": {"Bearer T"}}); code != http.StatusOK {
		t.Errorf("GET /api/rooms with the token: %d %s, want 200 (without -admin-token it is 404)", code, body)
	}
	if code, _ := get(t, ctx, s.url("/api/rooms"), http.Header{"Authorization": {"Bearer U"}}); code != http.StatusUnauthorized {
		t.Errorf("GET /api/rooms with another token: %d, want 401", code)
	}
}

// checkOrigins: a listed origin may connect besides the server's own; an
// unlisted one may not.
func checkOrigins(t *testing.T, ctx context.Context, s *testServer) {
	for _, tt := range []struct {
		origin string
		want   int
	}{
		{"https://app.example.org", http.StatusSwitchingProtocols},
		{"http://" + s.addr, http.StatusSwitchingProtocols},
		{"https://evil.example.org", http.StatusForbidden},
	} {
		if code := upgrade(t, ctx, s, http.Header{"Origin": {tt.origin}}); code != tt.want {
			t.Errorf("upgrade from origin %s: HTTP %d, want %d", tt.origin, code, tt.want)
		}
		want := map[bool]int{true: http.StatusOK, false: http.StatusForbidden}[tt.want == http.StatusSwitchingProtocols]
		if code := sioHandshake(t, ctx, s, http.Header{"Origin": {tt.origin}}); code != want {
			t.Errorf("Socket.IO handshake from origin %s: HTTP %d, want %d", tt.origin, code, want)
		}
	}
}

// checkResumeOff: with -resume-window 0, a member whose connection drops
// leaves at once, and its resume token (if created carries one) does not
// take the seat back.
func checkResumeOff(t *testing.T, ctx context.Context, s *testServer) {
	a := dial(t, ctx, s)
	created := join(t, ctx, a, "r", &signal.JoinOptions{ID: "a"})
	b := dial(t, ctx, s)
	join(t, ctx, b, "r", &signal.JoinOptions{ID: "b"})
	a.Abort()
	soonCtx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	if left := next(t, soonCtx, b, signal.TypePeerLeft); left.ID != "a" || left.Reason != signal.ReasonDisconnected {
		t.Errorf("peer-left %+v, want a disconnected", left)
	}
	if created.Resume == "" {
		return
	}
	received := a.Received()
	_, err := dial(t, ctx, s).Join(ctx, "r", &signal.JoinOptions{Resume: created.Resume, Received: &received})
	if !errors.Is(err, &signal.Error{Code: signal.CodeResumeFailed}) {
		t.Errorf("resume with -resume-window 0: %v, want resume-failed", err)
	}
}

// checkResumeWindow: a dropped member's seat is held for the window (300
// ms here, not the default 15 s), then released.
func checkResumeWindow(t *testing.T, ctx context.Context, s *testServer) {
	a := dial(t, ctx, s)
	if created := join(t, ctx, a, "r", &signal.JoinOptions{ID: "a"}); created.Resume == "" {
		t.Errorf("created carries no resume token")
	}
	b := dial(t, ctx, s)
	join(t, ctx, b, "r", &signal.JoinOptions{ID: "b"})
	a.Abort()
	dropped := time.Now()
	soonCtx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	next(t, soonCtx, b, signal.TypePeerLeft)
	if held := time.Since(dropped); held < 300*time.Millisecond {
		t.Errorf("the seat was released after %s, within the resume window of 300ms", held)
	}
}

func checkCapacity(t *testing.T, ctx context.Context, s *testServer) {
	if created := join(t, ctx, dial(t, ctx, s), "r", nil); created.Capacity != 3 {
		t.Errorf("created with capacity %d, want 3", created.Capacity)
	}
}

func checkMaxCapacity(t *testing.T, ctx context.Context, s *testServer) {
	if created := join(t, ctx, dial(t, ctx, s), "r", &signal.JoinOptions{Capacity: 20}); created.Capacity != 20 {
		t.Errorf("created with capacity %d, want 20", created.Capacity)
	}
}

// checkMaxMessageBytes: a 2000-byte frame closes the connection with 1009;
// a Socket.IO polling body of 3000 bytes (the limit + 1 KiB of framing is
// 2048) gets HTTP 413, and a message of 2000 bytes over the WebSocket
// ends the Socket.IO client's connection, with the error too-big.
func checkMaxMessageBytes(t *testing.T, ctx context.Context, s *testServer) {
	if code := sioPostStatus(t, ctx, s, sioMessage(3000)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("Socket.IO polling body of 3000 bytes: HTTP %d, want 413", code)
	}
	a := dialSIO(t, ctx, s, "")
	a.CreateOrJoin("big")
	a.Send(sioMessage(2000))
	a.ExpectError("too-big")
	a.ExpectDisconnect()

	c := dial(t, ctx, s)
	join(t, ctx, c, "r", nil)
	if err := c.SendRaw(messageFrame("", 2000)); err != nil {
		t.Fatal(err)
	}
	soonCtx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	waitEnd(t, soonCtx, c)
	if ce, ok := c.CloseError(); !ok || ce.Code != websocket.CloseMessageTooBig {
		t.Errorf("connection ended with %v, want close code 1009", ce)
	}
}

// checkRateAndBurst: with -rate 0.1 -burst 3, the join and two messages
// pass at once; a third message, sent later than a 50/s bucket takes to
// refill, does not.
func checkRateAndBurst(t *testing.T, ctx context.Context, s *testServer) {
	a, b := pair(t, ctx, s)
	for range 2 {
		if err := a.SendRaw(messageFrame("b", 10)); err != nil {
			t.Fatal(err)
		}
		next(t, ctx, b, signal.TypeMessage)
	}
	time.Sleep(50 * time.Millisecond) // not synchronisation: the default rate's bucket would refill
	if err := a.Send(&signal.Message{Type: signal.TypeMessage, To: "b", Data: json.RawMessage(`1`), Ref: "third"}); err != nil {
		t.Fatal(err)
	}
	soonCtx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	if e := next(t, soonCtx, a, signal.TypeError); e.Code != signal.CodeRateLimited || e.Ref != "third" {
		t.Errorf("error %+v, want rate-limited for the third message", e)
	}
}

// checkRateOff: with -rate 0 a burst of 1 does not matter: 20 messages at
// once all pass.
func checkRateOff(t *testing.T, ctx context.Context, s *testServer) {
	a, b := pair(t, ctx, s)
	for range 20 {
		if err := a.SendRaw(messageFrame("b", 10)); err != nil {
			t.Fatal(err)
		}
	}
	soonCtx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	for range 20 {
		next(t, soonCtx, b, signal.TypeMessage)
	}
}

// checkFloodDropped: a member that reads nothing is dropped before a flood
// of 200 messages has reached it.
func checkFloodDropped(t *testing.T, ctx context.Context, s *testServer) {
	receiver, _ := flood(t, ctx, s) // the sender may be dropped too
	if n := receive(t, receiver); n == floodCount {
		t.Errorf("the receiver got all %d messages; want it dropped as a slow consumer", n)
	}
}

// checkFloodDelivered: a member that reads nothing while a flood of 200
// messages (12 MB) comes gets them all once it reads. (The row sets a long
// -write-timeout, so that a slow machine does not matter.)
func checkFloodDelivered(t *testing.T, ctx context.Context, s *testServer) {
	if n := receive(t, floodAll(t, ctx, s)); n != floodCount {
		t.Errorf("the receiver got %d of %d messages, then its connection ended", n, floodCount)
	}
}

// checkWriteTimeout: a member that reads nothing is disconnected once a
// write has been blocked for -write-timeout (1 s, not the default 10 s).
func checkWriteTimeout(t *testing.T, ctx context.Context, s *testServer) {
	floodAll(t, ctx, s)
	soonCtx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var h struct{ Connections int }
		_, body := get(t, soonCtx, s.url("/healthz"), nil)
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("healthz %q: %v", body, err)
		}
		if h.Connections == 1 {
			return // the sender's
		}
		select {
		case <-tick.C:
		case <-soonCtx.Done():
			t.Fatalf("after %s the server still has %d connections; want the receiver's closed", soon, h.Connections)
		}
	}
}

// checkPingPong: the server pings at -ping-interval and closes a
// connection that does not answer within -pong-timeout.
func checkPingPong(t *testing.T, ctx context.Context, s *testServer) {
	ws := rawDial(t, ctx, s, nil)
	pinged := false
	ws.SetPingHandler(func(string) error { pinged = true; return nil }) // no pong
	_ = ws.SetReadDeadline(time.Now().Add(soon))
	_, _, err := ws.ReadMessage()
	if isTimeout(err) {
		t.Fatalf("the connection is still open after %s without pongs (pinged: %v)", soon, pinged)
	}
	if !pinged {
		t.Errorf("the connection ended (%v) without a ping", err)
	}
}

// checkSecondUpgrade returns a check that one WebSocket connection opens
// and a second is refused with the status want, and that so are a first
// and a second Socket.IO session (counted apart).
func checkSecondUpgrade(want int) func(*testing.T, context.Context, *testServer) {
	return func(t *testing.T, ctx context.Context, s *testServer) {
		if code := upgrade(t, ctx, s, nil); code != http.StatusSwitchingProtocols {
			t.Fatalf("first upgrade: HTTP %d", code)
		}
		if code := upgrade(t, ctx, s, nil); code != want {
			t.Errorf("second upgrade: HTTP %d, want %d", code, want)
		}
		if code, _ := trySIO(t, ctx, s, "", nil); code != http.StatusSwitchingProtocols {
			t.Fatalf("first Socket.IO session: HTTP %d", code)
		}
		if code, _ := trySIO(t, ctx, s, "", nil); code != want {
			t.Errorf("second Socket.IO session: HTTP %d, want %d", code, want)
		}
	}
}

// checkConnsPerIPOff: with -max-conns-per-ip 0 one address may open more
// connections than the default 1000.
func checkConnsPerIPOff(t *testing.T, ctx context.Context, s *testServer) {
	codes := upgradeMany(t, ctx, s, signal.DefaultMaxConnsPerIP+1)
	if i := slices.IndexFunc(codes, func(c int) bool { return c != http.StatusSwitchingProtocols }); i >= 0 {
		t.Errorf("upgrade %d of %d: HTTP %d, want all to succeed", i+1, len(codes), codes[i])
	}
}

// checkUpgradeRate: with -upgrade-rate 0.01 -upgrade-burst 2, two upgrades
// pass; a third, later than a 200/s bucket takes to refill, does not.
func checkUpgradeRate(t *testing.T, ctx context.Context, s *testServer) {
	for i := range 2 {
		if code := upgrade(t, ctx, s, nil); code != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %d: HTTP %d", i+1, code)
		}
	}
	time.Sleep(50 * time.Millisecond) // not synchronisation: the default rate's bucket would refill
	if code := upgrade(t, ctx, s, nil); code != http.StatusTooManyRequests {
		t.Errorf("third upgrade: HTTP %d, want 429", code)
	}
}

// checkUpgradeRateOff: with -upgrade-rate 0 a burst of 1 does not matter:
// 50 upgrades at once all pass.
func checkUpgradeRateOff(t *testing.T, ctx context.Context, s *testServer) {
	codes := upgradeMany(t, ctx, s, 50)
	if i := slices.IndexFunc(codes, func(c int) bool { return c != http.StatusSwitchingProtocols }); i >= 0 {
		t.Errorf("upgrade %d of %d: HTTP %d, want all to succeed", i+1, len(codes), codes[i])
	}
}

// checkJoinTimeout: a connection that does not join is closed.
func checkJoinTimeout(t *testing.T, ctx context.Context, s *testServer) {
	soonCtx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	a := dialSIO(t, ctx, s, "")
	waitEnd(t, soonCtx, dial(t, ctx, s))
	a.WithContext(soonCtx).ExpectError("closed")
	a.WithContext(soonCtx).ExpectDisconnect()
}

// checkMessageTimeout: a connection whose message has begun (a first
// fragment) but does not go on is closed.
func checkMessageTimeout(t *testing.T, ctx context.Context, s *testServer) {
	ws := rawDial(t, ctx, s, nil)
	// A text frame without FIN: "hello", masked with a zero key.
	if _, err := ws.NetConn().Write([]byte{0x01, 0x80 | 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(soon))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if isTimeout(err) {
				t.Fatalf("the connection is still open %s after an unfinished message", soon)
			}
			return
		}
	}
}

// checkReadTimeout: an HTTP request whose headers do not finish is given
// up.
func checkReadTimeout(t *testing.T, ctx context.Context, s *testServer) {
	conn := tcpDial(t, ctx, s)
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(soon))
	if _, err := conn.Read(make([]byte, 512)); isTimeout(err) {
		t.Errorf("the server still waits for the headers after %s", soon)
	}
}

// checkIdleTimeout: a keep-alive connection is closed when idle.
func checkIdleTimeout(t *testing.T, ctx context.Context, s *testServer) {
	conn := tcpDial(t, ctx, s)
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(soon))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := br.ReadByte(); isTimeout(err) {
		t.Errorf("the idle connection is still open after %s", soon)
	}
}

// checkMaxHeaderBytes: a request with 8 KB of headers is refused (net/http
// allows 4 KiB more than the limit). The request is written on a
// connection of its own, and the answer read at once: the server resets
// the connection soon after it answers, as it has not read the request
// whole.
func checkMaxHeaderBytes(t *testing.T, ctx context.Context, s *testServer) {
	conn := tcpDial(t, ctx, s)
	_ = conn.SetDeadline(time.Now().Add(soon))
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 8000)+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("8 KB of headers: %s, want 431", resp.Status)
	}
}

// checkShutdownTimeout: stopped, the server waits at most
// -shutdown-timeout for a client it cannot even send the close frame to,
// as it reads nothing (the default would wait for -write-timeout, 10 s; a
// client that only does not answer the close frame is given up after a
// second whatever the timeout).
func checkShutdownTimeout(t *testing.T, ctx context.Context, s *testServer) {
	floodAll(t, ctx, s)
	s.stop()
	select {
	case <-s.exited:
	case <-time.After(soon):
		t.Fatalf("the server still waits for its client %s after it was stopped", soon)
	}
}

// checkAuthSecret: join needs a token signed with the secret.
func checkAuthSecret(t *testing.T, ctx context.Context, s *testServer) {
	_, err := dial(t, ctx, s).Join(ctx, "r", nil)
	if !errors.Is(err, &signal.Error{Code: signal.CodeUnauthorized}) {
		t.Errorf("join without a token: %v, want unauthorized", err)
	}
	token, err := signal.MintToken([]byte("s3cret"), "r", "", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	join(t, ctx, dial(t, ctx, s), "r", &signal.JoinOptions{Token: token})

	// Socket.IO: the token in the auth payload, or in the query.
	a := dialSIO(t, ctx, s, "")
	a.Emit("create or join", `"s"`)
	a.ExpectError(signal.CodeUnauthorized)
	stoken, err := signal.MintToken([]byte("s3cret"), "s", "", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ev := dialSIO(t, ctx, s, `{"token":"`+stoken+`"}`).CreateOrJoin("s"); ev.Name != "created" {
		t.Errorf("Socket.IO join with the token in auth: %s, want created", ev)
	}
	_, q := trySIO(t, ctx, s, "token="+stoken, nil)
	q.Send("40")
	q.Next()
	if ev := q.CreateOrJoin("s"); ev.Name != "joined" {
		t.Errorf("Socket.IO join with the token in the query: %s, want joined", ev)
	}
}

// checkClientLog: the server tells a client what it did for it.
func checkClientLog(t *testing.T, ctx context.Context, s *testServer) {
	c := dial(t, ctx, s)
	if err := c.Send(&signal.Message{Type: signal.TypeJoin, Room: "r"}); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(syncWith(t, ctx, c, "sync"), func(m *signal.Message) bool { return m.Type == signal.TypeLog }) {
		t.Errorf("no log message after join")
	}
	// The Socket.IO client gets them as the origin's log event.
	a := dialSIO(t, ctx, s, "")
	a.Emit("create or join", `"s"`)
	var got []siotest.Event
	for len(got) < 4 {
		ev := a.NextEvent()
		if ev.Name == "log" && strings.HasPrefix(ev.Arg(0), `["Message from server:",`) {
			return
		}
		got = append(got, ev)
	}
	t.Errorf("Socket.IO client: got %v, want a log event after create or join", got)
}

func checkMetricsOff(t *testing.T, ctx context.Context, s *testServer) {
	if code, _ := get(t, ctx, s.url("/metrics"), nil); code != http.StatusNotFound {
		t.Errorf("GET /metrics: HTTP %d, want 404", code)
	}
	if code, _ := get(t, ctx, s.url("/healthz"), nil); code != http.StatusOK {
		t.Errorf("GET /healthz: HTTP %d, want 200", code)
	}
}

func checkSTUN(t *testing.T, ctx context.Context, s *testServer) {
	created := join(t, ctx, dial(t, ctx, s), "r", nil)
	want := []string{"stun:a.example.org:3478", "stun:b.example.org:3478"}
	if !slices.ContainsFunc(created.ICEServers, func(ice signal.ICEServer) bool { return slices.Equal(ice.URLs, want) }) {
		t.Errorf("iceServers %+v, want one with %q", created.ICEServers, want)
	}
}

// checkTURNSecret: the TURN server comes with credentials made with the
// secret, valid for the TTL.
func checkTURNSecret(t *testing.T, ctx context.Context, s *testServer) {
	created := join(t, ctx, dial(t, ctx, s), "r", nil)
	ice := turnServer(t, created, "turn:turn.example.org:3478?transport=udp")
	expiry, id, _ := strings.Cut(ice.Username, ":")
	exp, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || id != created.ID {
		t.Fatalf("TURN username %q, want <expiry>:%s", ice.Username, created.ID)
	}
	if ttl := time.Until(time.Unix(exp, 0)); ttl < 59*time.Minute || ttl > 61*time.Minute {
		t.Errorf("TURN credentials valid for %s, want 1h", ttl)
	}
	mac := hmac.New(sha1.New, []byte("S"))
	mac.Write([]byte(ice.Username))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); ice.Credential != want {
		t.Errorf("TURN credential %q, want %q (made with the secret)", ice.Credential, want)
	}
}

func checkTURNStatic(t *testing.T, ctx context.Context, s *testServer) {
	created := join(t, ctx, dial(t, ctx, s), "r", nil)
	if ice := turnServer(t, created, "turn:turn.example.org:3478"); ice.Username != "u" || ice.Credential != "p" {
		t.Errorf("TURN credentials %q/%q, want u/p", ice.Username, ice.Credential)
	}
}

// checkTLS returns a check that the server speaks https with the
// certificate (made by writeCert, trusted by pool).
func checkTLS(pool *x509.CertPool) func(*testing.T, context.Context, *testServer) {
	return func(t *testing.T, ctx context.Context, s *testServer) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		defer client.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.addr+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("https: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET https://.../healthz: %s", resp.Status)
		}
	}
}

// checkPprof: the server logs where pprof listens, and it answers there.
func checkPprof(t *testing.T, ctx context.Context, s *testServer) {
	soonCtx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	rec := s.waitLog(t, soonCtx, func(r logRecord) bool { return r.attrs["msg"] == "pprof listening" })
	if code, _ := get(t, ctx, rec.attrs["url"], nil); code != http.StatusOK {
		t.Errorf("GET %s: HTTP %d", rec.attrs["url"], code)
	}
}

func checkLogFormat(t *testing.T, ctx context.Context, s *testServer) {
	if rec := s.waitLog(t, ctx, isListening); !rec.json {
		t.Errorf("the listening line is not JSON")
	}
}

// checkLogLevel: a connection is logged at debug level.
func checkLogLevel(t *testing.T, ctx context.Context, s *testServer) {
	c := dial(t, ctx, s)
	_ = c.Close()
	soonCtx, cancel := context.WithTimeout(ctx, soon)
	defer cancel()
	s.waitLog(t, soonCtx, func(r logRecord) bool { return r.attrs["level"] == "DEBUG" })
}
