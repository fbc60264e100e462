package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Lease takes up to n due claims until leaseFor from now. Rows locked by
// another dispatcher are skipped (FOR UPDATE SKIP LOCKED) and leased rows
// stay leased until their lease expires, so two dispatchers never hold the
// same claim at once. Every lease gets its own id (kept in lease_owner): an
// outcome reported under an old lease of the same claim, even by the same
// process, is refused. The attempt is counted here.
//
// A claim whose token or secret does not open here is handed back and
// reported in the error, never failed for it (handBack): for a minute when
// it was sealed with a key this process lacks (a replica that has it sends
// it), for an hour when it was tampered with or needs claimsvc rekey.
//
// deliveries limits the lease to claims of these deliveries (nil: all), for
// a dispatcher that holds back the claims of a dependency that does not
// answer.
func (s *Store) Lease(ctx context.Context, n int, leaseFor time.Duration, deliveries []claim.Delivery) ([]claim.Job, error) {
	rows, err := s.outbox.Query(ctx, `UPDATE claims c
		SET lease_owner = gen_random_uuid(), lease_until = now() + $1::interval, attempts = attempts + 1, updated_at = now()
		FROM (SELECT id FROM claims
		      WHERE status = 'pending' AND next_attempt_at <= now()
		        AND (lease_until IS NULL OR lease_until < now())
		        AND ($3::text[] IS NULL OR delivery = ANY($3))
		      ORDER BY next_attempt_at
		      LIMIT $2
		      FOR UPDATE SKIP LOCKED) due
		WHERE c.id = due.id
		RETURNING c.id, c.lease_owner, c.delivery, coalesce(c.device_name, ''), c.token, c.secret, c.duration_ms,
		          c.attempts, c.refusals, c.created_at, c.pending_since`,
		leaseFor, n, deliveryNames(deliveries))
	if err != nil {
		return nil, dbErr("lease", err)
	}
	type row struct {
		job           claim.Job
		token, secret []byte
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		var delivery string
		err := r.Scan(&x.job.ID, &x.job.Lease, &delivery, &x.job.DeviceName, &x.token, &x.secret, &x.job.DurationMs,
			&x.job.Attempt, &x.job.Refusals, &x.job.CreatedAt, &x.job.PendingSince)
		x.job.Delivery = claim.Delivery(delivery)
		return x, err
	})
	if err != nil {
		return nil, dbErr("lease", err)
	}
	jobs := make([]claim.Job, 0, len(got))
	var bad []unopened
	for _, x := range got {
		tok, sec, err := s.openJob(x.job.ID, x.token, x.secret)
		if err != nil {
			bad = append(bad, unopened{job: x.job, err: err})
			continue
		}
		x.job.Token, x.job.SecretKey = tok, sec
		jobs = append(jobs, x.job)
	}
	if len(bad) > 0 {
		return jobs, s.handBack(ctx, bad)
	}
	return jobs, nil
}

// Finish records many attempts' outcomes in one statement: each claim is
// updated and gets its audit events (attempt, then delivered / rejected /
// failed, as Delivered, Rejected, RetryLater and Fail document), but only
// while it is still pending under the outcome's lease. lost[i] is
// ErrLeaseLost for each outcome that was refused for that reason, nil for
// one that was applied. err is set when the statement as a whole failed;
// then nothing was applied. A failure's kind is kept in last_error_kind.
func (s *Store) Finish(ctx context.Context, outs []claim.Outcome) (lost []error, err error) {
	if len(outs) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, len(outs))
	leases := make([]uuid.UUID, len(outs))
	kinds := make([]string, len(outs))
	reasons := make([]string, len(outs))
	failures := make([]string, len(outs))
	nextUs := make([]int64, len(outs))
	devices := make([]*string, len(outs))
	expiries := make([]*time.Time, len(outs))
	for i, o := range outs {
		ids[i], leases[i], kinds[i], reasons[i], nextUs[i] = o.Claim, o.Lease, string(o.Kind), o.Reason, o.Next.Microseconds()
		failures[i] = string(o.Failure)
		if o.Receipt.DeviceID != "" {
			devices[i] = &o.Receipt.DeviceID
		}
		if !o.Receipt.ExpiresAt.IsZero() {
			expiries[i] = &o.Receipt.ExpiresAt
		}
	}
	// status: the kind names it, except that a retry stays pending. The
	// events are numbered per claim (1: attempt, 2: the final kind) and
	// inserted in input order, so ids follow the order they happened in.
	rows, err := s.outbox.Query(ctx, `WITH o AS (
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::uuid[],
			                     $8::timestamptz[])
			       WITH ORDINALITY AS o(id, lease, kind, reason, next_us, failure, device, expires, ord)
		), c AS (
			UPDATE claims SET
			       status = CASE WHEN o.kind = 'retry' THEN 'pending' ELSE o.kind END,
			       delivered_at = CASE WHEN o.kind = 'delivered' THEN now() ELSE claims.delivered_at END,
			       expires_at = CASE WHEN o.kind = 'delivered' THEN coalesce(o.expires,
			                        now() + coalesce(claims.duration_ms, $9) * interval '1 millisecond')
			                    ELSE claims.expires_at END,
			       tb_device_id = coalesce(o.device, claims.tb_device_id),
			       token = CASE WHEN o.kind IN ('delivered', 'rejected') THEN NULL ELSE claims.token END,
			       secret = CASE WHEN o.kind IN ('delivered', 'rejected') THEN NULL ELSE claims.secret END,
			       next_attempt_at = CASE WHEN o.kind = 'retry' THEN now() + o.next_us * interval '1 microsecond' END,
			       last_error = NULLIF(o.reason, ''), last_error_kind = NULLIF(o.failure, ''),
			       -- a refusal counts; an unanswered attempt says nothing; anything else breaks the run
			       refusals = CASE o.failure WHEN 'refused' THEN claims.refusals + 1
			                                 WHEN 'unreachable' THEN claims.refusals ELSE 0 END,
			       lease_owner = NULL, lease_until = NULL, updated_at = now()
			FROM o
			WHERE claims.id = o.id AND claims.lease_owner = o.lease AND claims.status = 'pending'
			RETURNING claims.id, claims.attempts, o.kind, NULLIF(o.reason, '') AS reason, o.ord
		), e AS (
			INSERT INTO claim_events (claim_id, kind, attempt, outcome, detail)
			SELECT c.id, ev.kind, c.attempts, ev.outcome, c.reason
			FROM c CROSS JOIN LATERAL (VALUES (1, 'attempt', c.kind), (2, c.kind, NULL)) AS ev(n, kind, outcome)
			WHERE (ev.n = 1 AND c.kind <> 'failed') OR (ev.n = 2 AND c.kind <> 'retry')
			ORDER BY c.ord, ev.n
		)
		SELECT ord FROM c`,
		ids, leases, kinds, reasons, nextUs, failures, devices, expiries, claim.ThingsBoardDefaultDuration.Milliseconds())
	if err != nil {
		return nil, dbErr("finish attempts", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, dbErr("finish attempts", err)
	}
	lost = make([]error, len(outs))
	for i := range lost {
		lost[i] = claim.ErrLeaseLost
	}
	for _, ord := range applied {
		lost[ord-1] = nil
	}
	return lost, nil
}

// Release gives leased claims back without counting the attempt, for a
// dispatcher that stops before sending them. They are due at once.
func (s *Store) Release(ctx context.Context, jobs []claim.Job) error {
	return s.release(ctx, jobs, 0, "dispatcher stopped before sending")
}

// Hold gives leased claims back unsent and uncounted because what they need
// does not answer; why goes into their audit trail.
func (s *Store) Hold(ctx context.Context, jobs []claim.Job, why string) error {
	return s.release(ctx, jobs, 0, why)
}

// Pending counts pending claims of these deliveries (nil: all).
func (s *Store) Pending(ctx context.Context, deliveries []claim.Delivery) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM claims WHERE status = 'pending' AND ($1::text[] IS NULL OR delivery = ANY($1))`,
		deliveryNames(deliveries)).Scan(&n)
	return n, dbErr("pending", err)
}

// deliveryNames is deliveries as SQL text[] (nil: no filter).
func deliveryNames(deliveries []claim.Delivery) []string {
	if deliveries == nil {
		return nil
	}
	out := make([]string, len(deliveries))
	for i, d := range deliveries {
		out[i] = string(d)
	}
	return out
}

func (s *Store) release(ctx context.Context, jobs []claim.Job, after time.Duration, why string) error {
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

// Backlog counts pending claims and finds the oldest.
func (s *Store) Backlog(ctx context.Context) (claim.Backlog, error) {
	var b claim.Backlog
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
