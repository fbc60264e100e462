// Package store keeps claims in PostgreSQL (pgx/v5, pgxpool): intake with the
// hold and idempotency rules, reads for the API, and the outbox that the
// dispatcher leases from with FOR UPDATE SKIP LOCKED.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/seal"
)

// NotifyChannel is the LISTEN/NOTIFY channel that wakes dispatchers when a
// claim becomes due. Notifications are only a hint: dispatchers also poll.
const NotifyChannel = "claimsvc_claims"

// Store is the PostgreSQL-backed claim store. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool // intake and reads: every commit is durable before it returns
	outbox *pgxpool.Pool // the dispatcher's leases and outcomes: synchronous_commit=off, see Open
	sealer *seal.Sealer

	gc        GroupCommit // see groupcommit.go
	group     *committers
	closeOnce sync.Once

	superseded func(n int) // told how many claims an intake transaction superseded
}

// WithSuperseded has the store tell f how many claims each committed intake
// transaction superseded (for the claimsvc_claim_transitions_total metric).
func WithSuperseded(f func(n int)) Option {
	return func(s *Store) { s.superseded = f }
}

// Open connects a pool to url and starts the intake committers (see
// WithGroupCommit). maxConns 0 keeps pgxpool's default.
func Open(ctx context.Context, url string, maxConns int32, sealer *seal.Sealer, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", redactErr(err))
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	// Plan every statement for its own arguments, on both pools. pgx
	// prepares statements, and after five runs PostgreSQL may keep a generic
	// plan made while the table was small, until the next ANALYZE. Twice that
	// plan walked the whole table while it grew: the dispatcher's batched
	// outcome report (a sequential scan, 11 ms at 20,000 rows alone, 150 ms a
	// statement under load), and intake's device lookup, whose generic plan
	// made on an empty table scanned claims_by_status (5.6 ms at 30,000
	// claims instead of 0.03; docs/performance.md §3). Planning costs well
	// under a millisecond per statement, and intake's are shared by a group.
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", redactErr(err))
	}
	// The dispatcher's writes (leases, outcomes, releases) do not wait for
	// the WAL flush. If the database crashes before flushing one, the claim
	// simply looks as it did before that write: still pending, or leased
	// until the lease expires, and it is sent again. That is the
	// at-least-once contract already; what it buys is one fsync less on
	// every lease and every delivery. Intake never uses this pool: a 2xx
	// still means the claim is on disk.
	ocfg := cfg.Copy()
	ocfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	ocfg.MaxConns = max(4, cfg.MaxConns/2)
	outbox, err := pgxpool.NewWithConfig(ctx, ocfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: %w", redactErr(err))
	}
	if sealer == nil {
		sealer, _ = seal.New(nil)
	}
	st := &Store{pool: pool, outbox: outbox, sealer: sealer, superseded: func(int) {}}
	for _, o := range opts {
		o(st)
	}
	st.startCommitters()
	return st, nil
}

// Close lets intake transactions under way finish, fails requests still
// queued for one, and closes the pool.
func (s *Store) Close() {
	s.closeCommitters()
	s.pool.Close()
	s.outbox.Close()
}

// Pool exposes the pool for migrations and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return claim.Unavailable(err)
	}
	return nil
}

// redactErr drops a connection string's password from parse errors.
func redactErr(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("cannot parse the database URL (check its syntax)")
	}
	return err
}

// dbErr turns a driver error into a domain error: SQL errors are internal,
// everything else (no connection, network, timeout) means the database is
// unavailable and nothing was stored.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *claim.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return claim.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 (connection), 53 (resources), 57P (shutdown): unavailable.
		switch {
		case len(pgErr.Code) >= 2 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "53"), pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03":
			return claim.Unavailable(fmt.Errorf("%s: %w", op, err))
		}
		return &claim.Error{Code: claim.CodeInternal, Message: "internal error", Err: fmt.Errorf("%s: %w", op, err)}
	}
	return claim.Unavailable(fmt.Errorf("%s: %w", op, err))
}

// isUniqueViolation reports a unique-constraint violation on constraint.
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// isRetryable reports a deadlock or serialization failure: the transaction
// was rolled back and may simply be run again.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
