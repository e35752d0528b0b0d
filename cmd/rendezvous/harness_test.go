package main

// The command run in-process for tests, and what it logs.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is the command serving in-process, started by startServer.
type testServer struct {
	addr   string             // where it listens, host:port
	logs   *logSink           // its stderr
	stop   context.CancelFunc // stops it, as SIGTERM does
	exited chan struct{}      // closed when run has returned
	code   int                // run's exit code, set before exited is closed
}

// startServer runs the command with args and the environment env, on
// 127.0.0.1:0, until the test ends, and returns it once it listens. At
// the end it checks that the command exited 0.
func startServer(t *testing.T, args []string, env map[string]string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{logs: newLogSink(), stop: cancel, exited: make(chan struct{})}
	args = append([]string{"-addr", "127.0.0.1:0"}, args...)
	go func() {
		defer close(s.exited)
		s.code = run(ctx, args, io.Discard, s.logs, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		s.stop()
		select {
		case <-s.exited:
			if s.code != 0 {
				t.Errorf("exit code %d; log:\n%s", s.code, s.logs)
			}
		case <-time.After(exitTimeout):
			t.Errorf("the server did not stop within %s", exitTimeout)
		}
	})
	waitCtx, cancelWait := context.WithTimeout(context.Background(), soon)
	defer cancelWait()
	s.addr = s.waitLog(t, waitCtx, isListening).attrs["addr"]
	return s
}

func isListening(r logRecord) bool { return r.attrs["msg"] == "listening" }

// waitLog returns the first record that match accepts, waiting for it
// until ctx ends.
func (s *testServer) waitLog(t *testing.T, ctx context.Context, match func(logRecord) bool) logRecord {
	t.Helper()
	r, err := s.logs.wait(ctx, s.exited, match)
	if err != nil {
		t.Fatalf("waiting for a log line: %v; log:\n%s", err, s.logs)
	}
	return r
}

// url returns the http URL of path on s.
func (s *testServer) url(path string) string { return "http://" + s.addr + path }

// logRecord is one line the server logged, as text or as JSON.
type logRecord struct {
	json  bool              // the line was JSON
	attrs map[string]string // time, level, msg and the others, as text
}

// parseLogLine parses a line of slog's JSON or text handler.
func parseLogLine(line string) logRecord {
	r := logRecord{attrs: map[string]string{}}
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) == nil {
		r.json = true
		for k, v := range m {
			r.attrs[k] = fmt.Sprint(v)
		}
		return r
	}
	for rest := line; rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			quoted, err := strconv.QuotedPrefix(after)
			if err != nil {
				break
			}
			value, _ = strconv.Unquote(quoted)
			after = after[len(quoted):]
		} else {
			value, after, _ = strings.Cut(after, " ")
		}
		r.attrs[key] = value
		rest = strings.TrimPrefix(after, " ")
	}
	return r
}

// logSink is an io.Writer that keeps the lines written to it, parsed,
// and lets a test wait for one.
type logSink struct {
	mu      sync.Mutex
	partial []byte        // the line being written
	lines   []string      // every complete line
	records []logRecord   // lines, parsed
	changed chan struct{} // closed, and replaced, when a line comes
}

func newLogSink() *logSink { return &logSink{changed: make(chan struct{})} }

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		line, rest, ok := bytes.Cut(l.partial, []byte("\n"))
		if !ok {
			break
		}
		l.lines = append(l.lines, string(line))
		l.records = append(l.records, parseLogLine(string(line)))
		l.partial = rest
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// wait returns the first record that match accepts, waiting for it until
// ctx ends or stopped is closed.
func (l *logSink) wait(ctx context.Context, stopped <-chan struct{}, match func(logRecord) bool) (logRecord, error) {
	for i := 0; ; {
		l.mu.Lock()
		for ; i < len(l.records); i++ {
			if r := l.records[i]; match(r) {
				l.mu.Unlock()
				return r, nil
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-stopped:
			return logRecord{}, errors.New("the server has exited")
		case <-ctx.Done():
			return logRecord{}, ctx.Err()
		}
	}
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + string(l.partial)
}
