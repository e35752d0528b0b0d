package signal

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenClaims are the claims of a join token: an HS256 JWT signed with the
// server's auth secret (Config.AuthSecret).
type TokenClaims struct {
	// Room is the room the token admits to: an exact name, or "*" for any.
	Room string `json:"room"`
	// Cap, when set, is the largest capacity a join with this token may
	// create a room with.
	Cap int `json:"cap,omitempty"`
	// RegisteredClaims carries exp (required) and sub (optional: the only
	// peer id the token grants).
	jwt.RegisteredClaims
}

// MintToken returns a join token for room (or "*"), valid for ttl. sub,
// when not empty, is the peer id it grants; capacity, when not zero, the
// largest capacity it may create a room with.
func MintToken(secret []byte, room, sub string, capacity int, ttl time.Duration) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("signal: empty auth secret")
	}
	if room != "*" && !validRoom(room) {
		return "", fmt.Errorf("signal: invalid room name %q", room)
	}
	if sub != "" && !validID(sub) {
		return "", fmt.Errorf("signal: invalid peer id %q", sub)
	}
	if ttl <= 0 {
		return "", errors.New("signal: token ttl must be positive")
	}
	now := time.Now()
	claims := TokenClaims{Room: room, Cap: capacity, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// authorize checks a join's token against the server's secret and returns
// its claims, or a sentence saying what is wrong.
func (s *Server) authorize(m *clientMsg) (*TokenClaims, string) {
	if m.token == "" {
		return nil, "This server needs a join token: send join with \"token\"."
	}
	if len(m.token) > DefaultMaxTokenBytes {
		return nil, fmt.Sprintf("The join token is longer than %d bytes; it is not accepted.", DefaultMaxTokenBytes)
	}
	var claims TokenClaims
	_, err := s.jwtParser.ParseWithClaims(m.token, &claims, func(*jwt.Token) (any, error) {
		return s.cfg.AuthSecret, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, "The join token has expired; get a new one."
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, "The join token has no expiry (exp); it is not accepted."
	case err != nil:
		return nil, "The join token is not valid (bad signature or format)."
	case claims.Room != "*" && claims.Room != m.room:
		return nil, fmt.Sprintf("The join token is not for room %q.", m.room)
	case claims.Subject != "" && !validID(claims.Subject):
		return nil, "The join token's sub is not a valid peer id ([A-Za-z0-9_-], 1 to 64 characters)."
	case claims.Subject != "" && m.id != "" && m.id != claims.Subject:
		return nil, fmt.Sprintf("The join token grants id %q, not %q.", claims.Subject, m.id)
	}
	return &claims, ""
}

func newJWTParser() *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(authLeeway),
	)
}

// authLeeway is how long past its expiry a join token is still accepted,
// for clocks that differ; a resume is refused once the token that admitted
// the seat is that far past its expiry.
const authLeeway = 5 * time.Second
