package peer

import (
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// ICE timeouts of LoopbackSettingEngine: a broken connection is reported
// disconnected after LoopbackICEDisconnectedTimeout and failed after
// LoopbackICEFailedTimeout, instead of pion's 5 s and 25 s.
const (
	LoopbackICEDisconnectedTimeout = 2 * time.Second
	LoopbackICEFailedTimeout       = 5 * time.Second
	LoopbackICEKeepaliveInterval   = 500 * time.Millisecond
)

// LoopbackSettingEngine returns a SettingEngine for loopback-only ICE, for
// tests, CI and sandboxes where every peer runs on the same machine.
//
// IMPORTANT: pion never gathers loopback candidates by default. On a
// machine whose only network interface is lo (a CI container, a network
// namespace made with `unshare -n`), a PeerConnection built with pion's
// default settings has no candidate at all: it never connects, and only
// reports failed after about 30 seconds. Use this SettingEngine (or
// LoopbackAPI) there.
//
// It sets:
//   - SetIncludeLoopbackCandidate(true), so 127.0.0.1 is gathered;
//   - an IP filter keeping loopback addresses only, so candidates of other
//     interfaces (which may be unreachable) are not gathered;
//   - UDP over IPv4 only (NetworkTypeUDP4);
//   - mDNS disabled (no multicast on lo; host candidates are plain IPs);
//   - short ICE timeouts (the Loopback constants above), so a connection
//     that cannot work fails in seconds.
//
// Such a peer can only reach peers on the same machine that also offer
// loopback candidates (another peer made with these settings). Browsers
// do not gather loopback candidates; for a browser use the default
// settings.
func LoopbackSettingEngine() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(LoopbackICEDisconnectedTimeout, LoopbackICEFailedTimeout, LoopbackICEKeepaliveInterval)
	se.SetSTUNGatherTimeout(time.Second)
	return se
}

// LoopbackAPI returns NewAPI(LoopbackSettingEngine()): pion's default
// codecs and interceptors with loopback-only ICE. Read LoopbackSettingEngine:
// without loopback candidates pion never connects on a machine whose only
// interface is lo, and fails only after about 30 s.
func LoopbackAPI() (*webrtc.API, error) {
	return NewAPI(LoopbackSettingEngine())
}
