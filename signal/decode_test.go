package signal

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const messagesDir = "../testdata/messages"

// describe renders a decode result in one line, for the golden file.
func describe(m clientMsg, e *protoError) string {
	if e != nil {
		return fmt.Sprintf("error %s ref=%q", e.code, m.ref)
	}
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("type", m.typ)
	add("ref", m.ref)
	add("room", m.room)
	add("id", m.id)
	if m.capacity != 0 {
		add("capacity", fmt.Sprint(m.capacity))
	}
	add("to", m.to)
	if m.sdp != "" {
		add("sdp", fmt.Sprintf("%d bytes", len(m.sdp)))
	}
	add("candidate", string(m.candidate))
	add("data", string(m.data))
	return "ok " + strings.Join(parts, " ")
}

func messageFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(messagesDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no message files in %s: %v", messagesDir, err)
	}
	sort.Strings(files)
	return files
}

// TestDecodeGolden decodes every message in testdata/messages and compares
// the results with testdata/decode.golden (go test -run Golden -update
// rewrites it).
func TestDecodeGolden(t *testing.T) {
	var b strings.Builder
	for _, f := range messageFiles(t) {
		frame, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, e := decodeClient(frame, DefaultMaxCapacity)
		fmt.Fprintf(&b, "%s: %s\n", strings.TrimSuffix(filepath.Base(f), ".json"), describe(m, e))
	}
	golden := filepath.Join("..", "testdata", "decode.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("decode results differ from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

// FuzzDecodeClient checks that decoding never panics, that every error has
// a known code and a message, and that whatever decodes cleanly is
// consistent: a valid type, and for relayed types, payloads that are valid
// JSON and valid for the server to splice into a frame.
func FuzzDecodeClient(f *testing.F) {
	for _, file := range messageFiles(f) {
		frame, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	codes := map[string]bool{
		CodeBadJSON: true, CodeUnknownType: true, CodeMissingField: true, CodeInvalidRoom: true,
		CodeInvalidID: true, CodeInvalidCapacity: true, CodeInvalidSDP: true, CodeInvalidCandidate: true,
		CodeUnknownPeer: true,
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, e := decodeClient(frame, DefaultMaxCapacity)
		if len(m.ref) > maxRefBytes {
			t.Fatalf("ref of %d bytes accepted", len(m.ref))
		}
		if e != nil {
			if !codes[e.code] || e.msg == "" {
				t.Fatalf("error %q %q", e.code, e.msg)
			}
			return
		}
		switch m.typ {
		case TypeJoin:
			if !validRoom(m.room) || (m.id != "" && !validID(m.id)) || m.capacity == 1 || m.capacity < 0 || m.capacity > DefaultMaxCapacity {
				t.Fatalf("invalid join accepted: %+v", m)
			}
		case TypeLeave:
		case TypeOffer, TypeAnswer:
			if m.sdp == "" {
				t.Fatal("empty sdp accepted")
			}
		case TypeCandidate:
			if validCandidate(m.candidate) != nil {
				t.Fatalf("invalid candidate accepted: %s", m.candidate)
			}
		case TypeMessage:
			if !json.Valid(m.data) {
				t.Fatalf("invalid data accepted: %s", m.data)
			}
		default:
			t.Fatalf("unknown type %q accepted", m.typ)
		}
		// The relayed frame the server would build is valid JSON.
		if m.typ == TypeCandidate || m.typ == TypeMessage {
			field, raw := "data", m.data
			if m.typ == TypeCandidate {
				field, raw = "candidate", m.candidate
			}
			if out := appendRelay(m.typ, "abcdEFGH1234", field, raw); !json.Valid(out) {
				t.Fatalf("relayed frame is not JSON: %s", out)
			}
		}
	})
}

func TestValidRoomAndID(t *testing.T) {
	for _, tt := range []struct {
		s          string
		room, isID bool
	}{
		{"demo", true, true},
		{"a-b_C9", true, true},
		{"with space", true, false},
		{"", false, false},
		{" ", false, false},
		{"\u3000", false, false}, // ideographic space only
		{"a\x00b", false, false},
		{"a\u200bb", true, false}, // zero-width space is a format char, not control
		{"\xff", false, false},
		{strings.Repeat("é", 32), true, false}, // 64 bytes
		{strings.Repeat("é", 33), false, false},
		{strings.Repeat("x", 64), true, true},
		{strings.Repeat("x", 65), false, false},
	} {
		if got := validRoom(tt.s); got != tt.room {
			t.Errorf("validRoom(%q) = %v, want %v", tt.s, got, tt.room)
		}
		if got := validID(tt.s); got != tt.isID {
			t.Errorf("validID(%q) = %v, want %v", tt.s, got, tt.isID)
		}
	}
}

// TestAppendRelayQuotesFrom: whatever the sender's id holds, a relayed
// frame is valid JSON whose from is that id, so that no id can break out
// of its string (a token's sub once could).
func TestAppendRelayQuotesFrom(t *testing.T) {
	for _, from := range []string{"alice", `mallory","from":"ALICE`, `back\slash`, "new\nline", "\x00\x1f", "é"} {
		out := appendRelay(TypeMessage, from, "data", []byte(`{"x":1}`))
		var got struct {
			Type string          `json:"type"`
			From string          `json:"from"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("from %q: %s is not JSON: %v", from, out, err)
		}
		if got.Type != TypeMessage || got.From != from || string(got.Data) != `{"x":1}` {
			t.Fatalf("from %q: decoded %+v from %s", from, got, out)
		}
	}
}
