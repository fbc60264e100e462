package http

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
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

// limiter counts requests per key in fixed windows of Per, one after the
// other from the limiter's start: at most N per key in each. Fixed windows
// make the headers exact: X-Ratelimit-Remaining is what is left in the
// window, X-Ratelimit-Reset is when it ends and the whole limit is back, and
// a 429's Retry-After is the seconds until then (docs/design.md §2.6).
type limiter struct {
	n      int
	per    time.Duration
	detail string
	now    func() time.Time

	mu     sync.Mutex
	start  time.Time      // the current window's start
	counts map[string]int // requests counted in the current window, by key
	warned time.Time      // the window in which "table full" was last said
}

// limiterMaxKeys bounds the keys counted in one window (memory stays bounded
// under a flood of made-up tokens or addresses). Beyond it a new key passes
// uncounted until the window ends: refusing it would let a flood of made-up
// tokens shut out every device not yet counted, key holders included, while
// keys already counted stay limited and the per-IP limit still applies.
const limiterMaxKeys = 200_000

func newLimiter(r Rate, detail string) *limiter {
	if r.N <= 0 || r.Per <= 0 {
		return nil
	}
	return &limiter{n: r.N, per: r.Per, detail: detail, now: time.Now, start: time.Now(), counts: map[string]int{}}
}

// quota is one request's standing against a limit.
type quota struct {
	allowed   bool
	limit     int
	remaining int
	at        time.Time // when it was counted
	window    time.Time // the start of the window the request was counted in
	reset     time.Time // when that window ends
	uncounted bool      // let through without counting: the table is full
}

// take counts one request for key, unless the key is over the limit.
func (l *limiter) take(key string) quota {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if since := now.Sub(l.start); since >= l.per {
		l.start = l.start.Add(since - since%l.per)
		clear(l.counts)
	}
	q := quota{limit: l.n, at: now, window: l.start, reset: l.start.Add(l.per)}
	c, known := l.counts[key]
	if !known && len(l.counts) >= limiterMaxKeys {
		q.allowed, q.remaining, q.uncounted = true, l.n, true
		return q
	}
	if c >= l.n {
		return q
	}
	l.counts[key] = c + 1
	q.allowed, q.remaining = true, l.n-c-1
	return q
}

// giveBack uncounts a request that q counted, if its window is still the
// current one: the request failed through claimsvc's fault (5xx).
func (l *limiter) giveBack(key string, q quota) {
	if !q.allowed || q.uncounted {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.Equal(q.window) && l.counts[key] > 0 {
		l.counts[key]--
	}
}

// firstOverflow reports whether this is the first request of window to pass
// uncounted.
func (l *limiter) firstOverflow(window time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.warned.Equal(window) {
		return false
	}
	l.warned = window
	return true
}

// setHeaders describes q in the X-Ratelimit-* headers (names as Go sends
// them, canonical): X-Ratelimit-Reset is the window's end as Unix time,
// rounded up. A refusal also gets Retry-After, the seconds from its Date to
// that end: Reset = Date + Retry-After exactly, and never too early.
func (q quota) setHeaders(h http.Header) {
	reset := q.reset.Unix()
	if q.reset.After(time.Unix(reset, 0)) {
		reset++
	}
	h.Set("X-Ratelimit-Limit", strconv.Itoa(q.limit))
	h.Set("X-Ratelimit-Remaining", strconv.Itoa(q.remaining))
	h.Set("X-Ratelimit-Reset", strconv.FormatInt(reset, 10))
	if !q.allowed {
		setRetryAfter(h, q.at, reset)
	}
}

// setRetryAfter sets Retry-After to the seconds from now to the Unix time
// reset (at least 1), and Date to now, so that reset = Date + Retry-After.
func setRetryAfter(h http.Header, now time.Time, reset int64) {
	h.Set("Date", now.UTC().Format(http.TimeFormat))
	h.Set("Retry-After", strconv.FormatInt(max(1, reset-now.Unix()), 10))
}

// allow counts one request for key and describes the limit in the answer's
// headers; when over the limit it answers 429 and returns false.
func (s *server) allow(l *limiter, w http.ResponseWriter, r *http.Request, key string) (quota, bool) {
	q := l.take(key)
	q.setHeaders(w.Header())
	if q.uncounted && l.firstOverflow(q.window) {
		s.log.WarnContext(r.Context(), "rate-limit table full: keys not yet counted pass uncounted until the window ends "+
			"(a flood of made-up tokens or addresses?)", "limit", l.detail, "keys", limiterMaxKeys, "window_ends", q.reset)
	}
	if q.allowed {
		return q, true
	}
	writeError(w, r, s.log, claim.Errorf(codeRateLimited, "%s; retry after %s seconds", l.detail, w.Header().Get("Retry-After")))
	return q, false
}

// limitByIP limits requests per client IP: every request on an API route
// counts, whatever its answer. Requests whose IP is unknown (unparsable
// X-Forwarded-For behind a trusted proxy) share one bucket.
func (s *server) limitByIP(next http.Handler) http.Handler {
	if s.ipLimit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := middleware.GetClientIP(r.Context())
		if ip == "" {
			ip = "unknown"
		}
		if _, ok := s.allow(s.ipLimit, w, r, "ip:"+httprate.CanonicalizeIP(ip)); ok {
			next.ServeHTTP(w, r)
		}
	})
}

// limitByToken limits requests per device, reads and claims alike. The key is
// the token's SHA-256, so the limiter never holds a token; requests without a
// valid token are left to validation (and to the per-IP limit). A request
// answered 5xx is given back: nothing was stored, and a device retrying
// through a database outage must not find itself over its limit afterwards.
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
		key := tokenKey(claim.Token(tok))
		q, ok := s.allow(s.tokenLimit, w, r, key)
		if !ok {
			return
		}
		rec := &recorder{ResponseWriter: w}
		next(rec, r)
		if rec.status >= http.StatusInternalServerError {
			s.tokenLimit.giveBack(key, q)
		}
	}
}

// tokenKey is the per-device limit's key for tok.
func tokenKey(tok claim.Token) string { return "token:" + hex.EncodeToString(tok.Hash()) }
