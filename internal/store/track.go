package store

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// DueForLook takes up to n delivered claims that name their device and were
// not looked at in the last every (never-looked-at first, then the least
// recently), and marks them looked at now, so that other replicas skip them
// (FOR UPDATE SKIP LOCKED) and each is looked at about once per every.
func (s *Store) DueForLook(ctx context.Context, n int, every time.Duration) ([]claim.Watch, error) {
	rows, err := s.outbox.Query(ctx, `UPDATE claims c SET checked_at = now()
		FROM (SELECT id FROM claims
		      WHERE status = 'delivered' AND device_name IS NOT NULL
		        AND (checked_at IS NULL OR checked_at <= now() - $1::interval)
		      ORDER BY checked_at NULLS FIRST
		      LIMIT $2
		      FOR UPDATE SKIP LOCKED) due
		WHERE c.id = due.id
		RETURNING c.id, c.delivery, c.device_name, coalesce(c.tb_device_id::text, ''), c.expires_at`, every, n)
	if err != nil {
		return nil, dbErr("due for a look", err)
	}
	ws, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claim.Watch, error) {
		var w claim.Watch
		var delivery string
		var expires *time.Time
		err := r.Scan(&w.ID, &delivery, &w.DeviceName, &w.DeviceID, &expires)
		w.Delivery = claim.Delivery(delivery)
		if expires != nil {
			w.ExpiresAt = *expires
		}
		return w, err
	})
	return ws, dbErr("due for a look", err)
}

// Record stores what the tracker saw, in one statement: claimed and expired
// claims change status (only while still delivered: an operator's cancel or
// a newer claim wins) with an event each; a device id learnt by name is kept;
// a device that is not found is recorded as the claim's last error, with an
// event the first time. It returns the claims whose status changed.
func (s *Store) Record(ctx context.Context, obs []claim.Observation) ([]uuid.UUID, error) {
	if len(obs) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, len(obs))
	seen := make([]string, len(obs))
	devices := make([]*string, len(obs))
	customers := make([]*string, len(obs))
	details := make([]string, len(obs))
	for i, o := range obs {
		ids[i], seen[i], details[i] = o.Claim, string(o.Seen), o.Detail
		if o.DeviceID != "" {
			devices[i] = &obs[i].DeviceID
		}
		if o.CustomerID != "" {
			customers[i] = &obs[i].CustomerID
		}
	}
	rows, err := s.outbox.Query(ctx, `WITH o AS (
			SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[])
			       WITH ORDINALITY AS o(id, seen, device, customer, detail, ord)
		), c AS (
			UPDATE claims SET
			       status = CASE o.seen WHEN 'claimed' THEN 'claimed' WHEN 'expired' THEN 'expired' ELSE claims.status END,
			       claimed_at = CASE WHEN o.seen = 'claimed' THEN now() ELSE claims.claimed_at END,
			       customer_id = CASE WHEN o.seen = 'claimed' THEN o.customer ELSE claims.customer_id END,
			       tb_device_id = coalesce(o.device, claims.tb_device_id),
			       last_error = CASE WHEN o.seen = 'no-device' THEN o.detail
			                         WHEN o.seen IN ('claimed', 'expired') THEN NULL ELSE claims.last_error END,
			       updated_at = CASE WHEN o.seen IN ('claimed', 'expired') THEN now() ELSE claims.updated_at END
			FROM o
			WHERE claims.id = o.id AND claims.status = 'delivered'
			RETURNING claims.id, o.seen, o.detail, o.ord,
			          (SELECT last_error FROM claims old WHERE old.id = claims.id) AS was
		), e AS (
			INSERT INTO claim_events (claim_id, kind, detail)
			SELECT id, CASE seen WHEN 'no-device' THEN 'tracking' ELSE seen END, nullif(detail, '') FROM c
			WHERE seen IN ('claimed', 'expired') OR (seen = 'no-device' AND was IS DISTINCT FROM detail)
			ORDER BY ord
		)
		SELECT id FROM c WHERE seen IN ('claimed', 'expired')`, ids, seen, devices, customers, details)
	if err != nil {
		return nil, dbErr("record looks", err)
	}
	changed, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	return changed, dbErr("record looks", err)
}

// RevokeTarget returns the ThingsBoard device of a delivered attribute claim
// (to delete its claimingData), or ok false when the claim is not one.
func (s *Store) RevokeTarget(ctx context.Context, id uuid.UUID) (deviceID string, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT coalesce(tb_device_id::text, '') FROM claims
		WHERE id = $1 AND status = 'delivered' AND delivery = 'attribute'`, id).Scan(&deviceID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return deviceID, err == nil, dbErr("revoke", err)
}

// clearTimeout bounds ClearClaimingData's call to ThingsBoard.
const clearTimeout = 15 * time.Second

// ClearClaimingData runs clear, the deletion of the device's claimingData in
// ThingsBoard on behalf of attribute claim id (expired, or revoked), while
// the device's lock is held: a claim request for the device (single, or in a
// batch of up to 64 devices) waits until clear returns, so none is accepted
// and written meanwhile. A batch of more devices takes no device locks; a
// claim it brings would have to be sent and written within clear's few
// milliseconds to be lost. When a newer attribute claim of the device is
// pending or delivered, ThingsBoard's attribute is (or is about to be) that
// claim's: clear is not run, and ran is false. clear's error is returned as
// it is, with ran true; any other error (the database's) comes with ran false.
func (s *Store) ClearClaimingData(ctx context.Context, id uuid.UUID, clear func(context.Context) error) (ran bool, err error) {
	var clearErr error
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var hash []byte
		var created time.Time
		if err := tx.QueryRow(ctx, `SELECT token_hash, created_at FROM claims WHERE id = $1`, id).Scan(&hash, &created); err != nil {
			return err
		}
		// The device's own lock only, not the shared intake lock: a large
		// batch (which takes that lock exclusively) must not wait for
		// ThingsBoard, nor every request queued behind it.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", deviceLock(hash)); err != nil {
			return err
		}
		var newer bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM claims
			WHERE token_hash = $1 AND id <> $2 AND delivery = 'attribute' AND status IN ('pending', 'delivered')
			  AND (created_at, id) > ($3, $2))`, hash, id, created).Scan(&newer); err != nil || newer {
			return err
		}
		ran = true
		// The device's intake waits meanwhile, and a pool connection is
		// held: ThingsBoard gets a bounded time to answer.
		cctx, cancel := context.WithTimeout(ctx, clearTimeout)
		defer cancel()
		clearErr = clear(cctx)
		return clearErr
	})
	switch {
	case clearErr != nil:
		return true, clearErr
	case err != nil:
		return false, dbErr("clear claimingData", err)
	}
	return ran, nil
}

// Revoked records that a delivered attribute claim's claimingData was
// deleted in ThingsBoard: the claim is cancelled.
func (s *Store) Revoked(ctx context.Context, id uuid.UUID) (claim.Claim, error) {
	return s.transition(ctx, id, "cancelled", `status = 'delivered' AND delivery = 'attribute'`,
		"is no longer a delivered attribute claim", `status = 'cancelled'`, false, nil,
		"revoked: its claimingData attribute was deleted in ThingsBoard")
}
