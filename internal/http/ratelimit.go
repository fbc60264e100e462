package http

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Rate is N requests per window; a zero N means no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// Limits configures abuse protection (docs/design.md §2: 429 with Retry-After).
// Counters live in this process: with several replicas each enforces its
// own share.
type Limits struct {
	PerIP    Rate // every API route except probes, keyed on the client IP
	PerToken Rate // routes that name a device, keyed on SHA-256 of its token
	// TrustedProxies are CIDRs of reverse proxies in front of claimsvc: the
	// client IP is then read from X-Forwarded-For, right to left, skipping
	// these. Empty: the client IP is the TCP peer (X-Forwarded-For ignored).
	TrustedProxies []string
}

// clientIP stores the client IP for rate limiting (chi's non-spoofable
// ClientIPFrom* middlewares; RealIP would trust any header).
func (l Limits) clientIP() func(http.Handler) http.Handler {
	if len(l.TrustedProxies) > 0 {
		return middleware.ClientIPFromXFF(l.TrustedProxies...)
	}
	return middleware.ClientIPFromRemoteAddr
}

// limiter counts requests per key with httprate's sliding window.
type limiter struct {
	rl     *httprate.RateLimiter
	detail string
}

func newLimiter(r Rate, detail string) *limiter {
	if r.N <= 0 || r.Per <= 0 {
		return nil
	}
	return &limiter{rl: httprate.NewRateLimiter(r.N, r.Per), detail: detail}
}

// allow counts one request for key; when over the limit it answers 429 (with
// Retry-After set by httprate to the window) and returns false.
func (s *server) allow(l *limiter, w http.ResponseWriter, r *http.Request, key string) bool {
	if l == nil || !l.rl.OnLimit(w, r, key) {
		return true
	}
	retry := w.Header().Get("Retry-After")
	if n, err := strconv.Atoi(retry); err != nil || n < 1 {
		w.Header().Set("Retry-After", "1") // a sub-second window still asks for a pause
	}
	writeError(w, r, s.log, claim.Errorf(codeRateLimited, "%s; retry after %s seconds", l.detail, w.Header().Get("Retry-After")))
	return false
}

// limitByIP limits requests per client IP. Requests whose IP is unknown
// (unparsable X-Forwarded-For behind a trusted proxy) share one bucket.
func (s *server) limitByIP(next http.Handler) http.Handler {
	if s.ipLimit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := middleware.GetClientIP(r.Context())
		if ip == "" {
			ip = "unknown"
		}
		if s.allow(s.ipLimit, w, r, "ip:"+httprate.CanonicalizeIP(ip)) {
			next.ServeHTTP(w, r)
		}
	})
}

// limitByToken limits requests per device. The key is the token's SHA-256,
// so the limiter never holds a token; requests without a valid token are
// left to validation (and to the per-IP limit).
func (s *server) limitByToken(from tokenFrom, next http.HandlerFunc) http.HandlerFunc {
	if s.tokenLimit == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		tok, _, err := from(r)
		if err != nil || !claim.ValidToken(tok) {
			next(w, r)
			return
		}
		if s.allow(s.tokenLimit, w, r, "token:"+hex.EncodeToString(claim.Token(tok).Hash())) {
			next(w, r)
		}
	}
}
