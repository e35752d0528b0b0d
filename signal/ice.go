package signal

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"time"
)

// TURNConfig makes the server hand out TURN servers. With Secret set, each
// joiner gets fresh ephemeral credentials in the scheme of coturn's
// use-auth-secret / static-auth-secret (the "REST API for access to TURN
// services"): username "<expiry unix time>:<peer id>", credential
// base64(HMAC-SHA1(secret, username)). Otherwise Username and Credential
// are sent as they are.
type TURNConfig struct {
	URLs       []string      // e.g. turn:turn.example.org:3478?transport=udp
	Secret     string        // shared secret with the TURN server
	TTL        time.Duration // lifetime of ephemeral credentials (default 12 h)
	Username   string        // static credentials, when Secret is empty
	Credential string
}

// DefaultTURNTTL is the default lifetime of ephemeral TURN credentials.
const DefaultTURNTTL = 12 * time.Hour

// TURNCredentials returns the ephemeral username and credential for peer
// id, valid until now+ttl.
func TURNCredentials(secret, id string, now time.Time, ttl time.Duration) (username, credential string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + id
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// iceServersFor returns the iceServers for a joiner with peer id.
func (s *Server) iceServersFor(id string) []ICEServer {
	t := s.cfg.TURN
	if len(t.URLs) == 0 {
		return s.cfg.ICEServers
	}
	turn := ICEServer{URLs: t.URLs, Username: t.Username, Credential: t.Credential}
	if t.Secret != "" {
		turn.Username, turn.Credential = TURNCredentials(t.Secret, id, time.Now(), t.TTL)
	}
	return append(append(make([]ICEServer, 0, len(s.cfg.ICEServers)+1), s.cfg.ICEServers...), turn)
}
