package signaltest

import (
	"log/slog"
	"net/http/httptest"
	"strings"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Start is New for code without a testing.TB (examples, benchmarks'
// helpers, programs): it starts a signal.Server configured by cfg on a
// random port of 127.0.0.1 and returns it; call Stop when done. Unless
// cfg.Logger is set, the server's logs are discarded.
func Start(cfg signal.Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := signal.NewServer(cfg)
	hs := newHTTPServer(s)
	return &Server{Server: s, URL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", HTTP: hs}
}

// Stop shuts the server down (members get peer-left "shutdown" and a close
// frame) and closes its listener. It is safe to call more than once.
func (s *Server) Stop() {
	_ = s.Server.Close()
	s.HTTP.Close()
}

// newHTTPServer starts s on a random port of 127.0.0.1 with the limits
// and timeouts of s.HTTPServer, as cmd/rendezvous serves it.
func newHTTPServer(s *signal.Server) *httptest.Server {
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Config = s.HTTPServer()
	hs.Start()
	return hs
}
