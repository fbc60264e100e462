package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
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

// Create stores a claim, applying design §2's rules inside one transaction:
//   - an Idempotency-Key already used with the same request replays that
//     claim; with another request it is an error;
//   - a claim of the same device that is pending, or was delivered less than
//     hold ago, replays when it is the same request, and otherwise blocks
//     (409) unless req.Force;
//   - otherwise a new pending claim is inserted, audited and announced
//     (NOTIFY, delivered at commit).
//
// A nil error means the claim is committed.
func (s *Store) Create(ctx context.Context, req claim.Request, hold time.Duration) (Created, error) {
	for range 2 { // a concurrent insert with the same Idempotency-Key makes us read it once more
		out, err := s.create(ctx, req, hold)
		if isUniqueViolation(err, "claims_idempotency_key_key") {
			continue
		}
		return out, dbErr("create claim", err)
	}
	return Created{}, claim.Errorf(claim.CodeConflict, "a concurrent request with the same Idempotency-Key is in progress")
}

func (s *Store) create(ctx context.Context, req claim.Request, hold time.Duration) (Created, error) {
	tokenHash := req.Token.Hash()
	fp := req.Fingerprint()
	var out Created
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", deviceLock(tokenHash)); err != nil {
			return err
		}
		if req.IdempotencyKey != "" {
			var gotHash, gotFP []byte
			row := tx.QueryRow(ctx, `SELECT token_hash, fingerprint, `+claimColumns+` FROM claims WHERE idempotency_key = $1`, req.IdempotencyKey)
			c, err := scanClaim(row, &gotHash, &gotFP)
			switch {
			case err == nil:
				if !bytes.Equal(gotHash, tokenHash) || !bytes.Equal(gotFP, fp) {
					return &claim.Error{Code: claim.CodeIdemReuse, Message: "this Idempotency-Key was already used with a different request"}
				}
				out = Created{Claim: c, Replayed: true}
				return nil
			case err != pgx.ErrNoRows:
				return err
			}
		}

		var gotFP []byte
		row := tx.QueryRow(ctx, `SELECT fingerprint, `+claimColumns+` FROM claims
			WHERE token_hash = $1
			  AND (status = 'pending' OR (status = 'delivered' AND delivered_at > now() - $2::interval))
			ORDER BY created_at DESC LIMIT 1`, tokenHash, hold)
		c, err := scanClaim(row, &gotFP)
		switch {
		case err == nil:
			if bytes.Equal(gotFP, fp) {
				out = Created{Claim: c, Replayed: true}
				return nil
			}
			if !req.Force {
				id := c.ID
				msg := "a different claim for this device is pending"
				if c.Status == claim.StatusDelivered {
					msg = "a different claim for this device was delivered within the hold window; ThingsBoard would silently ignore a new one until it is used or expires"
				}
				return &claim.Error{Code: claim.CodeConflict, Message: msg + " (use ?force=true to send anyway)", Blocking: &id}
			}
		case err != pgx.ErrNoRows:
			return err
		}

		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		token := s.sealer.Seal([]byte(req.Token), id[:])
		var secret []byte
		if req.SecretKey != nil {
			secret = s.sealer.Seal([]byte(*req.SecretKey), id[:])
		}
		var idem *string
		if req.IdempotencyKey != "" {
			idem = &req.IdempotencyKey
		}
		row = tx.QueryRow(ctx, `WITH c AS (
				INSERT INTO claims (id, token_hash, token_hint, token, secret, has_secret, duration_ms, fingerprint,
				                    idempotency_key, next_attempt_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
				RETURNING `+claimColumns+`),
			e AS (INSERT INTO claim_events (claim_id, kind) SELECT id, 'accepted' FROM c)
			SELECT * FROM c`,
			id, tokenHash, claim.Hint(string(req.Token)), token, secret, req.SecretKey != nil, req.DurationMs, fp, idem)
		if out.Claim, err = scanClaim(row); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, '')", NotifyChannel)
		return err
	})
	return out, err
}
