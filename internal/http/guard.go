package http

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"
	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/metrics"
)

// TokenGuard is the rejected-token budget (docs/security.md §3). Device
// routes answer callers without an API key (the firmware), so whoever
// reaches them can present any token. What a guess
// can teach is whether the token exists: a claim that ThingsBoard rejects,
// or a device claimsvc has never seen. The guard counts, per client IP,
// every such miss that a caller without a key causes or is shown, and every
// claim it created whose outcome is not known yet; once that reaches the
// limit (CLAIMSVC_REJECTED_TOKEN_LIMIT), the IP's device requests without a
// key get 429 until misses leave the window. A device uses one token, which
// exists: it never comes near the budget. Every miss is counted in
// claimsvc_rejected_tokens_total, the alert's signal.
//
// The counts live in this process, like the rate limits; a claim created
// here is followed to its outcome through the database, whichever replica
// sends it.
type TokenGuard struct {
	limit  Rate
	reader OutcomeReader
	sec    *metrics.Security
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]*guardClient
	tracked map[uuid.UUID]trackedClaim
}

// OutcomeReader reads the statuses of claims (internal/store).
type OutcomeReader interface {
	Statuses(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]claim.Status, error)
}

type guardClient struct {
	misses     []time.Time // within the window, oldest first
	unresolved int         // tracked claims of this client
	inflight   int         // requests admitted and not answered yet (guess)
	warned     time.Time   // last "budget spent" log line
}

// used is what counts against the client's budget: misses in the window,
// claims not resolved yet, and requests under way (admitted before their
// outcome is known, so that concurrent guesses cannot all pass the check).
func (c *guardClient) used() int { return len(c.misses) + c.unresolved + c.inflight }

type trackedClaim struct {
	client string
	since  time.Time
}

const (
	// guardMaxClients bounds the clients counted at once: beyond it a new
	// client without a key is refused until entries age out.
	guardMaxClients = 50_000
	// guardMaxTracked bounds the claims followed to their outcome.
	guardMaxTracked = 20_000
	// guardTrackFor is how long a claim is followed; one still pending
	// after it (ThingsBoard away) stops counting against its client.
	guardTrackFor = 15 * time.Minute
	// guardPoll is how often tracked outcomes are read.
	guardPoll = time.Second
)

// NewTokenGuard returns the budget, or nil (no budget) when limit is off.
// Run must run for claims to be followed to their outcome.
func NewTokenGuard(limit Rate, reader OutcomeReader, m *metrics.Metrics, log *slog.Logger) *TokenGuard {
	if limit.N <= 0 || limit.Per <= 0 {
		return nil
	}
	return &TokenGuard{limit: limit, reader: reader, sec: &m.Sec, log: log, now: time.Now,
		clients: map[string]*guardClient{}, tracked: map[uuid.UUID]trackedClaim{}}
}

// clientKey is the client IP the budget counts by (IPv6 by /64).
func clientKey(r *http.Request) string {
	ip := middleware.GetClientIP(r.Context())
	if ip == "" {
		return "unknown"
	}
	return httprate.CanonicalizeIP(ip)
}

// client returns c's entry, making it unless the table is full.
func (g *TokenGuard) client(key string) *guardClient {
	c := g.clients[key]
	if c == nil && len(g.clients) < guardMaxClients {
		c = &guardClient{}
		g.clients[key] = c
	}
	return c
}

func (g *TokenGuard) prune(c *guardClient, now time.Time) {
	cut := now.Add(-g.limit.Per)
	i := 0
	for i < len(c.misses) && !c.misses[i].After(cut) {
		i++
	}
	c.misses = c.misses[i:]
}

// guess is a request without a key, admitted against its client's budget:
// it holds one unit of the budget until it ends, when the unit becomes a
// tracked claim (created), a miss (missed) or is given back (end). A nil
// guess (no budget, or a key holder) does nothing.
type guess struct {
	g      *TokenGuard
	key    string
	closed bool
}

// admit lets a request on a device route through: a key holder at once (nil
// guess), a request without a key against its client's budget (allowGuess).
// ok false means it was answered (429). The caller must end the guess.
func (s *server) admit(w http.ResponseWriter, r *http.Request) (gs *guess, ok bool) {
	if keyHolder(r) {
		return nil, true
	}
	return s.allowGuess(w, r)
}

// allowGuess admits a request without a key, or answers 429 and returns
// false when its client spent its budget.
func (s *server) allowGuess(w http.ResponseWriter, r *http.Request) (*guess, bool) {
	g := s.guard
	if g == nil {
		return nil, true
	}
	key := clientKey(r)
	now := g.now()
	g.mu.Lock()
	c := g.client(key)
	retry := time.Duration(0)
	switch {
	case c == nil || len(g.tracked) >= guardMaxTracked:
		retry = time.Minute
	default:
		g.prune(c, now)
		if c.used() >= g.limit.N {
			retry = 10 * time.Second // an unresolved claim's outcome, or a request under way
			if len(c.misses) >= g.limit.N {
				retry = c.misses[len(c.misses)-g.limit.N].Add(g.limit.Per).Sub(now)
			}
		} else {
			c.inflight++
		}
	}
	logIt := retry > 0 && c != nil && now.Sub(c.warned) > g.limit.Per
	if logIt {
		c.warned = now
	}
	g.mu.Unlock()
	if retry <= 0 {
		return &guess{g: g, key: key}, true
	}
	g.sec.BudgetRefusals.Inc()
	if logIt {
		g.log.WarnContext(r.Context(), "a client without an API key spent its rejected-token budget: it presented device tokens that "+
			"ThingsBoard rejected or claimsvc does not know (token guessing?); its device requests get 429",
			"client_ip", key, "limit", strconv.Itoa(g.limit.N)+"/"+g.limit.Per.String())
	}
	secs := max(1, int((retry+time.Second-1)/time.Second))
	// The rate-limit headers describe the budget that refused, so that on
	// every 429 X-Ratelimit-Reset = now + Retry-After.
	w.Header().Set("X-Ratelimit-Limit", strconv.Itoa(g.limit.N))
	w.Header().Set("X-Ratelimit-Remaining", "0")
	w.Header().Set("X-Ratelimit-Reset", strconv.FormatInt(now.Unix()+int64(secs), 10))
	setRetryAfter(w.Header(), now, now.Unix()+int64(secs))
	writeError(w, r, s.log, claim.Errorf(codeRateLimited,
		"too many unknown or rejected device tokens from this client, or claims not yet resolved; retry after %d seconds "+
			"(a device's own token never comes near this limit)", secs))
	return nil, false
}

// release gives the request's unit back; the caller holds g.mu.
func (gs *guess) release() bool {
	if gs == nil || gs.closed {
		return false
	}
	gs.closed = true
	if c := gs.g.clients[gs.key]; c != nil && c.inflight > 0 {
		c.inflight--
	}
	return true
}

// end gives the unit back if nothing else used it.
func (gs *guess) end() {
	if gs == nil {
		return
	}
	gs.g.mu.Lock()
	gs.release()
	gs.g.mu.Unlock()
}

// missed turns the unit into a miss: the answer showed the caller an
// unknown or rejected token.
func (gs *guess) missed() {
	if gs == nil {
		return
	}
	gs.g.mu.Lock()
	ok := gs.release()
	gs.g.mu.Unlock()
	if ok {
		gs.g.miss(gs.key, "read")
	}
}

// created turns the unit into a claim followed to its outcome.
func (gs *guess) created(id uuid.UUID) {
	if gs == nil {
		return
	}
	g := gs.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if !gs.release() {
		return
	}
	c := g.client(gs.key)
	if c == nil || len(g.tracked) >= guardMaxTracked {
		return
	}
	if _, dup := g.tracked[id]; dup {
		return
	}
	g.tracked[id] = trackedClaim{client: gs.key, since: g.now()}
	c.unresolved++
	g.sec.Unresolved.Set(float64(len(g.tracked)))
}

func (g *TokenGuard) miss(key, via string) {
	g.sec.RejectedTokens.WithLabelValues(via).Inc()
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.client(key); c != nil {
		g.prune(c, now)
		c.misses = append(c.misses, now)
		if len(c.misses) > g.limit.N { // only the newest N matter
			c.misses = c.misses[len(c.misses)-g.limit.N:]
		}
	}
}

// Run follows tracked claims to their outcome until ctx ends: a rejected
// one is a miss of the client that created it.
func (g *TokenGuard) Run(ctx context.Context) {
	if g == nil {
		return
	}
	t := time.NewTicker(guardPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.resolve(ctx)
	}
}

// resolve reads the outcomes of tracked claims (at most 5,000 a round),
// forgets the final and the stale ones, and drops idle clients.
func (g *TokenGuard) resolve(ctx context.Context) {
	now := g.now()
	g.mu.Lock()
	ids := make([]uuid.UUID, 0, min(len(g.tracked), 5000))
	for id, tc := range g.tracked {
		if now.Sub(tc.since) > guardTrackFor {
			g.untrack(id, tc)
			continue
		}
		if len(ids) < cap(ids) {
			ids = append(ids, id)
		}
	}
	g.mu.Unlock()
	if len(ids) > 0 {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := g.reader.Statuses(qctx, ids)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				g.log.Debug("cannot read the outcomes of claims created without a key; will retry", "err", err)
			}
		} else {
			var rejected []string
			g.mu.Lock()
			for id, status := range st {
				tc, ok := g.tracked[id]
				if !ok || !status.Final() {
					continue
				}
				g.untrack(id, tc)
				if status == claim.StatusRejected {
					rejected = append(rejected, tc.client)
				}
			}
			g.mu.Unlock()
			for _, key := range rejected {
				g.miss(key, "outcome")
			}
		}
	}
	g.mu.Lock()
	for key, c := range g.clients {
		g.prune(c, now)
		if c.used() == 0 && now.Sub(c.warned) > g.limit.Per {
			delete(g.clients, key)
		}
	}
	g.sec.Unresolved.Set(float64(len(g.tracked)))
	g.mu.Unlock()
}

func (g *TokenGuard) untrack(id uuid.UUID, tc trackedClaim) {
	delete(g.tracked, id)
	if c := g.clients[tc.client]; c != nil && c.unresolved > 0 {
		c.unresolved--
	}
}
