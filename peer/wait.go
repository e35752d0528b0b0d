package peer

import (
	"context"
	"fmt"

	"github.com/pion/webrtc/v4"
)

// WaitConnected blocks until the PeerConnection with member remoteID is
// connected. The member need not be known yet: it waits for it to join and
// negotiate. It returns an error wrapping ErrRemoteGone when the
// connection fails or closes, or the member leaves, while waiting;
// ErrClosed after Close; or ctx's error.
func (p *Peer) WaitConnected(ctx context.Context, remoteID string) error {
	_, err := p.wait(ctx, remoteID, "connected", func(r *remote) (bool, any) {
		return r.state == webrtc.PeerConnectionStateConnected, nil
	})
	return err
}

// WaitDataChannel blocks until the data channel labelled label with member
// remoteID is open, and returns it. Errors are those of WaitConnected.
func (p *Peer) WaitDataChannel(ctx context.Context, remoteID, label string) (*webrtc.DataChannel, error) {
	v, err := p.wait(ctx, remoteID, fmt.Sprintf("data channel %q", label), func(r *remote) (bool, any) {
		dc := r.channels[label]
		return dc != nil, dc
	})
	if err != nil {
		return nil, err
	}
	return v.(*webrtc.DataChannel), nil
}

// wait blocks until cond holds for the remote named id. cond runs with
// p.mu held.
func (p *Peer) wait(ctx context.Context, id, what string, cond func(*remote) (bool, any)) (any, error) {
	var seen *remote
	for {
		p.mu.Lock()
		closing, r, changed := p.closing, p.remotes[id], p.changed
		var ok bool
		var v any
		var state webrtc.PeerConnectionState
		if r != nil {
			ok, v = cond(r)
			state = r.state
		}
		p.mu.Unlock()
		switch {
		case closing:
			return nil, ErrClosed
		case ok:
			return v, nil
		case r != nil && (state == webrtc.PeerConnectionStateFailed || state == webrtc.PeerConnectionStateClosed):
			return nil, fmt.Errorf("%w: waiting for %s with %s: connection %s", ErrRemoteGone, what, id, state)
		case seen != nil && r != seen:
			return nil, fmt.Errorf("%w: waiting for %s with %s: it left", ErrRemoteGone, what, id)
		}
		seen = r
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("peer: waiting for %s with %s: %w", what, id, ctx.Err())
		}
	}
}
