package tbrest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// refreshMargin is how long before its expiry a JWT is refreshed; for a JWT that lives less than
// twice as long, half its life.
const refreshMargin = time.Minute

// session holds the JWT pair of a Username/Password Client (docs/thingsboard.md §5).
type session struct {
	lock    chan struct{} // held while logging in or refreshing; a channel so waiting obeys ctx
	access  string
	refresh string
	iat     time.Time // from the unverified JWT; zero when absent
	exp     time.Time
}

func newSession() *session { return &session{lock: make(chan struct{}, 1)} }

// due reports whether the access token should be refreshed at now.
func (s *session) due(now time.Time) bool {
	if s.exp.IsZero() {
		return false // no expiry known: use it until ThingsBoard refuses it
	}
	margin := refreshMargin
	if life := s.exp.Sub(s.iat); !s.iat.IsZero() && life > 0 && life/2 < margin {
		margin = life / 2
	}
	return !now.Before(s.exp.Add(-margin))
}

// authorization returns the X-Authorization value for a REST call and, for a JWT, the JWT itself.
// stale is a JWT that ThingsBoard refused during this call: it is never returned again.
func (c *Client) authorization(ctx context.Context, stale string) (authz, jwt string, e *Error, retry bool) {
	if c.apiKey != "" {
		return "ApiKey " + c.apiKey, "", nil, false
	}
	jwt, e, retry = c.bearer(ctx, stale)
	if e != nil {
		return "", "", e, retry
	}
	return "Bearer " + jwt, jwt, nil, false
}

// bearer returns a usable JWT: the one held, refreshed when its expiry is near, or a new login.
// One caller at a time logs in; the others then use its JWT.
func (c *Client) bearer(ctx context.Context, stale string) (string, *Error, bool) {
	s := c.jwt
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return "", &Error{Op: OpLogin, Kind: KindCanceled, Err: ctx.Err()}, false
	}
	defer func() { <-s.lock }()

	if s.access != "" && s.access == stale {
		s.access = "" // ThingsBoard refused it: log in again (a refresh would not help a revoked session)
	}
	if s.access != "" {
		if !s.due(c.now()) {
			return s.access, nil, false
		}
		if s.refresh != "" {
			e, _ := c.exchange(ctx, request{op: OpRefresh, method: http.MethodPost, path: "/api/auth/token",
				body: mustJSON(map[string]string{"refreshToken": s.refresh}), secrets: []string{s.refresh}})
			if e == nil {
				return s.access, nil, false
			}
			if e.Kind == KindCanceled {
				return "", e, false
			}
			c.log.Info("tb rest: refreshing the JWT failed; logging in again", "kind", e.Kind, "status", e.Status)
		}
	}
	held, heldUntil := s.access, s.exp
	e, retry := c.exchange(ctx, request{op: OpLogin, method: http.MethodPost, path: "/api/auth/login",
		body: mustJSON(map[string]string{"username": c.user, "password": c.password}), secrets: []string{c.password}})
	if e != nil {
		// A JWT near its expiry is still good until then: a refresh and a
		// login that got no answer (an outage, a restart) do not end it.
		if held != "" && c.now().Before(heldUntil) && e.Kind != KindUnauthorized && e.Kind != KindCanceled {
			c.log.Warn("tb rest: logging in again failed; the JWT held is still valid, using it", "kind", e.Kind)
			return held, nil, false
		}
		return "", e, retry
	}
	c.log.Info("tb rest: logged in", "expires", s.exp)
	return s.access, nil, false
}

// exchange sends a login or refresh request and keeps the JwtPair it answers. The caller holds
// the session lock.
func (c *Client) exchange(ctx context.Context, r request) (*Error, bool) {
	ans, e, retry := c.send(ctx, r, "")
	if e != nil {
		return e, retry
	}
	var pair struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refreshToken"`
		Scope        string `json:"scope"`
	}
	if err := decodeJSON(r.op, ans, &pair); err != nil {
		var te *Error
		errors.As(err, &te)
		return te, false
	}
	if pair.Scope != "" {
		// A PRE_VERIFICATION_TOKEN (or MFA configuration) token: only a second factor can follow.
		return &Error{Op: r.op, Kind: KindUnauthorized, Status: ans.status, Err: errTwoFactor}, false
	}
	if pair.Token == "" {
		return &Error{Op: r.op, Kind: KindBadResponse, Status: ans.status, Err: errors.New("the answer holds no token")}, false
	}
	s := c.jwt
	s.access, s.refresh = pair.Token, pair.RefreshToken
	s.iat, s.exp = jwtTimes(pair.Token)
	return nil, false
}

// jwtTimes reads iat and exp from a JWT's payload without verifying it: the Client only needs to
// know when to refresh, and ThingsBoard checks the signature. Zero times when absent or unreadable.
func jwtTimes(token string) (iat, exp time.Time) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, time.Time{}
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, time.Time{}
	}
	var claims struct {
		Iat *float64 `json:"iat"`
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil {
		return time.Time{}, time.Time{}
	}
	if claims.Iat != nil && *claims.Iat > 0 {
		iat = time.Unix(int64(*claims.Iat), 0)
	}
	if claims.Exp != nil && *claims.Exp > 0 {
		exp = time.Unix(int64(*claims.Exp), 0)
	}
	return iat, exp
}

// mustJSON encodes values that always encode (maps of strings, plain structs).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("tbrest: " + err.Error())
	}
	return b
}
