package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rendezvous-rtc/rendezvous/peer"
)

// printer writes one line per event, as text or as JSON.
type printer struct {
	mu   sync.Mutex // serializes lines; errors come from other goroutines
	w    io.Writer
	json bool
}

func newPrinter(w io.Writer, asJSON bool) *printer { return &printer{w: w, json: asJSON} }

// jsonEvent is the JSON line of an event; only the fields of its type are
// set.
type jsonEvent struct {
	Time    string   `json:"time"`
	Event   string   `json:"event"`
	Remote  string   `json:"remote,omitempty"`
	Room    string   `json:"room,omitempty"`
	ID      string   `json:"id,omitempty"`
	Peers   []string `json:"peers,omitempty"`
	Created bool     `json:"created,omitempty"`
	Kept    []string `json:"kept,omitempty"` // rejoined, peer-joined: calls kept across a server restart
	Reason  string   `json:"reason,omitempty"`
	State   string   `json:"state,omitempty"`
	Label   string   `json:"label,omitempty"`
	Text    *string  `json:"text,omitempty"`   // a text message
	Binary  []byte   `json:"binary,omitempty"` // a binary message, base64
	Kind    string   `json:"kind,omitempty"`
	Codec   string   `json:"codec,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func (p *printer) event(e peer.Event) {
	if !p.json {
		p.line(e.String())
		return
	}
	j := jsonEvent{Event: string(e.Type), Remote: e.Remote, Room: e.Room, ID: e.ID, Peers: e.Peers, Created: e.Created, Kept: e.Kept, Reason: e.Reason, Label: e.Label}
	switch e.Type {
	case peer.EventICEState:
		j.State = e.ICEState.String()
	case peer.EventConnectionState:
		j.State = e.ConnectionState.String()
	case peer.EventMessage:
		if e.IsString {
			s := string(e.Data)
			j.Text = &s
		} else {
			j.Binary = e.Data
			if j.Binary == nil {
				j.Binary = []byte{}
			}
		}
	case peer.EventTrack:
		if e.Track != nil {
			j.Kind, j.Codec = e.Track.Kind().String(), e.Track.Codec().MimeType
		}
	case peer.EventServerLog:
		s := e.Text
		j.Text = &s
	}
	if e.Err != nil {
		j.Error = e.Err.Error()
	}
	p.writeJSON(j)
}

// left reports that the bot left the room.
func (p *printer) left(room string) {
	if p.json {
		p.writeJSON(jsonEvent{Event: "left", Room: room})
		return
	}
	p.line(fmt.Sprintf("left room %q", room))
}

// notice reports something the bot did (an event of its own).
func (p *printer) notice(event string) {
	if p.json {
		p.writeJSON(jsonEvent{Event: event})
		return
	}
	p.line(event)
}

// errorf reports a failure that does not end the bot.
func (p *printer) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.json {
		p.writeJSON(jsonEvent{Event: "error", Error: msg})
		return
	}
	p.line("error: " + msg)
}

func (p *printer) writeJSON(j jsonEvent) {
	j.Time = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(j)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"event":"error","error":%q}`, err.Error()))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.w.Write(append(b, '\n'))
}

func (p *printer) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s\n", time.Now().Format("15:04:05.000"), s)
}
