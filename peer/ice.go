package peer

import (
	"log/slog"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// iceServers converts the iceServers of created/joined to pion's type.
// Entries pion would reject (a URL that does not parse, TURN without
// credentials) are skipped with a warning, so that one bad entry does not
// break every connection.
func iceServers(list []signal.ICEServer, log *slog.Logger) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(list))
	for _, s := range list {
		valid := len(s.URLs) > 0
		for _, u := range s.URLs {
			uri, err := stun.ParseURI(u)
			if err != nil {
				log.Warn("skipping ICE server from the server: bad URL", "url", u, "err", err)
				valid = false
				break
			}
			if (uri.Scheme == stun.SchemeTypeTURN || uri.Scheme == stun.SchemeTypeTURNS) && (s.Username == "" || s.Credential == "") {
				log.Warn("skipping ICE server from the server: TURN needs username and credential", "url", u)
				valid = false
				break
			}
		}
		if !valid {
			continue
		}
		ws := webrtc.ICEServer{URLs: append([]string(nil), s.URLs...), Username: s.Username}
		if s.Credential != "" {
			ws.Credential = s.Credential
			ws.CredentialType = webrtc.ICECredentialTypePassword
		}
		out = append(out, ws)
	}
	return out
}
