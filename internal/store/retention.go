package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Retention says how long what is kept (docs/security.md §6); a
// zero duration keeps it forever.
type Retention struct {
	FailedSecrets   time.Duration // erase a failed claim's token and secret this long after it failed
	Claims          time.Duration // delete a final claim this long after its last change, unless it is its device's newest
	IdempotencyKeys time.Duration // forget an Idempotency-Key this long after its request
}

// SweepResult counts what one sweep changed.
type SweepResult struct {
	Skipped        bool // another replica was sweeping
	ErasedSecrets  int64
	PurgedClaims   int64
	PurgedIdemKeys int64
	StoppedEarly   bool // the sweep reached its bound; the next one goes on
	Took           time.Duration
}

// sweepBatch is the most rows one statement changes; sweepMaxBatches bounds
// one sweep (the next sweep goes on).
const (
	sweepBatch      = 1000
	sweepMaxBatches = 100
)

// sweepLock is the advisory lock that keeps replicas from sweeping at once.
const sweepLock int64 = 0x636c6169_6d737770 // "claimswp"

// The sweep's statements. Each takes ($1 age, $2 batch) and changes at most
// a batch of rows, locked with SKIP LOCKED so that it never waits for (or
// blocks) a dispatcher or an operator on the same claim.
const (
	// A failed claim can be retried only while it holds its token and
	// secret: after the retention it cannot (Retry refuses it), and nothing
	// of the device's credentials stays behind.
	eraseFailedSecrets = `WITH c AS (
			SELECT id FROM claims
			WHERE status = 'failed' AND token IS NOT NULL AND updated_at < now() - $1::interval
			ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE claims SET token = NULL, secret = NULL FROM c WHERE claims.id = c.id`
	// A final claim goes once it is older than the retention, unless
	// ThingsBoard may still hold it (delivered, and its window is open), or
	// it is its device's newest claim: the firmware reads that one to decide
	// whether to claim again, and the hold rule weighs it. Its events and
	// Idempotency-Keys go with it (ON DELETE CASCADE).
	purgeClaims = `WITH c AS (
			SELECT c.id FROM claims c
			WHERE c.status <> 'pending' AND c.updated_at < now() - $1::interval
			  AND (c.delivered_at IS NULL
			       OR c.delivered_at + coalesce(c.duration_ms, 86400000) * interval '1 millisecond' < now())
			  AND EXISTS (SELECT 1 FROM claims n WHERE n.token_hash = c.token_hash
			                AND (n.created_at, n.id) > (c.created_at, c.id))
			ORDER BY c.updated_at LIMIT $2 FOR UPDATE OF c SKIP LOCKED)
		DELETE FROM claims USING c WHERE claims.id = c.id`
	purgeIdemKeys = `WITH k AS (
			SELECT key FROM idempotency_keys WHERE created_at < now() - $1::interval
			ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		DELETE FROM idempotency_keys USING k WHERE idempotency_keys.key = k.key`
)

// Sweep applies the retention once: it erases the token and secret of old
// failed claims, deletes old final claims, and forgets old Idempotency-Keys,
// a batch at a time. One replica sweeps at a time; the others skip.
func (s *Store) Sweep(ctx context.Context, r Retention) (SweepResult, error) {
	start := time.Now()
	var res SweepResult
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return res, dbErr("retention", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, sweepLock).Scan(&got); err != nil {
		return res, dbErr("retention", err)
	}
	if !got {
		res.Skipped = true
		return res, nil
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, sweepLock) //nolint:errcheck // released with the session anyway

	batches := 0
	for _, step := range []struct {
		age time.Duration
		sql string
		n   *int64
	}{
		{r.FailedSecrets, eraseFailedSecrets, &res.ErasedSecrets},
		{r.Claims, purgeClaims, &res.PurgedClaims},
		{r.IdempotencyKeys, purgeIdemKeys, &res.PurgedIdemKeys},
	} {
		if step.age <= 0 {
			continue
		}
		for {
			if batches == sweepMaxBatches {
				res.StoppedEarly = true
				break
			}
			batches++
			n, err := execCount(ctx, conn, step.sql, step.age)
			if err != nil {
				return res, dbErr("retention", err)
			}
			*step.n += n
			if n < sweepBatch {
				break
			}
		}
	}
	res.Took = time.Since(start)
	return res, nil
}

func execCount(ctx context.Context, conn *pgxpool.Conn, sql string, age time.Duration) (int64, error) {
	tag, err := conn.Exec(ctx, sql, age, sweepBatch)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
