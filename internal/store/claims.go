package store

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// claimColumns is what a claim view needs; scanClaim reads them in order.
const claimColumns = `id, status, token_hint, has_secret, duration_ms, attempts, coalesce(last_error, ''),
	created_at, updated_at, next_attempt_at, delivered_at`

// Leading columns that a query selects before claimColumns are scanned into
// lead.
func scanClaim(row pgx.Row, lead ...any) (claim.Claim, error) {
	var c claim.Claim
	var status string
	err := row.Scan(append(lead, &c.ID, &status, &c.TokenHint, &c.HasSecret, &c.DurationMs, &c.Attempts, &c.LastError,
		&c.CreatedAt, &c.UpdatedAt, &c.NextAttemptAt, &c.DeliveredAt)...)
	c.Status = claim.Status(status)
	if c.Status != claim.StatusPending {
		c.NextAttemptAt = nil
	}
	return c, err
}

// deviceLock is the advisory lock key that serialises intake per device, so
// the hold rule sees every earlier claim of that device.
func deviceLock(tokenHash []byte) int64 {
	return int64(binary.BigEndian.Uint64(tokenHash[:8]))
}

// Create stores a claim, applying the intake rules (claim.DecideIntake)
// inside one transaction; a new claim is inserted, audited and announced
// (NOTIFY, delivered at commit).
//
// Concurrent calls share transactions (group commit, see groupcommit.go);
// intake is serialised per device by an advisory lock, so the rules see every
// earlier claim of the device. A nil error means the claim is committed.
func (s *Store) Create(ctx context.Context, req claim.Request, hold time.Duration) (claim.Accepted, error) {
	return s.enqueue(ctx, req, hold)
}
