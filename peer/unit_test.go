package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

func TestDecodeCandidate(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    string
		wantErr bool
	}{
		{name: "null", raw: "null", want: ""},
		{name: "absent", raw: "", want: ""},
		{name: "empty candidate", raw: `{"candidate":""}`, want: ""},
		{name: "candidate", raw: `{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}`, want: "candidate:1 1 udp 1 127.0.0.1 5000 typ host"},
		{name: "not an object", raw: `"x"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := decodeCandidate([]byte(tt.raw))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if c.Candidate != tt.want {
				t.Errorf("candidate %q, want %q", c.Candidate, tt.want)
			}
		})
	}
}

func TestEventString(t *testing.T) {
	tests := []struct {
		e    Event
		want string
	}{
		{Event{Type: EventJoined, Room: "r", ID: "me", Peers: []string{"a", "b"}}, `joined joined room "r" as me, peers [a b]`},
		{Event{Type: EventJoined, Room: "r", ID: "me", Created: true}, `joined created room "r" as me, peers []`},
		{Event{Type: EventPeerLeft, Remote: "a", Reason: "left"}, "peer-left a (left)"},
		{Event{Type: EventConnectionState, Remote: "a", ConnectionState: webrtc.PeerConnectionStateConnected}, "connection-state a connected"},
		{Event{Type: EventICEState, Remote: "a", ICEState: webrtc.ICEConnectionStateChecking}, "ice-state a checking"},
		{Event{Type: EventMessage, Remote: "a", Label: "chat", Data: []byte("hi\n"), IsString: true}, `message a "chat" text "hi\n"`},
		{Event{Type: EventMessage, Remote: "a", Label: "chat", Data: []byte{1, 2}}, `message a "chat" binary 2 bytes 0102`},
		{Event{Type: EventError, Remote: "a", Err: ErrUnexpectedSDP}, "error a: " + ErrUnexpectedSDP.Error()},
		{Event{Type: EventSignalingLost, Err: ErrSignalingClosed}, "signaling-lost: " + ErrSignalingClosed.Error()},
		{Event{Type: EventSignalingResumed, Room: "r", ID: "me", Peers: []string{"a"}}, "signaling-resumed"},
		{Event{Type: EventSeatLost, Err: ErrSeatLost}, "seat-lost: " + ErrSeatLost.Error()},
		{Event{Type: EventPeerLeft, Remote: "a", Reason: ReasonSeatLost}, "peer-left a (seat-lost)"},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestRoleString(t *testing.T) {
	for r, want := range map[Role]string{RoleOffer: "offer", RoleAnswer: "answer", 0: "Role(0)"} {
		if got := r.String(); got != want {
			t.Errorf("%d: %q, want %q", int(r), got, want)
		}
	}
}

// ivf builds an IVF file with the given codec, time base and frame pts.
func ivf(fourcc string, num, den uint32, pts ...uint64) []byte {
	var b bytes.Buffer
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], fourcc)
	binary.LittleEndian.PutUint16(h[12:], 320)
	binary.LittleEndian.PutUint16(h[14:], 240)
	binary.LittleEndian.PutUint32(h[16:], den)
	binary.LittleEndian.PutUint32(h[20:], num)
	binary.LittleEndian.PutUint32(h[24:], uint32(len(pts)))
	b.Write(h)
	for _, p := range pts {
		f := make([]byte, 12+3)
		binary.LittleEndian.PutUint32(f, 3)
		binary.LittleEndian.PutUint64(f[4:], p)
		b.Write(f)
	}
	return b.Bytes()
}

// TestIVFTimestamps: frame times come from the file's pts and time base,
// and keep growing across loops.
func TestIVFTimestamps(t *testing.T) {
	tests := []struct {
		name string
		file []byte
		loop bool
		want []time.Duration
	}{
		{name: "30 fps", file: ivf("VP80", 1, 30, 0, 1, 2), want: []time.Duration{0, 33333333, 66666666}},
		{name: "ms time base", file: ivf("VP80", 1, 1000, 0, 40, 100), want: []time.Duration{0, 40 * time.Millisecond, 100 * time.Millisecond}},
		{name: "loop", file: ivf("VP80", 1, 10, 0, 1), loop: true, want: []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := openIVF(bytes.NewReader(tt.file), tt.loop)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.want {
				fr, err := f.next()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if d := fr.at - want; d < -time.Microsecond || d > time.Microsecond {
					t.Errorf("frame %d at %v, want %v", i, fr.at, want)
				}
			}
			if !tt.loop {
				if _, err := f.next(); !errors.Is(err, io.EOF) {
					t.Errorf("after the last frame: %v, want io.EOF", err)
				}
			}
		})
	}
}

func TestStreamIVFErrors(t *testing.T) {
	track, err := NewVP8Track("v", "s")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file []byte
		want error
	}{
		{name: "VP9", file: ivf("VP90", 1, 30, 0), want: ErrNotVP8},
		{name: "truncated", file: []byte("DKIF"), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := StreamIVF(context.Background(), track, bytes.NewReader(tt.file), false)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("StreamIVF: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestStreamIVFFile: the shipped test pattern is a small VP8 IVF of
// 320x240 lasting a few seconds.
func TestStreamIVFFile(t *testing.T) {
	b, err := os.ReadFile(ivfPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 1<<20 || !strings.HasPrefix(string(b), "DKIF") || string(b[8:12]) != "VP80" {
		t.Fatalf("%s is not a small VP8 IVF", ivfPath)
	}
	if w, h := binary.LittleEndian.Uint16(b[12:]), binary.LittleEndian.Uint16(b[14:]); w != 320 || h != 240 {
		t.Errorf("size %dx%d, want 320x240", w, h)
	}
	f, err := openIVF(bytes.NewReader(b), false)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var last time.Duration
	for {
		fr, err := f.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		last = fr.at
	}
	if n < 30 || last < time.Second {
		t.Errorf("%d frames over %v, want a few seconds", n, last)
	}
}
