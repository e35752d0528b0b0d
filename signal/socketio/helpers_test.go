package socketio_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/goleak"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio"
	"github.com/rendezvous-rtc/rendezvous/signal/socketio/siotest"
)

func TestMain(m *testing.M) {
	// net/http lingers up to 500 ms on a connection it closed for a bad request.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait"))
}

// wait bounds every wait for something in these tests.
const wait = 10 * time.Second

// httpClient keeps no idle connection, which would outlive a test.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// env is a signal server and a gateway on one mux, as cmd/rendezvous
// serves them, on a random port of 127.0.0.1.
type env struct {
	t     *testing.T
	srv   *signal.Server
	gw    *socketio.Gateway
	hs    *httptest.Server
	url   string // http://127.0.0.1:PORT
	wsURL string // protocol v1: ws://127.0.0.1:PORT/ws
}

// newEnv starts an env, the gateway in front of the server's handler
// (Wrap); both logs go to t.Log at warning level and above.
func newEnv(t *testing.T, scfg signal.Config, gcfg socketio.Config) *env {
	t.Helper()
	return startEnv(t, scfg, gcfg, false, nil)
}

// newSiteEnv starts an env whose other requests go to files instead of
// the server's handler.
func newSiteEnv(t *testing.T, scfg signal.Config, gcfg socketio.Config, files http.Handler) *env {
	t.Helper()
	return startEnv(t, scfg, gcfg, false, files)
}

// newMuxEnv starts an env with the gateway mounted on a gorilla/mux router
// beside the server's handler (Mount).
func newMuxEnv(t *testing.T, scfg signal.Config, gcfg socketio.Config) *env {
	t.Helper()
	return startEnv(t, scfg, gcfg, true, nil)
}

func startEnv(t *testing.T, scfg signal.Config, gcfg socketio.Config, useMux bool, files http.Handler) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if scfg.Logger == nil {
		scfg.Logger = log
	}
	if gcfg.Logger == nil {
		gcfg.Logger = log
	}
	srv := signal.NewServer(scfg)
	gw, err := socketio.New(srv, gcfg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	if useMux {
		r := mux.NewRouter()
		gw.Mount(r)
		r.PathPrefix("/").Handler(srv.Handler())
		h = r
	} else if files != nil {
		h = gw.Wrap(files)
	} else {
		h = gw.Wrap(srv.Handler())
	}
	hs := httptest.NewUnstartedServer(h)
	hs.Config = srv.HTTPServer() // the production limits: ReadTimeout, ...
	hs.Config.Handler = h
	hs.Start()
	t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			t.Errorf("gateway close: %v", err)
		}
		_ = srv.Close()
		hs.Close()
	})
	return &env{t: t, srv: srv, gw: gw, hs: hs, url: hs.URL, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// v1 is a protocol v1 test client.
type v1 struct {
	t *testing.T
	*signal.Client
}

func (e *env) dialV1() *v1 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := signal.Dial(ctx, e.wsURL, nil)
	if err != nil {
		e.t.Fatalf("dial v1: %v", err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return &v1{t: e.t, Client: c}
}

func (c *v1) send(frame string) {
	c.t.Helper()
	if err := c.SendRaw([]byte(frame)); err != nil {
		c.t.Fatalf("v1 send %s: %v", frame, err)
	}
}

// expect returns the next message that is not a log, failing unless it
// has type typ.
func (c *v1) expect(typ string) *signal.Message {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		m, err := c.Recv(ctx)
		if err != nil {
			c.t.Fatalf("v1 waiting for %s: %v", typ, err)
		}
		if m.Type == signal.TypeLog {
			continue
		}
		if m.Type != typ {
			c.t.Fatalf("v1 got %s, want %s: %+v", m.Type, typ, m)
		}
		return m
	}
}

// dialSIO opens the Engine.IO WebSocket with the extra query (e.g.
// "token=x") and returns the client, not yet connected to Socket.IO.
func (e *env) dialSIO(query string) *siotest.Client {
	e.t.Helper()
	return siotest.Dial(e.t, e.url, siotest.Options{Query: query, Wait: wait})
}

func (e *env) tryDialSIO(query string, h http.Header) (*siotest.Client, error) {
	e.t.Helper()
	c, _, err := siotest.TryDial(e.t, e.url, siotest.Options{Query: query, Header: h, Wait: wait})
	return c, err
}

// poller is an Engine.IO 4 polling session written for the tests.
type poller struct {
	t   *testing.T
	e   *env
	sid string
}

// openPolling handshakes a polling session.
func (e *env) openPolling() *poller {
	e.t.Helper()
	code, body := e.get("/socket.io/?EIO=4&transport=polling")
	if code != http.StatusOK || !strings.HasPrefix(body, "0{") {
		e.t.Fatalf("polling handshake: %d %q", code, body)
	}
	var open struct{ Sid string }
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil {
		e.t.Fatal(err)
	}
	return &poller{t: e.t, e: e, sid: open.Sid}
}

func (p *poller) path() string {
	return "/socket.io/?EIO=4&transport=polling&sid=" + url.QueryEscape(p.sid)
}

// post sends body, returning the status code.
func (p *poller) post(body string) int {
	p.t.Helper()
	code, _ := p.e.post(p.path(), body)
	return code
}

// poll returns the next GET's status and body.
func (p *poller) poll() (int, string) {
	p.t.Helper()
	return p.e.get(p.path())
}

func (e *env) get(path string) (int, string) {
	e.t.Helper()
	return e.do(http.MethodGet, path, nil, nil)
}

func (e *env) post(path, body string) (int, string) {
	e.t.Helper()
	return e.do(http.MethodPost, path, strings.NewReader(body), http.Header{"Content-Type": {"text/plain;charset=UTF-8"}})
}

func (e *env) do(method, path string, body io.Reader, h http.Header) (int, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// closed polls until the session ends (a close packet, or an HTTP error
// for a session that is gone), reporting false if it still goes on after
// a few polls with nothing to end it.
func (p *poller) closed() bool {
	p.t.Helper()
	for i := 0; i < 10; i++ {
		code, body := p.poll()
		if code != http.StatusOK {
			return true
		}
		for _, pkt := range strings.Split(body, "\x1e") {
			if pkt == "1" {
				return true
			}
		}
	}
	return false
}

// eventually polls cond (a state that no event announces) until it holds,
// failing after wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
