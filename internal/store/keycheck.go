package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// CheckDataKey opens the newest stored token with this process's data key,
// so that a replica started without the key, or with another one, refuses to
// start instead of discovering it claim by claim.
func (s *Store) CheckDataKey(ctx context.Context) error {
	var id uuid.UUID
	var token []byte
	err := s.pool.QueryRow(ctx, `SELECT id, token FROM claims WHERE token IS NOT NULL ORDER BY created_at DESC LIMIT 1`).Scan(&id, &token)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return dbErr("check data key", err)
	}
	if _, err := s.sealer.Open(token, id[:]); err != nil {
		return fmt.Errorf("%w (claim %s): %w", claim.ErrCannotDecrypt, id, err)
	}
	return nil
}
