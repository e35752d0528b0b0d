package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/cmd/internal/flagenv"
	"github.com/rendezvous-rtc/rendezvous/signal"
)

// TestFlagsAndEnv checks run's exit code and message for help and for bad
// flags. Every case listens on 127.0.0.1:0 if it comes to serve at all,
// and a case that serves instead of exiting fails when its time is up.
func TestFlagsAndEnv(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		wantErr string
	}{
		{"help", []string{"-h"}, nil, 0, "RENDEZVOUS_MAX_CAPACITY"},
		{"unknown flag", []string{"-nope"}, nil, 2, "flag provided but not defined"},
		{"stray argument", []string{"serve"}, nil, 2, `unexpected argument "serve"`},
		{"bad env value", nil, map[string]string{"RENDEZVOUS_MAX_CONNS": "many"}, 2, "RENDEZVOUS_MAX_CONNS"},
		{"bad env value of a new flag", nil, map[string]string{"RENDEZVOUS_UPGRADE_RATE": "fast"}, 2, "RENDEZVOUS_UPGRADE_RATE"},
		{"capacity above max", []string{"-capacity", "20"}, nil, 2, "-max-capacity"},
		{"buffer under two messages", []string{"-conn-buffer-bytes", "100000"}, nil, 2, "-conn-buffer-bytes"},
		{"negative rate", []string{"-rate", "-1"}, nil, 2, "-rate"},
		{"NaN rate", []string{"-rate", "NaN"}, nil, 2, "-rate"},
		{"zero burst", []string{"-burst", "0"}, nil, 2, "-burst must be positive"},
		{"ping not below pong", []string{"-ping-interval", "30s", "-pong-timeout", "30s"}, nil, 2, "-ping-interval"},
		{"negative resume window", []string{"-resume-window", "-1s"}, nil, 2, "-resume-window must not be negative"},
		{"zero turn ttl", []string{"-turn-ttl", "0"}, nil, 2, "-turn-ttl must be positive"},
		{"negative max conns per ip", []string{"-max-conns-per-ip", "-1"}, nil, 2, "-max-conns-per-ip must not be negative"},
		{"negative upgrade rate", []string{"-upgrade-rate", "-1"}, nil, 2, "-upgrade-rate"},
		{"zero upgrade burst", []string{"-upgrade-burst", "0"}, nil, 2, "-upgrade-burst must be positive"},
		{"zero conn buffer", []string{"-conn-buffer-bytes", "0"}, nil, 2, "-conn-buffer-bytes must be positive"},
		{"negative buffer budget", []string{"-buffer-budget", "-1"}, nil, 2, "-buffer-budget must not be negative"},
		{"negative join timeout", []string{"-join-timeout", "-1s"}, nil, 2, "-join-timeout must not be negative"},
		{"zero message timeout", []string{"-message-timeout", "0"}, nil, 2, "-message-timeout must be positive"},
		{"negative read timeout", []string{"-read-timeout", "-1s"}, nil, 2, "-read-timeout must be positive"},
		{"zero idle timeout", []string{"-idle-timeout", "0"}, nil, 2, "-idle-timeout must be positive"},
		{"negative max header bytes", nil, map[string]string{"RENDEZVOUS_MAX_HEADER_BYTES": "-1"}, 2, "-max-header-bytes must be positive"},
		{"tls half", []string{"-tls-cert", "c.pem"}, nil, 2, "-tls-key"},
		{"log format", []string{"-log-format", "xml"}, nil, 2, "-log-format"},
		{"log level", []string{"-log-level", "loud"}, nil, 2, "-log-level"},
		{"address in use or bad", []string{"-addr", "127.0.0.1:99999"}, nil, 1, "99999"},
		{"stun url", []string{"-stun", "turn:x"}, nil, 2, "-stun"},
		{"turn url", []string{"-turn", "stun:x"}, nil, 2, "-turn"},
		{"turn secret without url", []string{"-turn-secret", "s"}, nil, 2, "-turn"},
		{"secret and static", []string{"-turn", "turn:x", "-turn-secret", "s", "-turn-user", "u"}, nil, 2, "not both"},
		{"pprof not loopback", []string{"-pprof", "0.0.0.0:6060"}, nil, 2, "loopback"},
		{"static missing", []string{"-static", "/nonexistent/site"}, nil, 2, "-static"},
		{"static a file", []string{"-static", "main.go"}, nil, 2, "-static"},
		{"socketio-client missing", []string{"-socketio-client", "/nonexistent/socket.io.min.js"}, nil, 2, "-socketio-client"},
		{"socketio-client a directory", []string{"-socketio-client", "."}, nil, 2, "-socketio-client"},
		{"socketio-client without socketio", []string{"-socketio=false", "-socketio-client", "main.go"}, nil, 2, "-socketio=false"},
		{"bad env socketio", nil, map[string]string{"RENDEZVOUS_SOCKETIO": "maybe"}, 2, "RENDEZVOUS_SOCKETIO"},
		{"token without room", []string{"token", "-auth-secret", "s"}, nil, 2, "-room"},
		{"token without secret", []string{"token", "-room", "demo"}, nil, 2, "-auth-secret"},
		{"token help", []string{"token", "-h"}, nil, 0, "RENDEZVOUS_AUTH_SECRET"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !slices.Contains(args, "-addr") && !slices.Contains(args, "token") {
				args = append([]string{"-addr", "127.0.0.1:0"}, args...)
			}
			code, stderr := runToExit(t, args, tt.env)
			if code != tt.code || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d mentioning %q", code, stderr, tt.code, tt.wantErr)
			}
		})
	}
}

// runToExit runs the command with args and the environment env, and
// returns its exit code and what it wrote to stderr. It fails the test if
// run is still going after a few seconds (it is serving instead of
// exiting); it then stops it.
func runToExit(t *testing.T, args []string, env map[string]string) (code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, args, io.Discard, &out, func(k string) string { return env[k] }) }()
	select {
	case code = <-exited:
		return code, out.String()
	case <-time.After(exitTimeout):
	}
	cancel()
	select {
	case <-exited:
		t.Fatalf("run %q did not exit within %s: it served until stopped; stderr:\n%s", args, exitTimeout, out.String())
	case <-time.After(exitTimeout):
		t.Fatalf("run %q did not exit within %s, nor when stopped", args, exitTimeout)
	}
	return 0, ""
}

func TestEnvSetsFlagAndFlagWins(t *testing.T) {
	fs, o := newFlagSet(io.Discard)
	getenv := func(k string) string {
		return map[string]string{"RENDEZVOUS_ADDR": "127.0.0.1:1", "RENDEZVOUS_MAX_CAPACITY": "8", "RENDEZVOUS_CLIENT_LOG": "true"}[k]
	}
	if err := parse(fs, []string{"-max-capacity", "9"}, getenv); err != nil {
		t.Fatal(err)
	}
	if o.addr != "127.0.0.1:1" || o.maxCapacity != 9 || !o.clientLog {
		t.Fatalf("addr %q max-capacity %d client-log %v; want env addr, flag's 9, env's true", o.addr, o.maxCapacity, o.clientLog)
	}
}

// TestHelpAndREADMEListEveryFlag keeps -h and README.md true to the flags.
func TestHelpAndREADMEListEveryFlag(t *testing.T) {
	var out bytes.Buffer
	fs, _ := newFlagSet(&out)
	fs.Usage()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "  -"+f.Name+" ") && !strings.Contains(out.String(), "  -"+f.Name+"\n") {
			t.Errorf("-h does not list -%s", f.Name)
		}
		if !strings.Contains(out.String(), flagenv.Name(envPrefix, f.Name)) {
			t.Errorf("-h does not name the environment variable of -%s", f.Name)
		}
		if !strings.Contains(string(readme), "`-"+f.Name) {
			t.Errorf("README.md does not document -%s", f.Name)
		}
	})
	if !strings.Contains(out.String(), "(default :2013)") {
		t.Errorf("-h does not show the default address:\n%s", out.String())
	}
}

// TestREADMEFlagDefaults keeps the defaults in README.md's table of flags
// true: a default in backquotes is the flag's, and a default in words
// ("off", "a quarter of memory") or none stands for the flag's zero value.
// Every flag in the table exists.
func TestREADMEFlagDefaults(t *testing.T) {
	fs, _ := newFlagSet(io.Discard)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Flags\n")
	section, _, _ = strings.Cut(section, "\n## ")
	flagName := regexp.MustCompile("`-([a-z-]+)")
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `-") {
			continue
		}
		rows++
		cells := strings.Split(line, "|") // "", flags, defaults, meaning, ""
		if len(cells) != 5 {
			t.Errorf("README row %q does not have 3 columns", line)
			continue
		}
		defaults := strings.Split(cells[2], ",")
		for i, m := range flagName.FindAllStringSubmatch(cells[1], -1) {
			f := fs.Lookup(m[1])
			if f == nil {
				t.Errorf("README documents -%s, which is not a flag", m[1])
				continue
			}
			documented := ""
			if i < len(defaults) {
				documented = strings.TrimSpace(defaults[i])
			}
			if !sameDefault(documented, f.DefValue) {
				t.Errorf("README gives -%s the default %q; the flag's is %q", f.Name, documented, f.DefValue)
			}
		}
	}
	if rows < 20 {
		t.Fatalf("found only %d rows in README.md's table of flags", rows)
	}
}

// sameDefault reports whether documented, a default cell of README.md's
// table, stands for the flag default value.
func sameDefault(documented, value string) bool {
	quoted, ok := strings.CutPrefix(documented, "`")
	if !ok {
		return value == "" || value == "false" || value == "0"
	}
	quoted = strings.TrimSuffix(quoted, "`")
	if quoted == value {
		return true
	}
	d1, err1 := time.ParseDuration(quoted)
	d2, err2 := time.ParseDuration(value)
	return err1 == nil && err2 == nil && d1 == d2
}

// TestBinarySIGTERM builds the server, runs it, and checks that SIGTERM
// closes a client with 1001 and exits 0.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "rendezvous")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-log-format", "json")
	logs := newLogSink()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	rec, err := logs.wait(ctx, exited, isListening)
	if err != nil {
		t.Fatalf("server never logged its address: %v; stderr:\n%s", err, logs)
	}
	if !rec.json {
		t.Errorf("-log-format json: the listening line is not JSON")
	}
	addr := rec.attrs["addr"]

	if code, _ := get(t, ctx, "http://"+addr+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("healthz: HTTP %d", code)
	}
	if code, page := get(t, ctx, "http://"+addr+"/", nil); code != http.StatusOK || !strings.Contains(page, "<html") {
		t.Fatalf("GET /: HTTP %d %.100s", code, page)
	}

	c, err := signal.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, "sigterm", nil); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	for {
		_, err := c.Recv(ctx)
		if err == nil {
			continue
		}
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended with %v, want a close frame", err)
		}
		break
	}
	if ce.Code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", ce.Code)
	}
	_ = c.Close()
	select {
	case <-exited:
	case <-ctx.Done():
		t.Fatalf("the server did not exit after SIGTERM; stderr:\n%s", logs)
	}
	if waitErr != nil {
		t.Fatalf("exit: %v, want 0; stderr:\n%s", waitErr, logs)
	}
}

func TestTokenSubcommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return map[string]string{"RENDEZVOUS_AUTH_SECRET": "s3cret"}[k] }
	if code := run(context.Background(), []string{"token", "-room", "demo", "-ttl", "1h", "-sub", "bot", "-cap", "4"}, &stdout, &stderr, getenv); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var claims signal.TokenClaims
	_, err := jwt.ParseWithClaims(strings.TrimSpace(stdout.String()), &claims, func(*jwt.Token) (any, error) { return []byte("s3cret"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if claims.Room != "demo" || claims.Subject != "bot" || claims.Cap != 4 {
		t.Fatalf("claims %+v", claims)
	}
	if left := time.Until(claims.ExpiresAt.Time); left < 59*time.Minute || left > time.Hour {
		t.Fatalf("expires in %s, want 1h", left)
	}
}

func TestListenURL(t *testing.T) {
	for _, tt := range []struct {
		scheme, addr, want string
	}{
		{"http", "[::]:2013", "http://localhost:2013/"},
		{"http", "0.0.0.0:2013", "http://localhost:2013/"},
		{"https", "127.0.0.1:8443", "https://127.0.0.1:8443/"},
		{"http", "[::1]:2013", "http://[::1]:2013/"},
		{"http", "192.0.2.4:80", "http://192.0.2.4:80/"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := listenURL(tt.scheme, addr); got != tt.want {
			t.Errorf("listenURL(%s, %s) = %s, want %s", tt.scheme, tt.addr, got, tt.want)
		}
	}
}
