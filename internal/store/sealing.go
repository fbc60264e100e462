package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/seal"
)

// The columns a sealed value is bound to (seal's associated data): a value
// moved to the other column, or to another row, does not open.
const (
	colToken  = "token"
	colSecret = "secret"
)

func (s *Store) sealToken(id uuid.UUID, token claim.Token) []byte {
	return s.sealer.Seal([]byte(token), id[:], colToken)
}

func (s *Store) sealSecret(id uuid.UUID, secret claim.Secret) []byte {
	return s.sealer.Seal([]byte(secret), id[:], colSecret)
}

// openJob opens a leased row's token and (when present) secret.
func (s *Store) openJob(id uuid.UUID, token, secret []byte) (claim.Token, *claim.Secret, error) {
	tok, err := s.sealer.Open(token, id[:], colToken)
	if err != nil {
		return "", nil, fmt.Errorf("token: %w", err)
	}
	if secret == nil {
		return claim.Token(tok), nil, nil
	}
	sec, err := s.sealer.Open(secret, id[:], colSecret)
	if err != nil {
		return "", nil, fmt.Errorf("secret: %w", err)
	}
	sk := claim.Secret(sec)
	return claim.Token(tok), &sk, nil
}

// sealedRow is a claim's id with its sealed token and secret, as stored.
type sealedRow struct {
	id            uuid.UUID
	token, secret []byte
}

// querySealed runs a query that selects id, token, secret and collects its
// rows.
func (s *Store) querySealed(ctx context.Context, op, sql string, args ...any) ([]sealedRow, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	got, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (sealedRow, error) {
		var x sealedRow
		err := cr.Scan(&x.id, &x.token, &x.secret)
		return x, err
	})
	return got, dbErr(op, err)
}

// unopened is a leased claim whose token or secret does not open here.
type unopened struct {
	job claim.Job
	err error
}

// How long a claim that does not open is handed back for.
const (
	// Sealed with a key this process lacks: another replica (mid key
	// rotation) may have it.
	handBackUnknownKey = time.Minute
	// Tampered with, or in a form refused once a key is set: no replica
	// will send it until an operator acts (claimsvc rekey, or cancel it).
	handBackRefused = time.Hour
)

// handBack releases claims that do not open, for a replica that can or for
// an operator, and reports them as one error wrapping claim.ErrCannotDecrypt.
// It never fails a claim for it: a wrong keyring on one replica must not
// fail claims that another can send.
func (s *Store) handBack(ctx context.Context, bad []unopened) error {
	var unknown, refused []claim.Job
	var ids []uuid.UUID
	var firstRefused error
	for _, u := range bad {
		if errors.Is(u.err, seal.ErrUnknownKey) {
			unknown = append(unknown, u.job)
			continue
		}
		refused = append(refused, u.job)
		ids = append(ids, u.job.ID)
		if firstRefused == nil {
			firstRefused = u.err
		}
	}
	ctx = context.WithoutCancel(ctx)
	_ = s.release(ctx, unknown, handBackUnknownKey,
		"this replica cannot decrypt the claim (its data key is missing or different); left for one that can")
	_ = s.release(ctx, refused, handBackRefused,
		"the claim's token or secret does not open: tampered with, or stored in plain text or an older format "+
			"(run claimsvc rekey, or cancel the claim); not sent")
	if len(refused) > 0 {
		return fmt.Errorf("%w: %d claims sealed with a key this replica lacks, handed back for a minute; %d claims that do not open "+
			"(tampered with, or needing claimsvc rekey), handed back for an hour: %v: %w",
			claim.ErrCannotDecrypt, len(unknown), len(refused), ids, firstRefused)
	}
	return fmt.Errorf("%w: %d claims sealed with a key this replica lacks, handed back for a minute", claim.ErrCannotDecrypt, len(unknown))
}
