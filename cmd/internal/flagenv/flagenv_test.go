package flagenv

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for _, tt := range []struct {
		prefix, flag, want string
	}{
		{"RENDEZVOUS", "addr", "RENDEZVOUS_ADDR"},
		{"RENDEZVOUS", "max-conns", "RENDEZVOUS_MAX_CONNS"},
		{"RENDEZVOUS", "turn-secret", "RENDEZVOUS_TURN_SECRET"},
		{"RENDEZVOUS", "max-message-bytes", "RENDEZVOUS_MAX_MESSAGE_BYTES"},
		{"RENDEZVOUS", "max-conns-per-ip", "RENDEZVOUS_MAX_CONNS_PER_IP"},
		{"RENDEZVOUS_PEER", "resume-window", "RENDEZVOUS_PEER_RESUME_WINDOW"},
	} {
		if got := Name(tt.prefix, tt.flag); got != tt.want {
			t.Errorf("Name(%q, %q) = %q, want %q", tt.prefix, tt.flag, got, tt.want)
		}
	}
}

// list is a repeatable flag whose values may also be comma-separated, as
// the commands' -stun and -turn are.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(v string) error {
	*l = append(*l, strings.Split(v, ",")...)
	return nil
}

func TestParse(t *testing.T) {
	type want struct {
		maxConns   int
		turnSecret string
		stun       []string
	}
	defaults := want{maxConns: 1, turnSecret: "default"}
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    want
		wantErr string // a substring of the error; "" for none
	}{
		{name: "defaults", want: defaults},
		{
			name: "the environment sets dashed flags",
			env:  map[string]string{"APP_MAX_CONNS": "9", "APP_TURN_SECRET": "env"},
			want: want{maxConns: 9, turnSecret: "env"},
		},
		{
			name: "an empty variable is unset",
			env:  map[string]string{"APP_MAX_CONNS": ""},
			want: defaults,
		},
		{
			name: "a flag wins over its variable",
			args: []string{"-max-conns", "10"},
			env:  map[string]string{"APP_MAX_CONNS": "9", "APP_TURN_SECRET": "env"},
			want: want{maxConns: 10, turnSecret: "env"},
		},
		{
			name: "a flag wins over a bad variable",
			args: []string{"-max-conns", "10"},
			env:  map[string]string{"APP_MAX_CONNS": "many"},
			want: want{maxConns: 10, turnSecret: "default"},
		},
		{
			name: "a repeatable variable",
			env:  map[string]string{"APP_STUN": "stun:a,stun:b"},
			want: want{maxConns: 1, turnSecret: "default", stun: []string{"stun:a", "stun:b"}},
		},
		{
			name: "a repeatable flag replaces its variable",
			args: []string{"-stun", "stun:c"},
			env:  map[string]string{"APP_STUN": "stun:a,stun:b"},
			want: want{maxConns: 1, turnSecret: "default", stun: []string{"stun:c"}},
		},
		{
			name:    "a bad variable is named",
			env:     map[string]string{"APP_MAX_CONNS": "many"},
			wantErr: `invalid value "many" for APP_MAX_CONNS`,
		},
		{
			name:    "a bad flag",
			args:    []string{"-max-conns", "many"},
			wantErr: `invalid value "many" for flag -max-conns`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("app", flag.ContinueOnError)
			fs.SetOutput(new(bytes.Buffer))
			var got want
			fs.IntVar(&got.maxConns, "max-conns", 1, "")
			fs.StringVar(&got.turnSecret, "turn-secret", "default", "")
			fs.Var((*list)(&got.stun), "stun", "")
			err := Parse(fs, "APP", tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.maxConns != tt.want.maxConns || got.turnSecret != tt.want.turnSecret || !slices.Equal(got.stun, tt.want.stun) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Int("max-conns", 1, "")
	err := Parse(fs, "APP", []string{"-h"}, func(string) string { return "" })
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
}

func TestUsageNamesVariables(t *testing.T) {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Duration("wait", 0, "how long to `wait`")
	fs.Int("max-conns", 5, "connections")
	Usage(fs, "APP", "header\n")()
	for _, want := range []string{"header", "-wait wait", "$APP_WAIT", "-max-conns int", "(default 5)", "$APP_MAX_CONNS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}
