package peer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// Config configures Join. URL and Room are required; the zero value of
// every other field is a working default.
type Config struct {
	// URL is the signaling server's WebSocket endpoint, e.g.
	// ws://127.0.0.1:2013/ws.
	URL string
	// Room is the room to join (created if it does not exist).
	Room string
	// ID is the peer id to ask for; empty lets the server choose.
	ID string
	// Capacity is the room capacity to ask for when this join creates the
	// room; 0 takes the server's default.
	Capacity int
	// Token is the join token, for servers that require one (run with
	// -auth-secret): an HS256 JWT such as signal.MintToken or `rendezvous
	// token` makes. It is sent in every join except a resume. A token the
	// server refuses makes Join fail with an error wrapping ErrUnauthorized
	// and the server's *signal.Error (code unauthorized).
	Token string
	// Dial configures the WebSocket connection (every reconnection too);
	// nil means defaults.
	Dial *signal.DialOptions
	// ResumeWindow is how long the server holds this peer's seat after its
	// signaling connection drops: set it to the server's -resume-window
	// (default DefaultResumeWindow, the server's default). When the
	// connection drops (no close frame), the peer reconnects with backoff
	// and resumes its seat, keeping every PeerConnection; if the server
	// refuses the resume, or this window passes first, the seat is lost:
	// the peer closes its PeerConnections and joins the room again as a
	// newcomer (see EventSignalingLost). Negative: never reconnect (the
	// peer reports EventSignalingClosed at once, and the server releases
	// the seat when its own window ends).
	ResumeWindow time.Duration

	// API creates the PeerConnections. When nil, one is built by NewAPI
	// from SettingEngine (or from a default SettingEngine when that is nil
	// too). Use LoopbackAPI in tests and sandboxes.
	API *webrtc.API
	// SettingEngine is used when API is nil.
	SettingEngine *webrtc.SettingEngine
	// ICEServers are used in addition to the iceServers the server sends
	// in created/joined (the server's come first).
	ICEServers []webrtc.ICEServer
	// ICETransportPolicy restricts the candidates ICE uses:
	// webrtc.ICETransportPolicyRelay gathers and uses TURN relay
	// candidates only (a relay-only peer needs a TURN server in the
	// server's iceServers or in ICEServers). The zero value is
	// webrtc.ICETransportPolicyAll.
	ICETransportPolicy webrtc.ICETransportPolicy

	// DataChannels are opened on every connection. Channels without
	// Init.Negotiated are created by the offering side only and accepted
	// by the answering side, which gets them whatever its own Config says;
	// negotiated channels (Init.Negotiated with Init.ID) are created by both
	// sides, which must configure the same ones. Every offer includes a
	// data channel transport, so either side can also open channels later
	// with CreateDataChannel.
	DataChannels []DataChannelConfig
	// Tracks are added to every connection before negotiation. One track
	// may feed all connections (pion's static tracks fan out).
	Tracks []webrtc.TrackLocal
	// Receive lists the kinds of media this peer wants to receive when it
	// is the offering side and has no local track of that kind: a recvonly
	// transceiver is offered for each. (An answering side receives whatever
	// the offer sends.)
	Receive []webrtc.RTPCodecType
	// Prepare, when set, is called for each new connection just before the
	// local description is created: for the offering side before
	// CreateOffer, for the answering side after SetRemoteDescription and
	// before CreateAnswer. It may add tracks or transceivers. An error
	// abandons that connection. It runs on the peer's signaling goroutine:
	// it must not block and must not call Peer methods that wait.
	Prepare func(remoteID string, role Role, pc *webrtc.PeerConnection) error
	// OnTrack, when set, is called with every remote track, on a goroutine
	// of its own. It may block reading the track; it must return once
	// ReadRTP fails, which happens when the connection closes: Close waits
	// for it. (An EventTrack is emitted as well.)
	OnTrack func(remoteID string, track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver)

	// Codelab, when set, makes the peer speak the signalling dialect of
	// the WebRTC codelab instead of protocol v1's, so that it can call an
	// unmodified codelab page (which reaches the room through the server's
	// Socket.IO endpoint): signals travel as the data of `message`s in the
	// codelab's shapes, and the member that was in the room first offers.
	// See Codelab. Every member the peer calls must speak it too.
	Codelab *Codelab

	// Logger receives the peer's debug and warning logs; nil discards them.
	Logger *slog.Logger

	hooks *hooks // tests only
}

// DefaultResumeWindow is the default of Config.ResumeWindow: the server's
// default resume window.
const DefaultResumeWindow = signal.DefaultResumeWindow

// hooks let the package's tests observe the signaling traffic.
type hooks struct {
	pushed   func(m *signal.Message) // a message was queued for the server (any goroutine)
	received func(m *signal.Message) // the run loop handles a message from the server
	backoff  func()                  // the run loop waits (backoff) before a reconnection attempt
}

// DataChannelConfig is a data channel to open on every connection.
type DataChannelConfig struct {
	// Label names the channel; labels should be unique per connection.
	Label string
	// Init holds the channel's options (ordered, retransmits, negotiated,
	// ...); nil means reliable and ordered.
	Init *webrtc.DataChannelInit
}

// Role is this peer's side in the negotiation with one remote member.
type Role int

const (
	// RoleOffer: this peer sends the offer: it is the newcomer (in the
	// codelab dialect, the remote member is).
	RoleOffer Role = iota + 1
	// RoleAnswer: the remote member sends the offer; this peer answers.
	RoleAnswer
)

// String returns "offer" or "answer".
func (r Role) String() string {
	switch r {
	case RoleOffer:
		return "offer"
	case RoleAnswer:
		return "answer"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

func (c *Config) validate() error {
	switch {
	case c.URL == "":
		return fmt.Errorf("%w: URL is empty", ErrConfig)
	case c.Room == "":
		return fmt.Errorf("%w: Room is empty", ErrConfig)
	}
	switch c.ICETransportPolicy {
	case webrtc.ICETransportPolicyAll, webrtc.ICETransportPolicyRelay, webrtc.ICETransportPolicyNoHost:
	default:
		return fmt.Errorf("%w: unknown ICETransportPolicy %d", ErrConfig, int(c.ICETransportPolicy))
	}
	for i, dc := range c.DataChannels {
		if dc.Label == "" {
			return fmt.Errorf("%w: DataChannels[%d] has no label", ErrConfig, i)
		}
		if dc.Init != nil && dc.Init.Negotiated != nil && *dc.Init.Negotiated && dc.Init.ID == nil {
			return fmt.Errorf("%w: negotiated data channel %q has no ID", ErrConfig, dc.Label)
		}
	}
	return nil
}

// resumeWindow returns ResumeWindow with its default; negative means do not
// reconnect.
func (c *Config) resumeWindow() time.Duration {
	if c.ResumeWindow == 0 {
		return DefaultResumeWindow
	}
	return c.ResumeWindow
}

func (c *Config) api() (*webrtc.API, error) {
	if c.API != nil {
		return c.API, nil
	}
	se := webrtc.SettingEngine{}
	if c.SettingEngine != nil {
		se = *c.SettingEngine
	}
	return NewAPI(se)
}

// NewAPI returns a *webrtc.API with pion's default codecs and interceptors
// (NACK, RTCP reports, TWCC) and the given SettingEngine.
func NewAPI(se webrtc.SettingEngine) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("peer: register codecs: %w", err)
	}
	return newAPI(m, se)
}
