package flagenv

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for flagName, want := range map[string]string{
		"addr":              "RENDEZVOUS_ADDR",
		"max-message-bytes": "RENDEZVOUS_MAX_MESSAGE_BYTES",
	} {
		if got := Name("RENDEZVOUS", flagName); got != want {
			t.Errorf("Name(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	env := map[string]string{"APP_PORT": "9", "APP_NAME": "env", "APP_BAD": "x"}
	for _, tt := range []struct {
		name      string
		args      []string
		withBad   bool
		port      int
		appName   string
		wantError string
	}{
		{"environment", nil, false, 9, "env", ""},
		{"flags win", []string{"-port", "10"}, false, 10, "env", ""},
		{"bad environment value", nil, true, 0, "", "APP_BAD"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("app", flag.ContinueOnError)
			fs.SetOutput(new(bytes.Buffer))
			port := fs.Int("port", 1, "")
			name := fs.String("name", "default", "")
			if tt.withBad {
				fs.Int("bad", 0, "")
			}
			err := Parse(fs, "APP", tt.args, func(k string) string { return env[k] })
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantError)
				}
				return
			}
			if err != nil || *port != tt.port || *name != tt.appName {
				t.Fatalf("port %d name %q err %v; want %d %q", *port, *name, err, tt.port, tt.appName)
			}
		})
	}
}

func TestUsageNamesVariables(t *testing.T) {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Duration("wait", 0, "how long to `wait`")
	Usage(fs, "APP", "header\n")()
	for _, want := range []string{"header", "-wait wait", "$APP_WAIT"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}
