package main

// The Socket.IO endpoint as the command serves it: the siotest client
// dialed to the test server, and the checks of the flags that concern the
// endpoint.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio/siotest"
)

// trySIO opens the Engine.IO WebSocket of s with the extra query (e.g.
// "token=x") and header, its waits bounded by ctx too; it returns the
// HTTP status of the upgrade, and the client once it has read the open
// packet. It is closed when the test ends.
func trySIO(t *testing.T, ctx context.Context, s *testServer, query string, header http.Header) (int, *siotest.Client) {
	t.Helper()
	c, code, err := siotest.TryDial(t, s.url(""), siotest.Options{Query: query, Header: header, Context: ctx})
	if err != nil && code == 0 {
		t.Fatal(err)
	}
	return code, c
}

// dialSIO opens a client and connects it to Socket.IO with auth (a JSON
// object or ""), failing unless the server accepts it.
func dialSIO(t *testing.T, ctx context.Context, s *testServer, auth string) *siotest.Client {
	t.Helper()
	code, c := trySIO(t, ctx, s, "", nil)
	if c == nil {
		t.Fatalf("Socket.IO WebSocket: HTTP %d", code)
	}
	if p := c.Connect(auth); !strings.HasPrefix(p, "40{") {
		t.Fatalf("connect: %q", p)
	}
	return c
}

// sioHandshake opens an Engine.IO polling session (the first request of
// every default client) with header, and returns the HTTP status.
func sioHandshake(t *testing.T, ctx context.Context, s *testServer, header http.Header) int {
	t.Helper()
	code, _ := get(t, ctx, s.url("/socket.io/?EIO=4&transport=polling"), header)
	return code
}

// getNoRedirect is get without following a redirect: it returns the
// status and the Location.
func getNoRedirect(t *testing.T, ctx context.Context, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestSocketIO runs the command with its defaults: the Socket.IO endpoint
// is on, the client bundle redirects to the CDN copy of the pinned
// version and the log says once how to serve it instead, a Socket.IO
// member and a protocol v1 member share a room, and at shutdown each
// hears that the other left for the shutdown, the Socket.IO client with
// the error "shutdown" and a disconnect.
func TestSocketIO(t *testing.T) {
	s := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*exitTimeout)
	defer cancel()

	if code := sioHandshake(t, ctx, s, nil); code != http.StatusOK {
		t.Errorf("Engine.IO handshake: HTTP %d", code)
	}
	code, loc := getNoRedirect(t, ctx, s.url("/socket.io/socket.io.js"))
	if want := "https://cdn.socket.io/" + socketio.ClientVersion + "/socket.io.min.js"; code != http.StatusFound || loc != want {
		t.Errorf("GET /socket.io/socket.io.js: %d to %q, want 302 to %s", code, loc, want)
	}
	hints := 0
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, "npm pack socket.io-client@"+socketio.ClientVersion) && strings.Contains(line, "-socketio-client") {
			hints++
		}
	}
	if hints != 1 {
		t.Errorf("the log says %d times how to serve the client bundle, want once; log:\n%s", hints, s.logs)
	}

	a := dialSIO(t, ctx, s, "")
	created := a.CreateOrJoin("mixed")
	if created.Name != socketio.EventCreated {
		t.Fatalf("got %s, want created", created)
	}
	sioID := created.Arg(1)
	v := dial(t, ctx, s)
	joined := join(t, ctx, v, "mixed", &signal.JoinOptions{ID: "v"})
	if len(joined.Peers) != 1 || `"`+joined.Peers[0]+`"` != sioID {
		t.Fatalf("joined %+v, want the Socket.IO member %s in peers", joined, sioID)
	}
	a.Expect(socketio.EventJoin, `"mixed"`)
	a.Expect(socketio.EventReady, `"mixed"`)
	a.Emit(socketio.EventMessage, `{"hello":"v1"}`)
	if m := next(t, ctx, v, signal.TypeMessage); string(m.Data) != `{"hello":"v1"}` || `"`+m.From+`"` != sioID {
		t.Errorf("v1 member got %+v", m)
	}
	if err := v.Send(&signal.Message{Type: signal.TypeMessage, Data: json.RawMessage(`"hi"`)}); err != nil {
		t.Fatal(err)
	}
	a.Expect(socketio.EventMessage, `"hi"`)

	s.stop()
	if left := next(t, ctx, v, signal.TypePeerLeft); `"`+left.ID+`"` != sioID || left.Reason != signal.ReasonShutdown {
		t.Errorf("v1 member got %+v, want peer-left shutdown for the Socket.IO member", left)
	}
	a.Expect(socketio.EventMessage, `"bye"`)
	a.ExpectError("shutdown")
	a.ExpectDisconnect()
	select {
	case <-s.exited:
	case <-ctx.Done():
		t.Fatal("the server did not exit")
	}
}

// TestGatewayConfig: the Socket.IO endpoint gets the server's limits; its
// protocol v1 connections wait for the server's pings longer than
// -ping-interval, whatever it is.
func TestGatewayConfig(t *testing.T) {
	fs, o := newFlagSet(&strings.Builder{})
	if err := parse(fs, []string{"-ping-interval", "2m", "-pong-timeout", "3m", "-max-conns-per-ip", "0",
		"-max-conns", "7", "-send-queue", "9", "-max-message-bytes", "1000", "-origins", "a.example.org", "-client-log"}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	cfg, err := o.config(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := o.gatewayConfig(cfg, nil)
	if g.V1ReadTimeout <= 2*time.Minute {
		t.Errorf("V1ReadTimeout %s: not above -ping-interval 2m, an idle Socket.IO client would be dropped", g.V1ReadTimeout)
	}
	if g.MaxSessionsPerIP >= 0 || g.MaxSessions != 7 || g.SendQueue != 9 || g.MaxMessageBytes != 1000 ||
		!g.ClientLog || len(g.AllowedOrigins) != 1 || g.AllowedOrigins[0] != "a.example.org" {
		t.Errorf("gateway config %+v", g)
	}
}

// checkSocketIOOff: with -socketio=false nothing is served under
// /socket.io/, and protocol v1 still is.
func checkSocketIOOff(t *testing.T, ctx context.Context, s *testServer) {
	for _, p := range []string{"/socket.io/?EIO=4&transport=polling", "/socket.io/socket.io.js"} {
		if code, _ := get(t, ctx, s.url(p), nil); code != http.StatusNotFound {
			t.Errorf("GET %s: HTTP %d, want 404", p, code)
		}
	}
	join(t, ctx, dial(t, ctx, s), "r", nil)
}

// checkSocketIOClient returns a check that /socket.io/socket.io.js serves
// the content of the -socketio-client file.
func checkSocketIOClient(body string) func(*testing.T, context.Context, *testServer) {
	return func(t *testing.T, ctx context.Context, s *testServer) {
		for _, p := range []string{"/socket.io/socket.io.js", "/socket.io/socket.io.min.js"} {
			if code, got := get(t, ctx, s.url(p), nil); code != http.StatusOK || got != body {
				t.Errorf("GET %s: HTTP %d %.80q, want 200 and the file", p, code, got)
			}
		}
	}
}

// checkStatic returns a check that the -static directory (its index.html
// holds page) is served at /, without the browser client's
// Content-Security-Policy and with nosniff, and that the browser client
// is not.
func checkStatic(page string) func(*testing.T, context.Context, *testServer) {
	return func(t *testing.T, ctx context.Context, s *testServer) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if h := resp.Header; resp.StatusCode != http.StatusOK || h.Get("Content-Security-Policy") != "" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET /: %s, Content-Security-Policy %q, X-Content-Type-Options %q; want 200, none, nosniff",
				resp.Status, h.Get("Content-Security-Policy"), h.Get("X-Content-Type-Options"))
		}
		if code, body := get(t, ctx, s.url("/"), nil); code != http.StatusOK || body != page {
			t.Errorf("GET /: HTTP %d %.80q, want the directory's index.html", code, body)
		}
		if code, body := get(t, ctx, s.url("/js/client.js"), nil); code != http.StatusOK || !strings.Contains(body, "create or join") {
			t.Errorf("GET /js/client.js: HTTP %d %.80q", code, body)
		}
		// signal.js is the browser client's.
		if code, _ := get(t, ctx, s.url("/signal.js"), nil); code != http.StatusNotFound {
			t.Errorf("GET /signal.js: HTTP %d, want 404 (the browser client is not served with -static)", code)
		}
		if code, _ := get(t, ctx, s.url("/healthz"), nil); code != http.StatusOK {
			t.Errorf("GET /healthz: HTTP %d", code)
		}
	}
}

// writeSite writes the origin tutorial's page and script into a new
// directory and returns it, and the page.
func writeSite(t *testing.T) (dir, page string) {
	t.Helper()
	dir = t.TempDir()
	page = "<!DOCTYPE html>\n<html><body>\n<script src='/socket.io/socket.io.js'></script>\n<script src='js/client.js'></script>\n</body></html>\n"
	if err := os.MkdirAll(filepath.Join(dir, "js"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "const socket = io.connect();\nsocket.emit('create or join', room);\n"
	if err := os.WriteFile(filepath.Join(dir, "js", "client.js"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, page
}

// writeBundle writes a stand-in for the client bundle and returns its
// file and content.
func writeBundle(t *testing.T) (file, body string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "socket.io.min.js")
	body = "/*! a stand-in for socket.io-client's bundle */ var io = function () {};\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, body
}

// sioPostStatus posts body to an Engine.IO polling URL and returns the
// status; the session id need not exist, as a body over the size limit is
// refused first.
func sioPostStatus(t *testing.T, ctx context.Context, s *testServer, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		s.url("/socket.io/?EIO=4&transport=polling&sid="+url.QueryEscape("nosuchsession")), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// sioMessage returns a Socket.IO message event of about n bytes.
func sioMessage(n int) string {
	return fmt.Sprintf(`42["message",%q]`, strings.Repeat("x", n))
}
