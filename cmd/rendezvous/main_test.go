package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/cmd/internal/flagenv"
	"github.com/rendezvous-rtc/rendezvous/signal"
)

func TestFlagsAndEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
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
		{"capacity above max", []string{"-capacity", "20"}, nil, 2, "-max-capacity"},
		{"negative rate", []string{"-rate", "-1"}, nil, 2, "-rate"},
		{"ping not below pong", []string{"-ping-interval", "30s", "-pong-timeout", "30s"}, nil, 2, "-ping-interval"},
		{"tls half", []string{"-tls-cert", "c.pem"}, nil, 2, "-tls-key"},
		{"log format", []string{"-log-format", "xml"}, nil, 2, "-log-format"},
		{"log level", []string{"-log-level", "loud"}, nil, 2, "-log-level"},
		{"address in use or bad", []string{"-addr", "127.0.0.1:99999"}, nil, 1, "99999"},
		{"stun url", []string{"-stun", "turn:x"}, nil, 2, "-stun"},
		{"turn url", []string{"-turn", "stun:x"}, nil, 2, "-turn"},
		{"turn secret without url", []string{"-turn-secret", "s"}, nil, 2, "-turn"},
		{"secret and static", []string{"-turn", "turn:x", "-turn-secret", "s", "-turn-user", "u"}, nil, 2, "not both"},
		{"pprof not loopback", []string{"-pprof", "0.0.0.0:6060"}, nil, 2, "loopback"},
		{"token without room", []string{"token", "-auth-secret", "s"}, nil, 2, "-room"},
		{"token without secret", []string{"token", "-room", "demo"}, nil, 2, "-auth-secret"},
		{"token help", []string{"token", "-h"}, nil, 0, "RENDEZVOUS_AUTH_SECRET"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tt.args, io.Discard, &stderr, env(tt.env))
			if code != tt.code || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d mentioning %q", code, stderr.String(), tt.code, tt.wantErr)
			}
		})
	}
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
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := bufio.NewScanner(stderr)
	var addr string
	for addr == "" && lines.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(lines.Bytes(), &rec) == nil && rec.Msg == "listening" {
			addr = rec.Addr
		}
	}
	if addr == "" {
		t.Fatal("server never logged its address")
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}
	resp, err = http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte("<html")) {
		t.Fatalf("GET /: %s %.100s", resp.Status, page)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v, want 0", err)
	}
	if cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("exit code %d", cmd.ProcessState.ExitCode())
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
