package store

import (
	"context"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Expedite makes pending claims whose last attempt failed with the given
// kind due now, instead of at their backed-off time; the dispatcher calls it
// when the broker answers again after an outage (claim.FailUnreachable), so
// the backlog goes out at once rather than up to the backoff cap later.
// Claims leased right now are left alone. It returns how many it moved.
// deliveries limits it to claims of these deliveries (nil: all).
func (s *Store) Expedite(ctx context.Context, kind claim.FailureKind, deliveries []claim.Delivery) (int64, error) {
	tag, err := s.outbox.Exec(ctx, `UPDATE claims SET next_attempt_at = now(), updated_at = now()
		WHERE status = 'pending' AND next_attempt_at > now()
		  AND (lease_until IS NULL OR lease_until < now())
		  AND last_error_kind = $1 AND ($2::text[] IS NULL OR delivery = ANY($2))`, string(kind), deliveryNames(deliveries))
	if err != nil {
		return 0, dbErr("expedite", err)
	}
	return tag.RowsAffected(), nil
}
