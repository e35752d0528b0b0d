package peer

import (
	"bytes"
	"fmt"
	"testing"
)

// TestPairMessages: two peers through the server; the data channel opens
// and text and binary messages travel both ways, in order.
func TestPairMessages(t *testing.T) {
	ctx, _, a, b := pair(t)
	const n = 50
	send := func(from, to *Peer) {
		for i := range n {
			var err error
			if i%2 == 0 {
				err = from.SendText(to.ID(), chat, fmt.Sprintf("%s-%d", from.ID(), i))
			} else {
				err = from.Send(to.ID(), chat, []byte{byte(i), 0, 0xff})
			}
			if err != nil {
				t.Errorf("%s: %v", from.ID(), err)
				return
			}
		}
	}
	check := func(to, from *Peer) {
		for i, e := range messages(t, ctx, to, n) {
			if e.Remote != from.ID() || e.Label != chat {
				t.Errorf("%s: message %d from %q on %q, want from %q on %q", to.ID(), i, e.Remote, e.Label, from.ID(), chat)
			}
			if i%2 == 0 {
				if want := fmt.Sprintf("%s-%d", from.ID(), i); !e.IsString || string(e.Data) != want {
					t.Errorf("%s: message %d = %q (text %v), want text %q", to.ID(), i, e.Data, e.IsString, want)
				}
			} else if want := []byte{byte(i), 0, 0xff}; e.IsString || !bytes.Equal(e.Data, want) {
				t.Errorf("%s: message %d = %x (text %v), want binary %x", to.ID(), i, e.Data, e.IsString, want)
			}
		}
	}
	send(a, b)
	send(b, a)
	check(b, a)
	check(a, b)
}
