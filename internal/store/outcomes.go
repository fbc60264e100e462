package store

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Statuses returns the status of each of ids that exists (the HTTP layer
// follows claims created without an API key to their outcome with it).
func (s *Store) Statuses(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]claim.Status, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, status FROM claims WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, dbErr("claim statuses", err)
	}
	out := make(map[uuid.UUID]claim.Status, len(ids))
	var id uuid.UUID
	var status string
	_, err = pgx.ForEachRow(rows, []any{&id, &status}, func() error {
		out[id] = claim.Status(status)
		return nil
	})
	return out, dbErr("claim statuses", err)
}
