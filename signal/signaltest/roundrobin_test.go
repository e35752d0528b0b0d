package signaltest_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// TestRoundRobin goes through what a RoundRobin does: connections in
// turn, a backend removed and one added, a refusing backend skipped, no
// backend at all, a WebSocket through it, CloseBackend and Close.
func TestRoundRobin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	named := func(name string) *httptest.Server {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(hs.Close)
		return hs
	}
	a, b, c := named("a"), named("b"), named("c")
	rr := signaltest.NewRoundRobin(t, a.URL, b.URL, c.URL)
	// A fresh connection per request, so that each goes to the next backend.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	get := func() string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rr.HTTP+"/", nil)
		resp, err := client.Do(req)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	order := func(n int) string {
		t.Helper()
		s := ""
		for range n {
			s += get()
		}
		return s
	}
	if got := order(6); got != "abcabc" {
		t.Fatalf("six requests went to %q, want abcabc", got)
	}
	if !rr.Remove(b.URL) || rr.Remove(b.URL) {
		t.Fatal("Remove: b was not listed once")
	}
	if got := order(4); got != "acac" {
		t.Fatalf("after removing b: %q, want acac", got)
	}
	d := named("d")
	if err := rr.Add(d.URL); err != nil {
		t.Fatal(err)
	}
	if err := rr.SetBackends(a.URL, d.URL); err != nil {
		t.Fatal(err)
	}
	if got := order(2); got != "ad" {
		t.Fatalf("after SetBackends(a, d): %q, want ad", got)
	}
	if rr.Count(a.URL) != 5 || rr.Count(b.URL) != 2 || rr.Count(d.URL) != 1 {
		t.Fatalf("counts a %d b %d d %d, want 5 2 1", rr.Count(a.URL), rr.Count(b.URL), rr.Count(d.URL))
	}

	// A backend that refuses is skipped: the connection goes to the next.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	if err := rr.SetBackends(dead, c.URL); err != nil {
		t.Fatal(err)
	}
	if got := order(2); got != "cc" {
		t.Fatalf("with a refusing backend first: %q, want cc", got)
	}
	if err := rr.SetBackends(dead); err != nil {
		t.Fatal(err)
	}
	if got := get(); got == "c" || got == "a" {
		t.Fatalf("with no backend that answers the request got %q", got)
	}
	if err := rr.SetBackends("not a backend"); err == nil {
		t.Fatal("SetBackends took a backend that is neither a URL nor host:port")
	}

	// A WebSocket passes through; CloseBackend cuts it without a close frame.
	srv := signaltest.New(t, signal.Config{})
	if err := rr.SetBackends(srv.URL); err != nil {
		t.Fatal(err)
	}
	ws, err := signal.Dial(ctx, rr.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if m, err := ws.Join(ctx, "rr", nil); err != nil || m.Type != signal.TypeCreated {
		t.Fatalf("join through the proxy: %v %v", m, err)
	}
	if rr.Open() != 1 {
		t.Fatalf("%d connections open, want 1", rr.Open())
	}
	if n := rr.CloseBackend(srv.URL); n != 1 {
		t.Fatalf("CloseBackend cut %d connections, want 1", n)
	}
	select {
	case <-ws.Done():
	case <-ctx.Done():
		t.Fatal("the WebSocket outlived CloseBackend")
	}
	if ce, ok := ws.CloseError(); ok && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("CloseBackend sent a close frame %v", ce)
	}

	// Close ends every connection and the accept loop (goleak checks).
	ws2, err := signal.Dial(ctx, rr.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.Close()
	rr.Close()
	select {
	case <-ws2.Done():
	case <-ctx.Done():
		t.Fatal("a WebSocket outlived Close")
	}
	if _, err := net.DialTimeout("tcp", rr.Addr, time.Second); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
}
