package cluster

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	long := strings.Repeat("t", maxTunnelID)
	tests := []struct {
		name   string
		kind   byte
		tunnel string
		body   []byte
	}{
		{"open", kindOpen, "gw1-42", []byte(`{"remote":"1.2.3.4:5","room":"demo","written":7}`)},
		{"text", kindText, "a", []byte(`{"type":"join","room":"x"}`)},
		{"empty text", kindText, "a", nil},
		{"ping", kindPing, "a", []byte("12345678")},
		{"pong empty", kindPong, "a", nil},
		{"close with code", kindClose, "a", []byte{0x03, 0xe8, 'b', 'y', 'e'}},
		{"close code only", kindClose, "a", []byte{0x03, 0xe8}},
		{"close empty", kindClose, "a", nil},
		{"abort", kindAbort, long, nil},
		{"moved", kindMoved, "tn", []byte("rüm ☃")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			b := appendEnvelope(prefix, tt.kind, tt.tunnel, tt.body)
			if !bytes.HasPrefix(b, []byte("keep")) {
				t.Fatalf("appendEnvelope lost dst: %q", b)
			}
			kind, tunnel, body, err := parseEnvelope(b[len("keep"):])
			if err != nil {
				t.Fatalf("parseEnvelope: %v", err)
			}
			if kind != tt.kind || tunnel != tt.tunnel || !bytes.Equal(body, tt.body) {
				t.Fatalf("got (%s, %q, %q), want (%s, %q, %q)", kindName(kind), tunnel, body, kindName(tt.kind), tt.tunnel, tt.body)
			}
		})
	}
}

func TestParseEnvelopeRejects(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, maxControlBody+1)
	tests := []struct {
		name string
		b    []byte
		want string // part of the error message
	}{
		{"empty", nil, "empty message"},
		{"kind zero", []byte{0, 1, 'a'}, "unknown kind 0"},
		{"kind too high", []byte{kindLast + 1, 1, 'a'}, "unknown kind"},
		{"no length", []byte{kindText}, "cut short"},
		{"length overflows", append([]byte{kindText}, bytes.Repeat([]byte{0xff}, 11)...), "cut short or overflows"},
		{"empty tunnel", []byte{kindText, 0}, "tunnel id is 0 bytes"},
		{"tunnel too long", append([]byte{kindText, maxTunnelID + 1}, bytes.Repeat([]byte{'a'}, maxTunnelID+1)...), "tunnel id is 65 bytes"},
		{"tunnel cut short", []byte{kindText, 5, 'a', 'b'}, "cut short"},
		{"padded length", []byte{kindText, 0x81, 0x00, 'a'}, "not minimally encoded"},
		{"open without body", appendEnvelope(nil, kindOpen, "t", nil), "want a JSON object"},
		{"ping too big", appendEnvelope(nil, kindPing, "t", big), "at most 125"},
		{"pong too big", appendEnvelope(nil, kindPong, "t", big), "at most 125"},
		{"close one byte", appendEnvelope(nil, kindClose, "t", []byte{3}), "1 byte"},
		{"close too big", appendEnvelope(nil, kindClose, "t", big), "at most 125"},
		{"close bad utf8", appendEnvelope(nil, kindClose, "t", []byte{3, 0xe8, 0xff}), "not valid UTF-8"},
		{"abort with body", appendEnvelope(nil, kindAbort, "t", []byte("x")), "want none"},
		{"moved without room", appendEnvelope(nil, kindMoved, "t", nil), "want the room name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := parseEnvelope(tt.b)
			if !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("parseEnvelope(%q) = %v, want ErrBadEnvelope", tt.b, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

// FuzzParseEnvelope checks that parseEnvelope never panics, and that what
// it accepts is exactly what appendEnvelope writes back.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, kindOpen, "gw-1", []byte(`{"room":"r"}`)))
	f.Add(appendEnvelope(nil, kindText, "x", []byte("hello")))
	f.Add(appendEnvelope(nil, kindPing, "x", nil))
	f.Add(appendEnvelope(nil, kindClose, "x", []byte{0x03, 0xe8, 'o', 'k'}))
	f.Add(appendEnvelope(nil, kindAbort, strings.Repeat("z", maxTunnelID), nil))
	f.Add(appendEnvelope(nil, kindMoved, "x", []byte("room")))
	f.Add([]byte{kindText, 0x81, 0x00, 'a'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, tunnel, body, err := parseEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("error does not wrap ErrBadEnvelope: %v", err)
			}
			return
		}
		if len(tunnel) == 0 || len(tunnel) > maxTunnelID {
			t.Fatalf("accepted a tunnel id of %d bytes", len(tunnel))
		}
		again := appendEnvelope(nil, kind, tunnel, body)
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the envelope: %q -> %q", b, again)
		}
	})
}
