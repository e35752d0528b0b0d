package peer

import (
	"fmt"
	"sync"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// watchChannel installs a data channel's callbacks: open, message and
// close become events, and the open channel is registered by label.
func (p *Peer) watchChannel(r *remote, dc *webrtc.DataChannel) {
	label := dc.Label()
	var once sync.Once
	// pion calls OnOpen on a goroutine of its own, and may deliver the first
	// message before it runs: whichever comes first reports the open, so
	// that datachannel-open always precedes the channel's messages.
	opened := func() {
		once.Do(func() {
			p.mu.Lock()
			if _, ok := r.channels[label]; !ok {
				r.channels[label] = dc
			}
			p.broadcastLocked()
			p.mu.Unlock()
			p.emit(Event{Type: EventDataChannelOpen, Remote: r.id, Label: label, DataChannel: dc})
		})
	}
	dc.OnOpen(opened)
	dc.OnMessage(func(msg webrtc.DataChannelMessage) {
		opened()
		p.emit(Event{Type: EventMessage, Remote: r.id, Label: label, Data: msg.Data, IsString: msg.IsString})
	})
	dc.OnClose(func() {
		p.mu.Lock()
		if r.channels[label] == dc {
			delete(r.channels, label)
		}
		p.broadcastLocked()
		p.mu.Unlock()
		p.emit(Event{Type: EventDataChannelClose, Remote: r.id, Label: label, DataChannel: dc})
	})
}

// channel returns the open data channel labelled label with remoteID.
func (p *Peer) channel(remoteID, label string) (*webrtc.DataChannel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, ErrClosed
	}
	r := p.remotes[remoteID]
	if r == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownRemote, remoteID)
	}
	dc := r.channels[label]
	if dc == nil {
		return nil, fmt.Errorf("%w: %q with %s", ErrNoChannel, label, remoteID)
	}
	return dc, nil
}

// Send sends data as a binary message on the open data channel labelled
// label with member remoteID.
func (p *Peer) Send(remoteID, label string, data []byte) error {
	dc, err := p.channel(remoteID, label)
	if err != nil {
		return err
	}
	if err := dc.Send(data); err != nil {
		return fmt.Errorf("peer: send on %q to %s: %w", label, remoteID, err)
	}
	return nil
}

// SendText sends text as a text message on the open data channel labelled
// label with member remoteID.
func (p *Peer) SendText(remoteID, label, text string) error {
	dc, err := p.channel(remoteID, label)
	if err != nil {
		return err
	}
	if err := dc.SendText(text); err != nil {
		return fmt.Errorf("peer: send text on %q to %s: %w", label, remoteID, err)
	}
	return nil
}

// DataChannel returns the open data channel labelled label with member
// remoteID, or nil.
func (p *Peer) DataChannel(remoteID, label string) *webrtc.DataChannel {
	dc, _ := p.channel(remoteID, label)
	return dc
}

// CreateDataChannel opens a new data channel with a member, without
// renegotiation (this package's offers always include a data channel
// transport); the channel opens once the transport is up. It fails with
// ErrNoSCTP before the negotiation is complete (WaitConnected first) or
// when the remote's offer had no data channel section. Its open, messages
// and close are reported as events like the configured channels'. Either
// side may call it.
func (p *Peer) CreateDataChannel(remoteID, label string, init *webrtc.DataChannelInit) (*webrtc.DataChannel, error) {
	p.mu.Lock()
	r, closing := p.remotes[remoteID], p.closing
	sctp := r != nil && r.dataSection
	p.mu.Unlock()
	switch {
	case closing:
		return nil, ErrClosed
	case r == nil:
		return nil, fmt.Errorf("%w: %s", ErrUnknownRemote, remoteID)
	case !sctp:
		return nil, fmt.Errorf("%w: with %s", ErrNoSCTP, remoteID)
	}
	dc, err := r.pc.CreateDataChannel(label, init)
	if err != nil {
		return nil, fmt.Errorf("peer: create data channel %q with %s: %w", label, remoteID, err)
	}
	p.watchChannel(r, dc)
	return dc, nil
}

// hasDataSection reports whether a session description has a data
// channel (application) section.
func hasDataSection(sd string) bool {
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(sd); err != nil {
		return false
	}
	for _, m := range parsed.MediaDescriptions {
		if m.MediaName.Media == "application" {
			return true
		}
	}
	return false
}
