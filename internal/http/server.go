// Package http is claimsvc's HTTP API (docs/design.md §2): routes, request decoding
// and validation, RFC 9457 problems, API keys, request ids, logs and metrics.
// Callers import it as claimhttp.
package http

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/health"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/notify"
)

// Store is what the API needs of the claim store (internal/store).
type Store interface {
	Create(ctx context.Context, req claim.Request, hold time.Duration) (claim.Accepted, error)
	CreateBatch(ctx context.Context, reqs []claim.Request, hold time.Duration) ([]claim.ItemResult, error)
	Get(ctx context.Context, id uuid.UUID) (claim.Claim, error)
	ListByDevice(ctx context.Context, token claim.Token, limit int) ([]claim.Claim, error)
	List(ctx context.Context, status claim.Status, limit int, cursor string) (claim.Page, error)
	Events(ctx context.Context, id uuid.UUID) ([]claim.Event, error)
	Retry(ctx context.Context, id uuid.UUID, hold time.Duration, force bool) (claim.Claim, error)
	Cancel(ctx context.Context, id uuid.UUID) (claim.Claim, error)
	Stats(ctx context.Context) (claim.Stats, error)
	Ping(ctx context.Context) error
}

// Canceller cancels claims (DELETE /claims/{id}): the store for pending
// claims; internal/track also revokes delivered attribute claims in
// ThingsBoard.
type Canceller interface {
	Cancel(ctx context.Context, id uuid.UUID) (claim.Claim, error)
}

// Deps is everything the API depends on.
type Deps struct {
	Store     Store
	Canceller Canceller     // nil: the store
	Health    *health.Board // dependencies' states for /readyz; nil: none reported
	Validator *claim.Validator
	Metrics   *metrics.Metrics
	Log       *slog.Logger
	Hub       *notify.Hub // wakes Prefer: wait requests; nil: poll only
	Access    Access
	Limits    Limits        // rate limits; zero: none
	Guard     *TokenGuard   // the rejected-token budget for callers without a key; nil: none
	Caps      Caps          // concurrent waiters and batches; zero: the defaults
	Hold      time.Duration // CLAIMSVC_TB_CLAIM_HOLD
	Draining  func() bool   // true once shutdown began: /readyz answers 503
	Wake      func()        // nudges the local dispatcher after a commit; may be nil
	OpenAPI   []byte        // served at /openapi.yaml
	// Console is the operator console (internal/console), mounted at
	// ConsolePrefix behind the per-IP rate limit; nil: none. Its routes are
	// internal: not part of api/openapi.yaml.
	Console http.Handler
}

type server struct {
	store      Store
	canceller  Canceller
	health     *health.Board
	validate   *claim.Validator
	metrics    *metrics.Metrics
	log        *slog.Logger
	hub        *notify.Hub
	access     Access
	limits     Limits
	ipLimit    *limiter // nil: no per-IP limit
	tokenLimit *limiter // nil: no per-token limit
	guard      *TokenGuard
	waiters    chan struct{} // a slot per Prefer: wait request being held
	batches    chan struct{} // a slot per batch being handled
	batchWait  time.Duration
	hold       time.Duration
	draining   func() bool
	wake       func()
	spec       []byte
	console    http.Handler
}

// NewServer returns the API's handler.
func NewServer(d Deps) http.Handler {
	s := &server{store: d.Store, canceller: d.Canceller, health: d.Health, validate: d.Validator, metrics: d.Metrics, log: d.Log, hub: d.Hub,
		access: d.Access, limits: d.Limits, hold: d.Hold, draining: d.Draining, wake: d.Wake, spec: d.OpenAPI,
		console: d.Console}
	s.ipLimit = newLimiter(d.Limits.PerIP, "too many requests from this client")
	s.tokenLimit = newLimiter(d.Limits.PerToken, "too many requests for this device")
	if s.canceller == nil {
		s.canceller = d.Store
	}
	if s.health == nil {
		s.health = health.New(nil)
	}
	s.guard = d.Guard
	caps := d.Caps.withDefaults()
	s.waiters, s.batches, s.batchWait = make(chan struct{}, caps.Waiters), make(chan struct{}, caps.Batches), caps.BatchWait
	if s.hub == nil {
		s.hub = notify.New()
	}
	if s.draining == nil {
		s.draining = func() bool { return false }
	}
	if s.wake == nil {
		s.wake = func() {}
	}
	return s.routes()
}
