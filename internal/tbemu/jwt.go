package tbemu

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// JWTs are signed with HS512 as ThingsBoard's JwtTokenFactory does (docs/thingsboard.md §5), with a key drawn at
// random per emulator, so tokens never outlive the process.

// jwtClaims is the body of a ThingsBoard access or refresh token.
type jwtClaims struct {
	Sub        string   `json:"sub"`
	UserID     string   `json:"userId"`
	Scopes     []string `json:"scopes"`
	SessionID  string   `json:"sessionId,omitempty"`
	TenantID   string   `json:"tenantId,omitempty"`
	CustomerID string   `json:"customerId,omitempty"`
	FirstName  string   `json:"firstName,omitempty"`
	LastName   string   `json:"lastName,omitempty"`
	Enabled    bool     `json:"enabled"`
	IsPublic   bool     `json:"isPublic"`
	Iss        string   `json:"iss"`
	Iat        int64    `json:"iat"`
	Exp        int64    `json:"exp"`
}

var (
	// errJWTMalformed is jjwt's MalformedJwtException and friends (docs/thingsboard.md §4.1 row 1a).
	errJWTMalformed = errors.New("invalid JWT token")
	// errJWTExpired covers an expired token and a bad signature (docs/thingsboard.md §4.1 row 1b).
	errJWTExpired = errors.New("JWT token expired")
)

type jwtSigner struct {
	key []byte
}

func newJWTSigner() *jwtSigner {
	key := make([]byte, 64)
	if _, err := rand.Read(key); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return &jwtSigner{key: key}
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS512"}`))

func (s *jwtSigner) sign(c jwtClaims) string {
	body, _ := json.Marshal(c) // jwtClaims always marshals
	unsigned := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(body)
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(s.mac(unsigned))
}

func (s *jwtSigner) mac(unsigned string) []byte {
	m := hmac.New(sha512.New, s.key)
	m.Write([]byte(unsigned))
	return m.Sum(nil)
}

// parse verifies a token: malformed text is errJWTMalformed; a bad signature or an expired token is
// errJWTExpired, as ThingsBoard maps both to "Token has expired".
func (s *jwtSigner) parse(token string, now time.Time) (jwtClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return jwtClaims{}, errJWTMalformed
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil {
		return jwtClaims{}, errJWTMalformed
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return jwtClaims{}, errJWTMalformed
	}
	var c jwtClaims
	if json.Unmarshal(body, &c) != nil {
		return jwtClaims{}, errJWTMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return jwtClaims{}, errJWTMalformed
	}
	if hdr.Alg != "HS512" || !hmac.Equal(sig, s.mac(parts[0]+"."+parts[1])) {
		return jwtClaims{}, errJWTExpired
	}
	if now.Unix() >= c.Exp {
		return jwtClaims{}, errJWTExpired
	}
	return c, nil
}
