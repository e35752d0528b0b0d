// Package signaltest runs an in-process signaling server for tests, and a
// proxy (CutProxy) that cuts WebSocket connections to it abruptly.
package signaltest

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Server is a signaling server listening on a random port of 127.0.0.1.
type Server struct {
	*signal.Server
	// URL is the WebSocket endpoint, ws://127.0.0.1:PORT/ws.
	URL string
	// HTTP is the underlying test HTTP server.
	HTTP *httptest.Server
}

// New starts a signal.Server configured by cfg on 127.0.0.1 and stops it
// with t.Cleanup. Unless cfg.Logger is set, the server logs through t.Log
// at warning level and above.
func New(tb testing.TB, cfg signal.Config) *Server {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s := signal.NewServer(cfg)
	hs := newHTTPServer(s)
	tb.Cleanup(func() {
		_ = s.Close()
		hs.Close()
	})
	return &Server{Server: s, URL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", HTTP: hs}
}

// URL starts a server with the default configuration and returns its
// WebSocket URL.
func URL(tb testing.TB) string {
	tb.Helper()
	return New(tb, signal.Config{}).URL
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
