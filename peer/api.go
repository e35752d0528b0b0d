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

func newAPI(m *webrtc.MediaEngine, se webrtc.SettingEngine) (*webrtc.API, error) {
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("peer: register interceptors: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}
