package peer

import (
	"fmt"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// NewAPIWithCodecs is NewAPI with only the given video and audio codecs
// registered, so that negotiation can only pick them (for example VP8 and
// Opus, for a peer that forwards the RTP it receives). Each codec needs a
// payload type.
func NewAPIWithCodecs(se webrtc.SettingEngine, video, audio []webrtc.RTPCodecParameters) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	for kind, list := range map[webrtc.RTPCodecType][]webrtc.RTPCodecParameters{webrtc.RTPCodecTypeVideo: video, webrtc.RTPCodecTypeAudio: audio} {
		for _, c := range list {
			if err := m.RegisterCodec(c, kind); err != nil {
				return nil, fmt.Errorf("peer: register %s codec %s: %w", kind, c.MimeType, err)
			}
		}
	}
	return newAPI(m, se)
}

// chromiumVideoExtensions are the RTP header extensions of a video m-line
// in the order, and so with the ids, Chromium numbers them in a session
// that has none yet. Registered first, they give a new video m-line of
// this peer the same ids as one Chromium adds at the same moment: a glare
// in which the browser rolls its offer back then leaves no id bound to two
// extensions in the BUNDLE, which Chromium refuses ("RTP extension ID
// reassignment not supported").
var chromiumVideoExtensions = []string{
	"urn:ietf:params:rtp-hdrext:toffset",
	"http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
	"urn:3gpp:video-orientation",
	"http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
	"http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
	"http://www.webrtc.org/experiments/rtp-hdrext/video-content-type",
	"http://www.webrtc.org/experiments/rtp-hdrext/video-timing",
	"http://www.webrtc.org/experiments/rtp-hdrext/color-space",
	"urn:ietf:params:rtp-hdrext:sdes:mid",
	"urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
	"urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
}

func newAPI(m *webrtc.MediaEngine, se webrtc.SettingEngine) (*webrtc.API, error) {
	for _, uri := range chromiumVideoExtensions {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("peer: register header extension %s: %w", uri, err)
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("peer: register interceptors: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}
