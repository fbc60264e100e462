package store

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Get returns one claim.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (claim.Claim, error) {
	c, err := scanClaim(s.pool.QueryRow(ctx, `SELECT `+claimColumns+` FROM claims WHERE id = $1`, id))
	return c, dbErr("get claim", err)
}

// ListByDevice returns a device's claims, newest first.
func (s *Store) ListByDevice(ctx context.Context, token claim.Token, limit int) ([]claim.Claim, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+claimColumns+` FROM claims WHERE token_hash = $1
		ORDER BY created_at DESC, id DESC LIMIT $2`, token.Hash(), limit)
	if err != nil {
		return nil, dbErr("list device claims", err)
	}
	cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claim.Claim, error) { return scanClaim(r) })
	return cs, dbErr("list device claims", err)
}

// List returns claims newest first, optionally of one status. cursor is the
// NextCursor of the previous page ("" for the first).
func (s *Store) List(ctx context.Context, status claim.Status, limit int, cursor string) (claim.Page, error) {
	return s.Search(ctx, claim.Filter{Status: status}, limit, cursor)
}

func encodeCursor(at time.Time, id uuid.UUID) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(at.UnixMicro()))
	return base64.RawURLEncoding.EncodeToString(append(b, id[:]...))
}

func decodeCursor(s string) (time.Time, uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 24 {
		return time.Time{}, uuid.Nil, errors.New("bad cursor")
	}
	id, _ := uuid.FromBytes(b[8:])
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))), id, nil
}

// Events returns a claim's audit trail, oldest first.
func (s *Store) Events(ctx context.Context, id uuid.UUID) ([]claim.Event, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT at, kind, attempt, coalesce(outcome, ''), coalesce(detail, ''), coalesce(actor, '')
		FROM claim_events WHERE claim_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, dbErr("claim events", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claim.Event, error) {
		var e claim.Event
		err := r.Scan(&e.At, &e.Kind, &e.Attempt, &e.Outcome, &e.Detail, &e.Actor)
		return e, err
	})
	return evs, dbErr("claim events", err)
}

// Retry puts a failed claim back to pending, due now. Like intake it refuses
// (409, naming it) when another claim of the device is live (claim.Blocking:
// ThingsBoard would ignore this one); force overrides. It takes the same
// locks as intake, so the rule sees every claim of the device.
func (s *Store) Retry(ctx context.Context, id uuid.UUID, hold time.Duration, force bool) (claim.Claim, error) {
	check := func(ctx context.Context, tx pgx.Tx) error {
		var tokenHash []byte
		if err := tx.QueryRow(ctx, `SELECT token_hash FROM claims WHERE id = $1`, id).Scan(&tokenHash); err != nil {
			return err
		}
		if err := lockDevice(ctx, tx, tokenHash); err != nil || force {
			return err
		}
		// Only a failed claim can be retried: any other is refused by the
		// guard below with that reason, not by the hold rule. Read under the
		// lock, so that a claim failing meanwhile still meets the rule.
		var status string
		if err := tx.QueryRow(ctx, `SELECT status FROM claims WHERE id = $1`, id).Scan(&status); err != nil || status != string(claim.StatusFailed) {
			return err
		}
		var now time.Time
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, deviceClaims, [][]byte{tokenHash}, id)
		if err != nil {
			return err
		}
		devices := map[string][]claim.Prior{}
		if err := scanDeviceClaims(rows, devices, map[uuid.UUID]claim.Claim{}); err != nil {
			return err
		}
		if b := claim.Blocking(devices[string(tokenHash)], id, now, hold); b != nil {
			return claim.HoldConflict(*b)
		}
		return nil
	}
	// A failed claim whose token and secret were erased (retention) cannot be sent again.
	return s.transition(ctx, id, "retried", `status = 'failed' AND token IS NOT NULL`,
		"is not failed, or its token and secret were erased after CLAIMSVC_FAILED_SECRET_RETENTION (create a new claim)",
		`status = 'pending', next_attempt_at = now(), pending_since = now(), last_error = NULL, last_error_kind = NULL, refusals = 0`, true, check, "")
}

// Cancel turns a pending claim that no dispatcher is sending right now into
// cancelled, and erases its token and secret.
func (s *Store) Cancel(ctx context.Context, id uuid.UUID) (claim.Claim, error) {
	return s.transition(ctx, id, "cancelled", `status = 'pending' AND (lease_until IS NULL OR lease_until < now())`,
		"is not pending, or is being sent right now",
		`status = 'cancelled', token = NULL, secret = NULL, next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL`, false, nil, "")
}

// transition applies an operator's state change when guard holds and check
// (if any) passes in the same transaction, and records event (with detail,
// when not empty, and the actor ctx carries: claim.WithActor).
func (s *Store) transition(ctx context.Context, id uuid.UUID, event, guard, refusal, set string, notify bool,
	check func(context.Context, pgx.Tx) error, detail string) (claim.Claim, error) {
	var c claim.Claim
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if check != nil {
			if err := check(ctx, tx); err != nil {
				return err
			}
		}
		var err error
		c, err = scanClaim(tx.QueryRow(ctx, `WITH c AS (
				UPDATE claims SET `+set+`, updated_at = now() WHERE id = $1 AND `+guard+` RETURNING `+claimColumns+`),
			e AS (INSERT INTO claim_events (claim_id, kind, detail, actor) SELECT id, $2, nullif($3, ''), nullif($4, '') FROM c)
			SELECT * FROM c`, id, event, detail, claim.ActorFrom(ctx)))
		if errors.Is(err, pgx.ErrNoRows) {
			cur, gerr := scanClaim(tx.QueryRow(ctx, `SELECT `+claimColumns+` FROM claims WHERE id = $1`, id))
			if gerr != nil {
				return gerr
			}
			return claim.Errorf(claim.CodeConflict, "claim %s %s (status %s)", cur.ID, refusal, cur.Status)
		}
		if err == nil && notify {
			_, err = tx.Exec(ctx, "SELECT pg_notify($1, '')", NotifyChannel)
		}
		return err
	})
	return c, dbErr(event, err)
}
