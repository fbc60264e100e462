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

// Created is the outcome of Create.
type Created struct {
	Claim    claim.Claim
	Replayed bool // an earlier claim answers this request; nothing new was stored
}

// deviceLock is the advisory lock key that serialises intake per device, so
// the hold rule sees every earlier claim of that device.
func deviceLock(tokenHash []byte) int64 {
	return int64(binary.BigEndian.Uint64(tokenHash[:8]))
}

// Create stores a claim, applying docs/design.md §2's rules inside one transaction:
//   - an Idempotency-Key already used with the same request replays that
//     claim; with another request it is an error;
//   - a claim of the same device that is pending, or was delivered less than
//     hold ago, replays when it is the same request, and otherwise blocks
//     (409) unless req.Force;
//   - otherwise a new pending claim is inserted, audited and announced
//     (NOTIFY, delivered at commit).
//
// Concurrent calls share transactions (group commit, see groupcommit.go);
// intake is serialised per device by an advisory lock, so the rules see every
// earlier claim of the device. A nil error means the claim is committed.
func (s *Store) Create(ctx context.Context, req claim.Request, hold time.Duration) (Created, error) {
	return s.enqueue(ctx, req, hold)
}
