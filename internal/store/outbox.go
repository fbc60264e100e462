package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Job is a leased claim with what it takes to send it. Token and SecretKey
// are opened (decrypted) here and live only in memory for the attempt.
type Job struct {
	ID           uuid.UUID
	Lease        uuid.UUID // this lease's id: outcomes are applied only while it still holds
	Token        claim.Token
	SecretKey    *claim.Secret
	DurationMs   *int64
	Attempt      int // 1 for the first attempt
	CreatedAt    time.Time
	PendingSince time.Time
}

// Lease takes up to n due claims until leaseFor from now. Rows locked by
// another dispatcher are skipped (FOR UPDATE SKIP LOCKED) and leased rows
// stay leased until their lease expires, so two dispatchers never hold the
// same claim at once. Every lease gets its own id (kept in lease_owner): an
// outcome reported under an old lease of the same claim, even by the same
// process, is refused. The attempt is counted here.
//
// A claim this process cannot decrypt (its data key is missing or differs
// from the one that sealed the row) is handed back for a minute, for a
// replica that can, and reported in the error: it is never failed for it.
func (s *Store) Lease(ctx context.Context, n int, leaseFor time.Duration) ([]Job, error) {
	rows, err := s.outbox.Query(ctx, `UPDATE claims c
		SET lease_owner = gen_random_uuid(), lease_until = now() + $1::interval, attempts = attempts + 1, updated_at = now()
		FROM (SELECT id FROM claims
		      WHERE status = 'pending' AND next_attempt_at <= now()
		        AND (lease_until IS NULL OR lease_until < now())
		      ORDER BY next_attempt_at
		      LIMIT $2
		      FOR UPDATE SKIP LOCKED) due
		WHERE c.id = due.id
		RETURNING c.id, c.lease_owner, c.token, c.secret, c.duration_ms, c.attempts, c.created_at, c.pending_since`,
		leaseFor, n)
	if err != nil {
		return nil, dbErr("lease", err)
	}
	type row struct {
		job           Job
		token, secret []byte
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.job.ID, &x.job.Lease, &x.token, &x.secret, &x.job.DurationMs, &x.job.Attempt, &x.job.CreatedAt, &x.job.PendingSince)
		return x, err
	})
	if err != nil {
		return nil, dbErr("lease", err)
	}
	jobs := make([]Job, 0, len(got))
	var unreadable []Job
	var openErr error
	for _, x := range got {
		tok, err := s.sealer.Open(x.token, x.job.ID[:])
		var sec []byte
		if err == nil && x.secret != nil {
			sec, err = s.sealer.Open(x.secret, x.job.ID[:])
		}
		if err != nil {
			unreadable, openErr = append(unreadable, x.job), err
			continue
		}
		x.job.Token = claim.Token(tok)
		if x.secret != nil {
			sk := claim.Secret(sec)
			x.job.SecretKey = &sk
		}
		jobs = append(jobs, x.job)
	}
	if len(unreadable) > 0 {
		_ = s.release(context.WithoutCancel(ctx), unreadable, time.Minute,
			"this replica cannot decrypt the claim (its data key is missing or different); left for one that can")
		return jobs, fmt.Errorf("%w: %d claims handed back: %v", ErrCannotOpen, len(unreadable), openErr)
	}
	return jobs, nil
}

// ErrCannotOpen means leased claims were sealed with a data key this process
// does not have.
var ErrCannotOpen = errors.New("cannot decrypt stored claims: check CLAIMSVC_DATA_KEY")

// ErrLeaseLost means the claim was no longer held under the job's lease when
// the dispatcher reported an outcome (the lease expired and was reaped or
// taken over, or an operator changed the claim). The report was not applied.
var ErrLeaseLost = fmt.Errorf("lease lost")

// finish applies an attempt's outcome to a claim still held under the job's
// lease, with its audit events, in one statement.
func (s *Store) finish(ctx context.Context, j Job, set string, events string, args ...any) error {
	tag, err := s.outbox.Exec(ctx, `WITH c AS (
			UPDATE claims SET `+set+`, lease_owner = NULL, lease_until = NULL, updated_at = now()
			WHERE id = $1 AND lease_owner = $2 AND status = 'pending'
			RETURNING id, attempts)
		INSERT INTO claim_events (claim_id, kind, attempt, outcome, detail) `+events,
		append([]any{j.ID, j.Lease}, args...)...)
	if err != nil {
		return dbErr("finish attempt", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrLeaseLost
	}
	return nil
}

// Delivered records a PUBACK: the claim is delivered; its token and secret
// are erased.
func (s *Store) Delivered(ctx context.Context, j Job) error {
	return s.finish(ctx, j,
		`status = 'delivered', delivered_at = now(), token = NULL, secret = NULL, next_attempt_at = NULL, last_error = NULL`,
		`SELECT id, 'attempt', attempts, 'delivered', NULL FROM c UNION ALL SELECT id, 'delivered', attempts, NULL, NULL FROM c`,
	)
}

// Rejected records a CONNACK 4/5: ThingsBoard does not know the token. Never
// retried; token and secret are erased.
func (s *Store) Rejected(ctx context.Context, j Job, reason string) error {
	return s.finish(ctx, j,
		`status = 'rejected', token = NULL, secret = NULL, next_attempt_at = NULL, last_error = $3`,
		`SELECT id, 'attempt', attempts, 'rejected', $3 FROM c UNION ALL SELECT id, 'rejected', attempts, NULL, $3 FROM c`, reason)
}

// RetryLater records a transient failure and schedules the next attempt.
func (s *Store) RetryLater(ctx context.Context, j Job, next time.Duration, reason string) error {
	return s.finish(ctx, j,
		`next_attempt_at = now() + $4::interval, last_error = $3`,
		`SELECT id, 'attempt', attempts, 'retry', $3 FROM c`, reason, next)
}

// Fail records that the claim will not be delivered without an operator
// (MAX_PENDING_AGE passed, or a permanent local error). Token and secret stay
// so that POST /claims/{id}/retry can send it later.
func (s *Store) Fail(ctx context.Context, j Job, reason string) error {
	return s.finish(ctx, j,
		`status = 'failed', next_attempt_at = NULL, last_error = $3`,
		`SELECT id, 'failed', attempts, NULL, $3 FROM c`, reason)
}

// Release gives leased claims back without counting the attempt, for a
// dispatcher that stops before sending them. They are due at once.
func (s *Store) Release(ctx context.Context, jobs []Job) error {
	return s.release(ctx, jobs, 0, "dispatcher stopped before sending")
}

func (s *Store) release(ctx context.Context, jobs []Job, after time.Duration, why string) error {
	if len(jobs) == 0 {
		return nil
	}
	leases := make([]uuid.UUID, len(jobs))
	for i, j := range jobs {
		leases[i] = j.Lease
	}
	_, err := s.outbox.Exec(ctx, `WITH c AS (
			UPDATE claims SET lease_owner = NULL, lease_until = NULL, attempts = greatest(attempts - 1, 0),
			       next_attempt_at = now() + $2::interval, updated_at = now()
			WHERE lease_owner = ANY($1) AND status = 'pending'
			RETURNING id)
		INSERT INTO claim_events (claim_id, kind, detail) SELECT id, 'released', $3 FROM c`,
		leases, after, why)
	return dbErr("release", err)
}

// ReapExpiredLeases returns claims whose lease ran out (their dispatcher died
// or hung) to the queue, records it, and returns how many it reaped.
func (s *Store) ReapExpiredLeases(ctx context.Context) (int64, error) {
	tag, err := s.outbox.Exec(ctx, `WITH c AS (
			UPDATE claims SET lease_owner = NULL, lease_until = NULL, next_attempt_at = now(), updated_at = now()
			WHERE status = 'pending' AND lease_until < now()
			RETURNING id, attempts)
		INSERT INTO claim_events (claim_id, kind, attempt, detail)
		SELECT id, 'lease_expired', attempts, 'the dispatcher holding it stopped answering; the outcome of that attempt is unknown' FROM c`)
	if err != nil {
		return 0, dbErr("reap", err)
	}
	return tag.RowsAffected(), nil
}

// Backlog is what the pending gauges show.
type Backlog struct {
	Pending      int64
	OldestAccept time.Time // zero when nothing is pending
}

// Backlog counts pending claims and finds the oldest.
func (s *Store) Backlog(ctx context.Context) (Backlog, error) {
	var b Backlog
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(pending_since) FROM claims WHERE status = 'pending'`).Scan(&b.Pending, &oldest)
	if oldest != nil {
		b.OldestAccept = *oldest
	}
	return b, dbErr("backlog", err)
}

// Listen calls wake for every NOTIFY on NotifyChannel until ctx ends. It keeps
// one dedicated connection and reconnects after errors (with a pause), so a
// database restart costs wake-ups, never claims: dispatchers poll too.
func (s *Store) Listen(ctx context.Context, wake func(), onErr func(error)) {
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		onErr(err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, wake func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return dbErr("listen", err)
	}
	// The connection carries LISTEN state: take it out of the pool for good.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	if _, err := pc.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return dbErr("listen", err)
	}
	wake() // anything committed before LISTEN took effect
	for {
		if _, err := pc.WaitForNotification(ctx); err != nil {
			return dbErr("listen", err)
		}
		wake()
	}
}
